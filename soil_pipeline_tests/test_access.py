"""Access for scientists: the CLI from a fresh process, `soil_pipeline.read`, and the README's one-liners."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd

import soil_pipeline
from soil_pipeline.publishing.store import VersionedParquetStore

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "soil_pipeline.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_versions_lists_every_version_with_its_latest_marker(embedded_run, tmp_path):
    _, root = embedded_run
    listing = cli("versions", "--output-root", str(root), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["asset", "partition", "version", "created_at", "row_count", "latest"]
    store = VersionedParquetStore(root)
    for row in store.catalog():
        assert any(line.split()[0] == row["asset"] and row["version"] in line and line.endswith("*") for line in lines)
    one = cli("versions", "countries", "--output-root", str(root), cwd=tmp_path)
    assert [line.split()[0] for line in one.stdout.splitlines()[1:]] == ["countries"]


def test_pull_copies_data_and_manifest_and_show_prints_head_and_provenance(embedded_run, tmp_path):
    _, root = embedded_run
    store = VersionedParquetStore(root)
    version = store.latest("regional_soc_stocks")
    pulled = cli("pull", "regional_soc_stocks", "--to", "copies", "--output-root", str(root), cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    target = tmp_path / "copies" / "regional_soc_stocks" / version
    assert pulled.stdout.strip() == str(target)
    manifest = json.loads((target / "manifest.json").read_text())
    assert hashlib.sha256((target / "data.parquet").read_bytes()).hexdigest() == manifest["files"]["data.parquet"]

    shown = cli("show", "field_sites", "--rows", "3", "--output-root", str(root), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "afsp_sites.csv" in shown.stdout and '"dagster_run_id"' in shown.stdout and '"sha256"' in shown.stdout


def test_cli_errors_are_one_line_and_exit_nonzero(embedded_run, tmp_path):
    _, root = embedded_run
    unknown = cli(
        "pull", "countries", "--version", "0123456789abcdef", "--to", "x", "--output-root", str(root), cwd=tmp_path
    )
    escape = cli("show", "../countries", "--output-root", str(root), cwd=tmp_path)
    assert (unknown.returncode, escape.returncode) == (1, 1)
    assert "no published version '0123456789abcdef'" in unknown.stderr
    assert "invalid asset name" in escape.stderr
    assert not (tmp_path / "x").exists()


def test_read_api_and_the_readme_one_liners_agree(embedded_run):
    _, root = embedded_run
    version = VersionedParquetStore(root).latest("regional_soc_stocks")
    api = soil_pipeline.read("regional_soc_stocks", root=str(root))
    pinned = soil_pipeline.read("regional_soc_stocks", version=version, root=str(root))
    by_pandas = pd.read_parquet(f"{root}/regional_soc_stocks/{version}/data.parquet")
    by_duckdb = duckdb.sql(f"SELECT * FROM '{root}/regional_soc_stocks/{version}/*.parquet'").df()
    pd.testing.assert_frame_equal(api, by_pandas)
    pd.testing.assert_frame_equal(pinned, by_pandas)
    assert by_duckdb["soc_stock_2010_pg_c"].tolist() == by_pandas["soc_stock_2010_pg_c"].tolist()


def test_importing_the_package_stays_light(tmp_path):
    probe = "import sys, soil_pipeline; print(sorted({'pandas', 'dagster', 'pyarrow'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_read_only_commands_never_import_dagster(tmp_path):
    drop = REPO / "soil_pipeline" / "data" / "landing" / "field_samples" / "2012-10"
    probe = (
        "import sys; from soil_pipeline.cli import main; "
        f"codes = [main(['drops']), main(['check-drop', {str(drop)!r}]), main(['versions', '--output-root', 'out'])]; "
        "print(codes, 'dagster' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.stdout.splitlines()[-1] == "[0, 0, 0] False", out.stderr
