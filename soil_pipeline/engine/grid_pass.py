"""Grids built window by window: each window of the common grid reads its sources aligned onto it (see
`raster_engine`), and a pure function of those layers gives the window's output bands and sums. The bands go to a
writer in window order (`run_pass`'s `consume`), so no grid is ever whole in memory."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from soil_pipeline.engine import raster as engine
from soil_pipeline.engine.zonal import plan, read_layers, window_block, window_row_areas_ha
from soil_pipeline.science.grid import GridSpec

# The part of a window's result holding its output bands, shape (bands, rows, cols).
BANDS = "grid"

# compute(layers, row areas (ha, one per window row), the grid, the window) -> (bands, sums)
Compute = Callable[[dict[str, np.ndarray], np.ndarray, GridSpec, Window], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class GridTask:
    """One window of a grid being built; picklable when `compute` is (a module-level function or callable)."""

    grid: GridSpec
    sources: dict[str, engine.RasterSource]
    plans: dict[str, engine.Alignment]
    compute: Compute

    def __call__(self, window: Window) -> dict[str, np.ndarray]:
        layers = read_layers(self.grid, self.sources, self.plans, window)
        bands, sums = self.compute(layers, window_row_areas_ha(self.grid, window), self.grid, window)
        return {BANDS: bands, **sums}


def build_grid(
    sources: dict[str, engine.RasterSource],
    grid: GridSpec,
    compute: Compute,
    consume: Callable[[Window, dict], dict],
    executor=None,
    threads: int = 2,
    window_cells: int = engine.WINDOW_CELLS,
    label: str = "grid",
    tile: tuple[int, int] = (512, 512),
):
    """Run `compute` over every window; `consume(window, part)` takes each window's bands (under `BANDS`) in
    window order. Windows are whole multiples of the inputs' blocks and of the output's `tile`. Returns (sums over
    the windows, PassReport, alignment record per source)."""
    plans, block = plan(sources, grid)
    task = GridTask(grid, sources, plans, compute)
    window_list = engine.windows(grid, window_block(engine.common_block(block, tile), grid), window_cells)
    sums, report = engine.run_pass(task, window_list, executor, threads, label, consume)
    return sums, report, {name: p.record for name, p in plans.items()}
