"""The pipeline's grid assets at 5' and at 1 km: peak memory flat as the common grid grows 100x, against GDAL's own
warper and the whole-array warp the assets used before.

    python benchmarks/grid_assets.py [--dir /tmp/soil_pipeline_grid_bench]

The grid assets (`soc_stock_grid`, `second_soc_stock_grid`, `cropland_grid`, `climate_zone_grid`, `country_grid`,
`converted_land_grid`, with `countries`) are materialized through Dagster on the embedded 5' inputs, onto the common
grid configured on the `raster_engine` resource: the default 5' grid (nothing resampled), then the global 1 km grid
(43200 x 21600 = 933 M cells; the stocks averaged, cropland summed, climate zones taken nearest onto it, window by
window, each input checked against its contract first). Each measurement runs in its own process (peak RSS of that
process, VmHWM; imports excluded from the seconds). The peers, on the same two SOC stock layers onto the same 1 km
grid:

- GDAL's warper streaming to tiled ZSTD GeoTIFFs (`WarpedVRT` with `Resampling.average`, copied by
  `rasterio.shutil.copy`): the same output files without contract checks, coverage report or the other grids;
- the whole-array warp (`rasterio.warp.reproject` into one in-memory 1 km float32 array per layer), as the grid
  assets did before they were streamed.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID_1KM = dict(resolution_deg=1 / 120, west=-180.0, north=90.0, width=43200, height=21600)
GRID_ASSETS = [
    "countries",
    "soc_stock_grid",
    "second_soc_stock_grid",
    "cropland_grid",
    "climate_zone_grid",
    "country_grid",
    "converted_land_grid",
]
STOCKS = ("soc_stock_2010_raster", "soc_stock_no_land_use_raster")


def measure_assets(folder: Path, grid: str) -> dict:
    from soil_pipeline.runner import run_job

    root = folder / f"root_{grid}"
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    outcome = run_job(root, raster_engine=GRID_1KM if grid == "1km" else None, asset_selection=GRID_ASSETS)
    seconds = time.perf_counter() - start
    assert outcome.success, outcome.failures()
    grids = sorted((root / "_runs").glob("*/intermediate/*.tif"))
    soc = outcome.layer("soc_stock_grid")
    events = outcome.result.all_events
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in events if e.is_step_success}
    return {
        "seconds": seconds,
        "steps": steps,
        "cells": soc.grid.width * soc.grid.height,
        "grid_files_mb": sum(p.stat().st_size for p in grids) / 1e6,
        "grid_files": len(grids),
        "coverage_both_cells": soc.alignment["coverage"]["both"]["cells"],
    }


def _warped(path: str):
    import rasterio
    from affine import Affine
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import Resampling

    g = GRID_1KM
    transform = Affine(g["resolution_deg"], 0, g["west"], 0, -g["resolution_deg"], g["north"])
    src = rasterio.open(path)
    vrt = WarpedVRT(
        src,
        crs=src.crs,
        transform=transform,
        width=g["width"],
        height=g["height"],
        resampling=Resampling.average,
        dtype="float32",
        nodata=float("nan"),
        src_nodata=src.nodata,
    )
    return src, vrt, transform


def measure_gdal_warp(folder: Path) -> dict:
    import rasterio.shutil

    from soil_pipeline.resources import InputDatasets

    inputs = InputDatasets()
    start = time.perf_counter()
    for name in STOCKS:
        src, vrt, _ = _warped(getattr(inputs, name))
        with src, vrt:
            options = dict(tiled=True, blockxsize=512, blockysize=512, compress="zstd", zstd_level=1)
            rasterio.shutil.copy(vrt, folder / f"gdal_{name}.tif", driver="GTiff", num_threads="ALL_CPUS", **options)
    return {"seconds": time.perf_counter() - start}


def measure_whole_array(folder: Path) -> dict:
    import numpy as np
    import rasterio
    from rasterio.warp import Resampling, reproject

    from soil_pipeline.resources import InputDatasets

    inputs = InputDatasets()
    start = time.perf_counter()
    cells = 0
    for name in STOCKS:
        src, vrt, transform = _warped(getattr(inputs, name))
        with src, vrt:
            out = np.full((GRID_1KM["height"], GRID_1KM["width"]), np.nan, dtype="float32")
            reproject(
                source=rasterio.band(src, 1),
                destination=out,
                src_nodata=src.nodata,
                dst_transform=transform,
                dst_crs=src.crs,
                dst_nodata=np.nan,
                resampling=Resampling.average,
            )
            cells += int(np.isfinite(out).sum())
            del out
    return {"seconds": time.perf_counter() - start, "finite_cells": cells}


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def _child(args) -> None:
    folder = Path(args.dir)
    if args.measure.startswith("assets"):
        out = measure_assets(folder, args.measure.split("_")[1])
    elif args.measure == "gdal":
        out = measure_gdal_warp(folder)
    else:
        out = measure_whole_array(folder)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _run(name: str, folder: Path) -> dict:
    cmd = [sys.executable, __file__, "--dir", str(folder), "--measure", name]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _child(args)
        return
    folder = Path(args.dir or tempfile.mkdtemp(prefix="soil_pipeline_grid_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    results = {name: _run(name, folder) for name in ("assets_5min", "assets_1km", "gdal", "whole")}
    small, big = results["assets_5min"], results["assets_1km"]
    print("grid assets (6 grids + countries) through Dagster, 2 threads, on the embedded 5' inputs")
    print("| common grid | cells | wall s | peak RSS MB | grid files (MB) |\n| --- | ---: | ---: | ---: | ---: |")
    for label, r in (("5' (4320 x 2160)", small), ("1 km (43200 x 21600)", big)):
        row = f"| {label} | {r['cells'] / 1e6:.1f} M | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f}"
        print(f"{row} | {r['grid_files_mb']:.0f} ({r['grid_files']}) |")
    print(f"\npeak RSS at 1 km / at 5': {big['peak_rss_mb'] / small['peak_rss_mb']:.2f} for 100x the cells")
    print("seconds per step at 1 km: " + ", ".join(f"{k} {v:.1f}" for k, v in big["steps"].items()))
    print("\nthe two SOC stock layers onto the 1 km grid (Resampling.average)")
    print("| method | wall s | peak RSS MB |\n| --- | ---: | ---: |")
    stock = big["steps"]["soc_stock_grid"]
    print(
        f"| soil_pipeline `soc_stock_grid` (contract pass over both inputs, windowed average, coverage) | {stock:.1f}"
        f" | {big['peak_rss_mb']:.0f} (whole run) |"
    )
    peers = (
        ("GDAL warper to tiled ZSTD GeoTIFFs (WarpedVRT, rasterio.shutil.copy)", results["gdal"]),
        ("whole-array warp (rasterio.warp.reproject into a 1 km array per layer)", results["whole"]),
    )
    for label, r in peers:
        print(f"| {label} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(f"\n(scratch folder: {folder})")


if __name__ == "__main__":
    main()
