"""Regions on the grid and at points: rasterised polygons and point-in-polygon assignment."""

import numpy as np
import shapely
from rasterio.features import rasterize

from soil_pipeline.science.grid import GridSpec

NO_REGION = -1
# Points and land cells just outside every polygon (coasts, small islands, generalised borders) take the nearest
# region within this distance (deg); farther ones stay unassigned (the published UNASSIGNED row).
COUNTRY_NEAREST_MAX_DEG = 0.5


def rasterize_regions(geometries, grid: GridSpec) -> np.ndarray:
    """Index (0..n-1) of the polygon containing each cell centre, NO_REGION where none does."""
    shapes = ((geom, index) for index, geom in enumerate(geometries) if geom is not None and not geom.is_empty)
    return rasterize(
        shapes,
        out_shape=grid.shape,
        transform=grid.transform,
        fill=NO_REGION,
        dtype="int32",
        all_touched=False,
    )


def assign_points(lon, lat, geometries, max_distance_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of the polygon containing each point, else the nearest one within `max_distance_deg`.

    Returns (index, method) where method is "within", "nearest" or "none" (index NO_REGION).
    """
    points = shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    tree = shapely.STRtree(list(geometries))
    index = np.full(len(points), NO_REGION, dtype="int64")
    method = np.full(len(points), "none", dtype=object)
    point_idx, geom_idx = tree.query(points, predicate="within")
    first = np.unique(point_idx, return_index=True)[1]
    index[point_idx[first]] = geom_idx[first]
    method[point_idx[first]] = "within"
    unassigned = np.flatnonzero(index == NO_REGION)
    if len(unassigned):
        near_point, near_geom = tree.query_nearest(points[unassigned], max_distance=max_distance_deg, all_matches=False)
        index[unassigned[near_point]] = near_geom
        method[unassigned[near_point]] = "nearest"
    return index, method


def fill_nearest(regions: np.ndarray, cells: np.ndarray, geometries, grid: GridSpec, max_distance_deg: float):
    """`regions` (from `rasterize_regions`) with each of `cells` (boolean mask) whose centre lies outside every
    polygon given the index of the nearest polygon within `max_distance_deg` (planar lon/lat distance, as for
    points); cells farther from every polygon stay NO_REGION. Returns (filled copy, mask of the cells filled)."""
    rows, cols = np.nonzero(cells & (regions == NO_REGION))
    lon, lat = grid.transform @ (cols + 0.5, rows + 0.5)
    filled = regions.copy()
    nearest = np.zeros(regions.shape, dtype=bool)
    if len(rows):
        index, _ = assign_points(lon, lat, geometries, max_distance_deg)
        found = index != NO_REGION
        filled[rows[found], cols[found]] = index[found]
        nearest[rows[found], cols[found]] = True
    return filled, nearest


def group_membership(subregions, adm0_codes, groups: list[dict]) -> np.ndarray:
    """Index of the group each country belongs to (NO_REGION if none), a group listing Natural Earth
    `natural_earth_subregions` and/or `adm0_a3` codes. A country matched by two groups is an error."""
    subregions = np.asarray(subregions, dtype=object)
    codes = np.asarray(adm0_codes, dtype=object)
    index = np.full(len(codes), NO_REGION, dtype="int64")
    for number, group in enumerate(groups):
        in_subregion = np.isin(subregions, group.get("natural_earth_subregions", []))
        member = in_subregion | np.isin(codes, group.get("adm0_a3", []))
        clash = member & (index != NO_REGION)
        if clash.any():
            raise ValueError(f"countries {sorted(codes[clash])} fall in more than one group (second: {group['id']})")
        index[member] = number
    return index
