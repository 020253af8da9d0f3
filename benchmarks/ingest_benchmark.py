"""Ingest benchmark: rows/s and peak RSS of reading, validating and computing topsoil stocks for a horizons drop
of 10k, 1M and 5M rows, against a named peer on the same file: plain `pandas.read_csv` + the same pandera schema.

Each measurement runs in a fresh Python process, so its peak RSS (ru_maxrss) is its own. The synthetic drop has
AfSP-like columns and gaps (about 90 % of BD missing, a few out-of-range values); it is written once per size
under --work (default: a temporary folder) and reused.

    python benchmarks/ingest_benchmark.py                 # 10k, 1M, 5M
    python benchmarks/ingest_benchmark.py --rows 10000 1000000
"""

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

HORIZONS_PER_SITE = 5


def write_drop(folder: Path, n_horizons: int, seed: int = 0) -> tuple[Path, Path]:
    """sites.csv and horizons.csv with n_horizons rows (5 horizons per site, 0-20-40-60-80-100 cm)."""
    folder.mkdir(parents=True, exist_ok=True)
    sites_path, horizons_path = folder / "sites.csv", folder / "horizons.csv"
    if horizons_path.exists():
        return sites_path, horizons_path
    rng = np.random.default_rng(seed)
    n_sites = n_horizons // HORIZONS_PER_SITE
    ids = np.char.add("SITE_", np.arange(n_sites).astype(str).astype(object).astype(str))
    sites = pa.table(
        {
            "SOURCEID": ids,
            "SOURCEDB": np.full(n_sites, "AfSPDB"),
            "LONWGS84": np.round(rng.uniform(15.0, 35.0, n_sites), 5),
            "LATWGS84": np.round(rng.uniform(-25.0, 5.0, n_sites), 5),
            "TIMESTRR": np.full(n_sites, "2012-10-02"),
        }
    )
    pa_csv.write_csv(sites, sites_path)
    site = np.repeat(ids, HORIZONS_PER_SITE)
    upper = np.tile(np.arange(HORIZONS_PER_SITE) * 20.0, n_sites)

    def gappy(values, missing_share):
        return pa.array(np.round(values, 2), mask=rng.random(len(values)) < missing_share)

    n = len(site)
    horizons = pa.table(
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
    pa_csv.write_csv(horizons, horizons_path)
    return sites_path, horizons_path


def _ours(sites_path: str, horizons_path: str) -> int:
    from soil_pipeline.contracts.model import load_table_contract
    from soil_pipeline.contracts.validate import validate
    from soil_pipeline.readers import read_table_file
    from soil_pipeline.science.stocks import topsoil_stocks

    sites_contract, contract = load_table_contract("field_sites"), load_table_contract("field_horizons")
    sites = validate(read_table_file(Path(sites_path), sites_contract.source_columns()), sites_contract)
    foreign = {"field_sites.site_id": set(sites.valid["site_id"])}
    horizons = validate(read_table_file(Path(horizons_path), contract.source_columns()), contract, foreign)
    stocks = topsoil_stocks(sites.valid["site_id"], horizons.valid, bd_plausible_max_g_per_cm3=2.0)
    return len(horizons.valid) + len(horizons.rejects) if len(stocks) else 0


def _peer(sites_path: str, horizons_path: str) -> int:
    import pandas as pd
    import pandera.pandas as pandera

    from soil_pipeline.contracts.model import load_table_contract
    from soil_pipeline.contracts.pandera_schema import to_pandera

    contract = load_table_contract("field_horizons")
    frame = pd.read_csv(horizons_path).rename(columns=contract.source_columns())
    frame["identical_copies"] = 1
    with contextlib.suppress(pandera.errors.SchemaErrors):
        to_pandera(contract).validate(frame, lazy=True)
    return len(frame)


def _measure(kind: str, sites_path: Path, horizons_path: Path) -> dict:
    """Run one ingest in a child process; its wall time and peak RSS."""
    code = "\n".join(
        [
            "import json, resource, sys, time",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "import ingest_benchmark as b",
            "import pandas, pandera.pandas, soil_pipeline.contracts.validate, soil_pipeline.science.stocks",
            "t = time.perf_counter()  # imports excluded, contract loading included",
            f"n = b._{kind}({str(sites_path)!r}, {str(horizons_path)!r})",
            "s = time.perf_counter() - t",
            "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024",
            "print(json.dumps({'rows': n, 'seconds': s, 'peak_rss_mb': rss}))",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000, 5_000_000])
    parser.add_argument("--work", type=Path, default=None, help="folder for the synthetic drops (kept)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ingest_benchmark_"))
    print("| horizons | file MB | ingest | seconds | rows/s | peak RSS MB |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for rows in args.rows:
        sites_path, horizons_path = write_drop(work / f"h{rows}", rows)
        size_mb = (sites_path.stat().st_size + horizons_path.stat().st_size) / 2**20
        for kind, label in (
            ("ours", "soil_pipeline (read + contract + stocks)"),
            ("peer", "pandas.read_csv + pandera"),
        ):
            m = _measure(kind, sites_path, horizons_path)
            print(
                f"| {rows:,} | {size_mb:,.0f} | {label} | {m['seconds']:.1f} | {rows / m['seconds']:,.0f} | "
                f"{m['peak_rss_mb']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
