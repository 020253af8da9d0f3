"""What the main job publishes: complete manifests, GeoParquet field samples, byte-identical reruns, staleness."""

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import geopandas
import pandas as pd
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from soil_pipeline.assets import field_samples, global_grids, regions, sources
from soil_pipeline.definitions import DATA_DOCS_DIR, all_assets, build_resources
from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION, register_drops
from soil_pipeline.publishing.parquet import read_provenance
from soil_pipeline.publishing.store import DATA_FILE, INPUTS_DIR, RUNS_DIR, VersionedParquetStore
from soil_pipeline.raster_inputs import CLIMATE_ZONES, SOC_STOCK_2010, SOC_STOCK_NO_LAND_USE
from soil_pipeline.resources import InputDatasets
from soil_pipeline.runner import QUIET_LOGS, run_job
from soil_pipeline_tests.conftest import run_main_job

PUBLISHED = [
    "countries",
    "field_horizons",
    "field_horizons_rejects",
    "field_site_history",
    "field_sites",
    "field_sites_rejects",
    "map_validation",
    "map_validation_sites",
    "regional_sequestration_potential",
    "regional_soc_stocks",
    "rothc_sequestration_potential",
    "topsoil_soc_stocks",
]
# The session's scenario runs may add these to the shared output root; they come from other runs.
OTHER_JOBS = {"restoration_scenario", "_artifacts"}
RUN_SPECIFIC = ("created_at", "run")
REPO = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def output_files(root: Path) -> dict[str, str]:
    """sha256 of every output file of the main job (published Parquet, intermediate grids) by path under the root,
    without the run id; manifests and the catalog hold clock times and run ids, the Data Docs are per-run reports,
    the lock is empty, and a run's `inputs/` are links to grids another run wrote (as other jobs on the root do)."""
    files = {}
    skipped = {DATA_DOCS_DIR, INPUTS_DIR, *OTHER_JOBS}
    for p in sorted(root.rglob("*")):
        parts = p.relative_to(root).parts
        if p.is_file() and p.suffix != ".json" and p.name != ".lock" and not skipped & set(parts):
            files["/".join(parts[2:] if parts[0] == RUNS_DIR else parts)] = sha256(p)
    return files


def main_job_rows(root: Path) -> list[dict]:
    return [row for row in VersionedParquetStore(root).catalog() if row["asset"] not in OTHER_JOBS]


def test_every_published_asset_has_one_latest_version_in_the_catalog(embedded_run):
    _, root = embedded_run
    catalog = main_job_rows(root)
    assert sorted(row["asset"] for row in catalog) == PUBLISHED
    assert all(row["latest"] for row in catalog)
    assert all(row["row_count"] > 0 for row in catalog if not row["asset"].endswith("_rejects"))
    drop_tables = [row for row in catalog if row["asset"].startswith(("field_", "topsoil"))]
    assert {row["partition"] for row in drop_tables if row["asset"] != "field_site_history"} == {"2012-10"}
    assert [row["partition"] for row in drop_tables if row["asset"] == "field_site_history"] == [None]  # all drops


def test_manifests_record_inputs_code_run_partition_and_file_checksums(embedded_run):
    outcome, root = embedded_run
    store = VersionedParquetStore(root)
    for row in main_job_rows(root):
        manifest = store.manifest(row["asset"], row["version"])
        data = root / row["path"] / DATA_FILE
        assert manifest["files"] == {DATA_FILE: sha256(data)}
        assert manifest["run"] == {"dagster_run_id": outcome.run_id}
        assert manifest["partition"] == row["partition"]
        code = manifest["provenance"]["code"]
        assert code["package"] and len(code["source_sha256"]) == 64
        assert {"dagster", "pandas", "numpy", "pyarrow", "rasterio", "gdal", "geopandas"} <= set(code["libraries"])
        for name, entry in manifest["provenance"]["inputs"].items():
            assert len(entry["sha256"]) == 64, name
        embedded = read_provenance(data)
        assert embedded == {"asset": row["asset"], "partition": row["partition"], **manifest["provenance"]}


def test_regional_manifest_reaches_back_to_every_raw_input_file(embedded_run):
    _, root = embedded_run
    store = VersionedParquetStore(root)
    inputs = store.manifest("regional_soc_stocks", store.latest("regional_soc_stocks"))["provenance"]["inputs"]
    raw = {name: entry["sha256"] for name, entry in inputs.items() if "file" in entry}
    landing = DATA_DIR / "landing" / "field_samples" / EMBEDDED_DROP_PARTITION
    assert raw["field_sites[2012-10]"] == sha256(landing / "afsp_sites.csv")
    assert raw["field_horizons[2012-10]"] == sha256(landing / "afsp_horizons.csv")
    assert raw["contract:field_sites"] == sha256(REPO / "data_contracts" / "field_sites.yaml")
    assert raw["countries_vector"] == sha256(Path(InputDatasets().countries_vector))
    assert raw["climate_zone_legend"] == sha256(DATA_DIR / "ipcc_climate_zones_0p5" / "legend.csv")
    assert {"soc_stock_2010_raster", "soc_stock_no_land_use_raster", "cropland_raster", "climate_zones_raster"} <= set(
        raw
    )
    upstream = {name: entry["version"] for name, entry in inputs.items() if "version" in entry}
    assert upstream == {
        "published:countries": store.latest("countries"),
        "published:topsoil_soc_stocks[2012-10]": store.latest("topsoil_soc_stocks", "2012-10"),
        "published:field_sites[2012-10]": store.latest("field_sites", "2012-10"),
        "published:field_horizons[2012-10]": store.latest("field_horizons", "2012-10"),
        "published:field_horizons_rejects[2012-10]": store.latest("field_horizons_rejects", "2012-10"),
        "published:field_site_history": store.latest("field_site_history"),
        "published:map_validation_sites": store.latest("map_validation_sites"),
        "published:map_validation": store.latest("map_validation"),
    }
    assert raw["contract:regional_soc_stocks"] == sha256(REPO / "data_contracts" / "regional_soc_stocks.yaml")


def test_field_sites_are_geoparquet_points(embedded_run):
    _, root = embedded_run
    store = VersionedParquetStore(root)
    sites = geopandas.read_parquet(store.data_path("field_sites", store.latest("field_sites", "2012-10")))
    assert sites.crs.equals("OGC:CRS84")
    assert sites.geom_type.value_counts().to_dict() == {"Point": 26270}
    first = sites.iloc[0]
    assert (first.geometry.x, first.geometry.y) == (first["longitude_deg"], first["latitude_deg"])


def test_field_site_stocks_are_geoparquet_points(embedded_run):
    _, root = embedded_run
    store = VersionedParquetStore(root)
    sites = geopandas.read_parquet(store.data_path("topsoil_soc_stocks", store.latest("topsoil_soc_stocks", "2012-10")))
    assert sites.crs.equals("OGC:CRS84")
    assert set(sites.geom_type.dropna()) == {"Point"}
    located = sites[sites.geometry.notna()]
    assert len(located) > 0.9 * len(sites)
    assert (located.geometry.x == located["longitude_deg"]).all()
    assert (located.geometry.y == located["latitude_deg"]).all()


def test_rerun_in_a_fresh_file_url_root_gives_byte_identical_outputs(embedded_run, tmp_path):
    first_outcome, first = embedded_run
    outcome = run_main_job(f"file://{tmp_path}/../{tmp_path.name}/published")
    second = tmp_path / "published"
    assert outcome.success

    assert output_files(second) == output_files(first)
    assert len([name for name in output_files(first) if name.endswith(".parquet")]) == len(PUBLISHED)
    for row in main_job_rows(first):
        manifests = [json.loads((root / row["path"] / "manifest.json").read_text()) for root in (first, second)]
        reproducible = [{k: v for k, v in m.items() if k not in RUN_SPECIFIC} for m in manifests]
        assert reproducible[0] == reproducible[1]
        assert manifests[1]["run"]["dagster_run_id"] == outcome.run_id != first_outcome.run_id


def test_rerun_in_the_same_root_publishes_nothing_new_and_says_so(tmp_path):
    def materialize_countries() -> tuple[dict, list[dict]]:
        outcome = run_job(tmp_path, asset_selection=["countries"])
        return outcome.result.asset_materializations_for_node("countries")[0].metadata, outcome.committed

    (first, first_commit), (second, second_commit) = materialize_countries(), materialize_countries()
    assert (first["newly_published"].value, second["newly_published"].value) == (True, False)
    assert first["version"] == second["version"]
    assert second["publication"].value.startswith("unchanged: identical version")
    assert [p.name for p in (tmp_path / "countries").iterdir()] == [first["version"].value]
    assert [(row["asset"], row["status"]) for row in first_commit + second_commit] == [
        ("countries", "new"),
        ("countries", "unchanged"),
    ]


STOCK_RASTERS = {SOC_STOCK_2010.name, SOC_STOCK_NO_LAND_USE.name, CLIMATE_ZONES.name}


def test_an_input_drop_change_marks_the_ingesting_assets_stale(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(DATA_DIR / "landing", landing)
    # field_drop checks sites against the countries and the WHRC land mask, and places them in climate zones: they
    # are built once by "ingest" too
    assets = [
        sources.field_sample_drop,
        field_samples.field_drop,
        regions.countries,
        global_grids.soc_stock_grid,
        global_grids.climate_zone_grid,
        sources.climate_zone_legend,
        sources.countries_vector,
        *(source for source in sources.raster_sources if source.key.path[0] in STOCK_RASTERS),
    ]
    defs = dg.Definitions(
        assets=assets,
        jobs=[
            dg.define_asset_job("ingest", selection=dg.AssetSelection.all(include_sources=True)),
            dg.define_asset_job("observe", selection=dg.AssetSelection.assets("field_sample_drop")),
        ],
        resources=build_resources(str(tmp_path / "out"), InputDatasets(landing_dir=str(landing))),
    )
    instance = dg.DagsterInstance.ephemeral()
    register_drops(instance, ["2012-10"])
    ingest = defs.resolve_job_def("ingest")
    assert ingest.execute_in_process(instance=instance, partition_key="2012-10", run_config=QUIET_LOGS).success

    def status():
        resolver = get_stale_status_resolver(instance, assets)
        key = dg.AssetKey("field_sites")
        return resolver.get_status(key, "2012-10"), resolver.get_stale_causes(key, "2012-10")

    assert status() == (StaleStatus.FRESH, [])
    sites = landing / "field_samples" / "2012-10" / "afsp_sites.csv"
    sites.write_bytes(sites.read_bytes().replace(b"\n", b"\r\n", 1))
    assert defs.resolve_job_def("observe").execute_in_process(instance=instance, run_config=QUIET_LOGS).success
    stale, causes = status()
    assert stale == StaleStatus.STALE
    assert [(cause.dependency.asset_key, cause.reason) for cause in causes] == [
        (dg.AssetKey("field_sample_drop"), "has a new dependency data version")
    ]


def test_reading_a_geoparquet_table_with_pandas_keeps_the_geometry_and_the_store_leaves_it_out(embedded_run):
    _, root = embedded_run
    store = VersionedParquetStore(root)
    version = store.latest("topsoil_soc_stocks", "2012-10")
    by_pandas = pd.read_parquet(store.data_path("topsoil_soc_stocks", version))
    by_store = store.read("topsoil_soc_stocks", version)
    assert list(by_pandas.columns) == [*by_store.columns, "geometry"]
    pd.testing.assert_frame_equal(by_pandas.drop(columns="geometry"), by_store)


def test_an_ingest_launched_without_the_sources_still_records_the_drop_it_read(embedded_run, tmp_path):
    """As "Materialize all" in the UI does: the field_drop step alone observes the drop it reads (its other inputs,
    countries and the land mask, are the committed ones of the shared run)."""
    root = tmp_path / "out"
    shutil.copytree(embedded_run[1], root, ignore=shutil.ignore_patterns("_data_docs", ".lock"))
    defs = dg.Definitions(
        assets=all_assets,
        jobs=[dg.define_asset_job("ingest", selection=dg.AssetSelection.assets(field_samples.field_drop))],
        resources=build_resources(str(root)),
    )
    instance = dg.DagsterInstance.ephemeral()
    register_drops(instance, ["2012-10"])
    result = defs.resolve_job_def("ingest").execute_in_process(
        instance=instance, partition_key="2012-10", run_config=QUIET_LOGS
    )
    [observation] = result.asset_observations_for_node("field_drop")
    expected = sources.drop_version(DATA_DIR / "landing" / "field_samples" / "2012-10")
    assert observation.asset_key == dg.AssetKey("field_sample_drop") and observation.partition == "2012-10"
    assert observation.tags[sources.DATA_VERSION_TAG] == expected
