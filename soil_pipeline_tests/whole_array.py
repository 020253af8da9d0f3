"""Whole-array reference implementations the streaming code is checked against: a raster band read whole, and
alignment of a whole array onto a grid (GDAL reprojection, or a whole-cell shift)."""

from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject

from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.science.grid import GridSpec


@dataclass
class RasterBand:
    data: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None
    path: str
    band_count: int = 1
    scale: float = 1.0
    offset: float = 0.0


def read_raster(path: str) -> RasterBand:
    """Band 1 of any GDAL-readable raster (path or URL) with the grid facts its contract is checked against."""
    try:
        with rasterio.open(path) as src:
            return RasterBand(
                data=src.read(1),
                transform=src.transform,
                crs=src.crs.to_string() if src.crs else "",
                nodata=src.nodata,
                path=str(path),
                band_count=src.count,
                scale=src.scales[0],
                offset=src.offsets[0],
            )
    except rasterio.errors.RasterioError as error:
        raise InputError(path, f"unreadable raster ({error})", Remedy.UNREADABLE) from error


def align(
    source: np.ndarray,
    source_transform: Affine,
    source_crs: str,
    source_nodata,
    target: GridSpec,
    resampling: Resampling,
    target_nodata,
    dtype=None,
) -> np.ndarray:
    """Reproject `source` onto `target` with GDAL; cells without source coverage become `target_nodata`."""
    out = np.full(target.shape, target_nodata, dtype=dtype or source.dtype)
    reproject(
        source=source,
        destination=out,
        src_transform=source_transform,
        src_crs=CRS.from_user_input(source_crs),
        src_nodata=source_nodata,
        dst_transform=target.transform,
        dst_crs=CRS.from_user_input(target.crs),
        dst_nodata=target_nodata,
        resampling=resampling,
    )
    return out


def shift_onto(
    source: np.ndarray, source_nodata, offset: tuple[float, float], target: GridSpec, target_nodata, dtype=None
):
    """Embed `source` in `target` by whole columns and rows, each source cell landing on the target cell nearest
    its centre (offset rounded half up); no value is split or resampled, `source_nodata` becomes `target_nodata`.
    Returns (data, record): the record gives
    the offset in cells and the applied shift. Source cells beyond the target are dropped (counted in the record)."""
    col_shift, row_shift = (int(np.floor(o + 0.5)) for o in offset)
    out = np.full(target.shape, target_nodata, dtype=dtype or source.dtype)
    rows, cols = source.shape
    r0, c0 = max(row_shift, 0), max(col_shift, 0)
    r1, c1 = min(row_shift + rows, target.height), min(col_shift + cols, target.width)
    if r1 > r0 and c1 > c0:
        window = source[r0 - row_shift : r1 - row_shift, c0 - col_shift : c1 - col_shift]
        out[r0:r1, c0:c1] = window
        if source_nodata is not None:
            out[r0:r1, c0:c1][window == source_nodata] = target_nodata
    record = {
        "method": "whole-cell shift (same resolution, origin off the target lattice)",
        "offset_cells": {"columns": float(offset[0]), "rows": float(offset[1])},
        "shift_cells": {"columns": col_shift, "rows": row_shift},
        "source_cells_outside_target": int(rows * cols - max(r1 - r0, 0) * max(c1 - c0, 0)),
    }
    return out, record
