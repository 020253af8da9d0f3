"""The versioned store never rewrites a published version and reuses the id of identical content."""

from pathlib import Path

import pandas as pd
import pytest

from soil_pipeline.publishing.parquet import read_provenance
from soil_pipeline.publishing.store import DATA_FILE, VersionedParquetStore

PROVENANCE = {"inputs": {"sites": {"file": "a.csv", "sha256": "0" * 64}}, "parameters": {"depth_cm": [0, 30]}}


def test_identical_content_maps_to_the_same_version(tmp_path):
    store = VersionedParquetStore(tmp_path)
    frame = pd.DataFrame({"site_id": ["a", "b"], "stock_t_c_per_ha": [30.0, 41.5]})
    first = store.publish("stocks", frame, PROVENANCE, run={"dagster_run_id": "r1"})
    again = store.publish("stocks", frame.copy(), PROVENANCE, run={"dagster_run_id": "r2"})
    assert first.newly_published and not again.newly_published
    assert again.version == first.version
    assert again.manifest["run"] == {"dagster_run_id": "r1"}
    assert read_provenance(Path(first.path) / DATA_FILE) == {"asset": "stocks", "partition": None, **PROVENANCE}


def test_new_content_is_a_new_version_and_the_old_one_stays(tmp_path):
    store = VersionedParquetStore(tmp_path)
    old = store.publish("stocks", pd.DataFrame({"x": [1.0]}), PROVENANCE)
    old_bytes = (Path(old.path) / DATA_FILE).read_bytes()
    new = store.publish("stocks", pd.DataFrame({"x": [2.0]}), PROVENANCE)
    assert new.version != old.version
    assert (Path(old.path) / DATA_FILE).read_bytes() == old_bytes
    assert store.latest("stocks") == new.version
    pd.testing.assert_frame_equal(store.read("stocks", version=old.version), pd.DataFrame({"x": [1.0]}))
    republished = store.publish("stocks", pd.DataFrame({"x": [1.0]}), PROVENANCE)
    assert republished.version == old.version and store.latest("stocks") == old.version


def test_partitions_have_their_own_latest(tmp_path):
    store = VersionedParquetStore(tmp_path)
    a = store.publish("sites", pd.DataFrame({"x": [1]}), PROVENANCE, partition="2024-01")
    b = store.publish("sites", pd.DataFrame({"x": [1]}), PROVENANCE, partition="2024-02")
    assert a.version != b.version
    assert store.latest_by_partition("sites") == {"2024-01": a.version, "2024-02": b.version}


def test_unwritable_frame_leaves_no_version(tmp_path):
    store = VersionedParquetStore(tmp_path)
    with pytest.raises(Exception, match="object"):
        store.publish("bad", pd.DataFrame({"x": [object()]}), PROVENANCE)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    assert store.catalog() == []
