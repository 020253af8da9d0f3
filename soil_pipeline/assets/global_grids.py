"""Global gridded inputs on one common grid (configured on the `raster_engine` resource; default the WHRC 5
arc-minute SOC stock grid, Sanderman et al. 2017).

Each raster is checked against its contract (CRS, resolution, extent, dtype, nodata, scaling, value range) in a
streaming pass before anything is computed, then aligned onto the common grid window by window with the resampling
of what its cells hold (`raster_inputs`): nearest neighbour for categories (climate zones), `sum` for per-cell areas
(cropland, pasture km2), so totals are preserved, `average` for densities (t C/ha). A raster of the target
resolution whose origin is off the lattice (HYDE: 0.44 row) is shifted by whole rows/columns instead, so no cell is
split between neighbours. The method, and for a shift the offset, is recorded in metadata. Each grid is written
window by window to a tiled GeoTIFF (`GridFile`): no input or output grid is ever whole in memory, whatever the
grid's size.
"""

from dataclasses import replace

import dagster as dg
import numpy as np
import pandas as pd
import shapely

from soil_pipeline import provenance
from soil_pipeline.assets.sources import observe_files, observe_legend
from soil_pipeline.checks import contract_specs, raster_contract_result
from soil_pipeline.contracts.model import load_raster_contract
from soil_pipeline.contracts.raster import REGIONAL_SHARE, CheckedRaster, check_raster
from soil_pipeline.contracts.raster_declaration import load_raster_declarations
from soil_pipeline.engine.grid_pass import build_grid
from soil_pipeline.engine.raster import RasterSource
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.failures import as_failure
from soil_pipeline.publishing.grids import GridFile, StoredLayer
from soil_pipeline.raster_inputs import (
    CLIMATE_ZONES,
    CROPLAND,
    PASTURE,
    SECOND_SOC_STOCK,
    SOC_STOCK_2010,
    SOC_STOCK_ERROR_0CM,
    SOC_STOCK_ERROR_30CM,
    SOC_STOCK_NO_LAND_USE,
    RasterInput,
)
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.science.coverage import coverage_share, stock_layers_report
from soil_pipeline.science.grid import Layer, common_grid
from soil_pipeline.science.grid_windows import (
    CountryWindow,
    as_stored_bands,
    converted_window,
    cropland_window,
    missing_window,
    stock_error_window,
    stock_window,
)
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG, WindowRasterizer
from soil_pipeline.science.units import HA_PER_MHA


def _checked_rasters(
    asset: str, rasters: list[RasterInput], inputs: InputDatasets, raster_engine: RasterEngine, executor
):
    """Check each raster input against its contract (on its declared, converted values when the raster
    declaration file has an entry for it); yields the check result, returns the checked rasters and provenance."""
    paths = {entry.name: inputs.raster(entry) for entry in rasters}
    contracts = {entry.name: load_raster_contract(entry.contract) for entry in rasters}
    declaration_file = inputs.raster_declaration
    try:
        declared = {n: d for n, d in load_raster_declarations(declaration_file).items() if n in paths}
        errors, checked = [], {}
        for entry in rasters:
            if entry.label_required and not (entry.name in declared and declared[entry.name].label):
                rule = (
                    f"this input is read only by a declaration naming its source: add rasters.{entry.name} with a "
                    f"label to the raster_declaration file ({declaration_file})"
                )
                errors.append(InputError(paths[entry.name], rule, Remedy.DECLARE_RASTER))
                continue
            try:
                checked[entry.name] = check_raster(
                    paths[entry.name],
                    contracts[entry.name],
                    declared.get(entry.name),
                    executor,
                    raster_engine.threads,
                    raster_engine.window_cells,
                )
            except InputError as error:
                errors.append(error)
        if errors:
            raise InputError.joined(errors)
    except InputError as error:  # a broken raster, or a declaration that cannot be used
        yield raster_contract_result(asset, list(contracts.values()), str(error))
        raise as_failure(error) from error
    yield raster_contract_result(asset, list(contracts.values()), None)
    lineage = {}
    for name, path in paths.items():
        lineage.update(provenance.file_input(name, path))
        lineage.update(provenance.file_input(f"contract:{name}", contracts[name].path))
    if declared:
        lineage.update(provenance.file_input("raster_declaration", declaration_file))
    parameters = {f"raster_declaration:{name}": d.describe() for name, d in declared.items()}
    return checked, {"inputs": lineage, "parameters": parameters, "declared": declared}


def _onto_grid(checked: CheckedRaster, resampling: str, dtype: str, fill) -> RasterSource:
    """The checked raster as an engine input aligned onto the common grid with `resampling`."""
    return replace(checked.source, resampling=resampling, dtype=dtype, fill=fill)


def _write(sources, grid, compute, count, dtype, raster_engine: RasterEngine, executor, label: str):
    """(GridFile written window by window, sums, PassReport, alignment records)."""
    out = GridFile(grid, count, dtype)
    try:
        sums, report, records = build_grid(
            sources,
            grid,
            compute,
            out.consume,
            executor,
            raster_engine.threads,
            raster_engine.window_cells,
            label,
            out.tile,
        )
    except BaseException:
        out.discard()
        raise
    return out, sums, report, records


def _single_raster_grid(
    asset: str, entry: RasterInput, inputs: InputDatasets, raster_engine: RasterEngine, grid, compute, dtype
):
    """Check one raster input against its contract, then write it onto `grid` window by window with the resampling
    of its role (no data as NaN on a float grid, else the contract's no-data value); yields the check result,
    returns (checked raster, lineage, GridFile, sums, PassReport, alignment record)."""
    with raster_engine.executor() as executor:
        checked, lineage = yield from _checked_rasters(asset, [entry], inputs, raster_engine, executor)
        fill = np.nan if np.dtype(dtype).kind == "f" else checked[entry.name].nodata
        source = _onto_grid(checked[entry.name], entry.resampling, dtype, fill)
        out, sums, report, alignment = _write(
            {entry.name: source}, grid, compute, 1, dtype, raster_engine, executor, asset
        )
    lineage.pop("declared")
    return checked[entry.name], lineage, out, sums, report, alignment[entry.name]


def _output(layer: StoredLayer, report, raster_engine: RasterEngine) -> dg.Output:
    return dg.Output(
        layer,
        metadata={
            "units": layer.units,
            "grid": dg.MetadataValue.json(layer.grid.describe()),
            "alignment": dg.MetadataValue.json(layer.alignment),
            "streaming_pass": dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()}),
        },
    )


# Depth of the WHRC stock layers read into soc_stock_grid (0-30 cm): the depth their t C/ha refer to.
SOC_STOCK_DEPTH_CM = 30.0
STOCK_BANDS = (("2010", SOC_STOCK_2010), ("no_land_use", SOC_STOCK_NO_LAND_USE))


@dg.asset(
    group_name="global_grids",
    code_version="5",
    check_specs=contract_specs("soc_stock_grid"),
    deps=[entry.name for _, entry in STOCK_BANDS],
)
def soc_stock_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, raster_engine: RasterEngine):
    """SOC stock 0-30 cm (t C/ha) for 2010 and for no land use, bands 1 and 2, on the common grid configured on
    `raster_engine` (default: the WHRC 5' grid itself, so nothing is resampled), each restricted to the cells both
    cover."""
    rasters = [entry for _, entry in STOCK_BANDS]
    observe_files(context, inputs, *(entry.name for entry in rasters))
    with raster_engine.executor() as executor:
        checked, lineage = yield from _checked_rasters("soc_stock_grid", rasters, inputs, raster_engine, executor)
        declared = lineage.pop("declared")
        sources = {
            band: _onto_grid(checked[entry.name], entry.resampling, "float32", np.nan) for band, entry in STOCK_BANDS
        }
        grid = raster_engine.grid()
        out, sums, report, alignment = _write(
            sources, grid, stock_window, 2, "float32", raster_engine, executor, "soc_stock_grid"
        )
    regional = list(dict.fromkeys(d.label or d.name for d in declared.values() if d.regional))
    try:
        coverage = _stock_coverage(stock_layers_report(sums), inputs, regional)
    except InputError as error:
        out.discard()
        raise as_failure(error) from error
    units = "t C/ha (0-30 cm); band 1 = 2010, band 2 = no land use"
    if regional:
        units += f"; REGIONAL extent ({', '.join(regional)}), not global"
        lineage["parameters"]["soc_stock_extent"] = {"extent": "regional", "label": ", ".join(regional)}
    yield _output(out.layer(units, {**alignment, "coverage": coverage}, lineage), report, raster_engine)


def _stock_coverage(report: dict, inputs: InputDatasets, regional: list[str]) -> dict:
    """The two layers' coverage report (where 2010 exceeds no land use, cells only one covers); refuse a layer
    covering much less than the other unless it is declared regional."""
    share = coverage_share(report)
    if share < REGIONAL_SHARE and not regional:
        smaller = SOC_STOCK_2010 if report["only_no_land_use"]["cells"] else SOC_STOCK_NO_LAND_USE
        path = inputs.raster(smaller)
        raise InputError(
            path,
            f"rule coverage: the 2010 and no-land-use stock layers share {share:.1%} of the cells either covers "
            f"({report['both']['cells']} of "
            f"{report['both']['cells'] + report['only_2010']['cells'] + report['only_no_land_use']['cells']}): a "
            f"regional raster passed as global. Declare it (extent: regional, rasters.{smaller.name} in the "
            "raster_declaration file) to have it labelled regional and never summed as global",
            Remedy.DECLARE_RASTER,
        )
    report["restricted_to_common_coverage"] = share < 1.0
    return report


def _unset_optional(asset: str, entry: RasterInput) -> dg.AssetCheckResult:
    """The contract check of an optional raster input left unset: passed, nothing to check."""
    return raster_contract_result(asset, [load_raster_contract(entry.contract)], None)


# The WHRC prediction-error layers of the 2010 organic carbon density read into soc_stock_error_grid.
STOCK_ERROR_LAYERS = (("0cm", SOC_STOCK_ERROR_0CM), ("30cm", SOC_STOCK_ERROR_30CM))


@dg.asset(
    group_name="global_grids",
    code_version="1",
    check_specs=contract_specs("soc_stock_error_grid"),
    deps=[entry.name for _, entry in STOCK_ERROR_LAYERS],
)
def soc_stock_error_grid(
    context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer, raster_engine: RasterEngine
):
    """0-30 cm SOC stock error of the 2010 stock (t C/ha, one standard deviation) on the common grid: 0.15 x (err0 +
    err30), the trapezoid over the WHRC prediction errors of the organic carbon density at 0 and 30 cm (0.1 kg C/m3),
    the two depths fully correlated; missing where either layer is."""
    rasters = [entry for _, entry in STOCK_ERROR_LAYERS]
    observe_files(context, inputs, *(entry.name for entry in rasters))
    with raster_engine.executor() as executor:
        checked, lineage = yield from _checked_rasters("soc_stock_error_grid", rasters, inputs, raster_engine, executor)
        lineage.pop("declared")
        sources = {
            depth: _onto_grid(checked[entry.name], entry.resampling, "float32", np.nan)
            for depth, entry in STOCK_ERROR_LAYERS
        }
        out, _, report, alignment = _write(
            sources, soc_stock_grid.grid, stock_error_window, 1, "float32", raster_engine, executor, "stock error"
        )
    units = "t C/ha: 0-30 cm stock error of 2010, 1 sd (0.15 x (err0 + err30), WHRC OCD prediction errors)"
    yield _output(out.layer(units, alignment, lineage), report, raster_engine)


@dg.asset(
    group_name="global_grids",
    code_version="2",
    check_specs=contract_specs("second_soc_stock_grid"),
    deps=[SECOND_SOC_STOCK.name],
)
def second_soc_stock_grid(
    context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer, raster_engine: RasterEngine
):
    """A second SOC stock 0-30 cm source (t C/ha) beside WHRC, named by the label of its declaration, averaged
    onto the common grid; all missing when `second_soc_stock_raster` is not set."""
    observe_files(context, inputs, SECOND_SOC_STOCK.name)
    grid = soc_stock_grid.grid
    if not inputs.raster(SECOND_SOC_STOCK):
        yield _unset_optional("second_soc_stock_grid", SECOND_SOC_STOCK)
        out, _, report, _ = _write({}, grid, missing_window, 1, "float32", raster_engine, None, "no second")
        yield _output(out.layer("not configured", {}, {}), report, raster_engine)
        return
    _, lineage, out, _, report, alignment = yield from _single_raster_grid(
        "second_soc_stock_grid", SECOND_SOC_STOCK, inputs, raster_engine, grid, as_stored_bands, "float32"
    )
    label = lineage["parameters"][f"raster_declaration:{SECOND_SOC_STOCK.name}"]["label"]
    lineage["parameters"]["second_soc_stock_source"] = label
    units = f"t C/ha (0-30 cm), source: {label}"
    yield _output(out.layer(units, alignment, lineage), report, raster_engine)


@dg.asset(
    group_name="global_grids", code_version="4", check_specs=contract_specs("cropland_grid"), deps=[CROPLAND.name]
)
def cropland_grid(
    context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer, raster_engine: RasterEngine
):
    """HYDE 3.2 cropland area 2016 (km2 per cell) on the common grid (whole-row shift, see module doc); total
    area is preserved."""
    observe_files(context, inputs, CROPLAND.name)
    checked, lineage, out, sums, report, alignment = yield from _single_raster_grid(
        "cropland_grid", CROPLAND, inputs, raster_engine, soc_stock_grid.grid, cropland_window, "float32"
    )
    record = {
        **alignment,
        "source_total_km2": checked.valid_sum,
        "aligned_total_km2": float(sums["aligned_total_km2"][0]),
    }
    yield _output(out.layer("km2 cropland per cell", record, lineage), report, raster_engine)


@dg.asset(
    group_name="global_grids",
    code_version="3",
    check_specs=contract_specs("climate_zone_grid"),
    deps=[CLIMATE_ZONES.name],
)
def climate_zone_grid(
    context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer, raster_engine: RasterEngine
):
    """IPCC 2019 climate zone code per cell (0 = none), nearest-neighbour onto the common grid."""
    observe_files(context, inputs, CLIMATE_ZONES.name)
    observe_legend(context)
    _, lineage, out, _, report, alignment = yield from _single_raster_grid(
        "climate_zone_grid", CLIMATE_ZONES, inputs, raster_engine, soc_stock_grid.grid, as_stored_bands, "int16"
    )
    yield _output(out.layer("IPCC 2019 climate zone code", alignment, lineage), report, raster_engine)


@dg.asset(group_name="global_grids", code_version="3")
def country_grid(
    countries: pd.DataFrame, soc_stock_grid: Layer, cropland_grid: Layer, raster_engine: RasterEngine
) -> dg.Output:
    """Row index into `countries` of the polygon containing each cell centre; land cells (SOC stock or cropland)
    outside every polygon take the nearest within COUNTRY_NEAREST_MAX_DEG; -1 = none."""
    grid = common_grid(soc_stock_grid, cropland_grid)
    sources = {"soc_stock": soc_stock_grid.source("soc_stock"), "cropland": cropland_grid.source("cropland")}
    compute = CountryWindow(WindowRasterizer(shapely.from_wkb(countries["geometry_wkb"])), COUNTRY_NEAREST_MAX_DEG)
    with raster_engine.executor() as executor:
        out, sums, report, _ = _write(sources, grid, compute, 1, "int32", raster_engine, executor, "country_grid")
    alignment = {
        "method": "rasterio.features.rasterize, cell centre inside polygon; else nearest polygon (land cells)",
        "nearest_max_distance_deg": COUNTRY_NEAREST_MAX_DEG,
        "land_cells_by_nearest": int(sums["nearest_cells"][0]),
        "land_area_by_nearest_mha": float(sums["nearest_ha"][0] / HA_PER_MHA),
        "land_cells_unassigned": int(sums["unassigned_cells"][0]),
        "land_area_unassigned_mha": float(sums["unassigned_ha"][0] / HA_PER_MHA),
    }
    lineage = countries.attrs.get("provenance", {})
    return _output(out.layer("row index into countries", alignment, lineage), report, raster_engine)


@dg.asset(
    group_name="global_grids",
    code_version="3",
    check_specs=contract_specs("converted_land_grid"),
    deps=[PASTURE.name],
)
def converted_land_grid(
    context: dg.AssetExecutionContext,
    inputs: InputDatasets,
    cropland_grid: Layer,
    soc_stock_grid: Layer,
    raster_engine: RasterEngine,
):
    """Converted land (km2 per cell) for the restoration scenarios: HYDE 3.2 cropland, plus the pasture raster
    when `inputs.pasture_raster` is set (checked against its contract, summed onto the common grid), capped at the
    cell area."""
    observe_files(context, inputs, PASTURE.name)
    grid = common_grid(cropland_grid, soc_stock_grid)
    sources = {"cropland": cropland_grid.source("cropland")}
    components = {"cropland": "cropland_grid"}
    lineage = [cropland_grid.provenance]
    with raster_engine.executor() as executor:
        if inputs.raster(PASTURE):
            checked, pasture = yield from _checked_rasters(
                "converted_land_grid", [PASTURE], inputs, raster_engine, executor
            )
            pasture.pop("declared")
            sources["pasture"] = _onto_grid(checked[PASTURE.name], PASTURE.resampling, "float32", np.nan)
            lineage.append(pasture)
        else:
            yield _unset_optional("converted_land_grid", PASTURE)
        out, _, report, alignment = _write(
            sources, grid, converted_window, 1, "float32", raster_engine, executor, "converted_land_grid"
        )
    if "pasture" in alignment:
        components["pasture"] = alignment["pasture"]
    layer = out.layer(
        "km2 converted land per cell",
        {"components": components, "capped_at": "cell area"},
        provenance.combine(*lineage),
    )
    yield _output(layer, report, raster_engine)
