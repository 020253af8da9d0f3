"""Dagster's own servers started for tests (the webserver, `dagster dev`, the daemon), and their GraphQL API."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ASSETS_QUERY = "{ assetNodes { assetKey { path } isMaterializable isPartitioned } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, seconds: float, probe, every: float = 1.0):
    """What `probe()` gives once it is true, asked every `every` seconds; the test fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


def start(command: list[str], cwd: Path, env: dict, log: Path | None = None) -> subprocess.Popen:
    """A server in its own process group, with Ctrl-C's default action restored; its output to `log` (else
    discarded).

    A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so would the servers:
    `dagster dev` maps SIGTERM onto SIGINT's handler, so it would ignore the SIGTERM of `stop` and wait out the grace
    period before being killed. Restored, the servers stop as they do in a user's terminal."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_sigint,  # resets one signal disposition between fork and exec
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(*processes: subprocess.Popen) -> None:
    """SIGTERM to every server's process group at once, then SIGKILL to those still running after 20 s."""
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes:
        try:
            process.wait(timeout=max(0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_assets(port: int, process: subprocess.Popen, seconds: float) -> bool:
    """Whether the webserver on `port` serves the asset graph within `seconds` (False if `process` ends first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if graphql(port, ASSETS_QUERY)["assetNodes"]:
                return True
        except OSError:
            time.sleep(1)
    return False
