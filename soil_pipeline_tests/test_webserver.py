"""`dagster dev -w workspace.yaml` serves the asset graph on 127.0.0.1 (real webserver and daemon)."""

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


@pytest.fixture
def dagster_dev(tmp_path):
    port = _free_port()
    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
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


def test_graphql_lists_the_assets(dagster_dev):
    port, process = dagster_dev
    deadline = time.monotonic() + STARTUP_SECONDS
    nodes = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            nodes = _graphql(port, ASSET_QUERY)["data"]["assetNodes"]
            if nodes:
                break
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(1)
    assert nodes, "dagster dev did not serve the asset graph"
    keys = {"/".join(node["assetKey"]["path"]) for node in nodes}
    assert {"field_sites", "topsoil_soc_stocks", "soc_stock_grid", "regional_soc_stocks"} <= keys
