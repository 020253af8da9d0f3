"""soil_pipeline: field soil measurements and global grids in, versioned numbers on soil carbon potential out.

`soil_pipeline.read(asset)` returns a published table; importing the package itself stays light (no pandas, no
Dagster) until it is called.
"""


def read(asset: str, version: str = "latest", root: str | None = None, partition: str | None = None):
    """A published version of `asset` as a pandas DataFrame.

    `version` is a version id from the catalog or "latest"; `root` is the output root (local path, fsspec URL or
    `OutputRoot`, default `soil_pipeline_output`); `partition` picks a monthly drop when the asset has a latest
    version for several.
    """
    from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT
    from soil_pipeline.publishing.store import VersionedParquetStore

    return VersionedParquetStore(root or DEFAULT_OUTPUT_ROOT).read(asset, version, partition)
