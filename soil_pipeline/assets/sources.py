"""Raw inputs as observable source assets whose data version is the sha256 of their files.

The ingesting assets depend on these (`deps=`) and record an observation of each input they read before reading it,
so every run, from the CLI or the UI, records what it was built from; with the `code_version` on every asset, after
an input drop, a changed raster or a code change the Dagster UI marks the affected assets stale and says why.
"Observe all" in the UI observes them on demand. A URL input (e.g. `/vsicurl/...`) is not downloaded to be
hashed: its data version is its content identity as the server reports it (ETag, size, last-modified), never its
address, which may carry a rotating signature.
"""

import hashlib
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from soil_pipeline import provenance
from soil_pipeline.asset_conventions import SOURCE_TAGS
from soil_pipeline.contracts.declaration import is_drop_declaration
from soil_pipeline.partitions import field_drops
from soil_pipeline.raster_inputs import RASTER_INPUTS
from soil_pipeline.readers import drop_folders, is_table_name
from soil_pipeline.resources import InputDatasets
from soil_pipeline.zones import CLIMATE_ZONE_LEGEND

GROUP = "raw_inputs"
# Observable source assets are Dagster 1.13's one way for the UI to observe raw files ("Observe all") and mark what
# they feed as stale; Dagster labels the API beta. The version is pinned (requirements.lock), so the notice, printed
# once per source at every start of the UI, is for Dagster's developers rather than this pipeline's users.
warnings.filterwarnings("ignore", message="Function `observable_source_asset` is currently in beta")
# The tag an observation carries its data version in (what observable sources record).
DATA_VERSION_TAG = "dagster/data_version"
ABSENT = "absent"


def file_version(path: str | None) -> str:
    """sha256 of a local file; for a remote one, a hash of its name and content identity (not its address); "not
    configured" for an optional input left unset."""
    if not path:
        return "not configured"
    local = Path(path)
    if local.is_file():
        return provenance.file_sha256(local)
    [entry] = provenance.file_input("remote", path).values()
    identity = {key: value for key, value in entry.items() if key != "address"}
    return "remote:" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def file_stamp(path: str | None) -> list | None:
    """(size, modification time) of a local file, None for anything else: a file whose stamp is unchanged need not
    be hashed again to know its version."""
    try:
        stat = Path(path).stat() if path else None
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns] if stat and Path(path).is_file() else None


def drop_stamp(drop_dir: Path) -> list | None:
    """The stamps of a drop folder's files (by name), None when there is no such folder."""
    if not drop_dir.is_dir():
        return None
    return sorted([path.name, *file_stamp(str(path))] for path in drop_dir.iterdir() if path.is_file())


def raw_input_files(inputs: InputDatasets) -> dict[str, str | None]:
    """Every unpartitioned raw-input source asset's file (None: an optional input left unset)."""
    files = {entry.name: inputs.raster(entry) for entry in RASTER_INPUTS}
    return {**files, "countries_vector": inputs.countries_vector, "climate_zone_legend": str(CLIMATE_ZONE_LEGEND)}


def drop_version(drop_dir: Path) -> str:
    """sha256 over the names and sha256 of a drop folder's table files and declaration; "absent" when there is no
    such folder."""
    if not drop_dir.is_dir():
        return ABSENT
    digest = hashlib.sha256()
    for path in sorted(
        p for p in drop_dir.iterdir() if p.is_file() and (is_table_name(p.name) or is_drop_declaration(p.name))
    ):
        digest.update(f"{path.name}\0{provenance.file_sha256(path)}\n".encode())
    return digest.hexdigest()


def drop_keys(inputs: InputDatasets) -> list[str]:
    """The drops in the landing folder: the names of its `field_samples/YYYY-MM/` folders, sorted."""
    return drop_folders(Path(inputs.landing_dir))[0]


@dg.observable_source_asset(
    partitions_def=field_drops,
    group_name=GROUP,
    description="One field-sample drop folder <landing>/field_samples/YYYY-MM/ (a sites and a horizons table, CSV or "
    "Parquet, and optionally its declaration.yaml), one partition per drop; its data version is the sha256 over its "
    "table files and declaration.",
    tags={**SOURCE_TAGS, "dagster/kind/csv": ""},
)
def field_sample_drop(context: dg.OpExecutionContext, inputs: InputDatasets) -> dg.DataVersionsByPartition:
    """One drop folder `<landing>/field_samples/YYYY-MM/` (a sites and a horizons table), one partition per drop."""
    if context.has_partition_key:
        keys = [context.partition_key]
    else:  # "Observe all": every registered drop that is in the landing folder
        registered = set(context.instance.get_dynamic_partitions(field_drops.name))
        keys = [key for key in drop_keys(inputs) if key in registered]
    return dg.DataVersionsByPartition({key: dg.DataVersion(drop_version(inputs.drop_dir(key))) for key in keys})


def _file_source(field: str, description: str):
    @dg.observable_source_asset(name=field, group_name=GROUP, description=description, tags=SOURCE_TAGS)
    def _observe(inputs: InputDatasets) -> dg.DataVersion:
        return dg.DataVersion(file_version(getattr(inputs, field)))

    return _observe


# One observable source per raster input (raster_inputs.RASTER_INPUTS), keyed by the input's name.
raster_sources = [_file_source(entry.name, entry.description) for entry in RASTER_INPUTS]
countries_vector = _file_source("countries_vector", "Natural Earth 1:10m Admin 0 countries (zipped GeoJSON).")


@dg.observable_source_asset(
    group_name=GROUP,
    description="IPCC 2019 climate zone names by code (CSV shipped in the package: "
    "data/ipcc_climate_zones_0p5/legend.csv), which names the climate_zone rows of the regional tables.",
    tags={**SOURCE_TAGS, "dagster/kind/csv": ""},
)
def climate_zone_legend() -> dg.DataVersion:
    """IPCC 2019 climate zone names by code (CSV shipped in the package)."""
    return dg.DataVersion(file_version(str(CLIMATE_ZONE_LEGEND)))


def _observe(context: dg.AssetExecutionContext, key: str, version: str, partition: str | None = None) -> None:
    context.log_event(dg.AssetObservation(asset_key=key, partition=partition, tags={DATA_VERSION_TAG: version}))


def observe_files(context: dg.AssetExecutionContext, inputs: InputDatasets, *fields: str) -> None:
    """Record the data version of each raw input file a step reads (fields of `InputDatasets`), before reading it:
    its materialization then records the versions it was built from, however the run was launched."""
    for field in fields:
        _observe(context, field, file_version(getattr(inputs, field)))


def observe_legend(context: dg.AssetExecutionContext) -> None:
    _observe(context, "climate_zone_legend", file_version(str(CLIMATE_ZONE_LEGEND)))


def observe_drop(context: dg.AssetExecutionContext, inputs: InputDatasets, partition: str) -> str:
    """Record the data version of one monthly drop folder and return it ("absent" when there is none)."""
    version = drop_version(inputs.drop_dir(partition))
    _observe(context, "field_sample_drop", version, partition)
    return version


# A flaky mount or network file system: re-run the reading step, up to this many times, this many seconds apart.
TRANSIENT_IO_RETRIES = 3
TRANSIENT_IO_WAIT_SECONDS = 2
# OS errors that say the input is not there or not readable: retrying cannot help.
_PERMANENT_IO_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


@contextmanager
def retried_on_transient_io():
    """Ask Dagster to retry the step when reading an input fails with a transient OS error (EIO, a timeout, a stale
    network handle); a missing or unreadable file, or an input that breaks its contract, fails at once."""
    try:
        yield
    except _PERMANENT_IO_ERRORS:
        raise
    except OSError as error:
        raise dg.RetryRequested(max_retries=TRANSIENT_IO_RETRIES, seconds_to_wait=TRANSIENT_IO_WAIT_SECONDS) from error
