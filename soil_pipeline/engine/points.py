"""Values of a raster at points (e.g. field sites), reading only the raster's internal blocks that hold them.

A grid of any size (1 km = 43200 x 21600 cells) is looked up without decoding it whole: the cells asked for are
grouped by the dataset's internal block (a tile, or a strip of rows) and each block holding one of them is read
once, through the engine's per-thread open datasets (`raster_engine.opened`). No Dagster.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from rasterio.transform import rowcol
from rasterio.windows import Window

from soil_pipeline.engine.raster import (
    WINDOW_CELLS,
    RasterSource,
    opened,
    read_nodata,
    read_window,
    to_fill,
)

# A rule telling which cells count (e.g. as land) from their values as read and the file's nodata tag.
CellRule = Callable[[np.ndarray, float | None], np.ndarray]


@dataclass(frozen=True)
class HasValue:
    """Cells holding a value: finite, and not `nodata` when given (e.g. a raster contract's no-data value, whether
    the file tags it or not). One rule for a raw raster (no data as that value) and the pipeline's float grids (no
    data as NaN)."""

    nodata: float | None = None

    def __call__(self, values: np.ndarray, file_nodata: float | None) -> np.ndarray:
        found = np.isfinite(values)
        return found if self.nodata is None else found & (values != self.nodata)


# The cell of a point without coordinates: off any grid, however far its neighbourhood reaches.
NO_CELL = np.iinfo("int32").min


def point_cells(transform, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the cells holding the points, int64; `NO_CELL` for a point without coordinates."""
    rows, cols = np.full(len(lon), NO_CELL, dtype="int64"), np.full(len(lon), NO_CELL, dtype="int64")
    known = np.isfinite(lon) & np.isfinite(lat)
    if known.any():
        found = rowcol(transform, lon[known], lat[known])
        rows[known], cols[known] = (np.asarray(axis, dtype="int64") for axis in found)
    return rows, cols


def _single_band(source: RasterSource) -> int:
    if len(source.bands) != 1:
        raise ValueError(f"{source.label()}: points are looked up in one band, not bands {source.bands}")
    return source.bands[0]


def read_unit(dataset, band: int) -> tuple[int, int]:
    """The (rows, cols) read at a time: the dataset's internal block, cut to about `WINDOW_CELLS` cells when a
    block is larger (an untiled file stored as one strip)."""
    block_rows, block_cols = dataset.block_shapes[band - 1]
    return min(block_rows, max(1, WINDOW_CELLS // block_cols)), block_cols


def read_cells(dataset, source: RasterSource, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The source's band at cells (`rows`, `cols`), all inside the dataset, as read from the source (its declared
    conversion applied, nodata kept): each block holding one of the cells is read once, and no other."""
    source = replace(source, bands=(_single_band(source),))
    unit_rows, unit_cols = read_unit(dataset, source.bands[0])
    units_across = -(-dataset.width // unit_cols)
    unit = (rows // unit_rows) * units_across + cols // unit_cols
    order = np.argsort(unit, kind="stable")
    ids, starts = np.unique(unit[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    values = None
    for i, start, end in zip(ids.tolist(), starts.tolist(), ends.tolist(), strict=True):
        r0, c0 = (i // units_across) * unit_rows, (i % units_across) * unit_cols
        window = Window(c0, r0, min(unit_cols, dataset.width - c0), min(unit_rows, dataset.height - r0))
        block = read_window(dataset, source, window)[0]
        if values is None:
            values = np.empty(len(rows), dtype=block.dtype)
        cells = order[start:end]
        values[cells] = block[rows[cells] - r0, cols[cells] - c0]
    return values if values is not None else np.empty(0, dtype=dataset.dtypes[source.bands[0] - 1])


def sample_points(source: RasterSource, lon: np.ndarray, lat: np.ndarray, outside) -> np.ndarray:
    """The source's band at each point's cell as the engine reads it (declared conversion, nodata -> `fill`, in
    `source.dtype`); `outside` for points off the grid (or without coordinates)."""
    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    values = np.full(len(lon), outside, dtype=source.dtype)
    if not len(lon):
        return values
    with opened(source) as dataset:
        rows, cols = point_cells(dataset.transform, lon, lat)
        inside = (rows >= 0) & (rows < dataset.height) & (cols >= 0) & (cols < dataset.width)
        if inside.any():
            found = read_cells(dataset, source, rows[inside], cols[inside])
            values[inside] = to_fill(found[np.newaxis], read_nodata(dataset, source), source)[0]
    return values


def near_cells(source: RasterSource, lon: np.ndarray, lat: np.ndarray, radius_cells: int, rule: CellRule) -> np.ndarray:
    """True where a cell for which `rule(values, nodata)` holds lies within `radius_cells` rows and columns of the
    point's cell; columns wrap around (longitude), rows do not. Only the blocks holding those neighbourhoods are
    read."""
    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    if not len(lon):
        return np.zeros(0, dtype=bool)
    offsets = np.arange(-radius_cells, radius_cells + 1)
    shape = (len(lon), len(offsets), len(offsets))  # point, row offset, column offset
    with opened(source) as dataset:
        height, width = dataset.height, dataset.width
        rows, cols = point_cells(dataset.transform, lon, lat)
        near_rows = np.broadcast_to(rows[:, None, None] + offsets[None, :, None], shape)
        near_cols = np.broadcast_to((cols[:, None, None] + offsets[None, None, :]) % width, shape)
        inside = (near_rows >= 0) & (near_rows < height)
        cells, which = np.unique(near_rows[inside] * width + near_cols[inside], return_inverse=True)
        values = read_cells(dataset, source, cells // width, cells % width)
        hits = np.asarray(rule(values, dataset.nodata), dtype=bool)
    found = np.zeros(shape, dtype=bool)
    found[inside] = hits[which]
    return found.reshape(len(lon), -1).any(axis=1)
