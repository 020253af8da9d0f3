"""Regular lon/lat grids: cell areas on the sphere and alignment of other rasters onto a target grid."""

import math
from dataclasses import dataclass, field

import numpy as np
import rasterio.windows
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

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

    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of a north-up grid."""
        t = self.transform
        south, north = sorted((t.f, t.f + t.e * self.height))
        return t.c, south, t.c + t.a * self.width, north

    def covers_globe(self) -> bool:
        """Whether the grid spans all longitudes and latitudes, to within one cell (WHRC's 5' grid stores its
        cell as 0.0833333 deg, so it spans 359.99986 deg)."""
        west, south, east, north = self.bounds()
        return east - west >= 360 - abs(self.transform.a) and north - south >= 180 - abs(self.transform.e)

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


def row_areas_ha(grid: GridSpec, window: Window) -> np.ndarray:
    """Cell area (ha) of each row of `window` on the authalic sphere, as a (rows, 1) column; the same values as
    the whole grid's rows (computed from the grid's own edges, not the window's)."""
    rows = np.arange(int(window.row_off), int(window.row_off + window.height) + 1)
    t = grid.transform
    lat_edges = np.radians(t.f + t.e * rows)
    return band_areas_ha(lat_edges, abs(t.a))[:, None]


def window_grid(grid: GridSpec, window: Window) -> GridSpec:
    """The grid of `window` of `grid`."""
    transform = rasterio.windows.transform(window, grid.transform)
    return GridSpec(width=int(window.width), height=int(window.height), transform=transform, crs=grid.crs)


# A map is drawn about this many blocks wide: the 10 x 5 in figure at 110 dpi shows about 1,100 pixels.
MAP_WIDTH_BLOCKS = 1080


def map_block(grid: GridSpec) -> int:
    """Cells per side of a map block: 4 on the 5' grid (a 1080-block-wide map), on a finer grid the power of two
    that keeps the map about as wide (64 at 1 km), so a block never straddles two of the engine's 512-cell-multiple
    windows and the map stays a few MB whatever the grid."""
    return int(min(512, max(4, 2 ** math.ceil(math.log2(grid.width / MAP_WIDTH_BLOCKS)))))


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Means over `factor` x `factor` blocks (a partial edge block is left out)."""
    rows, cols = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    blocks = values[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3))
