"""The store on an s3:// root, against an S3-compatible server started here on 127.0.0.1 (`s3_server.py`): publish
and read back, runs in several processes committing at once, and commits refused by the catalog's conditional write.
"""

import io
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
import s3fs

import soil_pipeline
from soil_pipeline import cli
from soil_pipeline.publishing import root as root_module
from soil_pipeline.publishing.root import CatalogConflict, OutputRoot
from soil_pipeline.publishing.store import CATALOG_FILE, DATA_FILE, VersionedParquetStore, sha256_bytes
from soil_pipeline_tests.publish_worker import common_frame, start_together
from soil_pipeline_tests.s3_server import s3_server

REPO = Path(__file__).resolve().parent.parent
PROVENANCE = {"inputs": {"drop": {"file": "sites.csv", "sha256": "ab" * 32}}, "parameters": {"depth_cm": 30}}
WRITERS = ("a", "b", "c")
PUBLISHES_PER_WRITER = 3
MAX_PUBLISHES_PER_WRITER = 30


def frame(values=(1.0, 2.0, 3.0)) -> pd.DataFrame:
    return pd.DataFrame({"site_id": pd.Series(["a", "b", "c"], dtype="str"), "soc_g_per_kg": list(values)})


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The server, and the environment every S3 client here (in this process and in workers) is configured by."""
    nowhere = tmp_path_factory.mktemp("aws") / "absent"
    with s3_server() as server, pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": server.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(nowhere),
            "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            env.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        yield server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def bucket(s3) -> str:
    name = f"soil-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    return name


def other_writer() -> s3fs.S3FileSystem:
    """An S3 client of its own, standing for another run's process."""
    return s3fs.S3FileSystem(skip_instance_cache=True)


def test_published_tables_read_back_through_the_store_pandas_pyarrow_and_the_cli(bucket):
    url = f"s3://{bucket}/published"
    store = VersionedParquetStore(url)
    first = store.publish("stocks", frame(), PROVENANCE, partition="2012-10")
    manifest = store.backend.read_bytes("stocks", first.version, "manifest.json")
    again = store.publish("stocks", frame(), PROVENANCE, partition="2012-10")
    sites = pd.DataFrame({"site_id": ["a", "b"], "lon": [36.8, 37.0], "lat": [-1.3, 0.5]})
    points = store.publish("sites", sites, PROVENANCE, points=("lon", "lat"))

    assert (store.root, first.path) == (url, f"{url}/stocks/{first.version}")
    assert (again.version, again.newly_published) == (first.version, False)
    assert store.backend.read_bytes("stocks", first.version, "manifest.json") == manifest  # never overwritten
    assert [(row["asset"], row["latest"]) for row in store.versions()] == [("sites", True), ("stocks", True)]
    pd.testing.assert_frame_equal(store.read("stocks"), frame())
    pd.testing.assert_frame_equal(soil_pipeline.read("stocks", root=url), frame())
    pd.testing.assert_frame_equal(store.read("sites"), sites)
    direct = pd.read_parquet(store.data_path("sites", points.version))  # pandas on the s3:// address itself
    assert list(direct.columns) == ["site_id", "lon", "lat", "geometry"]
    table = store.table_file("stocks", first.version)  # pyarrow, batch by batch where the file lies
    assert table.num_rows == 3
    pd.testing.assert_frame_equal(pd.concat(table.frames()).reset_index(drop=True), frame())
    listing = io.StringIO()
    with redirect_stdout(listing):
        assert cli.main(["versions", "--output-root", f"s3://{bucket}/x/../published/"]) == 0
    assert first.version in listing.getvalue() and points.version in listing.getvalue()


def test_processes_committing_to_one_s3_root_at_once_lose_no_catalog_entry(s3, bucket, tmp_path):
    url, start, stop = f"s3://{bucket}/root", tmp_path / "start", tmp_path / "stop"
    catalog = f"{bucket}/root/{CATALOG_FILE}"
    command = [sys.executable, "-m", "soil_pipeline_tests.publish_worker", "many", url]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen(
            [*command, name, str(PUBLISHES_PER_WRITER), str(start), str(stop), str(MAX_PUBLISHES_PER_WRITER)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in WRITERS
    ]
    start_together(start, dict(zip(WRITERS, writers, strict=True)))
    # Each writer goes on until a commit has met another's, so a slow machine that serialises them cannot skip the race.
    while s3.refused_puts(catalog) == 0 and any(process.poll() is None for process in writers):
        time.sleep(0.05)
    stop.touch()
    outputs = [process.communicate() for process in writers]
    assert [process.returncode for process in writers] == [0] * len(WRITERS), [err.decode() for _, err in outputs]
    published = dict(zip(WRITERS, (int(out) for out, _ in outputs), strict=True))
    assert s3.refused_puts(catalog) > 0, f"no commit met another in {published} publishes: the race was not tested"

    store = VersionedParquetStore(url)
    document = store.document()
    # Each publish is a run of its own: every one is listed, and so is every version it made.
    assert len(document["runs"]) == len({row["run_id"] for row in document["runs"]}) == 2 * sum(published.values())
    assert len(document["versions"]) == sum(published.values()) + 1
    assert sorted(row["asset"] for row in document["versions"] if row["latest"]) == ["common", "shared"]
    for row in document["versions"]:
        data = store.backend.read_bytes(row["path"], DATA_FILE)
        assert (
            sha256_bytes(data) == row["data_sha256"] == store.manifest(row["asset"], row["version"])["files"][DATA_FILE]
        )
    shared = [store.read("shared", row["version"]) for row in store.versions("shared")]
    assert {(part["writer"].iloc[0], int(part["index"].iloc[0])) for part in shared} == {
        (writer, index) for writer, count in published.items() for index in range(count)
    }
    assert min(published.values()) >= PUBLISHES_PER_WRITER
    pd.testing.assert_frame_equal(store.read("common"), common_frame())


def test_a_commit_redoes_its_change_on_what_another_writer_committed_meanwhile(s3, bucket):
    backend = OutputRoot.parse(f"s3://{bucket}/out").open()
    backend.update(CATALOG_FILE, lambda current: (b"first", None))
    other, seen = other_writer(), []

    def append_mine(current: bytes | None) -> tuple[bytes, int]:
        seen.append(current)
        if len(seen) == 1:  # the other writer commits between this read and this write
            other.pipe_file(backend.path(CATALOG_FILE), current + b" other")
        return current + b" mine", len(seen)

    assert backend.update(CATALOG_FILE, append_mine) == 2
    assert seen == [b"first", b"first other"]
    assert backend.read_bytes(CATALOG_FILE) == b"first other mine"
    assert s3.refused_puts(f"{bucket}/out/{CATALOG_FILE}") == 1


def test_a_commit_that_keeps_conflicting_gives_up_and_writes_nothing(s3, bucket, monkeypatch):
    monkeypatch.setattr(root_module, "COMMIT_ATTEMPTS", 3)
    backend = OutputRoot.parse(f"s3://{bucket}/out").open()
    backend.update(CATALOG_FILE, lambda current: (b"first", None))
    other = other_writer()

    def append_mine(current: bytes | None) -> tuple[bytes, None]:
        other.pipe_file(backend.path(CATALOG_FILE), current + b" other")
        return current + b" mine", None

    with pytest.raises(
        CatalogConflict,
        match=rf"^s3://{bucket}/out/catalog.json: another writer changed it between "
        "each of 3 reads and conditional writes; nothing was written$",
    ):
        backend.update(CATALOG_FILE, append_mine)
    assert backend.read_bytes(CATALOG_FILE) == b"first other other other"
    assert s3.refused_puts(f"{bucket}/out/{CATALOG_FILE}") == 3


def test_a_failed_run_and_a_refused_commit_leave_the_catalog_intact(bucket):
    store = VersionedParquetStore(f"s3://{bucket}/out")
    published = store.publish("stocks", frame(), PROVENANCE)
    catalog = store.backend.read_bytes(CATALOG_FILE)

    store.stage("run-failed", "stocks", frame((4.0, 5.0, 6.0)), PROVENANCE)
    store.mark_failed("run-failed")
    assert store.backend.read_bytes(CATALOG_FILE) == catalog

    store.stage("run-refused", "stocks", frame((7.0, 8.0, 9.0)), PROVENANCE)
    other_writer().pipe_file(store.backend.path(CATALOG_FILE), catalog[:-1])  # a truncated catalog
    with pytest.raises(ValueError, match=rf"s3://{bucket}/out/catalog.json: not a valid catalog"):
        store.commit_run("run-refused")
    assert store.backend.read_bytes(CATALOG_FILE) == catalog[:-1]
    other_writer().pipe_file(store.backend.path(CATALOG_FILE), catalog)
    assert store.latest("stocks") == published.version
    assert [row["run_id"] for row in store.document()["runs"]] == [json.loads(catalog)["runs"][0]["run_id"]]


def test_the_check_before_a_run_probes_conditional_writes_and_names_a_missing_bucket(s3, bucket):
    OutputRoot.parse(f"s3://{bucket}/out").check()
    probes = [key for (method, key, status) in s3.answers if key.startswith(f"{bucket}/out/.tmp-conditional")]
    assert len(set(probes)) == 1
    assert s3.refused_puts(probes[0]) == 2  # If-None-Match on an existing object, If-Match on another ETag
    assert s3fs.S3FileSystem().find(bucket) == []  # the probe is gone
    with pytest.raises(FileNotFoundError, match="bucket"):
        OutputRoot.parse(f"s3://absent-{bucket}/out").check()
