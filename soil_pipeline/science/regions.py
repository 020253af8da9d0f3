"""Regions on the grid and at points: rasterised polygons and point-in-polygon assignment."""

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy.ndimage import label

from soil_pipeline.science.grid import GridSpec

NO_REGION = -1
# Points and land cells just outside every polygon (coasts, small islands, generalised borders) take the nearest
# region within this distance (deg); farther ones stay unassigned (the published UNASSIGNED row).
COUNTRY_NEAREST_MAX_DEG = 0.5
# Points are first looked up on a grid of LOOKUP_CELL_DEG cells, made tile by tile (LOOKUP_TILE_CELLS cells a side)
# where points fall (`PointAssigner._lookup`).
LOOKUP_CELL_DEG = 0.05
LOOKUP_TILE_CELLS = 100
LOOKUP_MIN_POINTS = 1000


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

    Returns (index, method) where method is "within", "nearest" or "none" (index NO_REGION). Every point is tested:
    for one batch (e.g. the cells `fill_nearest` fills, all outside the polygons) a lookup grid would not pay.
    """
    return PointAssigner(geometries, remembered_points=0, lookup=False)(lon, lat, max_distance_deg)


class PointAssigner:
    """`assign_points` against one set of polygons, prepared once (the polygons, their tree and, when a point
    falls outside all of them, their boundary pieces) for every batch of points that follows.

    With `lookup`, points deep inside one polygon are placed by a lookup grid, made where many points fall
    (`_lookup`); the others are tested (`_test`). A point's assignment depends on its coordinates alone, so the
    assignments made are remembered (up to `remembered_points` points, per distance) and a point asked about again
    is not placed again: the ingest places its valid sites after the region rule has placed every site."""

    METHODS = np.array(["none", "within", "nearest"], dtype=object)

    def __init__(self, geometries, remembered_points: int = 1 << 18, lookup: bool = True):
        self.geometries = np.asarray(list(geometries), dtype=object)
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)
        self._pieces = None
        self.remembered_points, self.lookup = remembered_points, lookup
        # by distance: (points as complex lon + i lat, sorted; their polygon index; their method's code in METHODS)
        self._known: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._tiles: dict[int, np.ndarray] = {}  # the lookup grid, by tile (`_tile`)

    def __call__(self, lon, lat, max_distance_deg: float) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        keys = np.empty(len(x), dtype=complex)
        keys.real, keys.imag = x, y
        index = np.full(len(keys), NO_REGION, dtype="int64")
        method = np.zeros(len(keys), dtype="int8")
        known, found = self._recall(keys, max_distance_deg)
        index[known], method[known] = found
        new = np.flatnonzero(~known)
        if len(new):
            index[new], method[new] = self._assign(x[new], y[new], max_distance_deg)
            self._remember(keys[new], index[new], method[new], max_distance_deg)
        return index, self.METHODS[method]

    def _recall(self, keys: np.ndarray, max_distance_deg: float):
        """Which points were assigned before (at this distance), and their (index, method code)."""
        if not self.remembered_points or max_distance_deg not in self._known or not len(keys):
            return np.zeros(len(keys), dtype=bool), (np.zeros(0, "int64"), np.zeros(0, "int8"))
        points, index, method = self._known[max_distance_deg]
        at = np.minimum(np.searchsorted(points, keys), len(points) - 1)
        known = points[at] == keys  # NaN is never equal: a point without coordinates is assigned afresh
        return known, (index[at[known]], method[at[known]])

    def _remember(self, keys, index, method, max_distance_deg: float) -> None:
        if not self.remembered_points:
            return
        held = self._known.get(max_distance_deg, (np.zeros(0, complex), np.zeros(0, "int64"), np.zeros(0, "int8")))
        finite = np.isfinite(keys)
        if len(held[0]) + int(finite.sum()) > self.remembered_points:
            return
        points = np.concatenate([held[0], keys[finite]])
        points, first = np.unique(points, return_index=True)
        index = np.concatenate([held[1], index[finite]])[first]
        method = np.concatenate([held[2], method[finite]])[first]
        self._known[max_distance_deg] = (points, index, method)

    def _assign(self, x: np.ndarray, y: np.ndarray, max_distance_deg: float) -> tuple[np.ndarray, np.ndarray]:
        index = self._lookup(x, y) if self.lookup else np.full(len(x), NO_REGION, dtype="int64")
        method = (index != NO_REGION).astype("int8")
        tested = np.flatnonzero(index == NO_REGION)
        if len(tested):
            index[tested], method[tested] = self._test(x[tested], y[tested], max_distance_deg)
        return index, method

    def _lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The polygon each point lies deep inside by the lookup grid (`_tile`), NO_REGION for the points to test.
        A tile is made for LOOKUP_MIN_POINTS points or more (testing fewer costs less)."""
        index = np.full(len(x), NO_REGION, dtype="int64")
        cols, rows = np.floor((x + 180.0) / LOOKUP_CELL_DEG), np.floor((90.0 - y) / LOOKUP_CELL_DEG)
        n_cols, n_rows = round(360 / LOOKUP_CELL_DEG), round(180 / LOOKUP_CELL_DEG)
        on_grid = np.flatnonzero((cols >= 0) & (cols < n_cols) & (rows >= 0) & (rows < n_rows))  # NaN is not
        rows, cols = rows[on_grid].astype("int64"), cols[on_grid].astype("int64")
        per_row = n_cols // LOOKUP_TILE_CELLS
        tiles = (rows // LOOKUP_TILE_CELLS) * per_row + cols // LOOKUP_TILE_CELLS
        order = np.argsort(tiles, kind="stable")
        tiles, starts = np.unique(tiles[order], return_index=True)
        for tile, part in zip(tiles, np.split(order, starts[1:]), strict=True):
            if int(tile) in self._tiles or len(part) >= LOOKUP_MIN_POINTS:
                grid = self._tile(*divmod(int(tile), per_row))
                index[on_grid[part]] = grid[rows[part] % LOOKUP_TILE_CELLS, cols[part] % LOOKUP_TILE_CELLS]
        return index

    def _tile(self, row: int, col: int) -> np.ndarray:
        """The lookup grid of one tile: for each cell that no polygon boundary touches, nor any of its eight
        neighbours', the index of the one polygon holding it, else NO_REGION.

        Such cells form regions free of boundaries, each wholly inside or outside each polygon, so one cell centre
        per region is tested (as points are); a point in such a cell (or in a neighbour, as rounding may place it)
        is within that polygon alone: the polygon the test gives it, whatever the tree's order."""
        key = row * (round(360 / LOOKUP_CELL_DEG) // LOOKUP_TILE_CELLS) + col
        if key in self._tiles:
            return self._tiles[key]
        res, size = LOOKUP_CELL_DEG, LOOKUP_TILE_CELLS + 2  # one cell of margin around the tile
        west = -180.0 + col * LOOKUP_TILE_CELLS * res - res
        north = 90.0 - row * LOOKUP_TILE_CELLS * res + res
        transform = Affine(res, 0.0, west, 0.0, -res, north)
        pieces, _ = self._boundary_pieces()
        near = pieces.query(shapely.box(west - res, north - (size + 1) * res, west + (size + 1) * res, north + res))
        lines = [(line, 1) for line in pieces.geometries[np.sort(near)]]
        touched = np.zeros((size, size), dtype=bool)
        if lines:
            touched = rasterize(lines, out_shape=touched.shape, transform=transform, all_touched=True, dtype="uint8")
            touched = touched.astype(bool)
        rows_near = touched.copy()
        rows_near[1:] |= touched[:-1]
        rows_near[:-1] |= touched[1:]
        near = rows_near.copy()
        near[:, 1:] |= rows_near[:, :-1]
        near[:, :-1] |= rows_near[:, 1:]
        regions, n_regions = label(~near)  # 4-connected regions of cells free of boundaries
        grid = np.full(regions.shape, NO_REGION, dtype="int64")
        if n_regions:
            labels, first = np.unique(regions, return_index=True)
            labels, first = labels[labels > 0], first[labels > 0]  # a cell of each region (0: near a boundary)
            r, c = np.unravel_index(first, regions.shape)
            x, y = west + (c + 0.5) * res, north - (r + 0.5) * res
            point_idx, geom_idx = self.tree.query(shapely.points(x, y))
            inside = shapely.contains_xy(self.geometries[geom_idx], x[point_idx], y[point_idx])
            holders = np.bincount(point_idx[inside], minlength=len(first))
            holder = np.full(len(first), NO_REGION, dtype="int64")
            holder[point_idx[inside]] = geom_idx[inside]
            by_region = np.full(n_regions + 1, NO_REGION, dtype="int64")
            by_region[labels] = np.where(holders == 1, holder, NO_REGION)
            grid = by_region[regions]
        grid = grid[1:-1, 1:-1].astype(np.int16 if len(self.geometries) < 2**15 else np.int32)
        # a tile of one value (open sea, the middle of a large country) is held as that value
        self._tiles[key] = np.broadcast_to(grid[0, 0], grid.shape) if (grid == grid[0, 0]).all() else grid
        return self._tiles[key]

    def _boundary_pieces(self) -> tuple[shapely.STRtree, np.ndarray]:
        """The tree of the polygons' boundary pieces (`boundary_pieces`) and the polygon of each, made once."""
        if self._pieces is None:
            pieces, owner = boundary_pieces(self.geometries)
            self._pieces = shapely.STRtree(pieces), owner
        return self._pieces

    def _test(self, x: np.ndarray, y: np.ndarray, max_distance_deg: float) -> tuple[np.ndarray, np.ndarray]:
        points = shapely.points(x, y)
        index = np.full(len(points), NO_REGION, dtype="int64")
        method = np.zeros(len(points), dtype="int8")
        # Candidates by bounding box, then "within" as the prepared polygon containing the point (much faster than
        # the tree's own predicate, which tests each point against an unprepared polygon); the order is the tree's.
        point_idx, geom_idx = self.tree.query(points)
        inside = shapely.contains_xy(self.geometries[geom_idx], x[point_idx], y[point_idx])
        point_idx, geom_idx = point_idx[inside], geom_idx[inside]
        first = np.unique(point_idx, return_index=True)[1]
        index[point_idx[first]] = geom_idx[first]
        method[point_idx[first]] = 1
        unassigned = np.flatnonzero(index == NO_REGION)
        if len(unassigned):
            near_point, near_geom = nearest_piece_owner(points[unassigned], *self._boundary_pieces(), max_distance_deg)
            index[unassigned[near_point]] = near_geom
            method[unassigned[near_point]] = 2
        return index, method


# Boundaries are cut into pieces of at most this many vertices: the distance to a polygon from a point outside it
# is the distance to the nearest piece of its boundary, and a piece is cheap to measure where a whole coastline
# (Russia's has ~10^5 vertices) is not.
PIECE_VERTICES = 64


def boundary_pieces(geometries, max_vertices: int = PIECE_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """(line pieces covering every polygon's boundary, index of the polygon of each piece)."""
    parts, owner = shapely.get_parts(shapely.boundary(np.asarray(list(geometries), dtype=object)), return_index=True)
    coords, part_of = shapely.get_coordinates(parts, return_index=True)
    starts = np.flatnonzero(np.r_[True, part_of[1:] != part_of[:-1]])
    ends = np.r_[starts[1:], len(part_of)]
    vertex, piece, piece_owner = [], [], []
    step = max_vertices - 1
    n_pieces = 0
    for start, end in zip(starts, ends, strict=True):
        for first in range(start, end - 1, step):
            last = min(first + step, end - 1)
            vertex.append(np.arange(first, last + 1))
            piece.append(np.full(last - first + 1, n_pieces))
            piece_owner.append(owner[part_of[start]])
            n_pieces += 1
    lines = shapely.linestrings(coords[np.concatenate(vertex)], indices=np.concatenate(piece))
    return lines, np.asarray(piece_owner, dtype="int64")


def nearest_piece_owner(points, pieces: shapely.STRtree, owner: np.ndarray, max_distance: float):
    """(positions in `points`, polygon index) of the points that have a polygon boundary within `max_distance`:
    the nearest, the lowest index among equally near ones; `pieces` is the tree of the boundary pieces
    (`boundary_pieces`), `owner` the polygon of each piece."""
    near_point, near_piece = pieces.query_nearest(points, max_distance=max_distance, all_matches=True)
    if not len(near_point):
        return near_point, near_piece
    polygon = owner[near_piece]
    order = np.lexsort((polygon, near_point))
    near_point, polygon = near_point[order], polygon[order]
    first = np.r_[True, near_point[1:] != near_point[:-1]]
    return near_point[first], polygon[first]


def fill_nearest(
    regions: np.ndarray, cells: np.ndarray, geometries, grid: GridSpec, max_distance_deg: float, origin=(0, 0)
):
    """`regions` (from `rasterize_regions`) with each of `cells` (boolean mask) whose centre lies outside every
    polygon given the index of the nearest polygon within `max_distance_deg` (planar lon/lat distance, as for
    points); cells farther from every polygon stay NO_REGION. The arrays may be a window of `grid` whose first cell
    is `origin` (row, column). Returns (filled copy, mask of the cells filled)."""
    rows, cols = np.nonzero(cells & (regions == NO_REGION))
    lon, lat = grid.transform @ (cols + origin[1] + 0.5, rows + origin[0] + 0.5)
    filled = regions.copy()
    nearest = np.zeros(regions.shape, dtype=bool)
    if len(rows):
        index, _ = assign_points(lon, lat, geometries, max_distance_deg)
        found = index != NO_REGION
        filled[rows[found], cols[found]] = index[found]
        nearest[rows[found], cols[found]] = True
    return filled, nearest


def fill_nearest_in_window(
    regions: np.ndarray, cells: np.ndarray, rasterizer: "WindowRasterizer", grid: GridSpec, window, max_distance_deg
):
    """`fill_nearest` on one window (rasterio `Window`) of `grid`, equal to the whole grid's: cell centres are taken
    from the grid's own transform, and only the polygons' boundaries within reach are measured (each polygon is cut
    to the window plus `max_distance_deg` and a cell, which leaves every distance within reach as it is)."""
    if not (cells & (regions == NO_REGION)).any():
        return regions, np.zeros(regions.shape, dtype=bool)
    t = grid.transform
    r0, c0, rows, cols = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    margin = max_distance_deg + 2 * abs(t.a)
    west, north = t.c + t.a * c0 - margin, t.f + t.e * r0 + margin
    east, south = t.c + t.a * (c0 + cols) + margin, t.f + t.e * (r0 + rows) - margin
    tree = rasterizer.tree()
    hits = np.sort(tree.query(shapely.box(west, south, east, north)))
    hits = hits[[rasterizer.geometries[i] is not None for i in hits]] if len(hits) else hits
    near = shapely.clip_by_rect([rasterizer.geometries[i] for i in hits], west, south, east, north)
    reached = ~shapely.is_empty(near) if len(hits) else np.zeros(0, dtype=bool)
    hits, near = hits[reached], near[reached]
    if not len(hits):
        return regions, np.zeros(regions.shape, dtype=bool)
    filled, nearest = fill_nearest(regions, cells, near, grid, max_distance_deg, origin=(r0, c0))
    filled[nearest] = hits[filled[nearest]]
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


CLIP_MARGIN_CELLS = 2


class WindowRasterizer:
    """Polygons rasterized one grid window at a time (pixel-centre rule, as `rasterize_regions`): only the
    polygons whose bounds meet the window are burnt. Picklable (polygons travel as WKB), for Dask workers."""

    rule = "rasterio.features.rasterize, all_touched=False: a cell takes the polygon containing its centre"

    def __init__(self, geometries):
        self.wkb = [shapely.to_wkb(g) if g is not None else None for g in geometries]
        self._tree = None

    def __getstate__(self):
        return {"wkb": self.wkb}

    def __setstate__(self, state):
        self.wkb, self._tree = state["wkb"], None

    def tree(self) -> shapely.STRtree:
        """The polygons' STRtree (built on first use, also after unpickling; `geometries` then holds them)."""
        if self._tree is None:
            self.geometries = [shapely.from_wkb(w) if w is not None else None for w in self.wkb]
            self._tree = shapely.STRtree([g if g is not None else shapely.Point() for g in self.geometries])
        return self._tree

    def __call__(self, window_grid: GridSpec) -> np.ndarray:
        tree = self.tree()
        t = window_grid.transform
        west, south = t.c, t.f + t.e * window_grid.height
        east, north = t.c + t.a * window_grid.width, t.f
        hits = np.sort(tree.query(shapely.box(west, south, east, north)))
        # Each polygon cut to the window plus a margin of CLIP_MARGIN_CELLS: the same cell centres inside it, and
        # only the window's share of the edges to scan (a whole coastline per window row made large countries slow).
        margin_x, margin_y = CLIP_MARGIN_CELLS * abs(t.a), CLIP_MARGIN_CELLS * abs(t.e)
        clipped = shapely.clip_by_rect(
            [self.geometries[i] for i in hits], west - margin_x, south - margin_y, east + margin_x, north + margin_y
        )
        shapes = [(geom, int(i)) for geom, i in zip(clipped, hits, strict=True) if not geom.is_empty]
        if not shapes:
            return np.full(window_grid.shape, NO_REGION, dtype="int32")
        return rasterize(
            shapes, out_shape=window_grid.shape, transform=t, fill=NO_REGION, dtype="int32", all_touched=False
        )
