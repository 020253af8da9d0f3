"""End to end through Dagster on the embedded data: global totals, published Parquet, immutable versions."""

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from soil_pipeline.io_managers import PREVIEW_ROWS
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline_tests.conftest import run_main_job

PARTITIONED = ["field_sites", "field_horizons", "field_sites_rejects", "field_horizons_rejects", "topsoil_soc_stocks"]
PUBLISHED = [
    *PARTITIONED,
    "countries",
    "field_site_history",
    "map_validation_sites",
    "map_validation",
    "regional_soc_stocks",
    "regional_sequestration_potential",
    "rothc_sequestration_potential",
]


def _world(output_root) -> pd.Series:
    table = VersionedParquetStore(output_root).read("regional_soc_stocks")
    return table[table["region_type"] == "global"].iloc[0]


def test_global_totals_match_the_checked_figures(embedded_run):
    _, output_root = embedded_run
    world = _world(output_root)
    assert world["soc_stock_2010_pg_c"] == pytest.approx(867.1, rel=0.01)
    assert world["soc_stock_no_land_use_pg_c"] == pytest.approx(898.3, rel=0.01)
    assert world["cropland_area_mha"] == pytest.approx(1591.3, rel=0.01)
    assert world["target_4p1000_tg_c_per_yr"] == pytest.approx(0.004 * world["soc_stock_2010_pg_c"] * 1000)


def test_regions_partition_the_globe(embedded_run):
    _, output_root = embedded_run
    table = VersionedParquetStore(output_root).read("regional_soc_stocks")
    world = _world(output_root)
    for region_type in ("country", "climate_zone"):
        part = table[table["region_type"] == region_type]
        assert part["soc_stock_2010_pg_c"].sum() == pytest.approx(world["soc_stock_2010_pg_c"], rel=1e-9)
        assert part["cropland_area_mha"].sum() == pytest.approx(world["cropland_area_mha"], rel=1e-9)
    russia = table[(table["region_type"] == "country") & (table["region_id"] == "RUS")].iloc[0]
    assert russia["soc_stock_2010_pg_c"] > 150


def test_land_outside_every_country_polygon_goes_to_the_nearest_and_the_rest_is_a_published_row(embedded_run):
    outcome, output_root = embedded_run
    table = VersionedParquetStore(output_root).read("regional_soc_stocks")
    [unassigned] = table[table["region_id"] == "UNASSIGNED"].itertuples()
    # 1:10m polygons, cell centres, then the nearest country within 0.5 deg: 0.14 Mha of SOC-mapped land (no stock
    # to speak of, no cropland) is left; 1:110m without the fallback left 135.4 Mha and 12.92 Pg C (SOURCE.md)
    assert unassigned.soc_mapped_area_mha == pytest.approx(0.14, abs=0.005)
    assert unassigned.soc_stock_2010_pg_c < 0.01 and unassigned.cropland_area_mha == 0
    [materialization] = outcome.result.asset_materializations_for_node("country_grid")
    alignment = materialization.metadata["alignment"].value
    assert alignment["nearest_max_distance_deg"] == 0.5
    assert alignment["land_area_by_nearest_mha"] > 50  # coastal cells taken by their nearest country
    assert alignment["land_area_unassigned_mha"] == pytest.approx(unassigned.soc_mapped_area_mha)  # no cropland there


def test_published_parquet_reads_back_as_the_run_reported_it(embedded_run):
    """The run keeps no output in memory (`runner`): what each step reported of the table it published (row count,
    column types, first rows, file checksum) is what reads back from the store."""
    outcome, output_root = embedded_run
    store = VersionedParquetStore(output_root)
    reported = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in outcome.result.get_asset_materialization_events()
    }
    for asset in PUBLISHED:
        partition = "2012-10" if asset in PARTITIONED else None
        version = store.resolve(asset, "latest", partition)
        published, metadata = store.read(asset, version), reported[asset]
        assert metadata["version"].value == version
        assert (
            hashlib.sha256(Path(store.data_path(asset, version)).read_bytes()).hexdigest()
            == metadata["data_sha256"].value
        )
        assert len(published) == metadata["dagster/row_count"].value
        schema = metadata["dagster/column_schema"].value
        assert [(c.name, c.type) for c in schema.columns] == [(n, str(t)) for n, t in published.dtypes.items()]
        if asset != "map_validation":  # its preview is the validation table as read (test_field_validation_pipeline)
            assert published.head(PREVIEW_ROWS).to_markdown(index=False) == metadata["preview"].value, asset


def test_field_sites_keep_every_site_with_a_stock_or_a_reason(embedded_run):
    _, output_root = embedded_run
    stocks = VersionedParquetStore(output_root).read("topsoil_soc_stocks", partition="2012-10")
    assert len(stocks) == 26270
    has_stock = stocks["topsoil_soc_stock_t_c_per_ha"].notna()
    assert (has_stock ^ stocks["exclusion_reason"].notna()).all()
    assert has_stock.sum() > 15000
    kenya = stocks[stocks["country_adm0_a3"] == "KEN"]
    assert len(kenya) > 500
    assert set(kenya["climate_zone_code"]) <= set(range(1, 13))


def _tree_digest(root) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "_intermediate" not in path.parts and path.name not in {"catalog.json", ".lock"}
    }


def test_second_run_neither_overwrites_nor_loses_the_first_version(embedded_run, tmp_path):
    """The first run is the session's run of the main job, its root copied whole (with the scenario job's outputs
    when `scenario_runs` has added them): a second run of the main job on it."""
    root = tmp_path / "root"
    shutil.copytree(embedded_run[1], root, ignore=shutil.ignore_patterns(".lock"))
    first = _tree_digest(root)
    first_versions = {(row["asset"], row["version"]) for row in VersionedParquetStore(root).catalog()}
    first_latest = {row["asset"] for row in VersionedParquetStore(root).catalog() if row["latest"]}
    outcome = run_main_job(root)
    assert outcome.success
    second = _tree_digest(root)
    assert {name: second[name] for name in first} == first
    assert {row["asset"] for row in outcome.committed} == set(PUBLISHED)
    catalog = VersionedParquetStore(root).catalog()
    assert {row["asset"] for row in catalog if row["latest"]} == set(PUBLISHED) | first_latest
    assert first_versions <= {(row["asset"], row["version"]) for row in catalog}


def test_data_quality_checks_link_rendered_data_docs(embedded_run):
    outcome, _ = embedded_run
    evaluations = {
        e.asset_key.to_user_string(): e for e in outcome.result.get_asset_check_evaluations() if "gx" in e.check_name
    }
    assert set(evaluations) == {"field_sites", "field_horizons"}
    index = Path(evaluations["field_horizons"].metadata["data_docs"].value)
    assert index.name == "index.html" and "field_horizons" in index.read_text()
    pages = list(index.parent.glob("validations/field_horizons/**/*.html"))
    assert len(pages) == 1 and "bulk_density_g_per_cm3" in pages[0].read_text()


def test_column_schemas_carry_each_contract_columns_description_unit_and_range(embedded_run):
    outcome, _ = embedded_run
    events = outcome.result.get_asset_materialization_events()
    [event] = [e for e in events if e.asset_key == dg.AssetKey("field_horizons")]
    schema = event.materialization.metadata["dagster/column_schema"].value
    column = next(c for c in schema.columns if c.name == "bulk_density_g_per_cm3")
    assert column.description.startswith("Bulk density of the fine earth") and column.description.endswith("[g/cm3]")
    assert column.constraints.other == ["bulk_density_g_per_cm3 must be within [0.1, 2.65] g/cm3"]
