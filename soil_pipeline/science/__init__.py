"""Pure science core: SOC stock arithmetic, grid alignment, zonal sums. No Dagster imports here."""
