"""The field sites across drops, and the stock maps checked against them (docs/field_validation.md).

- `field_site_history`: every delivery of every site over all published drops, which is current, what each brought
  (new site, repeated observation, re-delivered, corrected), and the representative observation of each distinct
  site that every site-level figure uses (`science.sites`).
- `map_validation_sites`: each delivery with a 0-30 cm stock, with each stock layer's value in the common-grid cell
  that holds the site (WHRC 2010 and its stated error; the second source when configured) and the residual.
- `map_validation`: per scope (all drops: the representative observation of each distinct site; each drop: its
  own deliveries), stock layer and region (global, country, climate zone; and sampling decade, for the time
  mismatch against the 2010 map): n, bias, RMSE, MEC, Lin's concordance and median map/field ratio, each with a
  spatial-block-bootstrap interval, how often the map's stated error covers the field stock, and the share of the
  region's mapped area within a stated distance of a site (a streaming pass over the grid). A warning check flags
  regions the map misses by far; the preview, a field-vs-map scatter and a residual map show in the UI.

Settings and their grounds: data/literature/field_validation.yaml.
"""

import dagster as dg
import numpy as np
import pandas as pd
import rasterio

from soil_pipeline import provenance
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.engine.points import sample_points
from soil_pipeline.engine.zonal import sums_table, zonal_statistics
from soil_pipeline.io_managers import GEOPARQUET_POINTS, PARTITION_COLUMN, PARTITION_VERSION_COLUMN
from soil_pipeline.maps import INLINE_DPI, field_map_scatter_png, inline_markdown, residual_map_png
from soil_pipeline.publishing.grids import stored
from soil_pipeline.reference_data import FIELD_VALIDATION_FILE, bootstrap_settings, field_validation_spec
from soil_pipeline.resources import RasterEngine
from soil_pipeline.science.grid import Layer, common_grid, map_block
from soil_pipeline.science.representativeness import MAPPED_AREA, NearSites, near_name, site_trees
from soil_pipeline.science.sites import DROP, RELOCATED_KM, STOCK, sampling_decade, site_history
from soil_pipeline.science.validation import (
    INTERVAL,
    METRICS,
    Bootstrap,
    grouped_agreement,
    spatial_blocks,
    without_attrs,
)
from soil_pipeline.zones import STOCK_REGION_TYPES, UNASSIGNED, extent_name, zoner

GROUP = "field_validation"
POINT_COLUMNS = ["longitude_deg", "latitude_deg"]
ALL_DROPS = "all drops"
LAYER_2010, LAYER_SECOND = "soc_stock_2010", "second_soc_stock"
MAP_2010, ERROR_2010 = "map_soc_stock_2010_t_c_per_ha", "map_soc_stock_2010_error_t_c_per_ha"
MAP_SECOND = "second_map_soc_stock_t_c_per_ha"
# The table's groupings: region type -> column of map_validation_sites (None: all sites).
GROUPINGS = {
    "global": None,
    "country": "country_adm0_a3",
    "climate_zone": "climate_zone_code",
    "sampling_decade": "sampling_decade",
}
BIAS_CHECK = "regional_bias"


class FieldValidationConfig(dg.Config):
    """Seed and resamples of the spatial block bootstrap (defaults: field_validation.yaml); the same seed gives the
    same intervals and calibrated standard errors."""

    seed: int = field_validation_spec()["bootstrap"]["seed"]
    n_resamples: int = field_validation_spec()["bootstrap"]["n_resamples"]

    def settings(self) -> Bootstrap:
        return bootstrap_settings(self.seed, self.n_resamples)


def _parameters(settings: Bootstrap | None = None) -> dict:
    spec = field_validation_spec()
    out = {
        "map_year": spec["map_year"],
        "relocated_km": RELOCATED_KM,
        "near_site_distance_km": spec["representativeness"]["distance_km"],
    }
    if settings is not None:
        out |= {"bootstrap_block_deg": settings.block_deg, "bootstrap_resamples": settings.n_resamples}
        out |= {"bootstrap_seed": settings.seed, "interval_quantiles": INTERVAL}
    return out


def _lineage(*frames_or_layers, settings: Bootstrap | None = None) -> dict:
    parts = [
        item.provenance if isinstance(item, Layer) else item.attrs.get("provenance", {}) for item in frames_or_layers
    ]
    return provenance.combine(
        *parts,
        {"inputs": provenance.file_input("field_validation", FIELD_VALIDATION_FILE)},
        {"parameters": _parameters(settings)},
    )


def _deliveries(field_sites: pd.DataFrame, stocks: pd.DataFrame) -> pd.DataFrame:
    """One row per site of each drop: its source, date and the stock computed for it in that drop."""
    sites = field_sites[[PARTITION_COLUMN, "site_id", "source_db", "sampling_date"]]
    kept = [
        PARTITION_COLUMN,
        PARTITION_VERSION_COLUMN,
        "site_id",
        "longitude_deg",
        "latitude_deg",
        STOCK,
        "exclusion_reason",
        "country_adm0_a3",
        "climate_zone_code",
    ]
    joined = stocks[kept].merge(sites, on=[PARTITION_COLUMN, "site_id"], how="left", validate="one_to_one")
    return joined.rename(columns={PARTITION_COLUMN: DROP, PARTITION_VERSION_COLUMN: "stocks_version"})


HISTORY_COLUMNS = [
    DROP,
    "source_db",
    "site_id",
    "sampling_date",
    "longitude_deg",
    "latitude_deg",
    STOCK,
    "exclusion_reason",
    "country_adm0_a3",
    "climate_zone_code",
    "delivery",
    "moved_km",
    "superseded_by",
    "current",
    "site_observations",
    "representative",
    "stocks_version",
]


@dg.asset(
    io_manager_key="published_io_manager",
    group_name=GROUP,
    code_version="1",
    check_specs=contract_specs("field_site_history"),
    ins={
        "field_sites": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "topsoil_soc_stocks": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
    },
    metadata={GEOPARQUET_POINTS: POINT_COLUMNS},
)
def field_site_history(context: dg.AssetExecutionContext, field_sites: pd.DataFrame, topsoil_soc_stocks: pd.DataFrame):
    """Every delivery of every site over all published drops: drop, source, site id, sampling date, position,
    0-30 cm stock (t C/ha), what the delivery brought, how far it moved the site (km), the drop that superseded it,
    whether it is current, and the representative observation of each distinct site (docs/field_validation.md)."""
    history = site_history(_deliveries(field_sites, topsoil_soc_stocks), field_validation_spec()["map_year"])
    history = history[HISTORY_COLUMNS]
    moved = history[history["moved_km"] > RELOCATED_KM]
    for row in moved.head(20).itertuples(index=False):
        context.log.warning(
            f"site {row.source_db}/{row.site_id}: drop {row.field_drop} moves it {row.moved_km:.1f} km from its "
            f"previous delivery (over {RELOCATED_KM:g} km): the later coordinates hold"
        )
    history.attrs["provenance"] = _lineage(field_sites, topsoil_soc_stocks)
    representative = history[history["representative"]]
    metadata = {
        "drops": dg.MetadataValue.json(sorted(history[DROP].unique().tolist())),
        "deliveries": len(history),
        "distinct_sites": len(representative),
        "distinct_sites_with_stock": int(representative[STOCK].notna().sum()),
        "superseded_deliveries": int((~history["current"]).sum()),
        "moved_over_relocated_km": len(moved),
        "deliveries_by_kind": dg.MetadataValue.json(history["delivery"].value_counts().sort_index().to_dict()),
    }
    yield from publish_if_valid("field_site_history", history, metadata=metadata)


def _second_label(second: Layer) -> str | None:
    return second.provenance.get("parameters", {}).get("second_soc_stock_source")


def _at_sites(layer: Layer, name: str, band: int, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A grid's band in the cell holding each site (NaN off the grid or where it has no value)."""
    return sample_points(stored(layer).source(name, bands=(band,)), lon, lat, np.nan).astype("float64")


@dg.asset(
    io_manager_key="published_io_manager",
    group_name=GROUP,
    code_version="1",
    check_specs=contract_specs("map_validation_sites"),
    metadata={GEOPARQUET_POINTS: POINT_COLUMNS},
)
def map_validation_sites(
    field_site_history: pd.DataFrame,
    soc_stock_grid: Layer,
    soc_stock_error_grid: Layer,
    second_soc_stock_grid: Layer,
):
    """Each delivery with a 0-30 cm field stock (t C/ha): the 2010 stock layer's value and stated error (1 sd) in
    the common-grid cell holding the site, the residual (map - field) and ratio; the second source's value, covered
    fraction and residual when one is configured; the sampling decade and the bootstrap block."""
    sites = field_site_history[field_site_history[STOCK].notna()].reset_index(drop=True)
    lon, lat = (sites[c].to_numpy(dtype="float64") for c in POINT_COLUMNS)
    field = sites[STOCK].to_numpy(dtype="float64")
    table = sites[[DROP, "source_db", "site_id", "sampling_date", *POINT_COLUMNS]].copy()
    table["sampling_decade"] = sampling_decade(sites["sampling_date"])
    table["country_adm0_a3"] = sites["country_adm0_a3"].fillna(UNASSIGNED)
    table["climate_zone_code"] = sites["climate_zone_code"]
    table["current"], table["representative"] = sites["current"], sites["representative"]
    table[STOCK] = field
    table[MAP_2010] = _at_sites(soc_stock_grid, "soc_stock", 1, lon, lat)
    table[ERROR_2010] = _at_sites(soc_stock_error_grid, "soc_stock_error", 1, lon, lat)
    table["residual_2010_t_c_per_ha"] = table[MAP_2010] - field
    with np.errstate(divide="ignore", invalid="ignore"):
        table["map_to_field_ratio_2010"] = np.where(field > 0, table[MAP_2010] / field, np.nan)
    second = _second_label(second_soc_stock_grid)
    nothing = np.full(len(table), np.nan)
    table[MAP_SECOND] = _at_sites(second_soc_stock_grid, "second", 1, lon, lat) if second else nothing
    table["second_map_covered_fraction"] = _at_sites(second_soc_stock_grid, "cover", 2, lon, lat) if second else nothing
    table["second_residual_t_c_per_ha"] = table[MAP_SECOND] - field
    table["bootstrap_block"] = spatial_blocks(lon, lat, bootstrap_settings().block_deg)
    table.attrs["provenance"] = _lineage(
        field_site_history, soc_stock_grid, soc_stock_error_grid, second_soc_stock_grid
    )
    metadata = {
        "sites_with_stock": int(table["representative"].sum()),
        "deliveries_with_stock": len(table),
        "with_a_2010_value": int(np.isfinite(table[MAP_2010]).sum()),
        "second_source": second or "not configured",
    }
    yield from publish_if_valid("map_validation_sites", table, metadata=metadata)


def _scopes(sites: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """All drops (one representative observation per distinct site), then each drop's own deliveries."""
    scopes = {ALL_DROPS: sites[sites["representative"]]}
    for drop, part in sites.groupby(DROP, sort=True):
        scopes[str(drop)] = part
    return scopes


def _representativeness(
    scopes: dict[str, pd.DataFrame], grids: tuple[Layer, Layer, Layer], countries, raster_engine: RasterEngine
):
    """Per scope and region (global, country, climate zone): mapped area (Mha) and its share (%) within the
    stated distance of a site of the scope, from one streaming pass over the common grid."""
    soc_stock_grid, country_grid, climate_zone_grid = grids
    distance = float(field_validation_spec()["representativeness"]["distance_km"])
    trees = site_trees({scope: (part["longitude_deg"], part["latitude_deg"]) for scope, part in scopes.items()})
    zone_of, tables, sizes = zoner(countries, extent_name(soc_stock_grid))
    sources = {
        "soc_stock": soc_stock_grid.source("soc_stock"),
        "country": country_grid.source("country", fill=-1),
        "climate_zone": climate_zone_grid.source("climate_zone", fill=0),
    }
    quantities = [MAPPED_AREA, *(near_name(scope) for scope in scopes)]
    names = {kind: (quantities if kind in STOCK_REGION_TYPES else []) for kind in sizes}
    grid = common_grid(soc_stock_grid, country_grid, climate_zone_grid)
    with raster_engine.executor() as executor:
        sums, report, _ = zonal_statistics(
            sources,
            grid,
            NearSites(trees, distance),
            zone_of,
            sizes,
            executor,
            raster_engine.threads,
            raster_engine.window_cells,
            names=names,
            positioned=True,
        )
    parts = []
    for kind in STOCK_REGION_TYPES:
        table = sums_table(sums, kind, tables[kind], quantities)
        for scope in scopes:
            parts.append(
                pd.DataFrame(
                    {
                        "scope": scope,
                        "region_type": kind,
                        "region_id": table["region_id"],
                        "region_name": table["region_name"],
                        "mapped_area_mha": table[MAPPED_AREA] / 1e6,
                        "area_near_a_site_pct": 100.0
                        * table[near_name(scope)]
                        / table[MAPPED_AREA].where(table[MAPPED_AREA] > 0),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True), distance, report, tables


def _layers(sites: pd.DataFrame, soc_stock_grid: Layer, second_soc_stock_grid: Layer) -> dict:
    """Stock layer -> (label, map column, stated error column) of the layers validated."""
    declared = soc_stock_grid.provenance.get("parameters", {}).get("raster_declaration:soc_stock_2010_raster", {})
    layers = {LAYER_2010: (declared.get("label") or "WHRC 2010 (Sanderman et al. 2017)", MAP_2010, ERROR_2010)}
    if (second := _second_label(second_soc_stock_grid)) is not None and np.isfinite(sites[MAP_SECOND]).any():
        layers[LAYER_SECOND] = (second, MAP_SECOND, None)
    return layers


def validation_table(sites: pd.DataFrame, layers: dict, settings: Bootstrap) -> pd.DataFrame:
    """`grouped_agreement` per scope (`_scopes`) and stock layer, over `GROUPINGS`. A scope of the same rows as an
    earlier one (a drop whose deliveries are all the representative observations, e.g. the only drop) has the same
    figures: they are computed once."""
    parts, done = [], []
    for scope, part in _scopes(sites.reset_index(drop=True)).items():
        figures = next((figures for index, figures in done if index.equals(part.index)), None)
        if figures is None:
            figures = {
                layer: grouped_agreement(part, GROUPINGS, settings, map_column, STOCK, error_column)
                for layer, (_, map_column, error_column) in layers.items()
            }
            done.append((part.index, figures))
        for layer, (label, _, _) in layers.items():
            parts.append(figures[layer].assign(scope=scope, stock_layer=layer, stock_source=label))
    return pd.concat(parts, ignore_index=True)


TABLE_KEY = ["scope", "stock_layer", "stock_source", "region_type", "region_id", "region_name"]


def _named(table: pd.DataFrame, near: pd.DataFrame, tables: dict, distance_km: float) -> pd.DataFrame:
    """The region names and representativeness beside the metrics (sampling decades are named by their years),
    ordered: all drops first, then each drop; regions as in `GROUPINGS`."""
    regions = pd.concat([tables[kind][["region_type", "region_id", "region_name"]] for kind in STOCK_REGION_TYPES])
    table = table.merge(regions, on=["region_type", "region_id"], how="left")
    decades = table["region_type"] == "sampling_decade"
    named = ("sampled in the " + table["region_id"]).where(table["region_id"] != "unknown", "no sampling date")
    table["region_name"] = table["region_name"].where(~decades, named).fillna(table["region_id"])
    table = table.merge(
        near[["scope", "region_type", "region_id", "mapped_area_mha", "area_near_a_site_pct"]],
        on=["scope", "region_type", "region_id"],
        how="left",
    )
    table["near_site_distance_km"] = distance_km
    order = table.assign(
        _later=table["scope"] != ALL_DROPS, _kind=table["region_type"].map({k: i for i, k in enumerate(GROUPINGS)})
    ).sort_values(["_later", "scope", "stock_layer", "_kind", "region_id"], kind="stable")
    metrics = [name for name in table.columns if name not in TABLE_KEY]
    return order[TABLE_KEY + metrics].reset_index(drop=True)


def _flagged(table: pd.DataFrame) -> pd.DataFrame:
    """Regions of all drops whose 2010 bias is beyond the warning's share of the mean field stock, its interval
    excluding zero, over enough sites (field_validation.yaml, regional_bias_warning)."""
    rule = field_validation_spec()["regional_bias_warning"]
    rows = table[
        (table["scope"] == ALL_DROPS)
        & (table["stock_layer"] == LAYER_2010)
        & table["region_type"].isin(STOCK_REGION_TYPES)
        & (table["n_sites"] >= rule["min_sites"])
    ]
    relative = 100.0 * rows["bias_t_c_per_ha"] / rows["mean_field_t_c_per_ha"]
    excludes_zero = (rows["bias_t_c_per_ha_p05"] > 0) | (rows["bias_t_c_per_ha_p95"] < 0)
    flagged = rows[(relative.abs() > rule["max_relative_bias_pct"]) & excludes_zero]
    return flagged.assign(relative_bias_pct=relative[flagged.index])


def _bias_check(table: pd.DataFrame) -> dg.AssetCheckResult:
    flagged = _flagged(table)
    shown = flagged[["region_type", "region_id", "region_name", "n_sites", "bias_t_c_per_ha", "relative_bias_pct"]]
    rule = field_validation_spec()["regional_bias_warning"]
    return dg.AssetCheckResult(
        asset_key="map_validation",
        check_name=BIAS_CHECK,
        passed=flagged.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "regions_flagged": len(flagged),
            "rule": f"bias beyond {rule['max_relative_bias_pct']} % of the mean field stock, 90 % interval "
            f"excluding 0, at least {rule['min_sites']} sites (all drops, 2010 layer)",
            "flagged": dg.MetadataValue.md(shown.round(2).to_markdown(index=False) if len(shown) else "none"),
        },
    )


def with_interval(row, name: str, digits: int) -> str:
    value, low, high = row[name], row[f"{name}_p05"], row[f"{name}_p95"]
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]" if np.isfinite(value) else "-"


def preview(table: pd.DataFrame, limit: int = 40) -> str:
    """The table as the UI shows it: all drops, each stock layer, the global row and climate zones, then the
    countries with most sites; each metric with its 90 % interval."""
    rows = table[(table["scope"] == ALL_DROPS) & table["region_type"].isin(STOCK_REGION_TYPES)]
    rows = rows.sort_values(["stock_layer", "region_type", "n_sites"], ascending=[True, False, False], kind="stable")
    rows = without_attrs(rows.groupby("stock_layer", sort=True).head(limit))  # a Series per row below
    shown = pd.DataFrame(
        {
            "layer": rows["stock_layer"],
            "region": rows["region_type"] + " " + rows["region_name"].astype("str"),
            "n": rows["n_sites"],
            "bias t C/ha": [with_interval(r, "bias_t_c_per_ha", 1) for _, r in rows.iterrows()],
            "RMSE t C/ha": [with_interval(r, "rmse_t_c_per_ha", 1) for _, r in rows.iterrows()],
            "MEC": [with_interval(r, "mec", 2) for _, r in rows.iterrows()],
            "Lin's CCC": [with_interval(r, "lin_ccc", 2) for _, r in rows.iterrows()],
            "median map/field": [with_interval(r, "median_map_to_field_ratio", 2) for _, r in rows.iterrows()],
            "area near a site %": rows["area_near_a_site_pct"].round(1),
            "stated 90 % covers %": rows["stated_error_coverage_90_pct"].round(1),
        }
    )
    return shown.to_markdown(index=False)


def _coarse_land(layer: Layer) -> tuple[np.ndarray, object]:
    """The grid's mapped cells, one of `map_block` cells a side (read decimated: a few MB whatever the grid)."""
    block = map_block(layer.grid)
    with rasterio.open(stored(layer).location) as dataset:
        shape = (max(1, dataset.height // block), max(1, dataset.width // block))
        values = dataset.read(1, out_shape=shape)
    return np.isfinite(values), layer.grid


def _figures(sites: pd.DataFrame, layers: dict, soc_stock_grid: Layer) -> dict:
    """The field-vs-map scatter and the residual map of the 2010 layer (all drops), inline in the metadata."""
    chosen = sites[sites["representative"]]
    label = layers[LAYER_2010][0]
    scatter = field_map_scatter_png(
        chosen[STOCK], chosen[MAP_2010], f"{label} against the field", label, dpi=2 * INLINE_DPI
    )
    land, grid = _coarse_land(soc_stock_grid)
    residual = residual_map_png(
        chosen["longitude_deg"],
        chosen["latitude_deg"],
        chosen["residual_2010_t_c_per_ha"],
        land,
        grid,
        f"{label} - field stock 0-30 cm at {len(chosen):,} sites",
        dpi=2 * INLINE_DPI,
    )
    return {
        "field_vs_map": dg.MetadataValue.md(inline_markdown(scatter, "field against map stocks, log axes")),
        "residual_map": dg.MetadataValue.md(inline_markdown(residual, "residuals map - field at the sites")),
    }


@dg.asset(
    io_manager_key="published_io_manager",
    group_name=GROUP,
    code_version="1",
    check_specs=[
        *contract_specs("map_validation"),
        dg.AssetCheckSpec(
            BIAS_CHECK,
            asset="map_validation",
            description="Warns for each region (all drops) whose 2010 stock layer is off the field by more than "
            "the stated share of its mean field stock (field_validation.yaml), the interval excluding zero.",
        ),
    ],
    deps=["climate_zone_legend"],
)
def map_validation(
    config: FieldValidationConfig,
    raster_engine: RasterEngine,
    map_validation_sites: pd.DataFrame,
    soc_stock_grid: Layer,
    second_soc_stock_grid: Layer,
    country_grid: Layer,
    climate_zone_grid: Layer,
    countries: pd.DataFrame,
):
    """Per scope (all drops, each drop), stock layer and region (global, country, climate zone, sampling
    decade): n sites, bias, RMSE (t C/ha), MEC, Lin's CCC and median map/field ratio with 90 % spatial block
    bootstrap intervals, mean field and map stocks (t C/ha), the share of sites the map's stated error interval
    covers (%), and the share of the mapped area within the stated distance of a site (%)."""
    settings = config.settings()
    layers = _layers(map_validation_sites, soc_stock_grid, second_soc_stock_grid)
    table = validation_table(map_validation_sites, layers, settings)
    near, distance, report, tables = _representativeness(
        _scopes(map_validation_sites), (soc_stock_grid, country_grid, climate_zone_grid), countries, raster_engine
    )
    table = _named(table, near, tables, distance)
    table.attrs["provenance"] = _lineage(
        map_validation_sites, soc_stock_grid, second_soc_stock_grid, countries, settings=settings
    )
    yield _bias_check(table)
    world = table[(table["scope"] == ALL_DROPS) & (table["stock_layer"] == LAYER_2010)]
    world = world[world["region_type"] == "global"].iloc[0]
    metadata = {
        "preview": dg.MetadataValue.md(preview(table)),
        **_figures(map_validation_sites, layers, soc_stock_grid),
        **{f"global_{name}": float(world[name]) for name in METRICS[1:]},
        "global_n_sites": int(world["n_sites"]),
        "streaming_pass": dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()}),
    }
    yield from publish_if_valid("map_validation", table, metadata=metadata)
