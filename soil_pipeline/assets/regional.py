"""Regional SOC stocks and 4-per-1000 targets per country, per IPCC climate zone and globally.

Each row sums the common grid over the region (cell areas on the authalic sphere, R = 6371.0072 km) and carries
the field-sample summary (n sites with a 0-30 cm stock, their median) for the same region beside it.
"""

import dagster as dg
import numpy as np
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.engine.zonal import sums_table, zonal_statistics
from soil_pipeline.reference_data import citation, factor
from soil_pipeline.resources import RasterEngine
from soil_pipeline.science.aggregation import regional_cell_quantities, regional_table_from_sums, site_summary
from soil_pipeline.science.grid import AUTHALIC_EARTH_RADIUS_KM, Layer, common_grid
from soil_pipeline.science.units import HA_PER_MHA, T_PER_PG
from soil_pipeline.zones import (
    CLIMATE_ZONE_LEGEND,
    STOCK_REGION_TYPES,
    UNASSIGNED,
    extent_name,
    global_metadata,
    zoner,
)

CELL_QUANTITIES = (
    "soc_mapped_area_ha",
    "soc_stock_2010_t_c",
    "soc_stock_no_land_use_t_c",
    "cropland_area_ha",
    "cropland_soc_stock_2010_t_c",
)
SECOND_SOURCE_QUANTITIES = (
    ("second_soc_mapped_area_mha", "second_soc_mapped_area_ha", HA_PER_MHA),
    ("second_soc_stock_pg_c", "second_soc_stock_t_c", T_PER_PG),
    ("soc_stock_2010_on_second_cells_pg_c", "soc_stock_2010_on_second_cells_t_c", T_PER_PG),
)


def grid_sources(soc_stock_grid, cropland_grid, climate_zone_grid, country_grid, second_soc_stock_grid=None) -> dict:
    """The common-grid layers as engine inputs, read window by window from their stored GeoTIFFs; the second stock
    source only when one is configured."""
    sources = {
        "soc_stock": soc_stock_grid.source("soc_stock", bands=(1, 2)),
        "cropland": cropland_grid.source("cropland"),
        "climate_zone": climate_zone_grid.source("climate_zone", fill=0),
        "country": country_grid.source("country", fill=-1),
    }
    if second_soc_stock_grid is not None and _second_label(second_soc_stock_grid) is not None:
        sources["second_soc"] = second_soc_stock_grid.source("second_soc", bands=(1, 2))
    return sources


def _field_summary(stocks: pd.DataFrame) -> pd.DataFrame:
    keyed = stocks.assign(
        global_id="GLOBAL",
        country_id=stocks["country_adm0_a3"].fillna(UNASSIGNED),
        zone_id=stocks["climate_zone_code"].astype("str"),
    )
    keys = {"global": "global_id", "country": "country_id", "climate_zone": "zone_id"}
    parts = []
    for region_type in STOCK_REGION_TYPES:
        summary = site_summary(keyed, keys[region_type]).rename_axis("region_id").reset_index()
        parts.append(summary.assign(region_type=region_type))
    return pd.concat(parts, ignore_index=True)


# The embedded stock layers' source, named in every row beside the second source's (when one is configured).
WHRC_SOURCE = "WHRC Soil Carbon Debt, Sanderman et al. 2017"


def _second_label(second: Layer) -> str | None:
    return second.provenance.get("parameters", {}).get("second_soc_stock_source")


def _with_second_source(table, soc_stock_grid: Layer, second: Layer, sums: dict, tables: dict) -> pd.DataFrame:
    """Each row's stock source, and the second source's mapped area and stock beside the first's on the same cells."""
    parameters = soc_stock_grid.provenance.get("parameters", {})
    declared = parameters.get("raster_declaration:soc_stock_2010_raster", {})
    table["soc_stock_source"] = declared.get("label") or (WHRC_SOURCE if not declared else "declared raster")
    label = _second_label(second)
    table["second_soc_stock_source"] = pd.Series(label, index=table.index, dtype="str")
    if label is None:
        return table.assign(**{column: np.nan for column, _, _ in SECOND_SOURCE_QUANTITIES})
    names = [name for _, name, _ in SECOND_SOURCE_QUANTITIES]
    per_region = pd.concat(
        [sums_table(sums, kind, tables[kind], names) for kind in STOCK_REGION_TYPES], ignore_index=True
    )
    for column, name, scale in SECOND_SOURCE_QUANTITIES:
        table[column] = (per_region[name] / scale).to_numpy(dtype="float64")
    return table


@dg.asset(
    io_manager_key="published_io_manager",
    group_name="regional",
    code_version="4",
    check_specs=contract_specs("regional_soc_stocks"),
    deps=["climate_zone_legend"],
    # The field-site summary covers every monthly drop published so far.
    ins={"topsoil_soc_stocks": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
)
def regional_soc_stocks(
    raster_engine: RasterEngine,
    soc_stock_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
    topsoil_soc_stocks: pd.DataFrame,
    second_soc_stock_grid: Layer,
):
    """Area (Mha), SOC stock 0-30 cm (Pg C, 2010 and no land use), cropland area (Mha) and stock (Pg C), and the
    4-per-1000 target (Tg C/yr) per region, with n field sites and their median topsoil stock (t C/ha)."""
    grid = common_grid(soc_stock_grid, cropland_grid, climate_zone_grid, country_grid)
    zone_of, tables, sizes = zoner(countries, extent_name(soc_stock_grid))
    with raster_engine.executor() as executor:
        sums, report, _ = zonal_statistics(
            grid_sources(soc_stock_grid, cropland_grid, climate_zone_grid, country_grid, second_soc_stock_grid),
            grid,
            regional_cell_quantities,
            zone_of,
            sizes,
            executor,
            raster_engine.threads,
            raster_engine.window_cells,
        )
    rate = factor("four_per_1000", "annual_rate")
    table = pd.concat(
        [
            regional_table_from_sums(sums_table(sums, kind, tables[kind], CELL_QUANTITIES), rate)
            for kind in STOCK_REGION_TYPES
        ],
        ignore_index=True,
    )
    table = _with_second_source(table, soc_stock_grid, second_soc_stock_grid, sums, tables)
    table = table.merge(_field_summary(topsoil_soc_stocks), on=["region_type", "region_id"], how="left")
    table["n_field_sites"] = table["n_field_sites"].fillna(0).astype("int64")
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        second_soc_stock_grid.provenance,
        cropland_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        topsoil_soc_stocks.attrs.get("provenance", {}),
        {"inputs": provenance.file_input("climate_zone_legend", CLIMATE_ZONE_LEGEND)},
        {
            "parameters": {
                "earth_radius_km": AUTHALIC_EARTH_RADIUS_KM,
                "four_per_1000_rate_per_yr": rate,
                "four_per_1000_citation": citation("four_per_1000"),
            }
        },
    )
    totals = global_metadata(table, ["soc_stock_2010_pg_c", "soc_stock_no_land_use_pg_c", "cropland_area_mha"])
    totals["streaming_pass"] = dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()})
    yield from publish_if_valid("regional_soc_stocks", table, metadata=totals)
