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
        rows, cols = np.nonzero(mapped)
        lon, lat = cell_centres(grid, int(window.row_off), int(window.col_off), rows, cols)
        points = unit_vectors(lon, lat)
        reach = chord(self.distance_km)
        by_tree = {}
        for scope, tree in self.trees.items():
            if id(tree) not in by_tree:
                near = np.zeros(stock.shape, dtype=bool)
                if len(points) and tree.n:
                    distance, _ = tree.query(points, distance_upper_bound=reach)
                    near[rows, cols] = np.isfinite(distance)
                by_tree[id(tree)] = np.where(near, area, 0.0)
            out[near_name(scope)] = by_tree[id(tree)]
        return out
