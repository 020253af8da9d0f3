"""IO managers: published tables go to the versioned Parquet store; intermediates (grids as GeoTIFF, tables as
Parquet) to the run's own folder under the same root. Both only *stage*: `commit_run` (see `run_commit.py`) lists a
run's outputs as the latest once the whole run has succeeded. A step reads what its own run staged first; else
the version of the input's latest materialization in this Dagster instance, unless the run that made it failed (an
asset backfill starts a drop's run as soon as the grids it reads are materialized, while the run making them goes
on, and before the commit sensor lists them); else the latest committed version. So a run never reads a failed
run's outputs. (Should the run that made an input fail after its step, the input is never listed; the reading
run's provenance names its version all the same.)
"""

import io
from pathlib import Path

import dagster as dg
import pandas as pd

from soil_pipeline.contracts.model import CONTRACTS_DIR, load_table_contract
from soil_pipeline.contracts.validate import REJECTS_CONTRACT
from soil_pipeline.provenance import code_version, contract_input
from soil_pipeline.publishing.grids import StoredLayer, layer_from_geotiff, layer_to_geotiff
from soil_pipeline.publishing.parquet import TableFile, read_provenance, to_parquet_bytes
from soil_pipeline.publishing.root import OutputRoot
from soil_pipeline.publishing.store import DATA_FILE, VersionedParquetStore
from soil_pipeline.science.grid import Layer

PREVIEW_ROWS = 5
# Asset definition metadata naming the (longitude, latitude) columns of a table to publish as GeoParquet points.
GEOPARQUET_POINTS = "geoparquet_points"
# Columns added to each row of a partitioned table read whole by a step of no partition: the partition (the field
# drop) the row was published in, and that partition's version in the store.
PARTITION_COLUMN, PARTITION_VERSION_COLUMN = "partition_key", "partition_version"


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


def table_schema(frame: pd.DataFrame | TableFile, asset: str | None = None) -> dg.TableSchema:
    """Column names and dtypes, with each column's description, unit and constraints from the asset's contract."""
    specs = _contract_columns(asset) if asset else {}
    dtypes = frame.dtypes() if isinstance(frame, TableFile) else frame.dtypes
    return dg.TableSchema(columns=[_column(str(n), t, specs.get(str(n))) for n, t in dtypes.items()])


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


def _preview(obj: pd.DataFrame | TableFile) -> dg.MetadataValue:
    """The first rows, unless the asset gave its own preview (e.g. a summary of the table)."""
    return dg.MetadataValue.md(obj.head(PREVIEW_ROWS).to_markdown(index=False))


def _publication(published) -> str:
    if published.newly_published:
        return f"new version {published.version}, staged: listed as the latest when the run succeeds"
    return f"unchanged: identical version {published.version} was already written; nothing new written"


def _partition(context: dg.InputContext | dg.OutputContext) -> str | None:
    return context.asset_partition_key if context.has_asset_partitions else None


def _producing_run(context: dg.InputContext) -> str:
    """The run whose staged output to read first: this run, or its parent when a re-execution skipped the step."""
    return context.upstream_output.run_id


def _reading_run(context: dg.InputContext) -> str:
    """The run the step loading an input belongs to (the producing run for a context built outside a run)."""
    try:
        return context.step_context.run_id
    except dg.DagsterInvariantViolationError:
        return _producing_run(context)


# Runs whose materializations may be read: going on (an asset backfill's runs overlap) or succeeded.
READABLE_RUNS = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS)


def _materializing_run(context: dg.InputContext, partition: str | None) -> str | None:
    """The run of the latest materialization of the input (of `partition`) in this instance, unless it failed."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a context built outside a run
        return None
    partitions = [partition] if partition is not None else None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=partitions), limit=1
    ).records
    if not records:
        return None
    run = instance.get_run_by_id(records[0].run_id)
    return run.run_id if run is not None and run.status in READABLE_RUNS else None


def _materialized(context: dg.InputContext, store: VersionedParquetStore, asset: str, key: str | None) -> str | None:
    """The version the input's latest materialization (of a run that did not fail) staged, while it is staged (once
    committed, it is the latest listed anyway)."""
    run = _materializing_run(context, key)
    return store.staged(run, asset, key) if run else None


def _partition_keys(context: dg.InputContext, latest: dict) -> list[str | None]:
    """The partitions of the input to read. A step of no partition reading every drop (the regional tables) reads
    the drops this instance knows and every drop published on the output root: the root is where the drops live,
    and an instance may know few of them (`soil-pipeline run` starts one of its own)."""
    if not context.has_asset_partitions:
        return [None]
    keys = list(context.asset_partition_keys)
    if _step_of_no_partition(context):
        keys += sorted(key for key in latest if key is not None and key not in keys)
    return keys


def _step_of_no_partition(context: dg.InputContext) -> bool:
    """Whether the step loading the input is of an asset without partitions (in a partitioned run too: the run's
    partition key is set for every step, `has_partition_key` says nothing about the step's own asset)."""
    try:
        assets_def = context.step_context.assets_def
    except dg.DagsterInvariantViolationError:  # a context built outside a run
        return not context.has_partition_key
    return assets_def is None or assets_def.partitions_def is None


def _live(store: VersionedParquetStore, run_id: str) -> None:
    """Claim `run_id` live (`gc` leaves it alone while this process runs it), and fail at once, saying why, if its
    folder was removed meanwhile."""
    store.claim_run(run_id)
    store.check_run(run_id)


def _same_step_inputs(context: dg.OutputContext, store: VersionedParquetStore) -> dict:
    """The outputs of the same step this output is made from (a multi-asset's internal dependencies), named as
    `load_input` names an upstream asset: the version this run staged and its data's sha256."""
    try:
        assets_def = context.step_context.assets_def
    except dg.DagsterInvariantViolationError:  # a context built outside a run
        return {}
    inputs = {}
    for key in assets_def.asset_deps.get(context.asset_key, set()) & set(assets_def.keys):
        table, partition = key.path[0], _partition(context)
        version = store.staged(context.run_id, table, partition)
        if version:
            label = f"published:{table}[{partition}]" if partition else f"published:{table}"
            inputs[label] = {"version": version, "sha256": store.manifest(table, version)["files"][DATA_FILE]}
    return inputs


class _RunClaim:
    """The run is claimed live on the output root as soon as its IO managers are set up (before any step writes)."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.run_id:
            _live(VersionedParquetStore(self.output_root), context.run_id)


class PublishedParquetIOManager(_RunClaim, dg.ConfigurableIOManager):
    """Stages each DataFrame output as an immutable version (or an identical existing one) for the run's commit.

    Tables too large for memory travel as `TableFile`s: an output is staged batch by batch, and an input annotated
    `TableFile` is handed over as the published file, read batch by batch, instead of a DataFrame."""

    output_root: str

    @property
    def store(self) -> VersionedParquetStore:
        return VersionedParquetStore(self.output_root)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | TableFile) -> None:
        asset, partition = store_key(context)
        store = self.store
        _live(store, context.run_id)
        lineage = obj.attrs.get("provenance", {})
        inputs = {**lineage.get("inputs", {}), **_same_step_inputs(context, store), **contract_input(asset)}
        provenance = {
            **lineage,
            "inputs": dict(sorted(inputs.items())),
            "parameters": lineage.get("parameters", {}),
            "code": code_version(),
        }
        published = store.stage(context.run_id, asset, obj, provenance, partition, points=_points(context))
        context.add_output_metadata(
            {
                "dagster/row_count": published.manifest["row_count"],
                "dagster/column_schema": table_schema(obj, asset),
                "version": published.version,
                "published_path": dg.MetadataValue.path(published.path),
                "newly_published": published.newly_published,
                "publication": _publication(published),
                "data_sha256": published.manifest["files"][DATA_FILE],
                **({} if "preview" in (context.output_metadata or {}) else {"preview": _preview(obj)}),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | TableFile:
        """The version this run staged, else the latest (of each requested partition), with its lineage as the
        frame's input provenance; a `TableFile` when the input is annotated so (one partition). A partitioned table
        read whole by a step of no partition carries each row's partition and version (`PARTITION_COLUMN`)."""
        asset = context.asset_key.to_user_string()
        store = self.store
        store.check_run(_reading_run(context))
        latest = store.latest_by_partition(asset)
        keys = _partition_keys(context, latest)
        producing = _producing_run(context)
        versions = {
            key: store.staged(producing, asset, key) or _materialized(context, store, asset, key) or latest.get(key)
            for key in keys
        }
        versions = {key: version for key, version in versions.items() if version}
        if not versions:
            raise dg.Failure(f"nothing published for {asset} under {store.root}")
        as_file = context.dagster_type.typing_type is TableFile
        if as_file and len(versions) > 1:
            raise dg.Failure(f"{asset}: a TableFile input reads one partition, {len(versions)} requested")
        frames, inputs = [], {}
        whole = context.has_asset_partitions and _step_of_no_partition(context)
        for key, version in versions.items():
            manifest = store.manifest(asset, version)
            frame = store.table_file(asset, version) if as_file else store.read(asset, version)
            if whole and not as_file:
                frame = frame.assign(**{PARTITION_COLUMN: key, PARTITION_VERSION_COLUMN: version})
            frames.append(frame)
            inputs.update(manifest["provenance"].get("inputs", {}))
            label = f"published:{asset}[{key}]" if key else f"published:{asset}"
            inputs[label] = {"version": version, "sha256": manifest["files"][DATA_FILE]}
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        frame.attrs["provenance"] = {"inputs": dict(sorted(inputs.items()))}
        return frame


class IntermediateIOManager(_RunClaim, dg.ConfigurableIOManager):
    """Values passed between steps, in open formats under `<root>/_runs/<run id>/intermediate/`: a `Layer` as a
    GeoTIFF, a DataFrame as Parquet. Nothing is ever written in place, so concurrent runs never read each other's
    half-written files, and nothing is unpickled."""

    output_root: str

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if isinstance(obj, StoredLayer) and isinstance(obj.location, str):
            suffix, data = ".tif", Path(obj.location)  # copied as it is, never whole in memory
        elif isinstance(obj, Layer):
            suffix, data = ".tif", layer_to_geotiff(obj)
        elif isinstance(obj, pd.DataFrame):
            suffix, data = ".parquet", to_parquet_bytes(obj, obj.attrs.get("provenance"))
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: intermediates must be a Layer or a DataFrame")
        store = VersionedParquetStore(self.output_root)
        _live(store, context.run_id)
        path = store.write_intermediate(
            context.run_id, context.asset_key.to_user_string(), _partition(context), suffix, data
        )
        context.add_output_metadata({"intermediate": dg.MetadataValue.path(path)})

    def load_input(self, context: dg.InputContext):
        store = VersionedParquetStore(self.output_root)
        store.check_run(_reading_run(context))
        asset, partition = context.asset_key.to_user_string(), _partition(context)
        run = _producing_run(context)
        if not store.has_intermediate(run, asset, partition):
            run = _materializing_run(context, partition) or run
        try:
            suffix, data = store.intermediate_location(run, asset, partition, _reading_run(context))
        except KeyError as error:
            raise dg.Failure(str(error.args[0])) from None
        if suffix == ".tif":
            return layer_from_geotiff(data)
        if isinstance(data, str):
            data = Path(data).read_bytes()
        frame = pd.read_parquet(io.BytesIO(data))
        frame.attrs["provenance"] = read_provenance(io.BytesIO(data))
        return frame


def build_io_managers(root: OutputRoot) -> dict:
    return {
        "io_manager": IntermediateIOManager(output_root=root.url),
        "published_io_manager": PublishedParquetIOManager(output_root=root.url),
    }
