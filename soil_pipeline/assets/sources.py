"""Raw inputs as observable source assets whose data version is the sha256 of their files.

The ingesting assets depend on these (`deps=`), and every asset has a `code_version`, so after an input drop, a
changed raster or a code change the Dagster UI marks the affected assets stale and says why. Each run of the main
job observes them first; "Observe sources" in the UI does it on demand. A URL input (e.g. `/vsicurl/...`) is not
downloaded to be hashed: its data version is its content identity as the server reports it (ETag, size,
last-modified), never its address, which may carry a rotating signature.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from soil_pipeline import provenance
from soil_pipeline.assets.zones import CLIMATE_ZONE_LEGEND
from soil_pipeline.partitions import monthly_drops
from soil_pipeline.resources import InputDatasets

GROUP = "raw_inputs"
TABLE_SUFFIXES = (".csv", ".parquet")
DECLARATION = "declaration.yaml"  # a drop's own input declaration (contracts.declaration) is part of its data


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


def drop_version(drop_dir: Path) -> str:
    """sha256 over the names and sha256 of a drop folder's table files and declaration; "absent" when there is no
    such folder."""
    if not drop_dir.is_dir():
        return "absent"
    digest = hashlib.sha256()
    for path in sorted(
        p for p in drop_dir.iterdir() if p.is_file() and (p.suffix in TABLE_SUFFIXES or p.name == DECLARATION)
    ):
        digest.update(f"{path.name}\0{provenance.file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _drop_keys(inputs: InputDatasets) -> list[str]:
    folder = Path(inputs.landing_dir) / "field_samples"
    names = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    return [key for key in monthly_drops.get_partition_keys() if key in names]


@dg.observable_source_asset(partitions_def=monthly_drops, group_name=GROUP)
def field_sample_drop(context: dg.OpExecutionContext, inputs: InputDatasets) -> dg.DataVersionsByPartition:
    """One monthly drop folder `<landing>/field_samples/YYYY-MM/` (sites and horizons tables)."""
    keys = [context.partition_key] if context.has_partition_key else _drop_keys(inputs)
    return dg.DataVersionsByPartition({key: dg.DataVersion(drop_version(inputs.drop_dir(key))) for key in keys})


def _file_source(field: str, description: str):
    @dg.observable_source_asset(name=field, group_name=GROUP, description=description)
    def _observe(inputs: InputDatasets) -> dg.DataVersion:
        return dg.DataVersion(file_version(getattr(inputs, field)))

    return _observe


soc_stock_2010_raster = _file_source("soc_stock_2010_raster", "WHRC SOC stock 0-30 cm, 2010 (GeoTIFF).")
soc_stock_no_land_use_raster = _file_source(
    "soc_stock_no_land_use_raster", "WHRC SOC stock 0-30 cm, no land use (GeoTIFF)."
)
cropland_raster = _file_source("cropland_raster", "HYDE 3.2 cropland area 2016 (GeoTIFF).")
climate_zones_raster = _file_source("climate_zones_raster", "IPCC 2019 climate zones, 0.5 deg (GeoTIFF).")
countries_vector = _file_source("countries_vector", "Natural Earth 1:10m Admin 0 countries (zipped GeoJSON).")
pasture_raster = _file_source(
    "pasture_raster", "Optional pasture/grazing area raster (km2 per cell); unset by default."
)
second_soc_stock_raster = _file_source(
    "second_soc_stock_raster", "Optional second SOC stock 0-30 cm source beside WHRC (declared); unset by default."
)


@dg.observable_source_asset(group_name=GROUP)
def climate_zone_legend() -> dg.DataVersion:
    """IPCC 2019 climate zone names by code (CSV shipped in the package)."""
    return dg.DataVersion(file_version(str(CLIMATE_ZONE_LEGEND)))
