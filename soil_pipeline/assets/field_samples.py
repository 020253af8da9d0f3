"""Field SOC samples: monthly drops of site and horizon tables, validated against their contracts, and the topsoil
(0-30 cm) SOC stock per site.

Source: `<landing_dir>/field_samples/YYYY-MM/` holding one `*sites.csv|parquet` and one `*horizons.csv|parquet`.
The embedded default is the Africa Soil Profiles database (Leenaars 2014) as the 2012-10 drop. Rows that break the
contract go to `field_sites_rejects` / `field_horizons_rejects` with the rule, column, value, file and line.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import shapely
from rasterio.transform import rowcol

from soil_pipeline import provenance
from soil_pipeline.assets.sources import ABSENT, observe_drop, retried_on_transient_io
from soil_pipeline.checks import (
    contract_check_spec,
    contract_result,
    contract_specs,
    data_quality_check_spec,
    failure_message,
    gx_result,
    publish_if_valid,
)
from soil_pipeline.contracts.gx_suite import run_gx
from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.contracts.validate import REJECTS_CONTRACT, LandMask, Regions, validate
from soil_pipeline.io_managers import GEOPARQUET_POINTS
from soil_pipeline.partitions import monthly_drops
from soil_pipeline.readers import DROP_FOLDER_FORM, drop_folders, find_drop_file, read_table_file
from soil_pipeline.resources import InputDatasets, QualityReports
from soil_pipeline.science.grid import Layer
from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG, NO_REGION, assign_points
from soil_pipeline.science.stocks import blocking_sites, topsoil_stocks

TOPSOIL_TOP_CM = 0.0
TOPSOIL_BOTTOM_CM = 30.0
POINT_COLUMNS = ["longitude_deg", "latitude_deg"]


def _out(description: str, metadata: dict | None = None) -> dg.AssetOut:
    return dg.AssetOut(
        io_manager_key="published_io_manager",
        group_name="field_samples",
        code_version="3",
        description=description,
        metadata=metadata,
        is_required=False,
    )


@dg.multi_asset(
    partitions_def=monthly_drops,
    outs={
        "field_sites": _out(
            "Sites of one drop that meet the contract: id, WGS84 lon/lat (deg), sampling date. GeoParquet points.",
            metadata={GEOPARQUET_POINTS: POINT_COLUMNS},
        ),
        "field_horizons": _out(
            "Horizons of one drop that meet the contract: depths (cm), SOC (g/kg), BD (g/cm3), coarse fragments (%)."
        ),
        "field_sites_rejects": _out("Quarantined site rows: rule, column, value, source file and line."),
        "field_horizons_rejects": _out("Quarantined horizon rows (incl. orphans): rule, column, value, file and line."),
    },
    check_specs=[
        spec
        for asset in ("field_sites", "field_horizons")
        for spec in (
            contract_check_spec(asset, blocking=False),
            data_quality_check_spec(asset),
            contract_check_spec(f"{asset}_rejects", blocking=True),
        )
    ],
    deps=["field_sample_drop"],
    # Subsettable, so every output and check is optional: a month without a drop materializes nothing.
    can_subset=True,
)
def field_drop(
    context: dg.AssetExecutionContext,
    inputs: InputDatasets,
    quality_reports: QualityReports,
    countries: pd.DataFrame,
    soc_stock_grid: Layer,
):
    """Read one monthly drop, validate sites then horizons (a horizon must belong to a valid site), quarantine.

    Sites are also checked for plausibility: on land (the WHRC stock grid as land mask), and not in an excluded
    region (by `countries` polygon). The drop-level gates of the contracts (share of rows quarantined, sites with a
    stock) fail the run before anything is published.
    """
    for event in _ingest(context, inputs, quality_reports, countries, soc_stock_grid):
        if _selected(context, event):
            yield event


def _selected(context: dg.AssetExecutionContext, event: dg.Output | dg.AssetCheckResult) -> bool:
    if isinstance(event, dg.Output):
        return dg.AssetKey(event.output_name) in context.selected_asset_keys  # output names are the asset names
    key = dg.AssetCheckKey(dg.AssetKey.from_coercible(event.asset_key), event.check_name)
    return key in context.selected_asset_check_keys


def _ingest(
    context: dg.AssetExecutionContext,
    inputs: InputDatasets,
    quality_reports: QualityReports,
    countries: pd.DataFrame,
    soc_stock_grid: Layer,
):
    drop_dir, partition = inputs.drop_dir(context.partition_key), context.partition_key
    if observe_drop(context, inputs, partition) == ABSENT:
        context.log.info(f"no field-sample drop folder {drop_dir} for {partition}: nothing to ingest")
        return
    contracts = {name: load_table_contract(name) for name in ("field_sites", "field_horizons")}
    landing = Path(inputs.landing_dir)
    for name in drop_folders(landing)[1]:
        context.log.warning(f"{landing}/field_samples/{name}/ is not a partition folder ({DROP_FOLDER_FORM}); ignored")
    paths = {name: find_drop_file(drop_dir, name.removeprefix("field_"), landing) for name in contracts}
    with retried_on_transient_io():
        raw = {name: read_table_file(paths[name], contracts[name].source_columns()) for name in contracts}
    regions = Regions(shapely.from_wkb(countries["geometry_wkb"]), countries["adm0_a3"].to_numpy(dtype=object))
    land = LandMask(np.isfinite(soc_stock_grid.data[0]), soc_stock_grid.grid.transform, "WHRC SOC stock 2010")
    validations = {"field_sites": validate(raw["field_sites"], contracts["field_sites"], land=land, regions=regions)}
    site_key = contracts["field_horizons"].column("site_id").foreign_key
    foreign = {site_key: set(validations["field_sites"].valid["site_id"])}
    validations["field_horizons"] = validate(raw["field_horizons"], contracts["field_horizons"], foreign)
    del raw  # the source text is only needed for the reject values; the validations keep the typed tables

    for name, validation in validations.items():
        severity = dg.AssetCheckSeverity.ERROR if validation.batch_errors else dg.AssetCheckSeverity.WARN
        yield contract_result(name, validation, severity)
        with quality_reports.site(context.run.run_id, name, partition) as (docs, index):
            report = run_gx(validation.checked, contracts[name], docs, foreign)
        yield gx_result(name, report, index, quality_reports.link(context.run.run_id, name, partition))
    broken = [v for v in validations.values() if v.batch_errors]
    if broken:
        raise dg.Failure(description="\n".join(f"{paths[v.contract.id]}: {failure_message(v)}" for v in broken))
    _gate_sites_with_stock(validations, paths)

    for name, validation in validations.items():
        rejects_contract = yield from _checked_rejects(f"{name}_rejects", validation.rejects)
        drop_file = provenance.file_input(f"{name}[{partition}]", paths[name])
        # the resolved file (a symlink inside the landing folder is recorded as what it points to)
        drop_file[f"{name}[{partition}]"]["resolved_path"] = paths[name].relative_to(landing.resolve()).as_posix()
        checked = {
            **drop_file,
            **provenance.file_input(f"contract:{name}", contracts[name].path),
        }
        validation.valid.attrs["provenance"] = {"inputs": checked}
        validation.rejects.attrs["provenance"] = {
            "inputs": {**checked, **provenance.file_input(f"contract:{REJECTS_CONTRACT}", rejects_contract.path)}
        }
        for output, table in ((name, validation.valid), (f"{name}_rejects", validation.rejects)):
            yield dg.Output(table, output_name=output, metadata={"rows_rejected_from_drop": len(validation.rejects)})


def _site_stocks(sites: pd.DataFrame, horizons: pd.DataFrame, horizon_rejects: pd.DataFrame) -> pd.DataFrame:
    """Topsoil stock per valid site; a site with a quarantined horizon in 0-30 cm (or of unknown depth) gets none."""
    bd_max = load_table_contract("field_horizons").column("bulk_density_g_per_cm3").plausible_maximum
    stocks = topsoil_stocks(
        sites["site_id"], horizons, TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM, bd_plausible_max_g_per_cm3=bd_max
    )
    return _flag_quarantined_horizons(stocks, blocking_sites(horizon_rejects, TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM))


def _gate_sites_with_stock(validations: dict, paths: dict) -> None:
    """The topsoil_soc_stocks contract's minimum of sites with a stock, checked before anything is published."""
    rule = next(r for r in load_table_contract("topsoil_soc_stocks").rules if r.kind == "min_non_null")
    horizons = validations["field_horizons"]
    stocks = _site_stocks(validations["field_sites"].valid, horizons.valid, horizons.rejects)
    found = int(stocks[rule.params["column"]].notna().sum())
    if found < rule.params["minimum"]:
        top = horizons.rejects.groupby(["rule", "column"]).size().sort_values(ascending=False).head(3)
        rules = ", ".join(f"{r}:{c} ({n} rows)" for (r, c), n in top.items()) or "none"
        raise dg.Failure(
            description=f"{paths['field_horizons']}: {rule.id}: {found} site(s) with a 0-30 cm stock, at least "
            f"{rule.params['minimum']} required; {len(horizons.rejects)} horizon reject row(s), top rules: {rules}"
        )


def _checked_rejects(asset: str, rejects: pd.DataFrame):
    """The quarantine table is itself a published output with a contract (field_rejects); returns that contract."""
    validation = validate(rejects, load_table_contract(REJECTS_CONTRACT))
    yield contract_result(asset, validation, dg.AssetCheckSeverity.ERROR)
    if not validation.passed:
        raise dg.Failure(description=failure_message(validation))
    return validation.contract


def _sample_layer(layer: Layer, lon: np.ndarray, lat: np.ndarray, outside) -> np.ndarray:
    rows, cols = rowcol(layer.grid.transform, lon, lat)
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < layer.grid.height) & (cols >= 0) & (cols < layer.grid.width)
    values = np.full(len(lon), outside, dtype=layer.data.dtype)
    values[inside] = layer.data[rows[inside], cols[inside]]
    return values


def _flag_quarantined_horizons(stocks: pd.DataFrame, rejected_sites: set) -> pd.DataFrame:
    """A site with a quarantined horizon in 0-30 cm gets no stock: what is left there cannot be trusted."""
    hit = stocks["site_id"].isin(rejected_sites)
    reason = stocks["exclusion_reason"].fillna("")
    stocks = stocks.copy()
    stocks.loc[hit, "exclusion_reason"] = (reason[hit] + ";").str.lstrip(";") + "quarantined_horizon"
    stocks.loc[hit, ["topsoil_soc_stock_t_c_per_ha", "bd_source", "bd_pedotransfer_function"]] = None
    return stocks


@dg.asset(
    partitions_def=monthly_drops,
    io_manager_key="published_io_manager",
    group_name="field_samples",
    code_version="3",
    check_specs=contract_specs("topsoil_soc_stocks"),
    metadata={GEOPARQUET_POINTS: POINT_COLUMNS},
)
def topsoil_soc_stocks(
    field_sites: pd.DataFrame,
    field_horizons: pd.DataFrame,
    field_horizons_rejects: pd.DataFrame,
    countries: pd.DataFrame,
    climate_zone_grid: Layer,
):
    """SOC stock 0-30 cm per site (t C/ha), with bulk density filled by Manrique & Jones (1991) where missing.

    Sites that do not cover 0-30 cm, lack SOC, lack BD outside the pedotransfer domain, or had a horizon
    quarantined keep a null stock and an `exclusion_reason`. Each site is placed in its country (Natural Earth
    ADM0_A3) and IPCC 2019 climate zone.
    """
    stocks = _site_stocks(field_sites, field_horizons, field_horizons_rejects)
    sites = field_sites.drop_duplicates("site_id")[["site_id", "longitude_deg", "latitude_deg"]]
    table = sites.merge(stocks, on="site_id", how="right", validate="one_to_one")
    lon = table["longitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    lat = table["latitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    index, method = assign_points(lon, lat, shapely.from_wkb(countries["geometry_wkb"]), COUNTRY_NEAREST_MAX_DEG)
    codes = countries["adm0_a3"].to_numpy(dtype=object)
    table["country_adm0_a3"] = pd.Series(np.where(index == NO_REGION, None, codes[index]), dtype="str")
    table["country_assignment"] = pd.Series(method, dtype="str")
    table["climate_zone_code"] = _sample_layer(climate_zone_grid, lon, lat, 0).astype("int64")
    table = table.sort_values("site_id", kind="mergesort").reset_index(drop=True)
    table.attrs["provenance"] = provenance.combine(
        field_sites.attrs.get("provenance", {}),
        field_horizons.attrs.get("provenance", {}),
        field_horizons_rejects.attrs.get("provenance", {}),
        countries.attrs.get("provenance", {}),
        climate_zone_grid.provenance,
        {
            "parameters": {
                "topsoil_depth_cm": [TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM],
                "bd_pedotransfer_function": MANRIQUE_JONES_1991.name,
                "bd_pedotransfer_citation": MANRIQUE_JONES_1991.citation,
                "country_nearest_max_deg": COUNTRY_NEAREST_MAX_DEG,
            }
        },
    )
    yield from publish_if_valid("topsoil_soc_stocks", table)
