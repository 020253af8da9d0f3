"""The streaming raster engine: rasters read window by window onto the common grid (`raster`), passes over the
windows on long-lived threads or a Dask cluster (`raster.run_pass`, `threads`), grids written window by window
(`grid_pass`), zonal sums (`zonal`), point lookups (`points`), restoration-scenario passes (`scenario_passes`) and
the process's memory settings (`memory`). It knows nothing of Dagster; the arithmetic it runs lives in `science`."""
