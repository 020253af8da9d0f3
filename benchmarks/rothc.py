"""Speed of the vectorised RothC (science/rothc.py, science/gsocseq.py) against a per-cell loop in the style of
the official RothC_Py (one Python call per cell and month, scalar maths, iterative spin-up), on the embedded data.

    python benchmarks/rothc.py [--sample 300]

Target: all cropland cells of the 5' grid, equilibrium plus six 20-year runs (BAU, SSM1-3, the warming response and
the uncapped SSM3 gain), in under a minute on 2 cores. The loop (equilibrium and the four scenario runs, covered
soil) is timed on a sample of cells and extrapolated to all cells (labelled so in the output).
"""

import argparse
import math
import time

import numpy as np
import rasterio
from rasterio.warp import Resampling

from soil_pipeline.assets.rothc import RothCInputs, cell_inputs, load_scenarios
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science import gsocseq
from soil_pipeline.science.grid import GridSpec, cell_area_ha
from soil_pipeline_tests.whole_array import align

MONTHS_PER_RUN = 20 * 12
N_RUNS = 6  # vectorised: BAU, SSM1-3, BAU warmed, SSM3 gain without the NPP cap


def cropland_cells():
    inputs = InputDatasets()
    with rasterio.open(inputs.soc_stock_2010_raster) as src:
        soc = src.read(1).astype("float64")
        soc[soc == src.nodata] = np.nan
        grid = GridSpec(src.width, src.height, src.transform)
    with rasterio.open(inputs.cropland_raster) as src:
        crop_km2 = align(
            src.read(1), src.transform, src.crs.to_string(), src.nodata, grid, Resampling.sum, np.nan, "float32"
        )
    area = np.broadcast_to(cell_area_ha(grid)[:, None], grid.shape)
    cropland_ha = np.minimum(np.nan_to_num(crop_km2) * 100.0, area).ravel()
    flat = np.flatnonzero(cropland_ha > 0)
    cells, _ = cell_inputs(RothCInputs(), grid, flat, soc.ravel()[flat])
    return cells


def loop_month(pools, deficit, tmp, rain, pet, clay, c_input, depth, evaporation_factor):
    """One month of one cell with scalars only, the control flow of RothC_Py's RothC() call (covered soil)."""
    rm_tmp = 0.0 if tmp < -5.0 else 47.91 / (math.exp(106.06 / (tmp + 18.27)) + 1.0)
    max_def = -(20.0 + 1.3 * clay - 0.01 * clay * clay) * depth / 23.0
    deficit = max(max_def, min(0.0, deficit + rain - evaporation_factor * pet))
    one_bar = 0.444 * max_def
    rm_moist = 1.0 if deficit > one_bar else 0.2 + 0.8 * (max_def - deficit) / (max_def - one_bar)
    rate = rm_tmp * rm_moist * 0.6
    x = 1.67 * (1.85 + 1.60 * math.exp(-0.0786 * clay))
    dpm, rpm, bio, hum = pools
    new = [p * math.exp(-rate * k / 12.0) for p, k in zip(pools, (10.0, 0.3, 0.66, 0.02), strict=True)]
    lost = (dpm - new[0]) + (rpm - new[1]) + (bio - new[2]) + (hum - new[3])
    new[0] += c_input * 1.44 / 2.44
    new[1] += c_input / 2.44
    new[2] += lost * 0.46 / (x + 1.0)
    new[3] += lost * 0.54 / (x + 1.0)
    return new, deficit


def loop_cell(cells, i, c_input, years_forward):
    """RothC_Py's procedure for one cell: spin-up by repeating the climatological year until the active carbon
    changes by < 1e-6 t C/ha/yr, then four forward runs. Returns the months simulated."""
    tmp, pre, pet = (v[:, i] for v in cells.climate.arrays())
    clay = cells.clay_pct[i]
    pools, deficit, previous, months = [0.0] * 4, 0.0, -1.0, 0
    while months < 1_000_000:
        deficit = 0.0  # GSOCseq convention: the deficit restarts every January
        for m in range(12):
            pools, deficit = loop_month(pools, deficit, tmp[m], pre[m], pet[m], clay, c_input / 12, 30.0, 1.0)
        months += 12
        if abs(sum(pools) - previous) < 1e-6:
            break
        previous = sum(pools)
    start = pools
    for factor in (1.0, 1.05, 1.10, 1.20):
        pools = start
        for _ in range(years_forward):
            deficit = 0.0
            for m in range(12):
                month_input = c_input * factor / 12
                pools, deficit = loop_month(pools, deficit, tmp[m], pre[m], pet[m], clay, month_input, 30.0, 1.0)
        months += years_forward * 12
    return months


def main(sample: int) -> None:
    start = time.perf_counter()
    cells = cropland_cells()
    scenarios = load_scenarios()
    print(f"cropland cells: {cells.soc_t_c_per_ha.size:,} (inputs sampled in {time.perf_counter() - start:.1f} s)")

    start = time.perf_counter()
    results = gsocseq.run_cells(cells, scenarios)
    vector_s = time.perf_counter() - start
    modelled = np.flatnonzero(results.status == gsocseq.MODELLED)
    forward_cell_months = modelled.size * N_RUNS * MONTHS_PER_RUN
    print(
        f"vectorised RothC (numpy and a compiled year loop, analytic equilibrium + 6 x 20-yr runs): "
        f"{modelled.size:,} cells in {vector_s:.1f} s"
        f" = {forward_cell_months / vector_s:,.0f} cell-months/s (forward months only; equilibrium solved)"
    )

    picked = np.random.default_rng(0).choice(modelled, size=min(sample, modelled.size), replace=False)
    start = time.perf_counter()
    loop_months = sum(loop_cell(cells, i, results.equilibrium_input_t_c_per_ha_per_yr[i], 20) for i in picked)
    loop_s = time.perf_counter() - start
    per_cell = loop_s / picked.size
    print(
        f"per-cell loop (RothC_Py style, iterative spin-up + 4 x 20-yr runs): {picked.size} cells in {loop_s:.1f} s"
        f" = {loop_months / loop_s:,.0f} cell-months/s ({loop_months / picked.size:,.0f} months per cell)"
    )
    print(
        f"cell-months/s: vectorised {forward_cell_months / vector_s / (loop_months / loop_s):,.0f} x the loop;"
        f" EXTRAPOLATED whole procedure with the per-cell loop for all {modelled.size:,} cells:"
        f" {per_cell * modelled.size / 3600:.1f} h, {per_cell * modelled.size / vector_s:,.0f} x the vectorised time"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=300, help="cells timed with the per-cell loop")
    main(parser.parse_args().sample)
