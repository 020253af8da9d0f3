"""Engine stress run (a process of its own, started by test_engine_stress.py): grid and zonal passes, many times,
from two caller threads at once, each pass on many threads with tiny windows, over sources that are read as stored,
shifted, resampled in the same CRS, reprojected from another CRS and read from GeoTIFF bytes in memory. Every
repetition of a configuration must give the same sums; a crash ends the process with a signal.

    python -m soil_pipeline_tests.engine_stress ROUNDS THREADS
"""

import faulthandler
import gc
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import zonal
from soil_pipeline.engine.grid_pass import build_grid
from soil_pipeline.resources import InputDatasets

# The grid: 5' over Africa, small enough for hundreds of passes.
GRID = engine.GridConfig.covering(1 / 12, -20.0, -35.0, 52.0, 37.0).spec()
TINY_WINDOWS = 1 << 12


def _mercator_copy(path: str, folder: Path) -> str:
    """The climate zones over Africa in EPSG:3857, so that windows need a real PROJ transformation."""
    with rasterio.open(path) as src:
        data = src.read(1)
        transform, width, height = calculate_default_transform(src.crs, "EPSG:3857", 150, 150, -20, -35, 52, 37)
        out = np.zeros((height, width), data.dtype)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:3857", resampling=Resampling.nearest)  # fmt: skip
    target = folder / "zones_3857.tif"
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": out.dtype}
    with rasterio.open(target, "w", crs="EPSG:3857", transform=transform, nodata=0, tiled=True, blockxsize=64,
                       blockysize=64, **profile) as dst:  # fmt: skip
        dst.write(out, 1)
    return str(target)


def _configurations(folder: Path) -> list[dict[str, engine.RasterSource]]:
    inputs = InputDatasets()
    zones = engine.RasterSource(inputs.climate_zones_raster, resampling="nearest", dtype="int16", fill=0)
    return [
        {"v": engine.RasterSource(inputs.soc_stock_2010_raster), "z": zones},  # as stored + same-CRS nearest
        {"v": engine.RasterSource(inputs.cropland_raster, resampling="sum"), "z": zones},  # whole-cell shift
        {"v": engine.RasterSource(inputs.soc_stock_2010_raster, resampling="average"), "z": zones},
        {"v": engine.RasterSource(Path(inputs.climate_zones_raster).read_bytes(), resampling="nearest"), "z": zones},
        {
            "v": engine.RasterSource(inputs.soc_stock_2010_raster),
            "z": engine.RasterSource(
                _mercator_copy(inputs.climate_zones_raster, folder), "nearest", dtype="int16", fill=0
            ),  # fmt: skip
        },
    ]


def _grid_compute(layers, areas, grid, window):
    gc.collect(0)  # objects made by other threads are collected here, in whichever thread runs this window
    values = np.nan_to_num(layers["v"].astype("float64"))
    return values[None], {"total": np.array([values.sum()]), "zoned": np.array([float((layers["z"] > 0).sum())])}


def _quantities(layers, row_areas):
    return {"value": np.nan_to_num(layers["v"].astype("float64")) * row_areas[:, None]}


def _zonings(layers):
    return {"zone": np.where(layers["z"] > 0, layers["z"] % 8, -1).astype("int64")}


def _one_round(config: dict, threads: int) -> tuple:
    sums, _, _ = build_grid(config, GRID, _grid_compute, lambda w, p: {k: v for k, v in p.items() if k != "grid"},
                            threads=threads, window_cells=TINY_WINDOWS)  # fmt: skip
    zsums, _, _ = zonal.zonal_statistics(config, GRID, _quantities, _zonings, {"zone": 8}, threads=threads,
                                         window_cells=TINY_WINDOWS)  # fmt: skip
    return float(sums["total"][0]), float(sums["zoned"][0]), tuple(zsums["zone/value"].tolist())


def main(rounds: int, threads: int) -> None:
    faulthandler.enable()
    with tempfile.TemporaryDirectory() as scratch:
        configurations = _configurations(Path(scratch))
        first: dict[int, tuple] = {}
        failures: list[str] = []

        def caller(offset: int) -> None:
            for i in range(rounds):
                k = (i + offset) % len(configurations)
                result = _one_round(configurations[k], threads)
                if first.setdefault(k, result) != result:
                    failures.append(f"configuration {k}: {result} != {first[k]}")

        callers = [threading.Thread(target=caller, args=(offset,)) for offset in (0, 2)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
    if failures:
        sys.exit("\n".join(failures))
    print(f"{2 * rounds} rounds of a grid and a zonal pass on {threads} threads, {len(first)} configurations: same")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
