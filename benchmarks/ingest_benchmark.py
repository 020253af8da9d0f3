"""Ingest benchmark: rows/s and peak RSS of ingesting a field drop of 10k, 1M, 5M and 24.5M horizons (the last is a
1 GiB horizons.csv), against a named peer on the same file, plain `pandas.read_csv` + the same pandera schema, and a
floor: DuckDB reading both files and applying the contracts' type, required and range rules in SQL.

"Ingest" is what field_drop does, without Dagster: read both files in chunks (each chunk
through the drop's declaration, here the embedded AfSP layout), validate them against their contracts (types,
ranges, identical copies, unique keys, foreign keys, on land, regions, drop-level gates), compute the 0-30 cm stock
per site with country and climate zone, and publish the five tables (GeoParquet for sites and stocks) to a versioned
store. The peer reads the whole horizons file with type guessing and validates it; it computes nothing else. The
floor reads both files as text and counts, in one SQL pass per file, the rows breaking a type, required or range rule
(no rejects table, no cross-row rule, no stock, nothing written): what reading and checking alone cost. Each
measurement runs in a fresh Python process, so its peak RSS (ru_maxrss) is its own; imports and the upstream inputs
(land mask, countries, climate zones) are excluded from the time, not from the RSS. The synthetic drop has AfSP-like
columns and gaps (about 90 % of BD missing); it is written once per size under --work (default: a temporary folder)
and reused.

    python benchmarks/ingest_benchmark.py                 # 10k, 1M, 5M, 24.5M (peer up to 5M)
    python benchmarks/ingest_benchmark.py --rows 10000 1000000
"""

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

HORIZONS_PER_SITE = 5
CHUNK_SITES = 200_000
# About 1 GiB of horizons.csv (about 44 bytes per row).
GIGABYTE_ROWS = 24_500_000


def _horizon_chunk(rng, ids: np.ndarray) -> pa.Table:
    site = np.repeat(ids, HORIZONS_PER_SITE)
    upper = np.tile(np.arange(HORIZONS_PER_SITE) * 20.0, len(ids))

    def gappy(values, missing_share):
        return pa.array(np.round(values, 2), mask=rng.random(len(values)) < missing_share)

    n = len(site)
    return pa.table(
        {
            "SOURCEID": site,
            "UHDICM": upper,
            "LHDICM": upper + 20.0,
            "ORCDRC": gappy(rng.lognormal(2.0, 0.8, n), 0.25),
            "PHIHOX": gappy(rng.uniform(4.0, 9.0, n), 0.2),
            "SNDPPT": gappy(rng.uniform(0, 90, n), 0.35),
            "SLTPPT": gappy(rng.uniform(0, 40, n), 0.35),
            "CLYPPT": gappy(rng.uniform(0, 60, n), 0.35),
            "CRFVOL": gappy(rng.uniform(0, 30, n), 0.55),
            "BLD": gappy(rng.uniform(0.9, 1.7, n), 0.9),
        }
    )


def write_drop(folder: Path, n_horizons: int, seed: int = 0) -> tuple[Path, Path]:
    """sites.csv and horizons.csv with n_horizons rows (5 horizons per site, 0-20-40-60-80-100 cm), written in
    chunks of CHUNK_SITES sites so that large drops need little memory to make."""
    folder.mkdir(parents=True, exist_ok=True)
    sites_path, horizons_path = folder / "sites.csv", folder / "horizons.csv"
    if horizons_path.exists():
        return sites_path, horizons_path
    rng = np.random.default_rng(seed)
    n_sites = n_horizons // HORIZONS_PER_SITE
    site_writer = horizon_writer = None
    for start in range(0, n_sites, CHUNK_SITES):
        stop = min(n_sites, start + CHUNK_SITES)
        ids = np.char.add("SITE_", np.arange(start, stop).astype(str))
        sites = pa.table(
            {
                "SOURCEID": ids,
                "SOURCEDB": np.full(len(ids), "AfSPDB"),
                # on land in southern Africa, so the on_land and region rules pass
                "LONWGS84": np.round(rng.uniform(18.0, 32.0, len(ids)), 5),
                "LATWGS84": np.round(rng.uniform(-24.0, -2.0, len(ids)), 5),
                "TIMESTRR": np.full(len(ids), "2012-10-02"),
            }
        )
        horizons = _horizon_chunk(rng, ids)
        site_writer = site_writer or pa_csv.CSVWriter(sites_path, sites.schema)
        horizon_writer = horizon_writer or pa_csv.CSVWriter(horizons_path, horizons.schema)
        site_writer.write_table(sites)
        horizon_writer.write_table(horizons)
    site_writer.close()
    horizon_writer.close()
    return sites_path, horizons_path


def _context():
    """What field_drop gets from upstream assets, read straight from the embedded data:
    the WHRC land mask, the countries and the IPCC climate zones (on their own 0.5 deg grid)."""
    from soil_pipeline.engine.raster import RasterSource
    from soil_pipeline.ingest import site_references
    from soil_pipeline.readers import read_countries
    from soil_pipeline.resources import InputDatasets
    from soil_pipeline.science.grid import GridSpec, Layer
    from soil_pipeline_tests.whole_array import read_raster

    inputs = InputDatasets()
    land, regions = site_references(
        read_countries(inputs.countries_vector), RasterSource(inputs.soc_stock_2010_raster, "soc_stock")
    )
    zones = read_raster(inputs.climate_zones_raster)
    grid = GridSpec(zones.data.shape[1], zones.data.shape[0], zones.transform)
    return land, regions, Layer(zones.data, grid, "IPCC climate zone")


def _ours(sites_path: str, horizons_path: str, context) -> int:
    """field_drop without Dagster: read, validate (contracts, plausibility, gates), compute the 0-30 cm stocks from
    the same buckets and publish all five tables to a versioned store."""
    from soil_pipeline.contracts.declaration import DEFAULT_DECLARATION, load_declaration, plan_table, table_header
    from soil_pipeline.contracts.model import load_table_contract
    from soil_pipeline.ingest import Placement, validate_drop
    from soil_pipeline.publishing.store import VersionedParquetStore

    land, regions, zones = context
    contracts = {name: load_table_contract(name) for name in ("field_sites", "field_horizons")}
    paths = {"field_sites": Path(sites_path), "field_horizons": Path(horizons_path)}
    declaration = load_declaration(DEFAULT_DECLARATION)  # the AfSP layout, applied chunk by chunk as in field_drop
    plans = {
        name: plan_table(declaration, name, contracts[name], paths[name], table_header(paths[name])) for name in paths
    }
    with tempfile.TemporaryDirectory(prefix="ingest_benchmark_run_") as work:
        work = Path(work)
        placement = Placement.of(regions, zones)
        drop = validate_drop(
            paths, contracts, work / "drop", land=land, regions=regions, plans=plans, placement=placement
        )
        assert not drop.sites.batch_errors and not drop.horizons.batch_errors, drop.horizons.batch_errors
        assert drop.stocks_check.passed, drop.stocks_check.batch_errors
        store = VersionedParquetStore(str(work / "store"))
        points = ("longitude_deg", "latitude_deg")
        started = time.perf_counter()
        for asset, table, geo in (
            ("field_sites", drop.sites.valid, points),
            ("field_horizons", drop.horizons.valid, None),
            ("field_sites_rejects", drop.sites.rejects, None),
            ("field_horizons_rejects", drop.horizons.rejects, None),
            ("topsoil_soc_stocks", drop.stocks, points),
        ):
            store.stage("benchmark", asset, table, {}, "2012-10", points=geo)
        PUBLISHING_SECONDS.append(time.perf_counter() - started)
        return drop.horizons.n_checked if drop.stocks.num_rows else 0


# The seconds `_ours` spent publishing (its last run): the same bytes cost the same whatever validates them.
PUBLISHING_SECONDS: list[float] = []


def _peer(sites_path: str, horizons_path: str, context) -> int:
    import pandera.pandas as pandera

    from soil_pipeline.contracts.model import load_table_contract
    from soil_pipeline.contracts.pandera_schema import to_pandera

    contract = load_table_contract("field_horizons")
    frame = pd.read_csv(horizons_path).rename(columns=contract.source_columns())
    frame["identical_copies"] = 1
    with contextlib.suppress(pandera.errors.SchemaErrors):
        to_pandera(contract).validate(frame, lazy=True)
    return len(frame)


def _floor(sites_path: str, horizons_path: str, context) -> int:
    """Both files read by DuckDB as text, each cell cast once to its contract type, and the rows breaking a type,
    required or range rule counted in one SQL pass per file (the AfSP source columns, as the declaration maps them)."""
    import duckdb

    from soil_pipeline.contracts.declaration import DEFAULT_DECLARATION, load_declaration, plan_table, table_header
    from soil_pipeline.contracts.model import load_table_contract

    declaration, rows = load_declaration(DEFAULT_DECLARATION), 0
    with duckdb.connect() as connection:
        connection.execute("SET enable_progress_bar = false")
        for name, path in (("field_sites", sites_path), ("field_horizons", horizons_path)):
            contract = load_table_contract(name)
            plan = plan_table(declaration, name, contract, Path(path), table_header(Path(path)))
            columns = [
                (f"c{i}", source, contract.column(column))
                for i, (source, column) in enumerate(plan.source_columns.items())
            ]
            cells = ", ".join(_cell_sql(alias, source, column) for alias, source, column in columns)
            broken = " OR ".join(_broken_sql(alias, column) for alias, _, column in columns)
            rows += connection.execute(
                f"SELECT count(*), count_if({broken}) FROM (SELECT {cells} FROM read_csv(?, all_varchar = true))",
                [path],
            ).fetchone()[0]
    return rows


FLOOR_TYPES = {"number": "DOUBLE", "integer": "DOUBLE", "date": "DATE"}


def _cell_sql(alias: str, source: str, column) -> str:
    """A cell as text (`<alias>_text`, missing when blank) and cast once to its contract type (`<alias>`)."""
    text = f"nullif(trim(\"{source}\"), '')"
    kind = FLOOR_TYPES.get(column.logical_type)
    return f"{text} AS {alias}_text, " + (f"TRY_CAST({text} AS {kind})" if kind else text) + f" AS {alias}"


def _broken_sql(alias: str, column) -> str:
    """SQL true where a cell breaks its column's type, required or range rule."""
    rules = [f"({alias}_text IS NOT NULL AND {alias} IS NULL)"] if column.logical_type in FLOOR_TYPES else []
    if column.required:
        rules.append(f"{alias}_text IS NULL")
    if column.minimum is not None:
        rules.append(f"coalesce({alias} < {column.minimum}, false)")
    if column.maximum is not None:
        rules.append(f"coalesce({alias} > {column.maximum}, false)")
    return "(" + " OR ".join(rules or ["false"]) + ")"


def _measure(kind: str, sites_path: Path, horizons_path: Path) -> dict:
    """Run one ingest in a child process; its wall time and peak RSS."""
    code = "\n".join(
        [
            "import json, resource, sys, time",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "import ingest_benchmark as b",
            "import duckdb, geopandas, pandas, pandera.pandas, soil_pipeline.ingest, soil_pipeline.publishing.store",
            f"context = b._context() if {kind == 'ours'} else None  # what upstream assets hand to the ingest",
            "t = time.perf_counter()  # imports and upstream inputs excluded, contract loading included",
            f"n = b._{kind}({str(sites_path)!r}, {str(horizons_path)!r}, context)",
            "s = time.perf_counter() - t",
            "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024",
            "publishing = b.PUBLISHING_SECONDS[-1] if b.PUBLISHING_SECONDS else None",
            "print(json.dumps({'rows': n, 'seconds': s, 'peak_rss_mb': rss, 'publishing_seconds': publishing}))",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000, 5_000_000, GIGABYTE_ROWS])
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic drops (kept)")
    parser.add_argument(
        "--peer-max-rows", type=int, default=5_000_000, help="skip the peer above this (it holds the whole file)"
    )
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ingest_benchmark_"))
    print(
        "| horizons | horizons.csv MiB | sites.csv MiB | ingest | seconds | rows/s | peak RSS MB | "
        "soil_pipeline's seconds / these |"
    )
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for rows in args.rows:
        sites_path, horizons_path = write_drop(work / f"h{rows}", rows)
        sizes = f"{horizons_path.stat().st_size / 2**20:,.1f} | {sites_path.stat().st_size / 2**20:,.1f}"
        ours = None
        for kind, label in (
            ("ours", "soil_pipeline (read + contracts + stocks + publish)"),
            ("peer", "pandas.read_csv + pandera"),
            ("floor", "floor: DuckDB read + type, required, range rules in SQL"),
        ):
            if kind == "peer" and rows > args.peer_max_rows:
                print(f"| {rows:,} | {sizes} | {label} | not run (--peer-max-rows) | | | |", flush=True)
                continue
            m = _measure(kind, sites_path, horizons_path)
            ours = ours or m
            print(
                f"| {rows:,} | {sizes} | {label} | {m['seconds']:.1f} | {rows / m['seconds']:,.0f} | "
                f"{m['peak_rss_mb']:,.0f} | {ours['seconds'] / m['seconds']:.2f} |",
                flush=True,
            )
        # What no ingest that publishes these bytes can go below: the floor's reading and checking plus the
        # publishing of the five tables as timed inside the soil_pipeline run above (not a run of its own).
        below = m["seconds"] + ours["publishing_seconds"]
        label = f"floor + publishing the five tables ({ours['publishing_seconds']:.1f} s of the soil_pipeline run)"
        print(
            f"| {rows:,} | {sizes} | {label} | {below:.1f} | {rows / below:,.0f} | | {ours['seconds'] / below:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
