"""A streaming raster engine: rasters aligned onto a configured common grid and reduced window by window.

The common grid is configuration (`GridConfig`: CRS, resolution, extent), not the grid of whichever raster is read
first. Each input is a `RasterSource` (any GDAL path or URL, or GeoTIFF bytes held in memory) read only in windows
of the common grid; a window is aligned onto the grid on its own (`plan_alignment` picks, and records, one of: none,
whole-cell shift when only the origin is off by a fraction of a cell, or GDAL resampling of that window only with
`sum` for areas, `nearest` for classes, `average` for densities). Windows are whole multiples of the inputs'
internal blocks, so each block is decoded once. Nothing global is ever materialised, so memory is bounded by the
window size however large the grid; GDAL's block cache is capped once per process (`cap_gdal_cache`).

A pass maps a picklable task over the windows (threads here, or a Dask cluster through any executor with
`submit`, e.g. `distributed.Client`) and adds the per-window partial sums in window order, so every executor gives
bit-identical results.

Threads and GDAL/PROJ, safe by construction (see `threads.py`): no GDAL dataset, CRS or transformer is ever used by
two threads. Each engine thread opens, reads and closes its own datasets; every warp (and every coordinate
transformation) runs on one long-lived warp thread that alone creates, uses and destroys the PROJ objects it needs;
and engine threads live as long as the process, so no thread's PROJ context is torn down while an object made in it
still exists.
"""

import atexit
import functools
import itertools
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import rasterio
import rasterio.env
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from soil_pipeline.engine import memory
from soil_pipeline.engine.threads import each_pass_thread, on_warp_thread, pass_pool
from soil_pipeline.science.grid import GridSpec, lattice_offset, same_grid

log = logging.getLogger(__name__)

GDAL_CACHE_MB = 64
# Target cells per window: 256 k (one 512 x 512 block) keeps a window of a few float64 layers near 2 MB, and
# windows of open ocean are skipped whole (at 1 km, 1.3x the decode floor against 1.5x with 1 M-cell windows).
WINDOW_CELLS = 1 << 18
# Windows submitted ahead of the one being added, per thread (or Dask worker thread).
IN_FLIGHT_PER_THREAD = 4


@dataclass(frozen=True)
class GridConfig:
    """The common grid: CRS, cell size and extent (west, north edges and size in cells). The default is the
    WHRC 5 arc-minute grid exactly as its GeoTIFFs store it (cell size 0.0833333 deg)."""

    crs: str = "EPSG:4326"
    resolution_deg: float = 0.0833333
    west: float = -180.0
    north: float = 89.99999999999999
    width: int = 4320
    height: int = 2160

    def spec(self) -> GridSpec:
        transform = Affine(self.resolution_deg, 0.0, self.west, 0.0, -self.resolution_deg, self.north)
        return GridSpec(width=self.width, height=self.height, transform=transform, crs=self.crs)

    @classmethod
    def covering(cls, resolution_deg: float, west: float, south: float, east: float, north: float, crs="EPSG:4326"):
        """The grid of `resolution_deg` cells whose top-left corner is (west, north) covering the extent."""
        width = math.ceil(round((east - west) / resolution_deg, 6))
        height = math.ceil(round((north - south) / resolution_deg, 6))
        return cls(crs, resolution_deg, west, north, width, height)


# ------------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class RasterSource:
    """One input band (or bands) to read onto the common grid. `location` is a GDAL path/URL or GeoTIFF bytes.
    `resampling` is used only when the source is not on the grid's lattice. `declare` is the per-window hook for
    declared conversions (units scale/offset, untagged nodata): a pure function (values, nodata) -> values applied
    to each window as read from the source, before alignment."""

    location: str | bytes
    name: str = ""
    bands: tuple[int, ...] = (1,)
    resampling: str = "nearest"
    dtype: str = "float32"
    fill: float = float("nan")
    declare: Callable[[np.ndarray, float | None], np.ndarray] | None = None

    def label(self) -> str:
        return self.name or (self.location if isinstance(self.location, str) else "<in-memory GeoTIFF>")


@contextmanager
def open_source(source: RasterSource):
    with _open(source.location) as dataset:
        yield dataset


def _open(location: str | bytes):
    if isinstance(location, bytes):
        with _in_memory_lock:  # opened before another thread can drop the in-memory file
            return rasterio.open(_in_memory_name(location))
    return rasterio.open(location)


# GeoTIFF bytes copied into GDAL's /vsimem once per process (the most recent few), not once per window opened:
# threads open the same in-memory file by name. Dropping an entry leaves datasets already open on it readable.
IN_MEMORY_FILES = 8
_in_memory: OrderedDict[int, tuple[bytes, MemoryFile]] = OrderedDict()
_in_memory_lock = threading.Lock()


def _in_memory_name(data: bytes) -> str:
    """The /vsimem name of `data` (the caller holds `_in_memory_lock`)."""
    entry = _in_memory.pop(id(data), None)
    if entry is None or entry[0] is not data:  # the entry holds `data`, so its id names no other object
        entry = (data, MemoryFile(data))
    _in_memory[id(data)] = entry
    while len(_in_memory) > IN_MEMORY_FILES:
        _in_memory.popitem(last=False)[1][1].close()
    return entry[1].name


@atexit.register  # closed while GDAL is fully loaded, not left to the interpreter's teardown
def release_in_memory_files() -> None:
    """Forget every in-memory GeoTIFF (after the last pass; the next pass copies its sources again)."""
    with _in_memory_lock:
        while _in_memory:
            _in_memory.popitem()[1][1].close()


# Datasets kept open per thread (least recently used closed first): opening a GeoTIFF costs about 0.3 ms of CPU and
# holds the GIL, against a few ms to decode a window.
OPEN_PER_THREAD = 16
_thread = threading.local()


@contextmanager
def opened(source: RasterSource):
    """`open_source`, reusing the dataset this thread opened before on the same GeoTIFF bytes, or on the same local
    file as long as it is unchanged (same inode, size and modification time, looked up once per thread and pass while
    passes run, else at every call); other locations are opened each time. A dataset on bytes reads them where they
    are (GDAL does not copy them): its cache entry keeps them alive."""
    key = _cache_key(source.location)
    if key is None:
        with open_source(source) as dataset:
            yield dataset
        return
    cache = _thread.__dict__.setdefault("datasets", OrderedDict())
    entry = cache.pop(key, None) or (_open(source.location), source.location)
    cache[key] = entry
    while len(cache) > OPEN_PER_THREAD:
        cache.popitem(last=False)[1][0].close()
    yield entry[0]


def close_thread_datasets() -> None:
    """Close every dataset this thread keeps open (in this thread, which opened them)."""
    _thread.__dict__.pop("file_keys", None)
    cache = _thread.__dict__.pop("datasets", {})
    while cache:
        cache.popitem()[1][0].close()


def _cache_key(location) -> tuple | None:
    if isinstance(location, bytes):
        return "bytes", id(location)  # the entry holds the bytes, so no other object takes their id meanwhile
    if not isinstance(location, str):
        return None
    # A file's identity is looked up once per thread and pass (a stat per window and source cost a system call and
    # a hand-over of the GIL), and again at every call outside passes.
    keys = _thread.__dict__.setdefault("file_keys", {})
    known = keys.get(location)
    if known is not None and known[0] == _pass_generation and _passes_running:
        return known[1]
    try:
        stat = os.stat(location)
    except OSError:  # not a local file (a /vsi path, a URL)
        key = None
    else:
        key = location, stat.st_ino, stat.st_size, stat.st_mtime_ns
    keys[location] = (_pass_generation, key)
    return key


def grid_of(dataset) -> GridSpec:
    crs = dataset.crs.to_string() if dataset.crs else ""
    return GridSpec(width=dataset.width, height=dataset.height, transform=dataset.transform, crs=crs)


@dataclass(frozen=True)
class Alignment:
    """How a source lands on the grid: "none", "shift" (whole cells, `shift` = (columns, rows)) or "resample"."""

    method: str
    shift: tuple[int, int] = (0, 0)
    record: dict = field(default_factory=dict)


def plan_alignment(source_grid: GridSpec, target: GridSpec, resampling: str) -> Alignment:
    if same_grid(source_grid, target):
        return Alignment("none", record={"method": "none (already on the common grid)"})
    if (offset := lattice_offset(source_grid, target)) is not None:
        shift = tuple(int(np.floor(o + 0.5)) for o in offset)
        rows = min(shift[1] + source_grid.height, target.height) - max(shift[1], 0)
        cols = min(shift[0] + source_grid.width, target.width) - max(shift[0], 0)
        record = {
            "method": "whole-cell shift (same resolution, origin off the target lattice)",
            "offset_cells": {"columns": float(offset[0]), "rows": float(offset[1])},
            "shift_cells": {"columns": shift[0], "rows": shift[1]},
            "source_cells_outside_target": source_grid.width * source_grid.height - max(rows, 0) * max(cols, 0),
        }
        return Alignment("shift", shift, record)
    t = source_grid.transform
    record = {
        "method": f"rasterio.warp.reproject, Resampling.{resampling}, window by window",
        "source_grid": {"west": t.c, "north": t.f, "resolution_deg": abs(t.a)},
    }
    return Alignment("resample", record=record)


def read_window(dataset, source: RasterSource, window: Window) -> np.ndarray:
    """The source's bands on its own pixel `window`, as stored (after the `declare` hook), shape (bands, rows, cols)."""
    data = dataset.read(list(source.bands), window=window)
    if source.declare is not None:
        data = source.declare(data, dataset.nodata)
    return data


def read_nodata(dataset, source: RasterSource) -> float | None:
    """The no-data value of the source's values as read: the file's tag, or none for declared values (`declare`
    has turned no data into NaN already)."""
    return None if source.declare is not None else dataset.nodata


def to_fill(data: np.ndarray, nodata, source: RasterSource) -> np.ndarray:
    """Data as `source.dtype`, `nodata` (and NaN, when the output holds integers) replaced by `source.fill`."""
    if data.dtype.kind == "f" and np.dtype(source.dtype).kind in "iub":
        data = np.where(np.isnan(data), source.fill, data)
    out = data.astype(source.dtype, copy=False)
    if nodata is not None and not _fill_is_noop(nodata, source.fill, data.dtype, out.dtype):
        out[data == nodata] = source.fill
    return out


@functools.lru_cache(maxsize=256)  # asked for every window of every source
def _fill_is_noop(nodata: float, fill: float, data_dtype, out_dtype) -> bool:
    """Whether replacing nodata by fill changes nothing: a NaN nodata matches no cell (NaN != NaN), and a fill
    equal to a nodata value that both dtypes hold exactly is already in place."""
    if math.isnan(nodata):
        return True
    if fill != nodata:
        return False
    try:
        return np.array(nodata, dtype=data_dtype) == nodata and np.array(nodata, dtype=out_dtype) == nodata
    except (OverflowError, ValueError):
        return False


def read_aligned(dataset, source: RasterSource, plan: Alignment, target: GridSpec, window: Window) -> np.ndarray:
    """The source's bands on `window` of `target`, shape (bands, rows, cols), nodata replaced by `source.fill`."""
    rows, cols = int(window.height), int(window.width)
    shape = (len(source.bands), rows, cols)
    if plan.method in ("none", "shift"):
        col_shift, row_shift = plan.shift
        r0, c0 = int(window.row_off) - row_shift, int(window.col_off) - col_shift
        sr0, sc0 = max(r0, 0), max(c0, 0)
        sr1, sc1 = min(r0 + rows, dataset.height), min(c0 + cols, dataset.width)
        if (sr0, sc0, sr1, sc1) == (r0, c0, r0 + rows, c0 + cols):  # wholly inside the source: no copy
            return to_fill(
                read_window(dataset, source, Window(c0, r0, cols, rows)), read_nodata(dataset, source), source
            )
        out = np.full(shape, source.fill, dtype=source.dtype)
        if sr1 > sr0 and sc1 > sc0:
            data = read_window(dataset, source, Window(sc0, sr0, sc1 - sc0, sr1 - sr0))
            out[:, sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = to_fill(data, read_nodata(dataset, source), source)
        return out
    return _resample_window(dataset, source, target, window, np.full(shape, source.fill, dtype=source.dtype))


def _resample_window(dataset, source: RasterSource, target: GridSpec, window: Window, out: np.ndarray):
    """GDAL reprojection of the source cells under `window` (plus one cell of margin) onto the window: the cells
    are read here, the warp runs on the warp thread (`engine_threads`)."""
    dst_transform = rasterio.windows.transform(window, target.transform)
    bounds = rasterio.windows.bounds(window, target.transform)
    src_crs = dataset.crs.to_wkt() if dataset.crs else ""
    west, south, east, north = on_warp_thread(_source_bounds, bounds, target.crs, src_crs)
    src_window = _pixel_window(dataset.transform, west, south, east, north, dataset.width, dataset.height)
    if src_window is None:
        return out
    data = read_window(dataset, source, src_window)
    # declared values are float32 with NaN for no data (`declare` applied them); others keep the file's tag
    src_nodata = float("nan") if source.declare is not None else dataset.nodata
    src_transform = rasterio.windows.transform(src_window, dataset.transform)
    on_warp_thread(_warp, data, out, src_transform, src_crs, src_nodata, dst_transform, target.crs, source)
    return out


# CRS objects of the warp thread, made and used there only (text -> CRS).
_warp_crs: dict[str, CRS] = {}


def _crs_pair(dst: str, src: str) -> tuple[CRS | None, CRS]:
    """(source, destination) CRS objects: the same object when they are equal, so GDAL builds no PROJ transform;
    None for a source without a CRS (GDAL refuses it). Called on the warp thread only."""
    for text in (dst, src):
        if text not in _warp_crs:
            _warp_crs[text] = CRS.from_user_input(text) if text else None
    dst_crs, src_crs = _warp_crs[dst], _warp_crs[src]
    return (dst_crs if src_crs is not None and src_crs == dst_crs else src_crs), dst_crs


def _source_bounds(bounds, dst: str, src: str):
    """The window's bounds in the source's CRS. Warp thread only."""
    src_crs, dst_crs = _crs_pair(dst, src)
    return bounds if src_crs is dst_crs else rasterio.warp.transform_bounds(dst_crs, src_crs, *bounds)


def _warp(data, out, src_transform, src: str, src_nodata, dst_transform, dst: str, source: RasterSource) -> None:
    """Each band of `data` warped into `out` in place. Warp thread only."""
    src_crs, dst_crs = _crs_pair(dst, src)
    for band in range(len(source.bands)):
        reproject(
            source=data[band],
            destination=out[band],
            src_transform=src_transform,
            src_crs=src_crs,
            src_nodata=src_nodata,
            dst_transform=dst_transform,
            dst_crs=dst_crs,
            dst_nodata=source.fill,
            resampling=Resampling[source.resampling],
        )


def _pixel_window(transform: Affine, west, south, east, north, width: int, height: int) -> Window | None:
    """Source pixels under the bounds plus one cell of margin (north-up or south-up sources alike)."""
    cols, rows = ~transform * (np.array([west, east, west, east]), np.array([south, south, north, north]))
    c0, c1 = max(int(np.floor(cols.min())) - 1, 0), min(int(np.ceil(cols.max())) + 1, width)
    r0, r1 = max(int(np.floor(rows.min())) - 1, 0), min(int(np.ceil(rows.max())) + 1, height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


# ------------------------------------------------------------------------------------------------- windows


def windows(grid: GridSpec, block: tuple[int, int] = (512, 512), cells: int = WINDOW_CELLS) -> list[Window]:
    """Windows covering `grid` row-major, each a whole number of `block` (rows, cols) and about `cells` cells."""
    block_rows, block_cols = block
    cols = min(grid.width, max(block_cols, (cells // block_rows) // block_cols * block_cols))
    rows = min(grid.height, max(block_rows, (cells // cols) // block_rows * block_rows))
    return [
        Window(c, r, min(cols, grid.width - c), min(rows, grid.height - r))
        for r in range(0, grid.height, rows)
        for c in range(0, grid.width, cols)
    ]


def common_block(*block_shapes: tuple[int, int]) -> tuple[int, int]:
    """The least common multiple of the inputs' block shapes (rows, cols), so a window holds whole blocks."""
    rows = math.lcm(*(shape[0] for shape in block_shapes))
    cols = math.lcm(*(shape[1] for shape in block_shapes))
    return rows, cols


# ------------------------------------------------------------------------------------------------- passes


@dataclass
class PassReport:
    """What a streaming pass did, for log lines and Dagster metadata."""

    windows: int
    cells: int
    seconds: float

    def metadata(self) -> dict:
        return {
            "windows_done": self.windows,
            "cells": self.cells,
            "seconds": round(self.seconds, 3),
            "cells_per_s": round(self.cells / self.seconds) if self.seconds else None,
        }


def run_pass(
    task: Callable[[Window], dict[str, np.ndarray]],
    window_list: list[Window],
    executor=None,
    threads: int = 2,
    label: str = "pass",
    consume: Callable[[Window, dict], dict] | None = None,
) -> tuple[dict[str, np.ndarray], PassReport]:
    """Sum of `task(window)` (a dict of arrays) over all windows, added in window order whatever the executor.

    `executor` is anything with `submit(fn, *args)` returning futures with `.result()` (a `distributed.Client`, a
    `concurrent.futures` executor); None = a local thread pool of `threads`. `consume(window, part)`, called in
    window order, may take per-window outputs out of a part (e.g. a map window to write) before it is summed."""
    start = time.perf_counter()
    total: dict[str, np.ndarray] = {}
    cells = 0
    pool = pass_pool(threads) if executor is None else executor
    # A bounded number of windows in flight: results are consumed (and freed) in order as they arrive.
    in_flight = max(2, IN_FLIGHT_PER_THREAD * threads)
    pending: deque = deque()
    with window_memory():
        try:
            queue = iter(window_list)
            for window in itertools.islice(queue, in_flight):
                pending.append((window, pool.submit(task, window)))
            done = 0
            while pending:
                window, future = pending.popleft()
                part = future.result()
                if (following := next(queue, None)) is not None:
                    pending.append((following, pool.submit(task, following)))
                _add(total, consume(window, part) if consume else part)
                done += 1
                cells += int(window.width * window.height)
                if done == len(window_list) or done % max(1, len(window_list) // 10) == 0:
                    rate = cells / max(time.perf_counter() - start, 1e-9)
                    log.info("%s: %d/%d windows, %.0f cells/s", label, done, len(window_list), rate)
        finally:
            for _, future in pending:  # a failed pass: nothing more starts, and what runs ends before we return
                future.cancel()
            wait_for([future for _, future in pending if isinstance(future, Future)])
    return total, PassReport(len(window_list), cells, time.perf_counter() - start)


_passes_lock = threading.Lock()
_passes_running = 0
_pass_generation = 0  # counts the passes started: file identities looked up in an earlier pass are looked up again


@contextmanager
def window_memory():
    """While passes run, freed window-sized arrays are kept for reuse (`memory.keep_window_arrays`); when the last
    one ends, each pass thread closes its datasets, the in-memory sources are released and the memory kept is given
    back (`memory.release_window_arrays`)."""
    global _passes_running, _pass_generation
    cap_gdal_cache()
    with _passes_lock:
        _passes_running += 1
        _pass_generation += 1
        if _passes_running == 1:
            memory.keep_window_arrays()
    try:
        yield
    finally:
        with _passes_lock:
            _passes_running -= 1
            if _passes_running == 0:
                each_pass_thread(close_thread_datasets)
                release_in_memory_files()
                memory.release_window_arrays()


def _add(total: dict[str, np.ndarray], part: dict[str, np.ndarray]) -> None:
    """total += part, name by name (in place where the sum keeps the total's type and shape)."""
    for name, values in part.items():
        if name not in total:
            total[name] = np.array(values, copy=True)
        elif np.result_type(total[name], values) == total[name].dtype and np.shape(values) == total[name].shape:
            np.add(total[name], values, out=total[name])
        else:
            total[name] = total[name] + values


@functools.cache
def cap_gdal_cache() -> None:
    """Cap GDAL's block cache (process-wide) at `GDAL_CACHE_MB`, once: changing it later, while other threads read
    or write datasets, makes GDAL flush their blocks from the changing thread (a per-window `rasterio.Env` doing so
    was followed by a segmentation fault inside two concurrent reads)."""
    rasterio.env.set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB << 20)
