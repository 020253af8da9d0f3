"""Maps and Data Docs land under the output root, local or any fsspec URL."""

import gc
import re
from pathlib import Path

import dagster as dg
import fsspec

from soil_pipeline.engine import memory
from soil_pipeline.resources import ArtifactStore, QualityReports, RasterEngine


def test_artifacts_are_named_by_content_locally(tmp_path):
    store = ArtifactStore(root=str(tmp_path / "_artifacts"), url="http://127.0.0.1:8765/_artifacts")
    first, url = store.write("maps/a", b"png-bytes", ".png")
    assert (first, url) == store.write("maps/a", b"png-bytes", ".png")
    assert url == "http://127.0.0.1:8765/_artifacts/maps/a/" + Path(first).name
    assert first.startswith(str(tmp_path / "_artifacts" / "maps" / "a"))
    assert Path(first).read_bytes() == b"png-bytes"
    assert not [p for p in (tmp_path / "_artifacts" / "maps" / "a").iterdir() if p.name.startswith(".tmp-")]


def test_artifacts_and_data_docs_go_to_an_fsspec_root():
    fs = fsspec.filesystem("memory")
    where, url = ArtifactStore(root="memory://bucket/out/_artifacts").write("maps/a", b"png", ".png")
    assert url is None
    assert where.startswith("memory:///bucket/out/_artifacts/maps/a/") and fs.cat_file(where) == b"png"
    with QualityReports(base="memory://bucket/out/_data_docs").site("run1", "field_sites", "2012-10") as (local, index):
        (local / "index.html").write_text("<html>report</html>")
    assert index == "memory:///bucket/out/_data_docs/run1/field_sites_2012-10/index.html"
    assert fs.cat_file(index) == b"<html>report</html>"


def test_local_data_docs_render_in_place(tmp_path):
    with QualityReports(base=str(tmp_path)).site("run1", "field_horizons") as (local, index):
        assert local == tmp_path / "run1" / "field_horizons"
    assert index == str(tmp_path / "run1" / "field_horizons" / "index.html")


def test_rendered_data_docs_load_nothing_from_the_network(tmp_path):
    import pandas as pd

    from soil_pipeline.contracts.gx_suite import run_gx
    from soil_pipeline.contracts.model import load_table_contract

    contract = load_table_contract("countries")
    frame = pd.DataFrame({column.name: pd.Series([], dtype="str") for column in contract.columns})
    run_gx(frame, contract, tmp_path)
    pages = list(tmp_path.rglob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text()
        assert not re.search(r"""<(?:link|script|img)[^>]*(?:src|href)=["']https?://""", html), page
        assert "static/vendor/bootstrap.min.css" in html and "static/vendor/jquery.min.js" in html
    assert (tmp_path / "static" / "vendor" / "bootstrap.min.css").is_file()


def test_a_run_collects_its_youngest_garbage_less_often_and_keeps_the_older_generations_thresholds():
    # Set by the raster engine resource of every run (and by `soil-pipeline run` before its imports); the older
    # generations keep Python's thresholds, so they are still collected, every 10 and 100 young collections.
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        RasterEngine().setup_for_execution(dg.build_init_resource_context())
        assert gc.get_threshold() == (memory.GC_YOUNG_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*before)
