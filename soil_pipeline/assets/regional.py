"""Regional SOC stocks and 4-per-1000 targets per country, per IPCC climate zone and globally.

Each row sums the common grid over the region (cell areas on the authalic sphere, R = 6371.0072 km) and carries
the field-sample summary (n distinct sites with a 0-30 cm stock over all drops, their median) for the same region
beside it, and beside the map-only 2010 stock a field-calibrated one with its standard error where the region's
sites allow it (ratio estimator, `science.validation.calibrated_total`; elsewhere labelled map-only).
"""

import dagster as dg
import numpy as np
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.field_validation import ALL_DROPS, LAYER_2010, MAP_2010, FieldValidationConfig
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.engine.zonal import sums_table, zonal_statistics
from soil_pipeline.reference_data import FIELD_VALIDATION_FILE, citation, factor, field_validation_spec
from soil_pipeline.resources import RasterEngine
from soil_pipeline.science.aggregation import regional_cell_quantities, regional_table_from_sums, site_summary
from soil_pipeline.science.grid import AUTHALIC_EARTH_RADIUS_KM, Layer, common_grid
from soil_pipeline.science.scenarios import FIELD_ERROR
from soil_pipeline.science.sites import STOCK
from soil_pipeline.science.units import HA_PER_MHA, T_PER_PG
from soil_pipeline.science.validation import Bootstrap, CalibrationRules, calibrated_total, without_attrs
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


REGION_KEYS = {"global": "global_id", "country": "country_id", "climate_zone": "zone_id"}


def _keyed(sites: pd.DataFrame) -> pd.DataFrame:
    """The sites with their region id under each region type (`REGION_KEYS`)."""
    return sites.assign(
        global_id="GLOBAL",
        country_id=sites["country_adm0_a3"].fillna(UNASSIGNED),
        zone_id=sites["climate_zone_code"].astype("str"),
    )


def _field_summary(sites: pd.DataFrame) -> pd.DataFrame:
    """n distinct sites with a stock and their median stock per region (`sites`: one row per distinct site)."""
    keyed = _keyed(sites)
    parts = []
    for region_type in STOCK_REGION_TYPES:
        summary = site_summary(keyed, REGION_KEYS[region_type]).rename_axis("region_id").reset_index()
        parts.append(summary.assign(region_type=region_type))
    return pd.concat(parts, ignore_index=True)


CALIBRATED_COLUMNS = {
    "field_to_map_ratio": "field_to_map_ratio",
    "field_to_map_ratio_se": "field_to_map_ratio_se",
    "calibrated_total": "field_calibrated_soc_stock_2010_pg_c",
    "calibrated_total_se": "field_calibrated_soc_stock_2010_se_pg_c",
    "label": "soc_stock_2010_estimate",
}


def calibration_rules() -> CalibrationRules:
    spec = field_validation_spec()
    return CalibrationRules(
        **{k: v for k, v in spec["calibration"].items() if k != "basis"},
        distance_km=float(spec["representativeness"]["distance_km"]),
    )


def _calibrated(table: pd.DataFrame, sites: pd.DataFrame, validation: pd.DataFrame, settings: Bootstrap):
    """Beside each region's map-only 2010 stock: the field-calibrated one (Pg C) and its standard error, the
    field/map ratio and its standard error, the relative error of the map total the field measures (%) and the
    label saying which estimate the region has."""
    rules = calibration_rules()
    near = validation[(validation["scope"] == ALL_DROPS) & (validation["stock_layer"] == LAYER_2010)]
    near = near.set_index(["region_type", "region_id"])["area_near_a_site_pct"]
    # without the provenance attrs, which pandas would deep-copy into each region's part and its every slice
    keyed = without_attrs(
        _keyed(sites[["longitude_deg", "latitude_deg", MAP_2010, STOCK, "country_adm0_a3", "climate_zone_code"]])
    )
    groups = {kind: dict(tuple(keyed.groupby(REGION_KEYS[kind], sort=False))) for kind in STOCK_REGION_TYPES}
    rows = []
    for row in table.itertuples(index=False):
        part = groups[row.region_type].get(row.region_id, keyed.iloc[:0])
        covered = float(near.get((row.region_type, row.region_id), np.nan))
        rows.append(calibrated_total(row.soc_stock_2010_pg_c, part, MAP_2010, STOCK, covered, rules, settings))
    found = pd.DataFrame(rows, index=table.index)
    for source, column in CALIBRATED_COLUMNS.items():
        table[column] = found[source]
    table["soc_stock_2010_field_error_pct"] = 100.0 * found["map_total_error"]
    return table


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
    code_version="5",
    check_specs=contract_specs("regional_soc_stocks"),
    deps=["climate_zone_legend"],
)
def regional_soc_stocks(
    config: FieldValidationConfig,
    raster_engine: RasterEngine,
    soc_stock_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
    map_validation_sites: pd.DataFrame,
    map_validation: pd.DataFrame,
    second_soc_stock_grid: Layer,
):
    """Area (Mha), SOC stock 0-30 cm (Pg C, 2010 and no land use), cropland area (Mha) and stock (Pg C), and the
    4-per-1000 target (Tg C/yr) per region, with n distinct field sites over all drops and their median topsoil
    stock (t C/ha), and the field-calibrated 2010 stock (Pg C) with its standard error where the sites allow it."""
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
    sites = map_validation_sites[map_validation_sites["representative"]]
    table = table.merge(_field_summary(sites), on=["region_type", "region_id"], how="left")
    table["n_field_sites"] = table["n_field_sites"].fillna(0).astype("int64")
    settings = config.settings()
    table = _calibrated(table, sites, map_validation, settings)
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        second_soc_stock_grid.provenance,
        cropland_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        map_validation_sites.attrs.get("provenance", {}),
        map_validation.attrs.get("provenance", {}),
        {"inputs": provenance.file_input("climate_zone_legend", CLIMATE_ZONE_LEGEND)},
        {"inputs": provenance.file_input("field_validation", FIELD_VALIDATION_FILE)},
        {
            "parameters": {
                "earth_radius_km": AUTHALIC_EARTH_RADIUS_KM,
                "four_per_1000_rate_per_yr": rate,
                "four_per_1000_citation": citation("four_per_1000"),
                "calibration": {
                    **field_validation_spec()["calibration"],
                    "estimator": "ratio (Cochran 1977 ch. 6; Royall 1970): map total x sum(field) / sum(map)",
                    "bootstrap_block_deg": settings.block_deg,
                    "bootstrap_resamples": settings.n_resamples,
                    "bootstrap_seed": settings.seed,
                },
            }
        },
    )
    totals = global_metadata(table, ["soc_stock_2010_pg_c", "soc_stock_no_land_use_pg_c", "cropland_area_mha"])
    calibrated = table[table["soc_stock_2010_estimate"].str.startswith("field-calibrated")]
    totals["field_calibrated_regions"] = dg.MetadataValue.md(
        calibrated[
            ["region_type", "region_id", "region_name", "soc_stock_2010_pg_c", *list(CALIBRATED_COLUMNS.values())[2:4]]
        ]
        .round(3)
        .to_markdown(index=False)
        if len(calibrated)
        else "none"
    )
    totals["streaming_pass"] = dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()})
    yield from publish_if_valid("regional_soc_stocks", table, metadata=totals)


def with_field_errors(sums: pd.DataFrame, regional: pd.DataFrame) -> pd.DataFrame:
    """Per-region sums with the stock error their field sites measure (`scenarios.FIELD_ERROR`, a fraction; NaN for
    a map-only region or one regional_soc_stocks does not have, e.g. a 4p1000 priority region)."""
    errors = without_attrs(regional[["region_type", "region_id", "soc_stock_2010_field_error_pct"]])
    measured = errors.set_index(["region_type", "region_id"])["soc_stock_2010_field_error_pct"] / 100.0
    keys = pd.MultiIndex.from_frame(sums[["region_type", "region_id"]])
    return sums.assign(**{FIELD_ERROR: measured.reindex(keys).to_numpy(dtype=float)})
