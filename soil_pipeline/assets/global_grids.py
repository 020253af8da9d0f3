"""Global gridded inputs on one common grid: the WHRC 5 arc-minute SOC stock grid (Sanderman et al. 2017).

Other rasters are aligned onto it explicitly with GDAL: nearest neighbour for categories (climate zones),
`sum` resampling for per-cell areas (cropland km2), so totals are preserved; the method is recorded in metadata.
"""

import dagster as dg
import numpy as np
import pandas as pd
import shapely
from rasterio.warp import Resampling

from soil_pipeline import provenance
from soil_pipeline.readers import InputError, RasterBand, read_raster
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science.grid import GridSpec, Layer, align, same_grid
from soil_pipeline.science.regions import rasterize_regions

# The IPCC zones GeoTIFF carries no nodata tag; code 0 means no data (ocean, Antarctica), per its SOURCE.md.
CLIMATE_ZONES_NODATA = 0


def _as_float(band: RasterBand) -> np.ndarray:
    data = band.data.astype("float32")
    if band.nodata is not None:
        data[band.data == band.nodata] = np.nan
    return data


def _grid_of(band: RasterBand) -> GridSpec:
    return GridSpec(width=band.data.shape[1], height=band.data.shape[0], transform=band.transform, crs=band.crs)


def _onto(band: RasterBand, target: GridSpec, resampling: Resampling, target_nodata, dtype) -> tuple[np.ndarray, dict]:
    shape = band.data.shape
    if same_grid(band.transform, shape[1], shape[0], band.crs, target):
        return band.data.astype(dtype), {"method": "none (already on the common grid)"}
    aligned = align(band.data, band.transform, band.crs, band.nodata, target, resampling, target_nodata, dtype)
    source = {"west": band.transform.c, "north": band.transform.f, "resolution_deg": abs(band.transform.a)}
    return aligned, {"method": f"rasterio.warp.reproject, Resampling.{resampling.name}", "source_grid": source}


def _layer_metadata(layer: Layer) -> dict:
    return {
        "units": layer.units,
        "grid": dg.MetadataValue.json(layer.grid.describe()),
        "alignment": dg.MetadataValue.json(layer.alignment),
    }


@dg.asset(group_name="global_grids", code_version="1")
def soc_stock_grid(context: dg.AssetExecutionContext, inputs: InputDatasets) -> Layer:
    """SOC stock 0-30 cm (t C/ha) for 2010 and for no land use, bands 0 and 1; defines the common grid."""
    current = read_raster(inputs.soc_stock_2010_raster)
    natural = read_raster(inputs.soc_stock_no_land_use_raster)
    grid = _grid_of(current)
    natural_data, alignment = _onto(natural, grid, Resampling.average, natural.nodata, natural.data.dtype)
    natural = RasterBand(natural_data, grid.transform, grid.crs, natural.nodata, natural.path)
    layer = Layer(
        data=np.stack([_as_float(current), _as_float(natural)]),
        grid=grid,
        units="t C/ha (0-30 cm); band 0 = 2010, band 1 = no land use",
        alignment={"no_land_use": alignment},
        provenance={
            "inputs": {
                **provenance.file_input("soc_stock_2010_raster", inputs.soc_stock_2010_raster),
                **provenance.file_input("soc_stock_no_land_use_raster", inputs.soc_stock_no_land_use_raster),
            }
        },
    )
    context.add_output_metadata(_layer_metadata(layer))
    return layer


@dg.asset(group_name="global_grids", code_version="1")
def cropland_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer) -> Layer:
    """HYDE 3.2 cropland area 2016 (km2 per cell) summed onto the common grid; total area is preserved."""
    band = read_raster(inputs.cropland_raster)
    aligned, alignment = _onto(band, soc_stock_grid.grid, Resampling.sum, np.nan, "float32")
    aligned = np.where(np.isnan(aligned), 0.0, aligned).astype("float32")
    alignment["source_total_km2"] = float(band.data[band.data != band.nodata].astype("float64").sum())
    alignment["aligned_total_km2"] = float(aligned.astype("float64").sum())
    layer = Layer(
        data=aligned,
        grid=soc_stock_grid.grid,
        units="km2 cropland per cell",
        alignment=alignment,
        provenance={"inputs": provenance.file_input("cropland_raster", inputs.cropland_raster)},
    )
    context.add_output_metadata(_layer_metadata(layer))
    return layer


@dg.asset(group_name="global_grids", code_version="1")
def climate_zone_grid(context: dg.AssetExecutionContext, inputs: InputDatasets, soc_stock_grid: Layer) -> Layer:
    """IPCC 2019 climate zone code per cell (0 = none), nearest-neighbour onto the common grid."""
    band = read_raster(inputs.climate_zones_raster, nodata_override=CLIMATE_ZONES_NODATA)
    aligned, alignment = _onto(band, soc_stock_grid.grid, Resampling.nearest, CLIMATE_ZONES_NODATA, "int16")
    layer = Layer(
        data=aligned,
        grid=soc_stock_grid.grid,
        units="IPCC 2019 climate zone code",
        alignment=alignment,
        provenance={"inputs": provenance.file_input("climate_zones_raster", inputs.climate_zones_raster)},
    )
    context.add_output_metadata(_layer_metadata(layer))
    return layer


@dg.asset(group_name="global_grids", code_version="1")
def country_grid(context: dg.AssetExecutionContext, countries: pd.DataFrame, soc_stock_grid: Layer) -> Layer:
    """Row index into `countries` of the polygon containing each cell centre (-1 = none)."""
    geometries = shapely.from_wkb(countries["geometry_wkb"])
    layer = Layer(
        data=rasterize_regions(geometries, soc_stock_grid.grid),
        grid=soc_stock_grid.grid,
        units="row index into countries",
        alignment={"method": "rasterio.features.rasterize, cell centre inside polygon"},
        provenance=countries.attrs.get("provenance", {}),
    )
    context.add_output_metadata(_layer_metadata(layer))
    return layer


def ensure_same_grid(*layers: Layer) -> GridSpec:
    grid = layers[0].grid
    for layer in layers[1:]:
        if layer.grid != grid:
            raise InputError(f"layer grids differ: {layer.grid.describe()} vs {grid.describe()}")
    return grid
