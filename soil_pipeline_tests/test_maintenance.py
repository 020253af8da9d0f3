"""doctor and gc on real folders: what they find, what gc removes, and that it never removes a listed version."""

import os
import time

import pandas as pd

from soil_pipeline.publishing.maintenance import doctor, gc
from soil_pipeline.publishing.store import DATA_FILE, RUNS_DIR, VersionedParquetStore

PROVENANCE = {"inputs": {}, "parameters": {}}


def frame(value: float) -> pd.DataFrame:
    return pd.DataFrame({"site_id": ["a", "b"], "value": [value, value + 1]})


def test_a_failed_run_lists_nothing_and_gc_removes_only_what_it_wrote(tmp_path):
    store = VersionedParquetStore(tmp_path)
    good = store.stage("run-good", "stocks", frame(1.0), PROVENANCE)
    store.stage("run-good", "regional", frame(2.0), PROVENANCE)
    store.commit_run("run-good")
    catalog = (tmp_path / "catalog.json").read_bytes()

    failed = store.stage("run-bad", "stocks", frame(9.0), PROVENANCE)
    store.mark_failed("run-bad")
    assert (tmp_path / "catalog.json").read_bytes() == catalog
    assert store.latest("stocks") == good.version
    assert doctor(store).unlisted == [f"stocks/{failed.version}"]

    assert gc(store)[0] == []  # a re-execution from failure may still continue it
    removed, freed = gc(store, grace_hours=0)
    assert sorted(removed) == [f"{RUNS_DIR}/run-bad", f"stocks/{failed.version}"] and freed > 0
    assert (tmp_path / "catalog.json").read_bytes() == catalog
    report = doctor(store)
    assert (report.problems, report.unlisted, report.leftovers, report.checked) == ([], [], [], 2)


def test_a_live_run_keeps_what_it_staged_until_the_grace_period_ends(tmp_path):
    store = VersionedParquetStore(tmp_path)
    live = store.stage("run-live", "stocks", frame(3.0), PROVENANCE)
    assert gc(store)[0] == []
    assert (tmp_path / "stocks" / live.version).is_dir()
    old = time.time() - 3 * 3600
    for path in (tmp_path / RUNS_DIR / "run-live").rglob("*"):
        os.utime(path, (old, old))
    removed, _ = gc(store, grace_hours=2)
    assert sorted(removed) == [f"{RUNS_DIR}/run-live", f"stocks/{live.version}"]


def test_gc_keeps_the_latest_runs_and_every_listed_version(tmp_path):
    store = VersionedParquetStore(tmp_path)
    for index in range(4):
        store.stage(f"run-{index}", "stocks", frame(float(index)), PROVENANCE)
        store.write_intermediate(f"run-{index}", "grid", None, ".parquet", b"not read here")
        store.commit_run(f"run-{index}")
    removed, _ = gc(store, keep_runs=2)
    assert sorted(removed) == [f"{RUNS_DIR}/run-0", f"{RUNS_DIR}/run-1"]
    assert len(store.versions("stocks")) == 4
    assert store.document()["intermediates"] == {"grid": f"{RUNS_DIR}/run-3/intermediate/grid.parquet"}
    assert doctor(store).problems == []


def test_doctor_finds_damaged_versions_leftovers_and_sizes(tmp_path):
    store = VersionedParquetStore(tmp_path)
    published = store.publish("stocks", frame(1.0), PROVENANCE)
    (tmp_path / "stocks" / published.version / DATA_FILE).write_bytes(b"tampered")
    (tmp_path / "stocks" / ".tmp-0123456789abcdef-dead").mkdir()
    report = doctor(store)
    assert report.problems == [f"stocks/{published.version}/{DATA_FILE}: sha256 differs from the catalog's"]
    assert report.leftovers == ["stocks/.tmp-0123456789abcdef-dead"]
    assert report.sizes["published versions"] > 0
    assert gc(store)[0] == ["stocks/.tmp-0123456789abcdef-dead"]


def test_a_grid_read_in_place_from_a_committed_run_survives_gc_of_that_run(tmp_path):
    """A run reads the latest grid of an earlier run in place (window by window, for as long as its step takes);
    meanwhile two newer runs commit and gc removes the earlier run's folder: the reader's hard link keeps it."""
    store = VersionedParquetStore(tmp_path)
    store.write_intermediate("run-0", "grid", None, ".tif", b"grid of run 0")
    store.commit_run("run-0")
    suffix, path = store.intermediate_location("run-reader", "grid", None, reader="run-reader")
    assert suffix == ".tif" and path == str(tmp_path / RUNS_DIR / "run-reader" / "inputs" / "grid.tif")
    for index in (1, 2):
        store.write_intermediate(f"run-{index}", "grid", None, ".tif", f"grid of run {index}".encode())
        store.commit_run(f"run-{index}")
    removed, _ = gc(store, keep_runs=1, grace_hours=1)
    assert f"{RUNS_DIR}/run-0" in removed and not (tmp_path / RUNS_DIR / "run-0").exists()
    with open(path, "rb") as handle:
        assert handle.read() == b"grid of run 0"
    own = store.intermediate_location("run-2", "grid", None, reader="run-2")[1]
    assert own == str(tmp_path / RUNS_DIR / "run-2" / "intermediate" / "grid.tif")  # a run's own file: no link
