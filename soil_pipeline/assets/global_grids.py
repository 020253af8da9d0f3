"""Global gridded inputs on one common grid: the WHRC 5 arc-minute SOC stock grid (Sanderman et al. 2017).

Each raster is checked against its contract (CRS, resolution, extent, dtype, nodata, scaling, value range) before
anything is computed, then aligned onto the common grid explicitly with GDAL: nearest neighbour for categories
(climate zones), `sum` resampling for per-cell areas (cropland km2), so totals are preserved. A raster of the
target resolution whose origin is off the lattice (HYDE: 0.44 row) is shifted by whole rows/columns instead, so
no cell is split between neighbours. The method, and for a shift the offset, is recorded in metadata.
"""

import dagster as dg
import numpy as np
import pandas as pd
import shapely
from rasterio.warp import Resampling

from soil_pipeline import provenance
from soil_pipeline.assets.sources import observe_files, observe_legend
from soil_pipeline.checks import contract_specs, raster_contract_result
from soil_pipeline.contracts.bounded_yaml import DeclarationError
from soil_pipeline.contracts.model import load_raster_contract
from soil_pipeline.contracts.raster import REGIONAL_SHARE, check_raster
from soil_pipeline.contracts.raster_declaration import load_raster_declarations
from soil_pipeline.readers import InputError, RasterBand, read_raster
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.science.coverage import coverage_share, stock_layers_report
from soil_pipeline.science.grid import (
    GridSpec,
    Layer,
    align,
    cell_area_ha,
    common_grid,
    lattice_offset,
    same_grid,
    shift_onto,
)
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG, fill_nearest, rasterize_regions
from soil_pipeline.science.units import HA_PER_KM2, HA_PER_MHA


def _checked_rasters(asset: str, paths: dict[str, str], declaration_file: str | None = None):
    """Read and check each raster against the contract of the same name (on its declared, converted values when
    the raster declaration file has an entry for it); yields the check result, returns bands and provenance."""
    contracts = {name: load_raster_contract(name) for name in paths}
    try:
        declared = {n: d for n, d in load_raster_declarations(declaration_file).items() if n in paths}
        errors = []
        bands = {}
        for name, path in paths.items():
            try:
                bands[name] = check_raster(read_raster(path), contracts[name], declared.get(name))
            except InputError as error:
                errors.append(str(error))
        if errors:
            raise InputError("\n".join(errors))
    except (InputError, DeclarationError) as error:
        yield raster_contract_result(asset, list(contracts.values()), str(error))
        raise dg.Failure(description=str(error)) from error
    yield raster_contract_result(asset, list(contracts.values()), None)
    lineage = {}
    for name, path in paths.items():
        lineage.update(provenance.file_input(name, path))
        lineage.update(provenance.file_input(f"contract:{name}", contracts[name].path))
    if declared:
        lineage.update(provenance.file_input("raster_declaration", declaration_file))
    parameters = {f"raster_declaration:{name}": d.describe() for name, d in declared.items()}
    return bands, {"inputs": lineage, "parameters": parameters, "declared": declared}


def _as_float(band: RasterBand) -> np.ndarray:
    data = band.data.astype("float32")
    data[band.data == band.nodata] = np.nan
    return data


def _grid_of(band: RasterBand) -> GridSpec:
    return GridSpec(width=band.data.shape[1], height=band.data.shape[0], transform=band.transform, crs=band.crs)


def _onto(band: RasterBand, target: GridSpec, resampling: Resampling, target_nodata, dtype) -> tuple[np.ndarray, dict]:
    """Onto `target`: as is when on its grid, by whole-cell shift when only the origin differs, else resampled."""
    if same_grid(_grid_of(band), target):
        return band.data.astype(dtype, copy=False), {"method": "none (already on the common grid)"}
    if (offset := lattice_offset(_grid_of(band), target)) is not None:
        return shift_onto(band.data, band.nodata, offset, target, target_nodata, dtype)
    aligned = align(band.data, band.transform, band.crs, band.nodata, target, resampling, target_nodata, dtype)
    source = {"west": band.transform.c, "north": band.transform.f, "resolution_deg": abs(band.transform.a)}
    return aligned, {"method": f"rasterio.warp.reproject, Resampling.{resampling.name}", "source_grid": source}


def _output(layer: Layer) -> dg.Output:
    return dg.Output(
        layer,
        metadata={
            "units": layer.units,
            "grid": dg.MetadataValue.json(layer.grid.describe()),
            "alignment": dg.MetadataValue.json(layer.alignment),
        },
    )


# Depth of the WHRC stock layers read into soc_stock_grid (0-30 cm): the depth their t C/ha refer to.
SOC_STOCK_DEPTH_CM = 30.0


@dg.asset(
    group_name="global_grids",
    code_version="4",
    check_specs=contract_specs("soc_stock_grid"),
    deps=["soc_stock_2010_raster", "soc_stock_no_land_use_raster"],
)
def soc_stock_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, raster_engine: RasterEngine):
    """SOC stock 0-30 cm (t C/ha) for 2010 and for no land use, bands 0 and 1, on the common grid configured on
    `raster_engine` (default: the WHRC 5' grid itself, so nothing is resampled)."""
    observe_files(context, inputs, "soc_stock_2010_raster", "soc_stock_no_land_use_raster")
    bands, lineage = yield from _checked_rasters(
        "soc_stock_grid",
        {
            "soc_stock_2010_raster": inputs.soc_stock_2010_raster,
            "soc_stock_no_land_use_raster": inputs.soc_stock_no_land_use_raster,
        },
        inputs.raster_declaration,
    )
    declared = lineage.pop("declared")
    grid = raster_engine.grid()
    data, alignment = np.empty((2, *grid.shape), dtype="float32"), {}
    for i, (name, raster) in enumerate(
        (("2010", "soc_stock_2010_raster"), ("no_land_use", "soc_stock_no_land_use_raster"))
    ):
        band = bands.pop(raster)
        aligned, alignment[name] = _onto(band, grid, Resampling.average, band.nodata, band.data.dtype)
        data[i] = aligned
        data[i][aligned == band.nodata] = np.nan
        del band, aligned
    regional = list(dict.fromkeys(d.label or d.name for d in declared.values() if d.regional))
    coverage = _stock_coverage(data, grid, inputs, regional)
    units = "t C/ha (0-30 cm); band 0 = 2010, band 1 = no land use"
    if regional:
        units += f"; REGIONAL extent ({', '.join(regional)}), not global"
        lineage["parameters"]["soc_stock_extent"] = {"extent": "regional", "label": ", ".join(regional)}
    yield _output(
        Layer(
            data=data,
            grid=grid,
            units=units,
            alignment={**alignment, "coverage": coverage},
            provenance=lineage,
        )
    )


def _stock_coverage(data: np.ndarray, grid: GridSpec, inputs: InputDatasets, regional: list[str]) -> dict:
    """Report the two layers' coverage and where 2010 exceeds no land use; restrict both to the cells both cover
    (in place). Refuse a layer covering much less than the other unless it is declared regional."""
    report = stock_layers_report(data[0], data[1], cell_area_ha(grid))
    share = coverage_share(report)
    if share < REGIONAL_SHARE and not regional:
        smaller = "soc_stock_2010_raster" if report["only_no_land_use"]["cells"] else "soc_stock_no_land_use_raster"
        path = getattr(inputs, smaller)
        raise dg.Failure(
            description=f"{path}: rule coverage: the 2010 and no-land-use stock layers share {share:.1%} of the "
            f"cells either covers ({report['both']['cells']} of "
            f"{report['both']['cells'] + report['only_2010']['cells'] + report['only_no_land_use']['cells']}): a "
            f"regional raster passed as global. Declare it (extent: regional, rasters.{smaller} in the "
            "raster_declaration file) to have it labelled regional and never summed as global"
        )
    outside = ~(np.isfinite(data[0]) & np.isfinite(data[1]))
    data[:, outside] = np.nan
    report["restricted_to_common_coverage"] = bool(outside.any() and share < 1.0)
    return report


@dg.asset(
    group_name="global_grids",
    code_version="1",
    check_specs=contract_specs("second_soc_stock_grid"),
    deps=["second_soc_stock_raster"],
)
def second_soc_stock_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer):
    """A second SOC stock 0-30 cm source (t C/ha) beside WHRC, named by the label of its declaration, averaged
    onto the common grid; all missing when `second_soc_stock_raster` is not set."""
    observe_files(context, inputs, "second_soc_stock_raster")
    grid, path = soc_stock_grid.grid, inputs.second_soc_stock_raster
    if not path:
        contract = load_raster_contract("second_soc_stock_raster")
        yield raster_contract_result("second_soc_stock_grid", [contract], None)
        yield _output(Layer(np.full(grid.shape, np.nan, dtype="float32"), grid, "not configured"))
        return
    declaration = load_raster_declarations(inputs.raster_declaration).get("second_soc_stock_raster")
    if declaration is None or not declaration.label:
        raise dg.Failure(
            description=f"{path}: a second stock source needs a declaration naming it: add "
            f"rasters.second_soc_stock_raster with a label to the raster_declaration file ({inputs.raster_declaration})"
        )
    bands, lineage = yield from _checked_rasters(
        "second_soc_stock_grid", {"second_soc_stock_raster": path}, inputs.raster_declaration
    )
    lineage.pop("declared")
    lineage["parameters"]["second_soc_stock_source"] = declaration.label
    band = bands["second_soc_stock_raster"]
    aligned, alignment = _onto(band, grid, Resampling.average, np.nan, "float32")
    units = f"t C/ha (0-30 cm), source: {declaration.label}"
    yield _output(Layer(aligned.astype("float32"), grid, units, alignment, lineage))


@dg.asset(
    group_name="global_grids", code_version="3", check_specs=contract_specs("cropland_grid"), deps=["cropland_raster"]
)
def cropland_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer):
    """HYDE 3.2 cropland area 2016 (km2 per cell) on the common grid (whole-row shift, see module doc); total
    area is preserved."""
    observe_files(context, inputs, "cropland_raster")
    bands, lineage = yield from _checked_rasters(
        "cropland_grid", {"cropland_raster": inputs.cropland_raster}, inputs.raster_declaration
    )
    lineage.pop("declared")
    band = bands["cropland_raster"]
    aligned, alignment = _onto(band, soc_stock_grid.grid, Resampling.sum, np.nan, "float32")
    aligned = np.where(np.isnan(aligned), 0.0, aligned).astype("float32")
    alignment["source_total_km2"] = float(band.data[band.data != band.nodata].astype("float64").sum())
    alignment["aligned_total_km2"] = float(aligned.astype("float64").sum())
    yield _output(Layer(aligned, soc_stock_grid.grid, "km2 cropland per cell", alignment, lineage))


@dg.asset(
    group_name="global_grids",
    code_version="2",
    check_specs=contract_specs("climate_zone_grid"),
    deps=["climate_zones_raster"],
)
def climate_zone_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer):
    """IPCC 2019 climate zone code per cell (0 = none), nearest-neighbour onto the common grid."""
    observe_files(context, inputs, "climate_zones_raster")
    observe_legend(context)
    bands, lineage = yield from _checked_rasters(
        "climate_zone_grid", {"climate_zones_raster": inputs.climate_zones_raster}, inputs.raster_declaration
    )
    lineage.pop("declared")
    band = bands["climate_zones_raster"]
    aligned, alignment = _onto(band, soc_stock_grid.grid, Resampling.nearest, band.nodata, "int16")
    yield _output(Layer(aligned, soc_stock_grid.grid, "IPCC 2019 climate zone code", alignment, lineage))


@dg.asset(group_name="global_grids", code_version="2")
def country_grid(countries: pd.DataFrame, soc_stock_grid: Layer, cropland_grid: Layer) -> dg.Output:
    """Row index into `countries` of the polygon containing each cell centre; land cells (SOC stock or cropland)
    outside every polygon take the nearest within COUNTRY_NEAREST_MAX_DEG; -1 = none."""
    grid = common_grid(soc_stock_grid, cropland_grid)
    geometries = shapely.from_wkb(countries["geometry_wkb"])
    land = ~np.isnan(soc_stock_grid.data[0]) | (cropland_grid.data > 0)
    inside = rasterize_regions(geometries, grid)
    regions, nearest = fill_nearest(inside, land, geometries, grid, COUNTRY_NEAREST_MAX_DEG)
    area_ha = np.broadcast_to(cell_area_ha(grid)[:, None], grid.shape)
    unassigned = land & (regions < 0)
    alignment = {
        "method": "rasterio.features.rasterize, cell centre inside polygon; else nearest polygon (land cells)",
        "nearest_max_distance_deg": COUNTRY_NEAREST_MAX_DEG,
        "land_cells_by_nearest": int(nearest.sum()),
        "land_area_by_nearest_mha": float(area_ha[nearest].sum() / HA_PER_MHA),
        "land_cells_unassigned": int(unassigned.sum()),
        "land_area_unassigned_mha": float(area_ha[unassigned].sum() / HA_PER_MHA),
    }
    lineage = countries.attrs.get("provenance", {})
    return _output(Layer(regions, grid, "row index into countries", alignment, lineage))


@dg.asset(group_name="global_grids", code_version="1", deps=["pasture_raster"])
def converted_land_grid(
    context: dg.AssetExecutionContext, inputs: InputDatasets, cropland_grid: Layer, soc_stock_grid: Layer
) -> dg.Output:
    """Converted land (km2 per cell) for the restoration scenarios: HYDE 3.2 cropland, plus the pasture raster
    when `inputs.pasture_raster` is set (summed onto the common grid), capped at the cell area."""
    observe_files(context, inputs, "pasture_raster")
    grid = common_grid(cropland_grid, soc_stock_grid)
    total = cropland_grid.data.astype("float64")
    components = {"cropland": "cropland_grid"}
    sources = [cropland_grid.provenance]
    if inputs.pasture_raster:
        raw = read_raster(inputs.pasture_raster)
        if (raw.scale, raw.offset) != (1.0, 0.0):
            raise InputError(f"{raw.path}: scale/offset {raw.scale}/{raw.offset} is not supported for pasture")
        band = RasterBand(_as_float(raw), raw.transform, raw.crs, np.nan, raw.path)
        pasture, alignment = _onto(band, grid, Resampling.sum, np.nan, "float32")
        total = total + np.nan_to_num(pasture, nan=0.0)
        components["pasture"] = alignment
        sources.append({"inputs": provenance.file_input("pasture_raster", inputs.pasture_raster)})
    cell_km2 = cell_area_ha(grid)[:, None] / HA_PER_KM2
    return _output(
        Layer(
            data=np.minimum(total, cell_km2).astype("float32"),
            grid=grid,
            units="km2 converted land per cell",
            alignment={"components": components, "capped_at": "cell area"},
            provenance=provenance.combine(*sources),
        )
    )
