"""The store under real processes: `kill -9` in the middle of writing a version, and two writers at once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from soil_pipeline.publishing.store import DATA_FILE, VersionedParquetStore, sha256_bytes
from soil_pipeline_tests.publish_worker import common_frame, large_frame, start_together

REPO = Path(__file__).resolve().parent.parent
# ~160 MB of incompressible Parquet: writing and syncing it keeps the file open long enough to be caught.
LARGE_ROWS = 20_000_000
WATCH_STEPS = 20_000
WATCH_STEP_S = 0.001
WRITERS = ("a", "b")
PUBLISHES_PER_WRITER = 15

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc to watch open files")


def worker(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "soil_pipeline_tests.publish_worker", *args]
    return subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE)


def open_staging_data(pid: int, asset_dir: Path) -> str | None:
    """The staging data file process `pid` has open under `asset_dir`, if any."""
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir() if fd_dir.is_dir() else []:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(f"{asset_dir}/.tmp-") and target.endswith(f"/{DATA_FILE}"):
            return target
    return None


def kill_mid_write(process: subprocess.Popen, asset_dir: Path) -> str:
    """SIGKILL `process` while it holds a staging data file open; the path of that half-written file."""
    for _ in range(WATCH_STEPS):
        if process.poll() is not None:
            break
        if open_staging_data(process.pid, asset_dir):
            os.kill(process.pid, signal.SIGSTOP)
            target = open_staging_data(process.pid, asset_dir)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            assert target, "the writer left the data file between two looks; enlarge LARGE_ROWS"
            return target
        time.sleep(WATCH_STEP_S)
    process.kill()
    pytest.fail(f"never caught the writer mid-write (exit code {process.wait()}): {process.stderr.read().decode()}")


def test_kill_9_mid_write_leaves_published_versions_and_catalog_intact(tmp_path):
    store = VersionedParquetStore(tmp_path)
    earlier = store.publish("large", large_frame(1000), {"inputs": {}, "parameters": {"rows": 1000}})
    other = store.publish("common", common_frame(), {"inputs": {}, "parameters": {}})
    catalog_before = (tmp_path / "catalog.json").read_bytes()

    half_written = Path(kill_mid_write(worker("large", str(tmp_path), str(LARGE_ROWS)), tmp_path / "large"))

    assert half_written.is_file() and half_written.parent.is_dir()
    assert (tmp_path / "catalog.json").read_bytes() == catalog_before
    assert [row["version"] for row in store.versions("large")] == [earlier.version]
    for published in (earlier, other):
        data = (Path(published.path) / DATA_FILE).read_bytes()
        assert sha256_bytes(data) == published.manifest["files"][DATA_FILE]
    pd.testing.assert_frame_equal(store.read("large"), large_frame(1000))

    again = store.publish("large", large_frame(2000), {"inputs": {}, "parameters": {"rows": 2000}})
    assert not half_written.parent.exists()
    assert sorted(p.name for p in (tmp_path / "large").iterdir()) == sorted([earlier.version, again.version])
    assert store.latest("large") == again.version


def test_two_writer_processes_never_corrupt_the_catalog_or_each_others_versions(tmp_path):
    root, start = tmp_path / "root", tmp_path / "start"
    writers = [worker("many", str(root), name, str(PUBLISHES_PER_WRITER), str(start)) for name in WRITERS]
    start_together(start, dict(zip(WRITERS, writers, strict=True)))
    errors = [process.communicate()[1].decode() for process in writers]
    assert [process.returncode for process in writers] == [0, 0], errors

    store = VersionedParquetStore(root)
    catalog = json.loads((root / "catalog.json").read_text())["versions"]
    assert len(catalog) == len(WRITERS) * PUBLISHES_PER_WRITER + 1
    assert sorted(row["asset"] for row in catalog if row["latest"]) == ["common", "shared"]
    for row in catalog:
        manifest = store.manifest(row["asset"], row["version"])
        data = (root / row["path"] / DATA_FILE).read_bytes()
        assert sha256_bytes(data) == row["data_sha256"] == manifest["files"][DATA_FILE]
    writers_seen = {store.read("shared", row["version"])["writer"].iloc[0] for row in store.versions("shared")}
    assert writers_seen == set(WRITERS)
    assert not [p for p in root.rglob(".tmp-*")]
