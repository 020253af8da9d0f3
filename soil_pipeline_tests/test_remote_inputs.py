"""A raster read from a signed URL: no credential reaches the output root, and its identity is its content."""

import shutil
from pathlib import Path

import rasterio

from soil_pipeline.provenance import file_input
from soil_pipeline.publishing.store import VersionedParquetStore, without_addresses
from soil_pipeline.resources import InputDatasets
from soil_pipeline.runner import run_job
from soil_pipeline_tests.range_server import serve

CROPLAND = Path(InputDatasets().cropland_raster)
PLANTED = "PLANTEDSECRET"


def signed(base: str, signature: str) -> str:
    host = base.removeprefix("http://")
    query = f"X-Amz-Credential=AKIA{PLANTED}&X-Amz-Signature={PLANTED}{signature}"
    return f"/vsicurl/http://reader:{PLANTED}pw@{host}/{CROPLAND.name}?{query}"


def test_a_signed_url_is_recorded_redacted_with_its_content_identity():
    with serve(CROPLAND.parent) as base:
        first, second = (file_input("cropland_raster", signed(base, s))["cropland_raster"] for s in ("a", "b"))
        elsewhere = file_input("cropland_raster", signed(base.replace("127.0.0.1", "localhost"), "c"))
    assert first == second
    assert without_addresses({"inputs": elsewhere}) == without_addresses({"inputs": {"cropland_raster": first}})
    assert (first["file"], first["address"]) == (CROPLAND.name, f"/vsicurl/{base}/{CROPLAND.name}")
    assert first["redacted"] == ["userinfo", "query"]
    assert first["remote"]["content-length"] == str(CROPLAND.stat().st_size) and first["remote"]["etag"]


def test_no_planted_secret_anywhere_under_the_root_and_a_new_signature_changes_no_version(embedded_run, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(embedded_run[1], root, ignore=shutil.ignore_patterns("_data_docs", ".lock"))
    versions = []
    with serve(CROPLAND.parent) as base, rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        for signature in ("one", "two"):
            inputs = InputDatasets(cropland_raster=signed(base, signature))
            outcome = run_job(root, inputs=inputs, asset_selection=["cropland_grid", "regional_soc_stocks"])
            assert outcome.success
            versions.append(VersionedParquetStore(root).latest("regional_soc_stocks"))
    assert versions[0] == versions[1]
    manifest = VersionedParquetStore(root).manifest("regional_soc_stocks", versions[0])
    assert manifest["provenance"]["inputs"]["cropland_raster"]["redacted"] == ["userinfo", "query"]
    leaks = [p for p in root.rglob("*") if p.is_file() and PLANTED.encode() in p.read_bytes()]
    assert leaks == []
