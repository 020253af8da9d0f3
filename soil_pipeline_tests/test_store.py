"""The versioned store on real filesystems: content ids, manifests, catalog, safe paths, fsspec roots, cleanup."""

import fcntl
import json
import uuid

import geopandas
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from soil_pipeline.publishing.parquet import arrow_table, read_provenance
from soil_pipeline.publishing.root import OutputRoot
from soil_pipeline.publishing.store import DATA_FILE, MANIFEST_FILE, VersionedParquetStore, sha256_bytes

PROVENANCE = {"inputs": {"drop": {"file": "sites.csv", "sha256": "ab" * 32}}, "parameters": {"depth_cm": 30}}


def frame(values=(1.0, 2.0, 3.0)) -> pd.DataFrame:
    return pd.DataFrame({"site_id": pd.Series(["a", "b", "c"], dtype="str"), "soc_g_per_kg": list(values)})


def test_publish_writes_data_and_a_self_describing_manifest(tmp_path):
    store = VersionedParquetStore(tmp_path)
    published = store.publish("stocks", frame(), PROVENANCE, partition="2012-10", run={"dagster_run_id": "r1"})

    folder = tmp_path / "stocks" / published.version
    assert sorted(p.name for p in folder.iterdir()) == [DATA_FILE, MANIFEST_FILE]
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["files"][DATA_FILE] == sha256_bytes((folder / DATA_FILE).read_bytes())
    assert manifest["provenance"] == PROVENANCE
    assert (manifest["partition"], manifest["row_count"], manifest["run"]) == ("2012-10", 3, {"dagster_run_id": "r1"})
    assert read_provenance(folder / DATA_FILE) == {"asset": "stocks", "partition": "2012-10", **PROVENANCE}
    pd.testing.assert_frame_equal(store.read("stocks", partition="2012-10"), frame())
    assert store.version_path("stocks", published.version) == folder


def test_a_frames_attrs_go_into_the_pandas_metadata_as_pyarrow_puts_them():
    # The table is built without the attrs (pandas would deep-copy them into every column taken out of the frame),
    # then given them: the schema pyarrow makes from the frame as it is, and pandas reads the attrs back.
    frame = pd.DataFrame({"site_id": ["a", None], "stock_t_c_per_ha": [41.5, float("nan")], "n": [1, 2]})
    frame.attrs["provenance"] = {"inputs": {"drop": {"sha256": "ab" * 32, "rows": 2, "share": 0.1}}, "run": ("x", 1)}
    table = arrow_table(frame)
    assert table.equals(pa.Table.from_pandas(frame, preserve_index=False), check_metadata=True)
    assert table.to_pandas().attrs == {"provenance": {**frame.attrs["provenance"], "run": ["x", 1]}}
    assert arrow_table(frame.drop(columns="n")).column_names == ["site_id", "stock_t_c_per_ha"]


def test_identical_content_maps_to_the_same_version_and_writes_nothing(tmp_path):
    store = VersionedParquetStore(tmp_path)
    first = store.publish("stocks", frame(), PROVENANCE, run={"dagster_run_id": "r1"})
    data_mtime = (tmp_path / "stocks" / first.version / DATA_FILE).stat().st_mtime_ns
    second = store.publish("stocks", frame(), PROVENANCE, run={"dagster_run_id": "r2"})

    assert (first.newly_published, second.newly_published) == (True, False)
    assert second.version == first.version
    assert second.manifest["run"] == {"dagster_run_id": "r1"}
    assert (tmp_path / "stocks" / first.version / DATA_FILE).stat().st_mtime_ns == data_mtime
    assert [(row["version"], row["latest"]) for row in store.catalog()] == [(first.version, True)]


def test_new_content_or_provenance_is_a_new_version_and_old_ones_stay(tmp_path):
    store = VersionedParquetStore(tmp_path)
    old = store.publish("stocks", frame(), PROVENANCE)
    new_data = store.publish("stocks", frame((1.0, 2.0, 4.0)), PROVENANCE)
    new_parameters = store.publish("stocks", frame(), {**PROVENANCE, "parameters": {"depth_cm": 20}})

    assert len({old.version, new_data.version, new_parameters.version}) == 3
    assert [row["latest"] for row in store.catalog() if row["version"] == new_parameters.version] == [True]
    assert sum(row["latest"] for row in store.catalog()) == 1
    pd.testing.assert_frame_equal(store.read("stocks", old.version), frame())

    rerun_of_old = store.publish("stocks", frame(), PROVENANCE)
    assert (rerun_of_old.version, rerun_of_old.newly_published) == (old.version, False)
    assert store.latest("stocks") == old.version


def test_catalog_lists_every_version_with_id_time_partition_rows_and_latest(tmp_path):
    store = VersionedParquetStore(tmp_path)
    for month in ("2012-10", "2012-11"):
        store.publish("sites", frame(), {**PROVENANCE, "parameters": {"month": month}}, partition=month)
    store.publish("regional", frame(), PROVENANCE)

    catalog = json.loads((tmp_path / "catalog.json").read_text())["versions"]
    assert [(row["asset"], row["partition"], row["latest"]) for row in catalog] == [
        ("regional", None, True),
        ("sites", "2012-10", True),
        ("sites", "2012-11", True),
    ]
    assert {key for row in catalog for key in row} >= {"version", "created_at", "partition", "row_count", "latest"}
    with pytest.raises(ValueError, match="2012-10, 2012-11"):
        store.resolve("sites")
    assert store.resolve("sites", partition="2012-11") == catalog[2]["version"]


@pytest.mark.parametrize("asset", ["../escape", "a/b", "", ".hidden", "/etc", "x/../../y", "..", "a\\b"])
def test_asset_names_that_would_leave_the_root_are_refused(tmp_path, asset):
    root = tmp_path / "root"
    with pytest.raises(ValueError, match="invalid asset name"):
        VersionedParquetStore(root).publish(asset, frame(), PROVENANCE)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["root"])
    assert not [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"]


@pytest.mark.parametrize("partition", ["../../etc", "2012/10", "..", ".x"])
def test_partitions_and_version_ids_that_would_leave_the_root_are_refused(tmp_path, partition):
    store = VersionedParquetStore(tmp_path / "root")
    with pytest.raises(ValueError, match="invalid partition"):
        store.publish("sites", frame(), PROVENANCE, partition=partition)
    with pytest.raises(ValueError, match="invalid version id"):
        store.read("sites", version=f"../{partition}")
    assert list(tmp_path.iterdir()) == []


def test_roots_are_parsed_once_and_file_urls_are_the_same_local_store(tmp_path, monkeypatch):
    nested = tmp_path / "a" / "b"
    monkeypatch.chdir(tmp_path)
    for written in (f"{nested}/../b/./", f"file://{nested}/../b", "a/b", nested):
        root = OutputRoot.parse(written)
        assert (root.url, str(root), root.is_local) == (str(nested), str(nested), True)
        assert OutputRoot.parse(root) is root
    assert OutputRoot.parse(nested).child("_data_docs") == OutputRoot(f"{nested}/_data_docs")
    remote = OutputRoot.parse("memory://bucket/x/../out/")
    assert (remote.url, remote.is_local, remote.protocol) == ("memory:///bucket/out", False, "memory")
    assert remote.child("_artifacts").url == "memory:///bucket/out/_artifacts"
    published = VersionedParquetStore(f"file://{nested}/../b").publish("stocks", frame(), PROVENANCE)
    assert (nested / "stocks" / published.version / DATA_FILE).is_file()
    assert VersionedParquetStore(nested).latest("stocks") == published.version


def test_any_fsspec_filesystem_works_as_a_root():
    """The in-memory fsspec filesystem stands for remote stores (s3://, gs://): no rename, no lock, same layout."""
    import fsspec

    url = f"memory://soil-{uuid.uuid4().hex}/out"
    store = VersionedParquetStore(url)
    first = store.publish("stocks", frame(), PROVENANCE, partition="2012-10")
    again = store.publish("stocks", frame(), PROVENANCE, partition="2012-10")

    fs = fsspec.filesystem("memory")
    assert store.root == url.replace("memory://", "memory:///")
    assert (first.newly_published, again.newly_published, again.version) == (True, False, first.version)
    assert sorted(fs.ls(f"{url}/stocks/{first.version}", detail=False)) == [
        f"/{url[len('memory://') :]}/stocks/{first.version}/{name}" for name in (DATA_FILE, MANIFEST_FILE)
    ]
    assert [row["version"] for row in store.versions()] == [first.version]
    with pytest.raises(ValueError, match="not a local folder"):
        store.version_path("stocks", first.version)
    pd.testing.assert_frame_equal(store.read("stocks"), frame())


def test_a_root_whose_filesystem_has_no_conditional_write_is_refused_for_publishing():
    """Any fsspec filesystem other than local, s3:// and memory:// (e.g. gs://) can be read but takes no commit."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class PlainFileSystem(MemoryFileSystem):  # an in-memory filesystem under a protocol the store does not know
        protocol = ("plainfs",)

    fsspec.register_implementation("plainfs", PlainFileSystem, clobber=True)
    root = OutputRoot.parse(f"plainfs://soil-{uuid.uuid4().hex}/out")
    refusal = rf"^{root.url}: the store does not commit to plainfs:// roots: this filesystem offers no conditional"
    with pytest.raises(ValueError, match=refusal):
        root.check()
    store = VersionedParquetStore(root)
    with pytest.raises(ValueError, match=refusal):
        store.publish("stocks", frame(), PROVENANCE)
    assert not store.backend.fs.exists(root.url) and store.versions() == []


def test_points_are_written_as_geoparquet(tmp_path):
    sites = pd.DataFrame({"site_id": ["a", "b"], "lon": [36.8, None], "lat": [-1.3, 0.5]})
    published = VersionedParquetStore(tmp_path).publish("sites", sites, PROVENANCE, points=("lon", "lat"))

    path = tmp_path / "sites" / published.version / DATA_FILE
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert (geo["version"], geo["primary_column"]) == ("1.1.0", "geometry")
    assert geo["columns"]["geometry"]["geometry_types"] == ["Point"]
    assert geo["columns"]["geometry"]["bbox"] == [36.8, -1.3, 36.8, -1.3]
    read = geopandas.read_parquet(path)
    assert read.crs.equals("OGC:CRS84")
    assert (read.geometry.iloc[0].x, read.geometry.iloc[0].y, read.geometry.iloc[1]) == (36.8, -1.3, None)
    assert read_provenance(path)["asset"] == "sites"
    again = VersionedParquetStore(tmp_path / "again").publish("sites", sites, PROVENANCE, points=("lon", "lat"))
    assert (tmp_path / "again" / "sites" / again.version / DATA_FILE).read_bytes() == path.read_bytes()
    assert published.manifest["geometry"] == {"column": "geometry", "type": "Point", "from_columns": ["lon", "lat"]}


def test_dead_writers_staging_is_removed_and_live_writers_staging_is_kept(tmp_path):
    store = VersionedParquetStore(tmp_path)
    asset_dir = tmp_path / "stocks"
    dead = asset_dir / ".tmp-0000000000000000-dead"
    (dead).mkdir(parents=True)
    (dead / DATA_FILE).write_bytes(b"PAR1 half")
    (asset_dir / f"{dead.name}.lock").touch()
    orphan = asset_dir / ".tmp-1111111111111111-orphan"
    orphan.mkdir()
    live = asset_dir / ".tmp-2222222222222222-live"
    live.mkdir()
    with open(asset_dir / f"{live.name}.lock", "w") as claim:
        fcntl.flock(claim, fcntl.LOCK_EX)
        store.publish("stocks", frame(), PROVENANCE)
        left = sorted(p.name for p in asset_dir.iterdir() if p.name.startswith(".tmp-"))
    assert left == [live.name, f"{live.name}.lock"]
    assert [row["asset"] for row in store.catalog()] == ["stocks"]


def test_the_same_frame_published_in_two_roots_gives_the_same_id_and_bytes(tmp_path):
    one = VersionedParquetStore(tmp_path / "one").publish("stocks", frame(), PROVENANCE, run={"dagster_run_id": "1"})
    two = VersionedParquetStore(tmp_path / "two").publish("stocks", frame(), PROVENANCE, run={"dagster_run_id": "2"})
    assert one.version == two.version
    data = [(tmp_path / name / "stocks" / one.version / DATA_FILE).read_bytes() for name in ("one", "two")]
    assert data[0] == data[1]


def test_unwritable_frame_leaves_no_version(tmp_path):
    store = VersionedParquetStore(tmp_path)
    with pytest.raises(Exception, match="object"):
        store.publish("bad", pd.DataFrame({"x": [object()]}), PROVENANCE)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    assert store.catalog() == []
