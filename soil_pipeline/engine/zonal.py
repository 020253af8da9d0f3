"""Zonal statistics in one streaming pass: per window, every layer is read aligned onto the common grid, per-cell
quantities are derived with the window's own row areas, and each is summed per zone of every zoning (a zoning maps
cells to zone indices, -1 = none; a cross-tabulation is a zoning too, see `cross`). Partial sums add up over
windows, so no layer is ever whole in memory.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rasterio.windows import Window

from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import zone_loops
from soil_pipeline.science.grid import GridSpec, row_areas_ha

SEP = "/"


@dataclass(frozen=True)
class Quantity:
    """A quantity summed per zone without an array of its own: per cell `values` (or, with `count`, 1 for each value
    that is not NaN) times its row's factor in `per_row` (one per window row, e.g. the cell area in ha, or None),
    cells whose value or product is NaN left out. On a window of SOC stock (t C/ha) and its row areas,
    `Quantity(soc, area, count=True)` is the area with SOC (ha), `Quantity(soc, area)` the stock (t C),
    `Quantity(soc, count=True)` the number of SOC values: the sums are bit for bit those of the arrays they stand
    for (`np.where(np.isnan(soc), np.nan, area)`, `soc * area`, `~np.isnan(soc)`). The quantities of one array are
    summed in one loop over the cells (`zone_loops.layer_sums`), for two zonings at a time."""

    values: np.ndarray
    per_row: np.ndarray | None = None
    count: bool = False


@dataclass(frozen=True)
class CrossZones:
    """The zoning `cross(a, b, n_b)`, evaluated cell by cell in the per-zone loops of `Quantity` terms instead of
    made into an array."""

    a: np.ndarray
    b: np.ndarray
    n_b: int


def window_sums(
    values: dict[str, np.ndarray | Quantity],
    zones: dict[str, np.ndarray | CrossZones],
    sizes: dict[str, int],
    names: dict | None = None,
) -> dict:
    """`{zoning}/{quantity}`: per-zone sums of each quantity (NaN and zone -1 ignored) in one window; `names`
    may restrict a zoning to some quantities (e.g. a cross-tabulation of areas only). A quantity is an array
    (broadcast to the zones' shape) or a `Quantity`, a zoning an array or `CrossZones`. Cells are added in order, as
    `np.bincount` adds them, which leaves every sum bit-identical to `aggregation.zonal_sum`; the loops are compiled
    and release the GIL, so threads overlap them with decoding."""
    if not zones:
        return {}
    shape = _shape(next(iter(zones.values())))
    wanted = {zoning: list(names.get(zoning, values) if names else values) for zoning in zones}
    layers, arrays = _layers(values)
    out: dict[str, np.ndarray] = {}
    for layer in layers:
        _add_layer_sums(layer, zones, sizes, wanted, shape, out)
    _add_array_sums({name: values[name] for name in arrays}, zones, sizes, wanted, shape, out)
    return out


def _shape(zoning) -> tuple:
    return np.broadcast_shapes(zoning.a.shape, zoning.b.shape) if isinstance(zoning, CrossZones) else zoning.shape


@dataclass
class _Layer:
    """The `Quantity` terms of one array (and the quantities that are that array itself): which of
    `zone_loops.layer_sums`'s four sums each is (0 value, 1 value x factor, 2 count, 3 factor)."""

    values: np.ndarray
    per_row: np.ndarray | None
    sums: dict[str, int]


def _layers(values: dict) -> tuple[list[_Layer], list[str]]:
    """The `Quantity` terms grouped by their array (with one factor per row), and the names of the other arrays."""
    layers: list[_Layer] = []
    for name, value in values.items():
        if isinstance(value, Quantity):
            per_row = value.per_row
            layer = next(
                (
                    layer
                    for layer in layers
                    if layer.values is value.values
                    and (per_row is None or layer.per_row is None or layer.per_row is per_row)
                ),
                None,
            )
            if layer is None:
                layer = _Layer(value.values, per_row, {})
                layers.append(layer)
            if per_row is not None:
                layer.per_row = per_row
            layer.sums[name] = 2 * bool(value.count) + (per_row is not None)
    arrays = []
    for name, value in values.items():
        if not isinstance(value, Quantity):
            layer = next((layer for layer in layers if layer.values is value), None)
            if layer is None:
                arrays.append(name)
            else:
                layer.sums[name] = 0
    return layers, arrays


def _add_layer_sums(layer: _Layer, zones: dict, sizes: dict, wanted: dict, shape: tuple, out: dict) -> None:
    rows = shape[0] if len(shape) == 2 else 1
    cols = math.prod(shape) // rows if rows else 0
    values = layer.values if layer.values.shape == shape else np.broadcast_to(layer.values, shape)
    values = _flat(values, _value_type(values))
    per_row = None
    if layer.per_row is not None:
        per_row = _flat(np.asarray(layer.per_row, dtype="float64").reshape(-1), np.dtype("float64"))
        if per_row.size != rows:
            raise ValueError(f"a factor per row: {per_row.size} factors for {rows} rows of zones {shape}")
    todo = [(zoning, [n for n in wanted[zoning] if n in layer.sums]) for zoning in zones]
    todo = [(zoning, selected) for zoning, selected in todo if selected]
    for start in range(0, len(todo), 2):
        args = []
        for zoning, selected in todo[start : start + 2]:
            which = sorted({layer.sums[name] for name in selected})
            sums = np.zeros((len(which), sizes[zoning]))
            args += [
                sums,
                *_zone_arrays(zones[zoning], shape),
                *(which.index(k) if k in which else None for k in range(4)),
            ]
            out.update({f"{zoning}{SEP}{name}": sums[which.index(layer.sums[name])] for name in selected})
        if len(args) < 16:  # one zoning left: the second is absent
            args += [None, None, None, np.int64(0), None, None, None, None]
        zone_loops.layer_sums(values, per_row, cols, *args)


def _zone_arrays(zoning, shape: tuple) -> tuple:
    """(a, b, n_b) of `zone_loops.layer_sums` for a zoning: b None for a plain one."""
    if isinstance(zoning, CrossZones):
        a, b = (z if z.shape == shape else np.broadcast_to(z, shape) for z in (zoning.a, zoning.b))
        return _flat(a, _zone_type(a)), _flat(b, _zone_type(b)), np.int64(zoning.n_b)
    return _flat(zoning, _zone_type(zoning)), None, np.int64(0)


def _add_array_sums(values: dict, zones: dict, sizes: dict, wanted: dict, shape: tuple, out: dict) -> None:
    flat = {name: _flat(np.broadcast_to(v, shape), _value_type(v)) for name, v in values.items()}
    for zoning, cells in zones.items():
        selected = [name for name in wanted[zoning] if name in flat]
        if not selected:
            continue
        if isinstance(cells, CrossZones):
            cells = cross(cells.a, cells.b, cells.n_b)
        cells = _flat(cells, _zone_type(cells))
        first = {}  # an array given under several names is summed once
        for name in selected:
            first.setdefault(id(values[name]), name)
        unique = [name for name in selected if first[id(values[name])] == name]
        summed = {}
        for start in range(0, len(unique), GROUP):
            group = unique[start : start + GROUP]
            arrays = [flat[name] for name in group]
            sums = np.zeros((len(group), sizes[zoning]))
            if len(group) == 1:
                zone_loops.add_one_per_zone(sums[0], cells, arrays[0])
            else:  # a group of two or three repeats its last quantity (a fourth chain costs next to nothing)
                padded = np.zeros((GROUP, sizes[zoning]))
                zone_loops.add_per_zone(padded, cells, *arrays, *arrays[-1:] * (GROUP - len(arrays)))
                sums = padded[: len(group)]
            summed.update({name: sums[row] for row, name in enumerate(group)})
        out.update(
            {
                f"{zoning}{SEP}{name}": summed[name] if name in summed else summed[first[id(values[name])]].copy()
                for name in selected
            }
        )


# Quantities given as arrays summed together in one loop over the cells (a group of fewer repeats its last one).
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
    if values.dtype == dtype and values.flags.c_contiguous:
        flat = values.reshape(-1)  # a view
    else:
        flat = np.ascontiguousarray(np.ravel(values), dtype=dtype)
    flat = flat.view()
    flat.flags.writeable = False
    return flat


def cross(a: np.ndarray, b: np.ndarray, n_b: int) -> np.ndarray:
    """Cross-tabulation zone a * n_b + b of two zonings (-1 where either is -1), int64."""
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, dtype="int64")
    dtype = _zone_type(a, b)
    zone_loops.cross_zones(_flat(a, dtype), _flat(b, dtype), np.int64(n_b), out.reshape(-1))
    return out


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
        areas = window_row_areas_ha(self.grid, window)
        where = (self.grid, window) if self.positioned else ()
        values = self.quantities(layers, areas, *where)
        return window_sums(values, self.zonings(layers), self.sizes, self.names)


def window_row_areas_ha(grid: GridSpec, window: Window) -> np.ndarray:
    """`row_areas_ha` of the window's rows, one per row (read-only: shared by the windows of a row of windows)."""
    return _row_areas_ha(grid, int(window.row_off), int(window.height))


@functools.lru_cache(maxsize=64)
def _row_areas_ha(grid: GridSpec, row_off: int, height: int) -> np.ndarray:
    areas = row_areas_ha(grid, Window(0, row_off, grid.width, height))[:, 0]
    areas.flags.writeable = False
    return areas


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
