"""Zonal statistics in one streaming pass: per window, every layer is read aligned onto the common grid, per-cell
quantities are derived with the window's own row areas, and each is summed per zone of every zoning (a zoning maps
cells to zone indices, -1 = none; a cross-tabulation is a zoning too, see `cross`). Partial sums add up over
windows, so no layer is ever whole in memory.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit, types
from rasterio.windows import Window

from soil_pipeline.engine import raster as engine
from soil_pipeline.science.grid import GridSpec, row_areas_ha

SEP = "/"


def window_sums(
    values: dict[str, np.ndarray], zones: dict[str, np.ndarray], sizes: dict[str, int], names: dict | None = None
) -> dict:
    """`{zoning}/{quantity}`: per-zone sums of each quantity (NaN and zone -1 ignored) in one window; `names`
    may restrict a zoning to some quantities (e.g. a cross-tabulation of areas only). Cells are added in order, as
    `np.bincount` adds them, which leaves every sum bit-identical to `aggregation.zonal_sum`; the loop is compiled
    and releases the GIL, so threads overlap it with decoding."""
    shape = next(iter(zones.values())).shape if zones else ()
    flat = {name: _flat(np.broadcast_to(v, shape), _value_type(v)) for name, v in values.items()}
    out = {}
    for zoning, cells in zones.items():
        cells = _flat(cells, _zone_type(cells))
        selected = list(names.get(zoning, flat) if names else flat)
        for start in range(0, len(selected), GROUP):
            group = selected[start : start + GROUP]
            arrays = [flat[name] for name in group]
            sums = np.zeros((len(group), sizes[zoning]))
            if len(group) == 1:
                _add_one_per_zone(sums[0], cells, arrays[0])
            else:  # a group of two or three repeats its last quantity (a fourth chain costs next to nothing)
                padded = np.zeros((GROUP, sizes[zoning]))
                _add_per_zone(padded, cells, *arrays, *arrays[-1:] * (GROUP - len(arrays)))
                sums = padded[: len(group)]
            out.update({f"{zoning}{SEP}{name}": sums[row] for row, name in enumerate(group)})
    return out


# Quantities summed together in one loop over the cells (a group of fewer repeats its last one).
GROUP = 4


def _zone_type(*arrays) -> np.dtype:
    """Integer zones keep their type (their common one for several); anything else is cast to int64."""
    common = np.result_type(*arrays)
    return common if common.kind in "iu" else np.dtype("int64")


def _value_type(values) -> np.dtype:
    """Booleans, integers, float32 and float64 keep their type (each value is widened to float64 as it is added,
    so the sums are the same); anything else is cast to float64."""
    dtype = np.asarray(values).dtype
    return dtype if dtype.kind in "biu" or dtype in (np.float32, np.float64) else np.dtype("float64")


def _flat(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`values` as a read-only one-dimensional contiguous array of `dtype`, so that one compiled loop serves every
    call with the same types."""
    flat = np.ascontiguousarray(np.ravel(values), dtype=dtype).view()
    flat.flags.writeable = False
    return flat


# The compiled loops. The pipeline's own types (int64 zones, float64 values) are compiled when this module is
# imported, in the importing thread; other types when first met, in the calling thread (numba compiles one function
# at a time, under its global lock). No on-disk cache: processes running side by side (Dask workers, Dagster run
# workers) could write it at once (numba/numba#4807).
def _read_only(dtype) -> types.Array:
    return types.Array(dtype, 1, "C", readonly=True)


_CELLS, _VALUES = _read_only(types.int64), _read_only(types.float64)


@njit(nogil=True)
def _add_per_zone(sums, zones, a, b, c, d):
    """sums[q, z] += value for each cell in order, for the four quantities a-d, skipping zones outside
    0..sums.shape[1]-1 and NaN values. Along a run of cells of one zone each sum is carried in a register (loaded at
    the start of the run, stored at its end): the same additions in the same order as `np.bincount`, without a
    store and a reload per cell, and four independent chains of additions instead of one."""
    n = sums.shape[1]
    zone = -1
    sa = sb = sc = sd = 0.0
    for i in range(zones.size):
        z = zones[i]
        if z < 0 or z >= n:
            continue
        if z != zone:
            if zone >= 0:
                sums[0, zone], sums[1, zone], sums[2, zone], sums[3, zone] = sa, sb, sc, sd
            zone = z
            sa, sb, sc, sd = sums[0, z], sums[1, z], sums[2, z], sums[3, z]
        if a[i] == a[i]:  # not NaN
            sa += a[i]
        if b[i] == b[i]:
            sb += b[i]
        if c[i] == c[i]:
            sc += c[i]
        if d[i] == d[i]:
            sd += d[i]
    if zone >= 0:
        sums[0, zone], sums[1, zone], sums[2, zone], sums[3, zone] = sa, sb, sc, sd


@njit(nogil=True)
def _add_one_per_zone(sums, zones, values):
    """`_add_per_zone` for one quantity."""
    n = sums.size
    zone, total = -1, 0.0
    for i in range(zones.size):
        z = zones[i]
        if z < 0 or z >= n or values[i] != values[i]:
            continue
        if z != zone:
            if zone >= 0:
                sums[zone] = total
            zone, total = z, sums[z]
        total += values[i]
    if zone >= 0:
        sums[zone] = total


@njit(nogil=True)
def _cross(a, b, n_b, out):
    for i in range(a.size):
        out[i] = a[i] * n_b + b[i] if a[i] >= 0 and b[i] >= 0 else -1


def cross(a: np.ndarray, b: np.ndarray, n_b: int) -> np.ndarray:
    """Cross-tabulation zone a * n_b + b of two zonings (-1 where either is -1), int64."""
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, dtype="int64")
    dtype = _zone_type(a, b)
    _cross(_flat(a, dtype), _flat(b, dtype), np.int64(n_b), out.reshape(-1))
    return out


_add_per_zone.compile((types.float64[:, ::1], _CELLS, _VALUES, _VALUES, _VALUES, _VALUES))
_add_one_per_zone.compile((types.float64[::1], _CELLS, _VALUES))
_cross.compile((_CELLS, _CELLS, types.int64, types.int64[::1]))


@dataclass(frozen=True)
class ZonalTask:
    """One window's share of a zonal pass; picklable, so a Dask worker can run it. `names` restricts zonings to
    some quantities (as in `window_sums`). `gate` names a zone layer read first: a window where it has no zone (every
    cell negative, e.g. open ocean under a country layer) reads nothing else and adds nothing, which is only right
    when every zoning is -1 wherever the gate is. `positioned` quantities also take the grid and the window (e.g. to
    place each cell's centre)."""

    grid: GridSpec
    sources: dict[str, engine.RasterSource]
    plans: dict[str, engine.Alignment]
    quantities: Callable[[dict[str, np.ndarray], np.ndarray], dict[str, np.ndarray]]
    zonings: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    sizes: dict[str, int]
    names: dict[str, list[str]] | None = None
    gate: str | None = None
    positioned: bool = False

    def layers(self, window: Window, only: list[str] | None = None) -> dict[str, np.ndarray]:
        return read_layers(self.grid, self.sources, self.plans, window, only)

    def __call__(self, window: Window) -> dict[str, np.ndarray]:
        if self.gate is None:
            layers = self.layers(window)
        else:
            layers = self.layers(window, [self.gate])
            if not (layers[self.gate] >= 0).any():
                return {}
            layers.update(self.layers(window, [name for name in self.sources if name != self.gate]))
        areas = row_areas_ha(self.grid, window)[:, 0]
        where = (self.grid, window) if self.positioned else ()
        values = self.quantities(layers, areas, *where)
        return window_sums(values, self.zonings(layers), self.sizes, self.names)


def read_layers(grid: GridSpec, sources: dict, plans: dict, window: Window, only: list[str] | None = None) -> dict:
    """Each source (or those named in `only`) on `window` of `grid`: (rows, cols), or (bands, rows, cols)."""
    layers = {}
    for name in only if only is not None else sources:
        source = sources[name]
        with engine.opened(source) as dataset:
            data = engine.read_aligned(dataset, source, plans[name], grid, window)
        layers[name] = data[0] if data.shape[0] == 1 else data
    return layers


def plan(sources: dict[str, engine.RasterSource], grid: GridSpec):
    """(alignment plan per source, block shape every window is a multiple of)."""
    plans, blocks = {}, []
    for name, source in sources.items():
        with engine.open_source(source) as dataset:
            plans[name] = engine.plan_alignment(engine.grid_of(dataset), grid, source.resampling)
            if plans[name].method == "none":
                blocks.append(dataset.block_shapes[0])
    return plans, engine.common_block(*blocks) if blocks else (512, 512)


def zonal_statistics(
    sources: dict[str, engine.RasterSource],
    grid: GridSpec,
    quantities,
    zonings,
    sizes: dict[str, int],
    executor=None,
    threads: int = 2,
    window_cells: int = engine.WINDOW_CELLS,
    names: dict[str, list[str]] | None = None,
    gate: str | None = None,
    positioned: bool = False,
):
    """(sums keyed `{zoning}/{quantity}`, PassReport, alignment records) over the whole grid in one pass; `names`,
    `gate` and `positioned` as in `ZonalTask`."""
    plans, block = plan(sources, grid)
    task = ZonalTask(grid, sources, plans, quantities, zonings, sizes, names, gate, positioned)
    window_list = engine.windows(grid, window_block(block, grid), window_cells)
    sums, report = engine.run_pass(task, window_list, executor, threads, label="zonal statistics")
    return sums, report, {name: p.record for name, p in plans.items()}


def window_block(block: tuple[int, int], grid: GridSpec) -> tuple[int, int]:
    """A block no larger than the grid (striped sources have one-row blocks the full width)."""
    return min(block[0], grid.height), min(block[1], grid.width)


def sums_table(sums: dict[str, np.ndarray], zoning: str, zone_table: pd.DataFrame, names) -> pd.DataFrame:
    """The region columns of `zone_table` (zone_index, region_type, region_id, region_name) with each quantity's
    sum over the zone, as `aggregation.zone_sums` gives from whole arrays."""
    idx = zone_table["zone_index"].to_numpy()
    table = zone_table[["region_type", "region_id", "region_name"]].reset_index(drop=True).copy()
    for name in names:
        table[name] = sums[f"{zoning}{SEP}{name}"][idx]
    return table
