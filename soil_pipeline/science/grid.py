"""Regular lon/lat grids: cell areas on the sphere and alignment of other rasters onto a target grid."""

from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject

from soil_pipeline.science.units import HA_PER_KM2

# Authalic radius of the WGS84 ellipsoid: a sphere of this radius has the ellipsoid's total surface area.
AUTHALIC_EARTH_RADIUS_KM = 6371.0072


@dataclass(frozen=True)
class GridSpec:
    """A north-up regular grid in a geographic CRS."""

    width: int
    height: int
    transform: Affine
    crs: str = "EPSG:4326"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def describe(self) -> dict:
        return {
            "crs": self.crs,
            "width": self.width,
            "height": self.height,
            "resolution_deg": abs(self.transform.a),
            "west": self.transform.c,
            "north": self.transform.f,
        }


@dataclass
class Layer:
    """One raster band on a GridSpec, with nodata already turned into NaN (float) or a fill value (int)."""

    data: np.ndarray
    grid: GridSpec
    units: str
    alignment: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def band(self, index: int) -> np.ndarray:
        """Band `index` (1-based) of a multi-band layer, or the layer's one band."""
        return self.data[index - 1] if self.data.ndim == 3 else self.data


def cell_area_ha(grid: GridSpec) -> np.ndarray:
    """Area (ha) of each row's cells on the authalic sphere: R^2 * dlon * (sin(lat_north) - sin(lat_south))."""
    t = grid.transform
    if t.b != 0 or t.d != 0 or t.e >= 0:
        raise ValueError(f"cell areas need a north-up grid without rotation, got transform {tuple(t)[:6]}")
    return band_areas_ha(np.radians(t.f + t.e * np.arange(grid.height + 1)), abs(t.a))


def band_areas_ha(lat_edges_rad: np.ndarray, dlon_deg: float) -> np.ndarray:
    """Area (ha) of one cell `dlon_deg` wide in each latitude band between consecutive `lat_edges_rad`."""
    dlon = np.radians(dlon_deg)
    area_km2 = AUTHALIC_EARTH_RADIUS_KM**2 * dlon * np.abs(np.sin(lat_edges_rad[:-1]) - np.sin(lat_edges_rad[1:]))
    return area_km2 * HA_PER_KM2


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


def lattice_offset(grid: GridSpec, target: GridSpec, tol: float = 1e-6) -> tuple[float, float] | None:
    """Position of `grid`'s top-left corner on `target`'s lattice, in target cells (columns, rows), when both are
    north-up, unrotated, in the same CRS and of the same resolution (to `tol` of a cell); None otherwise."""
    s, t = grid.transform, target.transform
    if s.b or s.d or t.b or t.d or s.e >= 0 or t.e >= 0:
        return None
    if CRS.from_user_input(grid.crs) != CRS.from_user_input(target.crs):
        return None
    if abs(s.a / t.a - 1) > tol or abs(s.e / t.e - 1) > tol:
        return None
    return (s.c - t.c) / t.a, (s.f - t.f) / t.e


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


def same_grid(grid: GridSpec, target: GridSpec, tol: float = 1e-9) -> bool:
    """Same size, same CRS (however spelled) and transforms equal to within `tol` (CRS units, degrees here)."""
    return (
        (grid.width, grid.height) == (target.width, target.height)
        and CRS.from_user_input(grid.crs) == CRS.from_user_input(target.crs)
        and grid.transform.almost_equals(target.transform, precision=tol)
    )


def common_grid(*layers: Layer) -> GridSpec:
    """The grid all `layers` share (that of the first); ValueError when one is on another grid."""
    grid = layers[0].grid
    for layer in layers[1:]:
        if not same_grid(layer.grid, grid):
            raise ValueError(f"layer grids differ: {layer.grid.describe()} vs {grid.describe()}")
    return grid
