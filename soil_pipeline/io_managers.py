"""IO managers: published tables go to the versioned Parquet store, grids to pickles under the same root."""

import dagster as dg
import pandas as pd

from soil_pipeline.contracts.model import CONTRACTS_DIR, load_table_contract
from soil_pipeline.contracts.validate import REJECTS_CONTRACT
from soil_pipeline.provenance import code_version, contract_input
from soil_pipeline.publishing.root import normalise_root
from soil_pipeline.publishing.store import DATA_FILE, VersionedParquetStore

INTERMEDIATE_DIR = "_intermediate"
PREVIEW_ROWS = 5
# Asset definition metadata naming the (longitude, latitude) columns of a table to publish as GeoParquet points.
GEOPARQUET_POINTS = "geoparquet_points"


def _contract_columns(asset: str) -> dict:
    """Column specs of the contract an asset is published under (none when it has no contract)."""
    name = REJECTS_CONTRACT if asset.endswith("_rejects") else asset
    if not (CONTRACTS_DIR / f"{name}.yaml").is_file():
        return {}
    return {column.name: column for column in load_table_contract(name).columns}


def _column(name: str, dtype, spec) -> dg.TableColumn:
    if spec is None:
        return dg.TableColumn(name=name, type=str(dtype))
    unit = f" [{spec.unit}]" if spec.unit else ""
    ranged = [spec.range_text()] if spec.minimum is not None or spec.maximum is not None else []
    return dg.TableColumn(
        name=name,
        type=str(dtype),
        description=f"{spec.description}{unit}".strip(),
        constraints=dg.TableColumnConstraints(nullable=not spec.required, unique=spec.unique, other=ranged),
    )


def table_schema(frame: pd.DataFrame, asset: str | None = None) -> dg.TableSchema:
    """Column names and dtypes, with each column's description, unit and constraints from the asset's contract."""
    specs = _contract_columns(asset) if asset else {}
    return dg.TableSchema(columns=[_column(str(n), t, specs.get(str(n))) for n, t in frame.dtypes.items()])


def _points(context: dg.OutputContext) -> tuple[str, str] | None:
    value = (context.definition_metadata or {}).get(GEOPARQUET_POINTS)
    value = getattr(value, "value", value)
    return (value[0], value[1]) if value else None


def store_key(context: dg.OutputContext | dg.InputContext) -> tuple[str, str | None]:
    """(store table, partition): asset `<table>/<part>` (one asset per scenario) is partition `<part>` of `<table>`."""
    path = context.asset_key.path
    if len(path) == 2:
        return path[0], path[1]
    return path[0], context.partition_key if context.has_asset_partitions else None


def _publication(published) -> str:
    if published.newly_published:
        return f"new version {published.version}"
    return f"unchanged: identical version {published.version} was already published; nothing new written"


class PublishedParquetIOManager(dg.ConfigurableIOManager):
    """Publishes each DataFrame output as a new immutable version (or re-marks an identical one as latest)."""

    output_root: str

    @property
    def store(self) -> VersionedParquetStore:
        return VersionedParquetStore(self.output_root)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        asset, partition = store_key(context)
        lineage = obj.attrs.get("provenance", {})
        provenance = {
            **lineage,
            "inputs": dict(sorted({**lineage.get("inputs", {}), **contract_input(asset)}.items())),
            "parameters": lineage.get("parameters", {}),
            "code": code_version(),
        }
        run = {"dagster_run_id": context.run_id}
        published = self.store.publish(asset, obj, provenance, partition, run, points=_points(context))
        context.add_output_metadata(
            {
                "dagster/row_count": len(obj),
                "dagster/column_schema": table_schema(obj, asset),
                "version": published.version,
                "published_path": dg.MetadataValue.path(published.path),
                "newly_published": published.newly_published,
                "publication": _publication(published),
                "data_sha256": published.manifest["files"][DATA_FILE],
                "preview": dg.MetadataValue.md(obj.head(PREVIEW_ROWS).to_markdown(index=False)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The latest version (of each requested partition), with its lineage as the frame's input provenance."""
        asset = context.asset_key.to_user_string()
        store = self.store
        latest = store.latest_by_partition(asset)
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        versions = {key: latest[key] for key in keys if key in latest}
        if not versions:
            raise dg.Failure(f"nothing published for {asset} under {store.root}")
        frames, inputs = [], {}
        for key, version in versions.items():
            manifest = store.manifest(asset, version)
            frames.append(store.read(asset, version))
            inputs.update(manifest["provenance"].get("inputs", {}))
            label = f"published:{asset}[{key}]" if key else f"published:{asset}"
            inputs[label] = {"version": version, "sha256": manifest["files"][DATA_FILE]}
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        frame.attrs["provenance"] = {"inputs": dict(sorted(inputs.items()))}
        return frame


def build_io_managers(output_root: str) -> dict:
    root = normalise_root(output_root)
    return {
        "io_manager": dg.FilesystemIOManager(base_dir=f"{root}/{INTERMEDIATE_DIR}"),
        "published_io_manager": PublishedParquetIOManager(output_root=root),
    }
