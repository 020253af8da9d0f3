"""Maps and Data Docs land under the output root, local or any fsspec URL."""

from pathlib import Path

import fsspec

from soil_pipeline.resources import ArtifactStore, QualityReports


def test_artifacts_are_named_by_content_locally(tmp_path):
    store = ArtifactStore(root=str(tmp_path / "_artifacts"))
    first = store.write("maps/a", b"png-bytes", ".png")
    assert first == store.write("maps/a", b"png-bytes", ".png")
    assert first.startswith(str(tmp_path / "_artifacts" / "maps" / "a"))
    assert Path(first).read_bytes() == b"png-bytes"
    assert not [p for p in (tmp_path / "_artifacts" / "maps" / "a").iterdir() if p.name.startswith(".tmp-")]


def test_artifacts_and_data_docs_go_to_an_fsspec_root():
    fs = fsspec.filesystem("memory")
    where = ArtifactStore(root="memory://bucket/out/_artifacts").write("maps/a", b"png", ".png")
    assert where.startswith("memory:///bucket/out/_artifacts/maps/a/") and fs.cat_file(where) == b"png"
    with QualityReports(base="memory://bucket/out/_data_docs").site("run1", "field_sites", "2012-10") as (local, index):
        (local / "index.html").write_text("<html>report</html>")
    assert index == "memory:///bucket/out/_data_docs/run1/field_sites_2012-10/index.html"
    assert fs.cat_file(index) == b"<html>report</html>"


def test_local_data_docs_render_in_place(tmp_path):
    with QualityReports(base=str(tmp_path)).site("run1", "field_horizons") as (local, index):
        assert local == tmp_path / "run1" / "field_horizons"
    assert index == str(tmp_path / "run1" / "field_horizons" / "index.html")
