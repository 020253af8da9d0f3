"""`dagster dev -w workspace.yaml` serves the asset graph on 127.0.0.1 (real webserver and daemon), with the check
results of a `soil-pipeline run` recorded in the same DAGSTER_HOME."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSET_QUERY = "{ assetNodes { assetKey { path } groupName } }"
CHECKS_QUERY = (
    "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name blocking "
    "executionForLatestMaterialization { status evaluation { severity metadataEntries { label } } } } } } } }"
)
STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    home, output_root = tmp_path_factory.mktemp("dagster_home"), tmp_path_factory.mktemp("published")
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    run = subprocess.run(
        [str(bin_dir / "soil-pipeline"), "run", "--output-root", str(output_root)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "Global SOC stock 0-30 cm, 2010:            867.1 Pg C" in run.stdout
    process = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield port, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _wait_for_assets(port: int, process) -> list:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            nodes = _graphql(port, ASSET_QUERY)["data"]["assetNodes"]
            if nodes:
                return nodes
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(1)
    return []


def test_graphql_lists_the_assets(dagster_dev):
    nodes = _wait_for_assets(*dagster_dev)
    assert nodes, "dagster dev did not serve the asset graph"
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    assert {"field_sites", "topsoil_soc_stocks", "soc_stock_grid", "regional_soc_stocks"} <= keys


def test_graphql_shows_every_contract_check_with_its_outcome_and_metadata(dagster_dev):
    port, process = dagster_dev
    assert _wait_for_assets(port, process)
    outcomes = {}
    for node in _graphql(port, CHECKS_QUERY)["data"]["assetNodes"]:
        for check in node["assetChecksOrError"]["checks"]:
            execution = check["executionForLatestMaterialization"]
            labels = {entry["label"] for entry in execution["evaluation"]["metadataEntries"]}
            key = ("/".join(node["assetKey"]["path"]), check["name"])
            outcomes[key] = (execution["status"], execution["evaluation"]["severity"], check["blocking"], labels)
    assert outcomes[("field_horizons", "contract")][:3] == ("FAILED", "WARN", False)
    assert {"rows_checked", "failures_by_rule", "failing_rows_sample"} <= outcomes[("field_horizons", "contract")][3]
    assert outcomes[("field_sites", "data_quality_gx")][0] == "SUCCEEDED"
    assert "data_docs" in outcomes[("field_horizons", "data_quality_gx")][3]
    for asset in ("topsoil_soc_stocks", "regional_soc_stocks", "countries", "soc_stock_grid", "field_horizons_rejects"):
        assert outcomes[(asset, "contract")][:3] == ("SUCCEEDED", "ERROR", True)
