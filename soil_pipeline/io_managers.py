"""IO managers: published tables go to the versioned Parquet store, grids to pickles under the same root."""

import dagster as dg
import pandas as pd

from soil_pipeline.provenance import code_version
from soil_pipeline.publishing.store import VersionedParquetStore

INTERMEDIATE_DIR = "_intermediate"
PREVIEW_ROWS = 5


def table_schema(frame: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(n), type=str(t)) for n, t in frame.dtypes.items()])


class PublishedParquetIOManager(dg.ConfigurableIOManager):
    """Publishes each DataFrame output as a new immutable version (or re-marks an identical one as latest)."""

    output_root: str

    @property
    def store(self) -> VersionedParquetStore:
        return VersionedParquetStore(self.output_root)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        asset = context.asset_key.to_user_string()
        partition = context.partition_key if context.has_asset_partitions else None
        provenance = {**obj.attrs.get("provenance", {"inputs": {}, "parameters": {}}), "code": code_version()}
        run = {"dagster_run_id": context.run_id}
        published = self.store.publish(asset, obj, provenance, partition=partition, run=run)
        context.add_output_metadata(
            {
                "dagster/row_count": len(obj),
                "dagster/column_schema": table_schema(obj),
                "version": published.version,
                "published_path": dg.MetadataValue.path(str(published.path)),
                "newly_published": published.newly_published,
                "preview": dg.MetadataValue.md(obj.head(PREVIEW_ROWS).to_markdown(index=False)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        asset = context.asset_key.to_user_string()
        latest = self.store.latest_by_partition(asset)
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        versions = {key: latest[key] for key in keys if key in latest}
        if not versions:
            raise dg.Failure(f"nothing published for {asset} under {self.store.root}")
        frames = [self.store.read(asset, version) for version in versions.values()]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        label = {key: f"{asset}[{key}]" if key else asset for key in versions}
        frame.attrs["provenance"] = {"inputs": {label[key]: {"version": v} for key, v in versions.items()}}
        return frame


def build_io_managers(output_root: str) -> dict:
    return {
        "io_manager": dg.FilesystemIOManager(base_dir=f"{output_root}/{INTERMEDIATE_DIR}"),
        "published_io_manager": PublishedParquetIOManager(output_root=output_root),
    }
