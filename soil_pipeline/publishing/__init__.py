"""The versioned Parquet store: immutable version folders, manifests and a catalog. No Dagster imports here."""
