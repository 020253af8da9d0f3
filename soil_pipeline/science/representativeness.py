"""How representative field sites are of a region: the share of its mapped area (cells with a 2010 stock) whose
centre lies within a stated great-circle distance of a site. Computed window by window over the common grid by the
streaming engine (`NearSites` is the per-window quantity), so memory stays bounded by the window and the sites.

Distances are chords between unit vectors on the sphere (a chord is monotone in the great-circle distance), looked
up in a k-d tree of the sites (scipy's cKDTree), one tree per set of sites (all drops, each drop).
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from soil_pipeline.science.grid import AUTHALIC_EARTH_RADIUS_KM, GridSpec

MAPPED_AREA = "mapped_area_ha"
NEAR_AREA = "near_site_area_ha"


def unit_vectors(longitude_deg, latitude_deg) -> np.ndarray:
    """(n, 3) points on the unit sphere."""
    lon, lat = np.radians(np.asarray(longitude_deg, dtype=float)), np.radians(np.asarray(latitude_deg, dtype=float))
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def chord(distance_km: float) -> float:
    """The chord on the unit sphere of a great-circle distance (km) on the authalic sphere."""
    return 2.0 * np.sin(distance_km / AUTHALIC_EARTH_RADIUS_KM / 2.0)


def near_name(scope: str) -> str:
    """The summed quantity (ha) of mapped area within the distance of a site of `scope`."""
    return f"{NEAR_AREA}:{scope}"


def site_trees(sites_by_scope: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, cKDTree]:
    """A k-d tree of each scope's site (longitude, latitude) arrays; scopes of the same sites in the same order (e.g.
    all drops and the only drop) share one tree, which `NearSites` queries once."""
    trees, built = {}, {}
    for scope, (lon, lat) in sites_by_scope.items():
        points = unit_vectors(lon, lat)
        key = points.tobytes()
        if key not in built:
            built[key] = cKDTree(points)
        trees[scope] = built[key]
    return trees


def cell_centres(grid: GridSpec, row_off: int, col_off: int, rows: np.ndarray, cols: np.ndarray):
    """(longitude, latitude) of the centres of cells (`rows`, `cols`) of a window at (`row_off`, `col_off`)."""
    t = grid.transform
    return t.c + (col_off + cols + 0.5) * t.a, t.f + (row_off + rows + 0.5) * t.e


# Cells a side of the blocks of a window checked against the sites before their cells are: a block whose cells all lie
# farther than the distance from every site (by the bound of `_blocks_near_sites`) skips its cells' look-ups.
BLOCK_CELLS = 16
# Chord (unit sphere, about 6 um on the Earth) added to that bound, far above the rounding of any distance in it.
BOUND_SLACK = 1e-9


@dataclass(frozen=True)
class NearSites:
    """Per-window quantities of the streaming engine: `MAPPED_AREA` (ha of cells whose `stock` layer holds a value)
    and, for each scope, the part of it within `distance_km` of one of the scope's sites (`near_name`)."""

    trees: dict[str, cKDTree]
    distance_km: float
    stock: str = "soc_stock"

    def __call__(self, layers: dict[str, np.ndarray], row_area_ha: np.ndarray, grid: GridSpec, window):
        stock = layers[self.stock]
        area = np.broadcast_to(row_area_ha[:, None], stock.shape)
        mapped = np.isfinite(stock)
        out = {MAPPED_AREA: np.where(mapped, area, 0.0)}
        reach = chord(self.distance_km)
        offset = int(window.row_off), int(window.col_off)
        by_tree = {}
        for scope, tree in self.trees.items():
            if id(tree) not in by_tree:
                near = np.zeros(stock.shape, dtype=bool)
                if tree.n:
                    rows, cols = np.nonzero(mapped & _blocks_near_sites(tree, reach, grid, *offset, stock.shape))
                    if len(rows):
                        points = unit_vectors(*cell_centres(grid, *offset, rows, cols))
                        distance, _ = tree.query(points, distance_upper_bound=reach)
                        near[rows, cols] = np.isfinite(distance)
                by_tree[id(tree)] = np.where(near, area, 0.0)
            out[near_name(scope)] = by_tree[id(tree)]
        return out


def _blocks_near_sites(tree: cKDTree, reach: float, grid: GridSpec, row_off: int, col_off: int, shape) -> np.ndarray:
    """Per cell of a window: False where no site can lie within `reach` (chord) of the cell's centre, decided per block
    of `BLOCK_CELLS` a side. A block's cell centres span a longitude-latitude rectangle; for a rectangle at most 180
    degrees wide, the chord from its middle point to any point of it is largest at a corner (for a fixed latitude the
    chord grows with the longitude difference; along a meridian the dot product with the middle is A cos(lat - phi),
    which has no minimum inside the latitudes of the rectangle). So a block with no site within the largest corner
    chord + `reach` (+ `BOUND_SLACK`) of its middle has none within `reach` of any of its cells."""
    height, width = shape
    if BLOCK_CELLS * abs(grid.transform.a) > 180.0:
        return np.ones(shape, dtype=bool)
    first_row, first_col = np.arange(0, height, BLOCK_CELLS), np.arange(0, width, BLOCK_CELLS)
    last_row, last_col = np.minimum(first_row + BLOCK_CELLS, height) - 1, np.minimum(first_col + BLOCK_CELLS, width) - 1
    lon_first, lat_first = cell_centres(grid, row_off, col_off, first_row, first_col)
    lon_last, lat_last = cell_centres(grid, row_off, col_off, last_row, last_col)
    lon = np.stack([lon_first, lon_last, 0.5 * (lon_first + lon_last)])[:, None, None, :]
    lat = np.stack([lat_first, lat_last, 0.5 * (lat_first + lat_last)])[None, :, :, None]
    lon, lat = np.broadcast_arrays(lon, lat)  # (3 longitudes, 3 latitudes, block rows, block columns)
    points = unit_vectors(lon.ravel(), lat.ravel()).reshape(*lon.shape, 3)
    middle = points[2, 2]
    corners = points[:2, :2].reshape(4, *middle.shape)
    radius = np.sqrt(((corners - middle) ** 2).sum(axis=-1)).max(axis=0)
    sites = tree.query_ball_point(middle.reshape(-1, 3), radius.ravel() + reach + BOUND_SLACK, return_length=True)
    near = (sites > 0).reshape(radius.shape)
    return np.repeat(np.repeat(near, BLOCK_CELLS, axis=0), BLOCK_CELLS, axis=1)[:height, :width]
