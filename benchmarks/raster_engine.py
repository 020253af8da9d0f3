"""Per-country zonal sums on a global 1 km grid (43200 x 21600 = 933 M cells): the streaming raster engine against
the decode floor, exactextract and rasterstats, measured in alternated rounds; then the engine at 5', 1 km and 250 m
over a region (East Africa) for the memory-growth line. How to run it and the figures: benchmarks/README.md.

    python benchmarks/raster_engine.py [--dir /tmp/soil_pipeline_raster_bench] [--rounds 3] [--threads 2]
        [--exactextract-reader auto|gdal|rasterio] [--rasterstats-countries 12] [--window-cells N]
        [--baseline-checkout DIR] [--only floor,engine,...] [--no-growth] [--json results.json]

The inputs are generated deterministically on first use (about 0.65 GB, in --dir): a 1 km SOC stock layer (the
embedded WHRC 2010 5' stock, each 1 km cell perturbed by a seeded +-10 % noise; float32, NaN nodata) and a class
layer (the IPCC climate zones, 0.5 deg, repeated onto 1 km; uint8), both tiled 512 x 512 deflate GeoTIFFs; the
polygons are the embedded Natural Earth 1:10m countries, rasterized once onto each grid (untimed) for the engine.

Each round runs every contender once, each in its own process (peak RSS = that process's VmHWM; the seconds and the
CPU seconds, user + sys of all its threads, exclude imports), in one order in even rounds and the reverse order in
odd ones, so that the engine and the floor always run side by side. Every process gets the same GDAL block cache,
`GDAL_CACHEMAX` = the engine's cap (`GDAL_CACHE_MB`), and the peers, which have no threads of their own, get GDAL's
multi-threaded decoding of the blocks of each read (`GDAL_NUM_THREADS` = --threads). The machine's 1-minute load
average is recorded before and after each measurement. Ratios are taken within each round and reported as median
(min-max) over the rounds. Contenders:

- floor: decode exactly the windows the engine decodes and nothing else: per window the country layer, then, where
  it has any country (the engine's `gate`), the SOC and class layers; the same windows, --threads pass threads and
  per-thread open datasets as the engine (`raster.run_pass`, `raster.opened`);
- engine: one `zonal.zonal_statistics` pass over the SOC, class and country layers (--threads threads, gated on the
  country layer), and per country the SOC-covered area (ha), SOC stock (t C = t C/ha x cell area), sum and count of
  SOC values, and the country x climate-zone cross-tabulation of the area, the quantities given as `zonal.Quantity`
  terms and the cross-tabulation as `zonal.CrossZones` (summed in the per-zone loops, no array made for them);
- engine-arrays: the same pass with the quantities and the cross-tabulation made as numpy arrays per window;
- engine-baseline (with --baseline-checkout): engine-arrays run by the soil_pipeline of another checkout (e.g. the
  commit before a change); every engine variant must give bit-identical sums (checked);
- rasterize: the countries rasterized onto the 1 km grid (pixel-centre rule, window by window with
  `WindowRasterizer`, --threads threads) into a tiled int16 ZSTD GeoTIFF, as the pipeline's `country_grid` asset does
  once per grid before its passes;
- exactextract-feature-sequential, exactextract-raster-sequential: `exact_extract(soc, countries, ["sum",
  "count"])` (coverage-fraction weighted) with each of its strategies, reading through GDAL's Python bindings when
  they import (its fastest reader), else through rasterio;
- rasterstats: `zonal_stats(countries, soc, stats=["sum", "count"])` on --rasterstats-countries countries spread
  evenly over the ranks of bounding-box size (the largest left out: it reads each polygon's whole bounding box
  into memory, Russia's alone is 3.7 GB at 1 km), extrapolated to all countries by bounding-box cells (labelled).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

GRID_1KM = dict(resolution_deg=1 / 120, west=-180.0, north=90.0, width=43200, height=21600)
# 250 m over East Africa (28-52 E, 12 S-18 N; a 4p1000 priority region): 11520 x 14400 = 166 M cells, the 1 km
# layers averaged (SOC) or taken nearest (classes) onto it window by window.
GRID_250M_REGION = dict(resolution_deg=1 / 480, west=28.0, north=18.0, width=24 * 480, height=30 * 480)
SEED = 20260427
TILE = 512


N_CLASSES = 256


def _paths(folder: Path) -> dict[str, Path]:
    return {
        "soc": folder / "soc_1km.tif",
        "classes": folder / "climate_zones_1km.tif",
        "countries_1km": folder / "countries_1km.tif",
        "countries_5min": folder / "countries_5min.tif",
        "countries_250m": folder / "countries_250m_east_africa.tif",
        "countries_timed": folder / "countries_1km.timed.tif",
    }


def generate(folder: Path) -> dict[str, Path]:
    """The 1 km layers, written strip by strip (never whole in memory); kept when already there."""
    import rasterio
    from rasterio.windows import Window

    from soil_pipeline.resources import InputDatasets

    folder.mkdir(parents=True, exist_ok=True)
    paths = _paths(folder)
    if paths["soc"].exists() and paths["classes"].exists():
        return paths
    inputs = InputDatasets()
    with rasterio.open(inputs.soc_stock_2010_raster) as src:
        soc5 = src.read(1).astype("float32")
        soc5[src.read(1) == src.nodata] = np.nan
    with rasterio.open(inputs.climate_zones_raster) as src:
        zones = src.read(1)
        if src.transform.e > 0:  # stored south-up: flip to north-up
            zones = zones[::-1]
    profile = dict(
        driver="GTiff",
        width=GRID_1KM["width"],
        height=GRID_1KM["height"],
        count=1,
        crs="EPSG:4326",
        transform=rasterio.transform.from_origin(-180, 90, 1 / 120, 1 / 120),
        tiled=True,
        blockxsize=TILE,
        blockysize=TILE,
        compress="deflate",
        BIGTIFF="YES",
    )
    soc_tmp, cls_tmp = (p.with_suffix(".partial.tif") for p in (paths["soc"], paths["classes"]))
    with (
        rasterio.open(soc_tmp, "w", dtype="float32", nodata=np.nan, predictor=3, **profile) as soc_out,
        rasterio.open(cls_tmp, "w", dtype="uint8", nodata=0, predictor=2, **profile) as cls_out,
    ):
        for r0 in range(0, GRID_1KM["height"], TILE):
            rows = np.arange(r0, min(r0 + TILE, GRID_1KM["height"]))
            cols = np.arange(GRID_1KM["width"])
            # 1 km cell centre -> the 5' cell (WHRC stores 0.0833333 deg, 4320 x 2160) and the 0.5 deg cell
            r5, c5 = np.minimum(rows // 10, 2159), cols // 10
            noise = np.random.default_rng([SEED, r0]).uniform(0.9, 1.1, (len(rows), len(cols))).astype("float32")
            window = Window(0, r0, GRID_1KM["width"], len(rows))
            soc_out.write(soc5[np.ix_(r5, c5)] * noise, 1, window=window)
            cls_out.write(zones[np.ix_(rows // 60, cols // 60)].astype("uint8"), 1, window=window)
            print(f"  generated rows {r0}-{rows[-1]}", file=sys.stderr, flush=True)
    soc_tmp.rename(paths["soc"])
    cls_tmp.rename(paths["classes"])
    return paths


def warm_page_cache(files) -> None:
    """Read the files once, so that no measurement pays for the disk where the others read from memory (the first
    one would otherwise: a floor measured on a cold cache took 12 s instead of 4)."""
    for path in files:
        if path.exists():
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass


def _countries():
    import geopandas as gpd

    from soil_pipeline.resources import InputDatasets

    frame = gpd.read_file(InputDatasets().countries_vector)
    return frame.sort_values("ADM0_A3", kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- measurements


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all its threads (GDAL's own included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def timed(out: dict):
    """Sets out["seconds"] (wall) and out["cpu_seconds"] (user + sys) of the block."""
    cpu, start = _cpu_seconds(), time.perf_counter()
    yield out
    out["seconds"] = time.perf_counter() - start
    out["cpu_seconds"] = _cpu_seconds() - cpu


def _grid(grid_kind: str):
    from soil_pipeline.engine import raster as engine

    settings = {"1km": GRID_1KM, "250m": GRID_250M_REGION}.get(grid_kind, {})
    return engine.GridConfig(**settings).spec()


def engine_sources(paths: dict, grid_kind: str) -> dict:
    """The country layer (the gate, read first) and the SOC and class layers of a pass on `grid_kind`."""
    from soil_pipeline.engine import raster as engine

    country = engine.RasterSource(str(paths[f"countries_{grid_kind}"]), dtype="int16", fill=-1)
    if grid_kind in ("1km", "250m"):
        return {
            "country": country,
            "soc": engine.RasterSource(str(paths["soc"]), resampling="average"),
            "classes": engine.RasterSource(str(paths["classes"]), dtype="uint8", fill=0),
        }
    from soil_pipeline.resources import InputDatasets

    inputs = InputDatasets()
    return {
        "country": country,
        "soc": engine.RasterSource(inputs.soc_stock_2010_raster),
        "classes": engine.RasterSource(inputs.climate_zones_raster, dtype="int16", fill=0),
    }


def measure_floor(paths: dict, window_cells: int, threads: int) -> dict:
    """Decode what the engine decodes: the engine's windows, its gate, its threads and per-thread datasets."""
    from soil_pipeline.engine import raster as engine
    from soil_pipeline.engine import zonal

    sources, grid = engine_sources(paths, "1km"), _grid("1km")

    def decode(window):
        with engine.opened(sources["country"]) as dataset:
            if not (dataset.read(1, window=window) >= 0).any():
                return {}
        for name in ("soc", "classes"):
            with engine.opened(sources[name]) as dataset:
                dataset.read(1, window=window)
        return {"windows_decoded": np.ones(1)}

    with timed(out := {}):
        _, block = zonal.plan(sources, grid)
        window_list = engine.windows(grid, zonal.window_block(block, grid), window_cells)
        total, report = engine.run_pass(decode, window_list, threads=threads, label="decode floor")
    out.update(windows=report.windows, windows_decoded=int(total["windows_decoded"][0]))
    return out


def rasterize_countries(grid, path: Path, threads: int = 2) -> None:
    """The countries on `grid` (index in `_countries()`, -1 = none), rasterized window by window on `threads`
    threads and written in window order to a tiled int16 GeoTIFF."""
    import rasterio

    from soil_pipeline.engine import raster as engine
    from soil_pipeline.science.grid import window_grid
    from soil_pipeline.science.regions import WindowRasterizer

    rasterizer = WindowRasterizer(_countries().geometry.values)
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=1, crs=grid.crs)
    profile.update(transform=grid.transform, tiled=True, blockxsize=TILE, blockysize=TILE, BIGTIFF="YES")
    # ZSTD without a predictor decodes about 10x faster than deflate with one (measured: 0.3 against 3 ms a window)
    profile.update(compress="zstd", zstd_level=1)
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", dtype="int16", nodata=-1, **profile) as out:

        def write(window, part):
            out.write(part.pop("country"), 1, window=window)
            return part

        def task(window):
            return {"country": rasterizer(window_grid(grid, window)).astype("int16")}

        windows = engine.windows(grid, (TILE, TILE))
        engine.run_pass(task, windows, threads=threads, label="rasterize countries", consume=write)
    partial.rename(path)


def measure_rasterize(paths: dict, threads: int) -> dict:
    """The 1 km country layer made again, into a scratch file (the engine's input stays as it is)."""
    with timed(out := {}):
        rasterize_countries(_grid("1km"), paths["countries_timed"], threads)
    paths["countries_timed"].unlink()
    return out


def prepare(paths: dict, threads: int) -> dict:
    """The country layers the engine reads, made once (untimed) where missing."""
    for kind in ("5min", "1km", "250m"):
        if not paths[f"countries_{kind}"].exists():
            rasterize_countries(_grid(kind), paths[f"countries_{kind}"], threads)
    return {}


def cell_quantities(layers, row_area_ha):
    """Per cell: SOC-covered area (ha), SOC stock (t C = t C/ha x cell area), the SOC value and 1 per SOC value,
    as `zonal.Quantity` terms summed in the per-zone loops (no array made for them)."""
    from soil_pipeline.engine.zonal import Quantity

    soc = layers["soc"]
    return {
        "area_ha": Quantity(soc, row_area_ha, count=True),
        "stock_t_c": Quantity(soc, row_area_ha),
        "soc_sum": soc,
        "soc_count": Quantity(soc, count=True),
    }


def country_zonings(layers):
    from soil_pipeline.engine.zonal import CrossZones

    country = layers["country"]
    return {"country": country, "country_x_class": CrossZones(country, layers["classes"], N_CLASSES)}


def cell_quantity_arrays(layers, row_area_ha):
    """`cell_quantities` as numpy arrays (NaN = no SOC: not summed), the same values: `np.where(missing, nan,
    area)`, `soc * area` (float32 SOC times float64 area is computed in float64 either way), ..."""
    soc = layers["soc"]
    missing = np.isnan(soc)
    area = np.empty(soc.shape)
    np.copyto(area, row_area_ha[:, None])
    stock = soc.astype("float64")
    stock *= area
    area[missing] = np.nan
    return {"area_ha": area, "stock_t_c": stock, "soc_sum": soc, "soc_count": ~missing}


def country_zoning_arrays(layers):
    from soil_pipeline.engine import zonal

    country = layers["country"]
    return {"country": country, "country_x_class": zonal.cross(country, layers["classes"], N_CLASSES)}


def measure_engine(paths: dict, grid_kind: str, window_cells: int, threads: int, arrays: bool = False) -> dict:
    """One pass; with `arrays` the quantities and the cross-tabulation are numpy arrays (as an engine before
    `zonal.Quantity` needs them), else `zonal.Quantity` and `zonal.CrossZones` terms."""
    import hashlib

    from soil_pipeline.engine import zonal

    quantities, zonings = (
        (cell_quantity_arrays, country_zoning_arrays) if arrays else (cell_quantities, country_zonings)
    )
    n_countries = len(_countries())
    sources = engine_sources(paths, grid_kind)
    sizes = {"country": n_countries, "country_x_class": n_countries * N_CLASSES}
    names = {"country_x_class": ["area_ha"]}
    # JIT warm-up, not timed: one cell of each layer's type compiles the per-zone loops for these types
    cell = {name: np.zeros((1, 1), source.dtype) for name, source in sources.items()}
    zonal.window_sums(quantities(cell, np.ones(1)), zonings(cell), sizes, names)
    with timed(out := {}):
        sums, report, _ = zonal.zonal_statistics(
            sources,
            _grid(grid_kind),
            quantities,
            zonings,
            sizes,
            threads=threads,
            window_cells=window_cells,
            names=names,
            gate="country",
        )
    digest = hashlib.sha256(b"".join(name.encode() + sums[name].tobytes() for name in sorted(sums)))
    out.update(
        windows=report.windows,
        world_stock_pg_c=float(sums["country/stock_t_c"].sum() / 1e9),
        per_country_soc_sum=sums["country/soc_sum"].tolist(),
        sums_sha256=digest.hexdigest(),
    )
    return out


def exactextract_raster(path: str, reader: str):
    """(exactextract's raster source on `path`, what reads it): GDAL's Python bindings unless `reader` is
    "rasterio" or (for "auto") they do not import."""
    from exactextract.raster import GDALRasterSource, RasterioRasterSource

    if reader != "rasterio":
        try:
            from osgeo import gdal, gdal_array  # noqa: F401 (exactextract needs gdal_array to read)
        except ImportError:
            if reader == "gdal":
                raise
        else:
            return GDALRasterSource(path), f"GDAL {gdal.__version__} Python bindings"
    import rasterio

    return RasterioRasterSource(path), f"rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__})"


def measure_exactextract(paths: dict, strategy: str, reader: str) -> dict:
    from exactextract import exact_extract

    countries = _countries()
    with timed(out := {}):
        raster, out["reader"] = exactextract_raster(str(paths["soc"]), reader)
        result = exact_extract(raster, countries, ["sum", "count"], strategy=strategy, output="pandas")
    out["per_country_soc_sum"] = result["sum"].tolist()
    return out


def _bbox_cells(geometry) -> int:
    west, south, east, north = geometry.bounds
    return int(np.ceil((east - west) * 120) * np.ceil((north - south) * 120))


def measure_rasterstats(paths: dict, n: int) -> dict:
    from rasterstats import zonal_stats

    countries = _countries()
    cells = np.array([_bbox_cells(g) for g in countries.geometry])
    ranked = np.argsort(cells, kind="stable")[: int(0.95 * len(cells))]
    subset = ranked[np.linspace(0, len(ranked) - 1, n).round().astype(int)]
    polygons = list(countries.geometry.values[subset])
    with timed(out := {}):
        zonal_stats(polygons, str(paths["soc"]), stats=["sum", "count"], nodata=np.nan)
    scale = cells.sum() / cells[subset].sum()
    out.update(
        seconds_subset=out["seconds"],
        cpu_seconds_subset=out["cpu_seconds"],
        countries=int(n),
        seconds=out["seconds"] * scale,
        cpu_seconds=out["cpu_seconds"] * scale,
    )
    return out


def _child(args) -> None:
    paths = _paths(Path(args.dir))
    name = args.measure
    if name == "prepare":
        out = prepare(paths, args.threads)
    elif name == "floor":
        out = measure_floor(paths, args.window_cells, args.threads)
    elif name == "rasterize":
        out = measure_rasterize(paths, args.threads)
    elif name in ("engine", "engine-arrays", "engine-baseline"):
        out = measure_engine(paths, "1km", args.window_cells, args.threads, arrays=name != "engine")
    elif name.startswith("engine-"):
        out = measure_engine(paths, name.split("-")[1], args.window_cells, args.threads)
    elif name.startswith("exactextract-"):
        out = measure_exactextract(paths, name.removeprefix("exactextract-"), args.exactextract_reader)
    else:
        out = measure_rasterstats(paths, args.rasterstats_countries)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


# --------------------------------------------------------------------------------------------- the rounds

PEERS = ("exactextract-feature-sequential", "exactextract-raster-sequential", "rasterstats")
CONTENDERS = ("floor", "engine", "engine-arrays", "engine-baseline", "rasterize", *PEERS)


def _run(name: str, args) -> dict:
    """One measurement in its own process, with the load average before and after it."""
    from soil_pipeline.engine.raster import GDAL_CACHE_MB

    env = dict(os.environ, GDAL_CACHEMAX=str(GDAL_CACHE_MB))
    if name in PEERS:
        env["GDAL_NUM_THREADS"] = str(args.threads)
    if name == "engine-baseline":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.baseline_checkout, env.get("PYTHONPATH")]))
    cmd = [sys.executable, __file__, "--measure", name, "--dir", args.dir, "--threads", str(args.threads)]
    cmd += ["--window-cells", str(args.window_cells), "--exactextract-reader", args.exactextract_reader]
    cmd += ["--rasterstats-countries", str(args.rasterstats_countries)]
    load_start = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(load_start=load_start, load_end=os.getloadavg()[0])
    return out


def _mmm(values, digits: int = 2) -> str:
    """median (min-max)"""
    v = np.asarray(values, dtype=float)
    return f"{np.median(v):.{digits}f} ({v.min():.{digits}f}-{v.max():.{digits}f})"


def _loads(results: list[dict]) -> str:
    loads = [r[key] for r in results for key in ("load_start", "load_end")]
    return f"{min(loads):.2f}-{max(loads):.2f}"


def _labels(args, rounds) -> dict:
    reader = next((r[n]["reader"] for r in rounds for n in PEERS if n in r and "reader" in r[n]), "")
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    return {
        "floor": f"decode floor: the windows the engine decodes, nothing computed ({threads})",
        "engine": f"soil_pipeline engine pass ({threads}; + area, stock, country x class cross-tab)",
        "engine-arrays": f"the same pass, quantities and cross-tab made as numpy arrays ({threads})",
        "engine-baseline": f"the same pass with arrays, soil_pipeline of {args.baseline_checkout} ({threads})",
        "rasterize": f"rasterize the countries once per grid ({threads}; one-time, before passes)",
        "exactextract-feature-sequential": f"exactextract `sum`, `count`, feature-sequential, {reader}",
        "exactextract-raster-sequential": f"exactextract `sum`, `count`, raster-sequential, {reader}",
        "rasterstats": f"rasterstats `sum`, `count`, extrapolated from {args.rasterstats_countries} countries"
        " by bounding-box cells",
    }


def report(args, rounds: list[dict[str, dict]]) -> None:
    names = [n for n in CONTENDERS if n in rounds[0]]
    labels = _labels(args, rounds)
    floor = [r["floor"]["seconds"] for r in rounds] if "floor" in names else None
    floor_cpu = [r["floor"]["cpu_seconds"] for r in rounds] if "floor" in names else None
    print(
        f"\n1 km global grid (43200 x 21600), Natural Earth 1:10m countries, per-country sum and count; windows of"
        f" {args.window_cells} cells; GDAL_CACHEMAX {args.gdal_cache_mb} MB for all; peers with"
        f" GDAL_NUM_THREADS={args.threads}; {len(rounds)} rounds, median (min-max)\n"
    )
    print("| contender | wall s | CPU s (user + sys) | peak RSS MB | x floor (wall) | x floor (CPU s) | load avg |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        results = [r[name] for r in rounds]
        wall = [r["seconds"] for r in results]
        cpu, rss = [r["cpu_seconds"] for r in results], [r["peak_rss_mb"] for r in results]
        ratio = _mmm(np.divide(wall, floor)) if floor else ""
        cpu_ratio = _mmm(np.divide(cpu, floor_cpu)) if floor else ""
        print(
            f"| {labels[name]} | {_mmm(wall, 1)} | {_mmm(cpu, 1)} | {_mmm(rss, 0)} | {ratio} | {cpu_ratio}"
            f" | {_loads(results)} |"
        )
    if "floor" in names:
        decoded = rounds[0]["floor"]
        skipped = 1 - decoded["windows_decoded"] / decoded["windows"]
        print(
            f"\nThe floor and the engine decode {decoded['windows_decoded']} of {decoded['windows']} windows"
            f" ({skipped * 100:.1f} % have no country)."
        )
    if "engine" not in names:
        return
    engine = rounds[0]["engine"]
    others = [n for n in names if n in PEERS or n in ("engine-arrays", "engine-baseline")]
    if others:
        print(
            "\n| against the engine pass (ratios within each round) | wall: them / engine | CPU s: them / engine"
            " | peak RSS: them / engine |"
        )
        print("| --- | ---: | ---: | ---: |")
        for name in others:
            ratios = {
                key: [r[name][key] / r["engine"][key] for r in rounds]
                for key in ("seconds", "cpu_seconds", "peak_rss_mb")
            }
            print(
                f"| {labels[name]} | {_mmm(ratios['seconds'])} | {_mmm(ratios['cpu_seconds'])}"
                f" | {_mmm(ratios['peak_rss_mb'])} |"
            )
    digests = {r[n]["sums_sha256"] for r in rounds for n in ("engine", "engine-arrays", "engine-baseline") if n in r}
    print(f"\nsums of every engine variant and round bit-identical: {'yes' if len(digests) == 1 else 'NO'}")
    if "rasterize" in names:
        both = [r["rasterize"]["seconds"] + r["engine"]["seconds"] for r in rounds]
        print(f"\nrasterize once + one engine pass: {_mmm(both, 1)} s")
    exact = [n for n in names if n.startswith("exactextract-")]
    if exact:
        best = min(exact, key=lambda n: np.median([r[n]["seconds"] for r in rounds]))
        mine, theirs = np.array(engine["per_country_soc_sum"]), np.array(rounds[0][best]["per_country_soc_sum"])
        big = theirs > np.nanpercentile(theirs, 50)
        diff = np.abs(mine[big] - theirs[big]) / theirs[big]
        print(
            f"\nper-country SOC sums, engine (cell centres) vs exactextract (coverage fractions), larger half of the"
            f" countries: median {np.median(diff) * 100:.2f} %, max {diff.max() * 100:.2f} %"
        )


def report_growth(args, rounds) -> None:
    small, region = _run("engine-5min", args), _run("engine-250m", args)
    engine = [r["engine"] for r in rounds]
    print("\nmemory growth of the engine (same pass; 1 km: the rounds above, 5' and 250 m: once after them)")
    print("| grid | cells | wall s | peak RSS MB | load avg |\n| --- | ---: | ---: | ---: | ---: |")
    print(f"| 5' (4320 x 2160) | 9.3 M | {small['seconds']:.1f} | {small['peak_rss_mb']:.0f} | {_loads([small])} |")
    wall, rss = [r["seconds"] for r in engine], [r["peak_rss_mb"] for r in engine]
    print(f"| 1 km (43200 x 21600) | 933 M | {_mmm(wall, 1)} | {_mmm(rss, 0)} | {_loads(engine)} |")
    print(
        f"| 250 m over East Africa (11520 x 14400; 1 km layers resampled per window) | 166 M"
        f" | {region['seconds']:.1f} | {region['peak_rss_mb']:.0f} | {_loads([region])} |"
    )


def main() -> None:
    from soil_pipeline.engine.raster import GDAL_CACHE_MB, WINDOW_CELLS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/soil_pipeline_raster_bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="engine and floor threads; GDAL_NUM_THREADS of peers")
    parser.add_argument("--exactextract-reader", choices=("auto", "gdal", "rasterio"), default="auto")
    parser.add_argument("--rasterstats-countries", type=int, default=12)
    parser.add_argument("--window-cells", type=int, default=WINDOW_CELLS, help="cells per window, floor and engine")
    parser.add_argument("--baseline-checkout", help="also time the engine pass of the soil_pipeline in this folder")
    parser.add_argument("--only", help="comma-separated contenders (default: all)")
    parser.add_argument("--no-growth", action="store_true", help="leave out the 5' and 250 m passes")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _child(args)
        return
    args.gdal_cache_mb = GDAL_CACHE_MB
    names = [n for n in CONTENDERS if n != "engine-baseline" or args.baseline_checkout]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    start = time.perf_counter()
    paths = generate(Path(args.dir))
    _run("prepare", args)
    print(f"inputs ready in {args.dir} ({time.perf_counter() - start:.0f} s)")
    warm_page_cache(paths.values())
    print(f"page cache warmed: {', '.join(p.name for p in paths.values() if p.exists())} read once")
    rounds = []
    for number in range(args.rounds):
        rounds.append({})
        for name in names if number % 2 == 0 else names[::-1]:
            r = rounds[-1][name] = _run(name, args)
            print(
                f"round {number + 1} {name}: {r['seconds']:.2f} s, CPU {r['cpu_seconds']:.2f} s,"
                f" {r['peak_rss_mb']:.0f} MB, load {r['load_start']:.2f} -> {r['load_end']:.2f}",
                flush=True,
            )
    report(args, rounds)
    if "engine" in names and not args.no_growth:
        report_growth(args, rounds)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
