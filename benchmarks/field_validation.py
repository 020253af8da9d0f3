"""One million field sites validated against a global 1 km stock grid (43200 x 21600 cells): the pipeline's point
lookup and block-bootstrap metrics against a plain rasterio `sample()` loop.

    python benchmarks/field_validation.py [--dir /tmp/soil_pipeline_raster_bench] [--sites 1000000]
                                          [--peer-sites N]

The 1 km SOC layer is the one of benchmarks/raster_engine.py (generated in --dir on first use, about 2 minutes;
kept and shared with it). The sites are written once to --dir as Parquet: survey centres drawn among the land
cells of the embedded 5' WHRC layer, each survey's sites spread around its centre (normal, 0.3 degree) and listed
survey by survey as a survey file lists them, with a field stock of the 5' map value times a seeded log-normal
factor. Every measurement runs in its own process (peak RSS of that process; imports excluded from the seconds):

- soil_pipeline: `engine.points.sample_points` (the cells grouped by the file's internal tile, each tile holding a
  site read once) for the stock and the climate-zone class at every site, then `validation.grouped_agreement`,
  global and per climate zone: n, bias, RMSE, MEC, Lin's CCC and median ratio, each with its spatial block
  bootstrap interval (field_validation.yaml: 3 degree blocks, 1000 resamples), and the stated-error coverage;
- rasterio: `DatasetReader.sample()` over the sites (one windowed read per site, GDAL's block cache as
  configured) for the stock, then `validation.agreement` once, globally, without intervals or climate zones.
  `--peer-sites` stops it after that many sites, and its seconds are extrapolated to all sites (labelled).

The two lookups must agree value for value on the sites both read (checked, printed).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from raster_engine import generate

SEED = 20261206
SURVEYS = 2000
SPREAD_DEG = 0.3


def sites_path(folder: Path, n: int) -> Path:
    return folder / f"field_sites_{n}.parquet"


def make_sites(folder: Path, n: int) -> Path:
    """The benchmark's sites (see the module), written once."""
    import pandas as pd
    import rasterio

    from soil_pipeline.resources import InputDatasets

    path = sites_path(folder, n)
    if path.exists():
        return path
    with rasterio.open(InputDatasets().soc_stock_2010_raster) as src:
        soc5 = src.read(1).astype("float64")
        soc5[soc5 == src.nodata] = np.nan
        transform = src.transform
    rng = np.random.default_rng(SEED)
    land = np.flatnonzero(np.isfinite(soc5))
    centres = rng.choice(land, SURVEYS, replace=False)
    centre_lon, centre_lat = transform * (centres % soc5.shape[1] + 0.5, centres // soc5.shape[1] + 0.5)
    survey = np.sort(rng.integers(0, SURVEYS, n))  # listed survey by survey
    lon = np.clip(centre_lon[survey] + rng.normal(0, SPREAD_DEG, n), -179.999, 179.999)
    lat = np.clip(centre_lat[survey] + rng.normal(0, SPREAD_DEG, n), -89.999, 89.999)
    col, row = ~transform * (lon, lat)
    at_site = soc5[row.astype("int64").clip(0, soc5.shape[0] - 1), col.astype("int64").clip(0, soc5.shape[1] - 1)]
    typical = np.where(np.isfinite(at_site), at_site, np.nanmedian(soc5))
    field = typical * rng.lognormal(-0.15, 0.45, n)
    frame = pd.DataFrame({"longitude_deg": lon, "latitude_deg": lat, "field_t_c_per_ha": field, "survey": survey})
    frame.to_parquet(path, index=False)
    return path


def _read_sites(folder: Path, n: int):
    import pandas as pd

    return pd.read_parquet(sites_path(folder, n))


def measure_soil_pipeline(paths: dict, folder: Path, n: int) -> dict:
    from soil_pipeline.engine.points import sample_points
    from soil_pipeline.engine.raster import RasterSource, cap_gdal_cache
    from soil_pipeline.reference_data import bootstrap_settings
    from soil_pipeline.science.validation import grouped_agreement

    sites = _read_sites(folder, n)
    cap_gdal_cache()
    lon, lat = sites["longitude_deg"].to_numpy(), sites["latitude_deg"].to_numpy()
    start = time.perf_counter()
    sites["map"] = sample_points(RasterSource(str(paths["soc"])), lon, lat, np.nan).astype("float64")
    sites["climate_zone"] = sample_points(RasterSource(str(paths["classes"]), dtype="uint8", fill=0), lon, lat, 0)
    lookup = time.perf_counter() - start
    sites["error"] = 0.1 * sites["map"]  # a stated 1-sd error of 10 %, for the coverage figures' cost
    settings = bootstrap_settings()
    start = time.perf_counter()
    table = grouped_agreement(
        sites, {"global": None, "climate_zone": "climate_zone"}, settings, "map", "field_t_c_per_ha", "error"
    )
    metrics = time.perf_counter() - start
    world = table[table["region_type"] == "global"].iloc[0]
    return {
        "lookup_s": lookup,
        "metrics_s": metrics,
        "seconds": lookup + metrics,
        "rows": len(table),
        "resamples": settings.n_resamples,
        "global": {k: float(world[k]) for k in ("n_sites", "n_blocks", "bias_t_c_per_ha", "rmse_t_c_per_ha", "mec")},
        "global_intervals": {k: float(world[k]) for k in ("bias_t_c_per_ha_p05", "bias_t_c_per_ha_p95")},
        "map_checksum": _checksum(sites["map"].to_numpy()[: _peer_count(n)]),
    }


_PEER = {"sites": None}


def _peer_count(n: int) -> int:
    return min(n, _PEER["sites"] or n)


def _checksum(values: np.ndarray) -> list:
    finite = np.isfinite(values)
    return [int(finite.sum()), float(np.round(np.sum(values[finite], dtype="float64"), 3))]


def measure_rasterio(paths: dict, folder: Path, n: int) -> dict:
    import rasterio

    from soil_pipeline.science.validation import agreement

    sites = _read_sites(folder, n).iloc[: _peer_count(n)]
    points = list(zip(sites["longitude_deg"].tolist(), sites["latitude_deg"].tolist(), strict=True))
    start = time.perf_counter()
    with rasterio.open(paths["soc"]) as dataset:
        values = np.fromiter((v[0] for v in dataset.sample(points, indexes=1)), dtype="float64", count=len(points))
    lookup = time.perf_counter() - start
    start = time.perf_counter()
    world = agreement(values, sites["field_t_c_per_ha"].to_numpy())
    metrics = time.perf_counter() - start
    return {
        "lookup_s": lookup,
        "metrics_s": metrics,
        "seconds": (lookup * n / len(points)) + metrics,
        "sites_read": len(points),
        "global": {k: float(world[k]) for k in ("n", "bias_t_c_per_ha", "rmse_t_c_per_ha", "mec")},
        "map_checksum": _checksum(values),
    }


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def _run(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--dir", args.dir, "--sites", str(args.sites), "--measure", name]
    if args.peer_sites:
        cmd += ["--peer-sites", str(args.peer_sites)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/soil_pipeline_raster_bench")
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--peer-sites", type=int, default=None, help="rasterio reads this many sites, extrapolated")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.dir)
    _PEER["sites"] = args.peer_sites
    if args.measure:
        paths = generate(folder)
        measure = measure_soil_pipeline if args.measure == "soil_pipeline" else measure_rasterio
        out = measure(paths, folder, args.sites)
        out["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(out))
        return
    generate(folder)
    make_sites(folder, args.sites)
    print(f"{args.sites:,} sites in {SURVEYS} surveys against a 1 km grid (43200 x 21600), inputs in {folder}\n")
    results = {name: _run(name, args) for name in ("soil_pipeline", "rasterio")}
    mine, peer = results["soil_pipeline"], results["rasterio"]
    if mine["map_checksum"] != peer["map_checksum"]:
        raise SystemExit(f"the lookups differ: {mine['map_checksum']} against {peer['map_checksum']}")
    print("| validation | sites read | lookup s | metrics s | total s | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| soil_pipeline: `sample_points` (stock, climate zone) + global and per-zone metrics with "
        f"{mine['resamples']}-resample block-bootstrap intervals ({mine['rows']} rows) | {args.sites:,} | "
        f"{mine['lookup_s']:.1f} | {mine['metrics_s']:.1f} | {mine['seconds']:.1f} | {mine['peak_rss_mb']:,.0f} |"
    )
    extrapolated = " (extrapolated)" if peer["sites_read"] < args.sites else ""
    print(
        f"| rasterio `sample()` loop (stock) + global metrics, no intervals | {peer['sites_read']:,} | "
        f"{peer['lookup_s']:.1f} | {peer['metrics_s']:.2f} | {peer['seconds']:.1f}{extrapolated} | "
        f"{peer['peak_rss_mb']:,.0f} |"
    )
    print(f"\nlookups agree on {peer['sites_read']:,} sites ({mine['map_checksum'][0]:,} with a map value)")
    print(f"global (soil_pipeline): {json.dumps(mine['global'])} bias 90 % {json.dumps(mine['global_intervals'])}")


if __name__ == "__main__":
    main()
