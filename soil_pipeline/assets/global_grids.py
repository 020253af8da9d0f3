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

On the grid, a raster's values must cover the share of the land (cells with a 2010 SOC stock) its contract sets
(`landShare`), and a second stock source must agree with the 2010 stock layer on the cells both cover within its
contract's `referenceRatio` (a unit factor off is refused, naming the unit). A rule the raster's declaration confirms
is recorded instead (provenance `raster_confirmations:<input>`, metadata `confirmed_rules`). Each file is
snapshotted before it is first read and checked unchanged after the grid pass, so the sha256 recorded is that of the
bytes read.
"""

from dataclasses import dataclass, field, replace

import dagster as dg
import numpy as np
import pandas as pd
import shapely

from soil_pipeline import provenance
from soil_pipeline.assets.sources import observe_files, observe_legend
from soil_pipeline.checks import contract_specs, raster_contract_result
from soil_pipeline.contracts.model import RasterContract, load_raster_contract
from soil_pipeline.contracts.raster import (
    REGIONAL_SHARE,
    CheckedRaster,
    ValidCells,
    check_raster,
    confirmations,
    extent_of,
)
from soil_pipeline.contracts.raster_declaration import RasterDeclaration, load_raster_declarations, unit_mixup
from soil_pipeline.engine.grid_pass import build_grid
from soil_pipeline.engine.raster import RasterSource
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.failures import as_failure
from soil_pipeline.provenance import FileSnapshot, snapshot
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
from soil_pipeline.redaction import scrub_exception
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.science.coverage import coverage_share, stock_layers_report
from soil_pipeline.science.grid import Layer, common_grid
from soil_pipeline.science.grid_windows import (
    CountryWindow,
    LandShare,
    SecondStockWindow,
    as_stored_bands,
    converted_window,
    cropland_window,
    land_share,
    missing_window,
    reference_ratio,
    stock_error_window,
    stock_window,
)
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG, WindowRasterizer
from soil_pipeline.science.units import HA_PER_MHA


@dataclass
class CheckedInputs:
    """Raster inputs that passed their contracts: the checked rasters, their declarations and contracts, and a
    snapshot of each file (and of the declaration file) taken before it was first read."""

    rasters: dict[str, CheckedRaster]
    declared: dict[str, RasterDeclaration]
    contracts: dict[str, RasterContract]
    snapshots: dict[str, FileSnapshot]
    confirmed: dict[str, dict] = field(default_factory=dict)

    def confirm(self, name: str, failures: list, path: str) -> None:
        """Record the plausibility `failures` found on the grid for input `name` that its declaration confirms;
        InputError (the remedy names the confirmation) for the others."""
        kept, confirmed = confirmations(failures, self.declared.get(name))
        if kept:
            rules = "; ".join(f"rule {rule}: {detail}" for rule, detail in kept)
            raise InputError(path, rules, Remedy.RASTER_PLAUSIBILITY)
        self.confirmed.setdefault(name, {}).update(confirmed)

    def lineage(self) -> dict:
        """Provenance, once every read of the files is done: each file's sha256 as snapshotted, after checking it is
        unchanged (InputError if it changed meanwhile), the contracts, the declarations and the confirmed rules."""
        inputs = {}
        for name, contract in self.contracts.items():
            inputs.update(self.snapshots[name].unchanged().inputs())
            inputs.update(provenance.file_input(f"contract:{name}", contract.path))
        if "raster_declaration" in self.snapshots:
            inputs.update(self.snapshots["raster_declaration"].unchanged().inputs())
        parameters = {f"raster_declaration:{name}": d.describe() for name, d in self.declared.items()}
        confirmed = {name: {**raster.confirmed} for name, raster in self.rasters.items() if raster.confirmed}
        for name, rules in self.confirmed.items():
            confirmed.setdefault(name, {}).update(rules)
        parameters.update({f"raster_confirmations:{name}": rules for name, rules in confirmed.items()})
        return {"inputs": inputs, "parameters": parameters}


def _checked_rasters(
    asset: str, rasters: list[RasterInput], inputs: InputDatasets, raster_engine: RasterEngine, executor
):
    """Check each raster input against its contract (on its declared, converted values when the raster
    declaration file has an entry for it), each file snapshotted first; yields the check result, returns the
    `CheckedInputs`."""
    paths = {entry.name: inputs.raster(entry) for entry in rasters}
    contracts = {entry.name: load_raster_contract(entry.contract) for entry in rasters}
    declaration_file = inputs.raster_declaration
    try:
        snapshots = {}
        if declaration_file:
            snapshots["raster_declaration"] = snapshot("raster_declaration", declaration_file)
        declared = {n: d for n, d in load_raster_declarations(declaration_file).items() if n in paths}
        if not declared:
            snapshots.pop("raster_declaration", None)
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
                snapshots[entry.name] = snapshot(entry.name, paths[entry.name])
                checked[entry.name] = check_raster(
                    paths[entry.name],
                    contracts[entry.name],
                    declared.get(entry.name),
                    executor,
                    raster_engine.threads,
                    raster_engine.window_cells,
                    raster_engine.limits(),
                )
            except InputError as error:
                errors.append(error)
        if errors:
            raise InputError.joined(errors)
    except InputError as error:  # a broken raster, or a declaration that cannot be used
        yield raster_contract_result(asset, list(contracts.values()), str(error))
        raise as_failure(error) from error
    yield raster_contract_result(asset, list(contracts.values()), None)
    return CheckedInputs(checked, declared, contracts, snapshots)


def _onto_grid(checked: CheckedRaster, resampling: str, dtype: str, fill) -> RasterSource:
    """The checked raster as an engine input aligned onto the common grid with `resampling`."""
    return replace(checked.source, resampling=resampling, dtype=dtype, fill=fill)


def _write(sources, grid, compute, count, dtype, raster_engine: RasterEngine, executor, label: str):
    """(GridFile written window by window, sums, PassReport, alignment records); any error leaves with its
    messages redacted (a raster's URL may carry a password)."""
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
    except BaseException as error:
        out.discard()
        scrub_exception(error)
        raise
    return out, sums, report, records


def _finished(out: GridFile, work) -> dict:
    """`work()` (e.g. the lineage, checked once the pass has read every file), or the step's failure after the
    grid being written is discarded."""
    try:
        return work()
    except InputError as error:
        out.discard()
        raise as_failure(error) from error


def _land_share_failures(sums: dict, layer: str, contract: RasterContract, bounds: tuple | None) -> list:
    """The `landShare` rule on the `LandShare` sums of a grid pass for its layer `layer`."""
    share = land_share(sums, layer)
    if contract.min_land_share is None or share is None or share >= contract.min_land_share:
        return []
    where = " within its own extent" if bounds else ""
    return [
        (
            "landShare",
            f"its values cover {share:.1%} of the land{where} (common-grid cells with a 2010 SOC stock), less than the "
            f"{contract.min_land_share:.0%} {contract.label} requires: a raster of part of the world only "
            "(declare it extent: regional), or mostly no data (a nodata value declared wrong?)",
        )
    ]


def _single_raster_grid(
    asset: str,
    entry: RasterInput,
    inputs: InputDatasets,
    raster_engine: RasterEngine,
    grid,
    compute,
    dtype,
    land: Layer | None = None,
):
    """Check one raster input against its contract, then write it onto `grid` window by window with the resampling
    of its role (no data as NaN on a float grid, else the contract's no-data value), measuring the share of the
    land (`land`, the 2010 stock grid) it covers when its contract sets one; yields the check result, returns
    (checked raster, lineage, GridFile, sums, PassReport, alignment record)."""
    with raster_engine.executor() as executor:
        checked_inputs = yield from _checked_rasters(asset, [entry], inputs, raster_engine, executor)
        checked = checked_inputs.rasters[entry.name]
        contract = checked_inputs.contracts[entry.name]
        fill = np.nan if np.dtype(dtype).kind == "f" else checked.nodata
        sources = {entry.name: _onto_grid(checked, entry.resampling, dtype, fill)}
        bounds = (
            extent_of(checked.info)
            if entry.name in checked_inputs.declared and checked_inputs.declared[entry.name].regional
            else None
        )
        if land is not None and contract.min_land_share is not None:
            sources["land"] = land.source("land")
            compute = LandShare(compute, (entry.name,), None if np.isnan(fill) else fill, bounds)
        out, sums, report, alignment = _write(sources, grid, compute, 1, dtype, raster_engine, executor, asset)
    if "land_ha" in sums:
        failures = _land_share_failures(sums, entry.name, contract, bounds)
        _finished(out, lambda: checked_inputs.confirm(entry.name, failures, inputs.raster(entry)))
    lineage = _finished(out, checked_inputs.lineage)
    return checked, lineage, out, sums, report, alignment[entry.name]


def _output(layer: StoredLayer, report, raster_engine: RasterEngine) -> dg.Output:
    confirmed = {
        key.split(":", 1)[1]: rules
        for key, rules in layer.provenance.get("parameters", {}).items()
        if key.startswith("raster_confirmations:")
    }
    return dg.Output(
        layer,
        metadata={
            "units": layer.units,
            "grid": dg.MetadataValue.json(layer.grid.describe()),
            "alignment": dg.MetadataValue.json(layer.alignment),
            "streaming_pass": dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()}),
            **({"confirmed_rules": dg.MetadataValue.json(confirmed)} if confirmed else {}),
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
        checked = yield from _checked_rasters("soc_stock_grid", rasters, inputs, raster_engine, executor)
        sources = {
            band: _onto_grid(checked.rasters[entry.name], entry.resampling, "float32", np.nan)
            for band, entry in STOCK_BANDS
        }
        grid = raster_engine.grid()
        out, sums, report, alignment = _write(
            sources, grid, stock_window, 2, "float32", raster_engine, executor, "soc_stock_grid"
        )
    regional = list(dict.fromkeys(d.label or d.name for d in checked.declared.values() if d.regional))
    coverage = _finished(out, lambda: _stock_coverage(stock_layers_report(sums), inputs, regional))
    lineage = _finished(out, checked.lineage)
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
        checked = yield from _checked_rasters("soc_stock_error_grid", rasters, inputs, raster_engine, executor)
        sources = {
            depth: _onto_grid(checked.rasters[entry.name], entry.resampling, "float32", np.nan)
            for depth, entry in STOCK_ERROR_LAYERS
        }
        compute = LandShare(stock_error_window, tuple(sources))
        sources["land"] = soc_stock_grid.source("land")
        out, sums, report, alignment = _write(
            sources, soc_stock_grid.grid, compute, 1, "float32", raster_engine, executor, "stock error"
        )

    def confirm_each():
        for depth, entry in STOCK_ERROR_LAYERS:
            failures = _land_share_failures(sums, depth, checked.contracts[entry.name], None)
            checked.confirm(entry.name, failures, inputs.raster(entry))

    _finished(out, confirm_each)
    alignment.pop("land")
    lineage = _finished(out, checked.lineage)
    units = "t C/ha: 0-30 cm stock error of 2010, 1 sd (0.15 x (err0 + err30), WHRC OCD prediction errors)"
    yield _output(out.layer(units, alignment, lineage), report, raster_engine)


@dg.asset(
    group_name="global_grids",
    code_version="3",
    check_specs=contract_specs("second_soc_stock_grid"),
    deps=[SECOND_SOC_STOCK.name],
)
def second_soc_stock_grid(
    context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer, raster_engine: RasterEngine
):
    """A second SOC stock 0-30 cm source beside WHRC, named by the label of its declaration, averaged onto the
    common grid: band 1 its stock (t C/ha) over the part of each cell it covers, band 2 that covered fraction
    (0-1), so that areas and stocks count partly covered cells by what is covered; cross-checked against the 2010
    stock layer on the cells both cover (`referenceRatio`). All missing when `second_soc_stock_raster` is not set."""
    observe_files(context, inputs, SECOND_SOC_STOCK.name)
    grid = soc_stock_grid.grid
    if not inputs.raster(SECOND_SOC_STOCK):
        yield _unset_optional("second_soc_stock_grid", SECOND_SOC_STOCK)
        out, _, report, _ = _write({}, grid, missing_window, 1, "float32", raster_engine, None, "no second")
        yield _output(out.layer("not configured", {}, {}), report, raster_engine)
        return
    name, path = SECOND_SOC_STOCK.name, inputs.raster(SECOND_SOC_STOCK)
    with raster_engine.executor() as executor:
        checked = yield from _checked_rasters(
            "second_soc_stock_grid", [SECOND_SOC_STOCK], inputs, raster_engine, executor
        )
        raster, contract, declaration = checked.rasters[name], checked.contracts[name], checked.declared[name]
        sources = {
            "stock": _onto_grid(raster, SECOND_SOC_STOCK.resampling, "float32", np.nan),
            "cover": replace(raster.source, declare=ValidCells(raster.source.declare), resampling="sum"),
            "reference": soc_stock_grid.source("reference"),
            "land": soc_stock_grid.source("land"),
        }
        t = raster.info.transform
        cell_ratio = abs(t.a * t.e) / abs(grid.transform.a * grid.transform.e)
        bounds = extent_of(raster.info) if declaration.regional else None
        compute = LandShare(SecondStockWindow(cell_ratio), ("stock",), None, bounds)
        out, sums, report, alignment = _write(sources, grid, compute, 2, "float32", raster_engine, executor, "second")
    failures = _land_share_failures(sums, "stock", contract, bounds) + _reference_failures(sums, contract, declaration)
    _finished(out, lambda: checked.confirm(name, failures, path))
    lineage = _finished(out, checked.lineage)
    label = declaration.label
    lineage["parameters"]["second_soc_stock_source"] = label
    record = {
        **alignment["stock"],
        "covered_fraction": "band 2: the source's cells summed onto each cell (GDAL sum) x the area of one of them "
        f"over a cell's ({cell_ratio:.6g})",
    }
    units = f"t C/ha (0-30 cm), source: {label}; band 1 = stock over the covered part, band 2 = covered fraction"
    yield _output(out.layer(units, record, lineage), report, raster_engine)


def _reference_failures(sums: dict, contract: RasterContract, declaration: RasterDeclaration) -> list:
    """The `referenceRatio` rule: the second source's mean stock over the 2010 layer's on the cells both cover."""
    found = reference_ratio(sums)
    if contract.reference_ratio is None or found is None:
        return []
    ratio, area_ha = found
    low, high = contract.reference_ratio
    if low <= ratio <= high:
        return []
    hint = ""
    if (mixup := unit_mixup(ratio, contract.unit, declaration.unit)) is not None:
        unit, factor = mixup
        read_as = declaration.unit or contract.unit
        hint = f": x {factor:g} is the factor from {read_as} to {unit}, the values look like {unit}"
    return [
        (
            "referenceRatio",
            f"on the {area_ha / HA_PER_MHA:.3g} Mha it shares with the 2010 stock layer, its mean stock is "
            f"{ratio:.3g} x the 2010 layer's, outside [{low:g}, {high:g}]{hint}",
        )
    ]


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
        "cropland_grid",
        CROPLAND,
        inputs,
        raster_engine,
        soc_stock_grid.grid,
        cropland_window,
        "float32",
        soc_stock_grid,
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
        "climate_zone_grid",
        CLIMATE_ZONES,
        inputs,
        raster_engine,
        soc_stock_grid.grid,
        as_stored_bands,
        "int16",
        soc_stock_grid,
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
    compute, checked = converted_window, None
    with raster_engine.executor() as executor:
        if inputs.raster(PASTURE):
            checked = yield from _checked_rasters("converted_land_grid", [PASTURE], inputs, raster_engine, executor)
            pasture = checked.rasters[PASTURE.name]
            sources["pasture"] = _onto_grid(pasture, PASTURE.resampling, "float32", np.nan)
            declaration = checked.declared.get(PASTURE.name)
            bounds = extent_of(pasture.info) if declaration is not None and declaration.regional else None
            sources["land"] = soc_stock_grid.source("land")
            compute = LandShare(converted_window, ("pasture",), None, bounds)
        else:
            yield _unset_optional("converted_land_grid", PASTURE)
        out, sums, report, alignment = _write(
            sources, grid, compute, 1, "float32", raster_engine, executor, "converted_land_grid"
        )
    if checked is not None:
        failures = _land_share_failures(sums, "pasture", checked.contracts[PASTURE.name], bounds)
        _finished(out, lambda: checked.confirm(PASTURE.name, failures, inputs.raster(PASTURE)))
        lineage.append(_finished(out, checked.lineage))
        components["pasture"] = alignment["pasture"]
    layer = out.layer(
        "km2 converted land per cell",
        {"components": components, "capped_at": "cell area"},
        provenance.combine(*lineage),
    )
    yield _output(layer, report, raster_engine)
