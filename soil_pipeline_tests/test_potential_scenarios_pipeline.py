"""End to end through Dagster on the embedded global data: the published potential and scenario tables."""

import json
import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import rasterio

from soil_pipeline.assets import scenarios as scenarios_assets
from soil_pipeline.assets.scenarios import scenario_key
from soil_pipeline.definitions import build_definitions
from soil_pipeline.errors import DeclarationError
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.reference_data import factor, load_scenario, scenario_ids, scenario_path
from soil_pipeline.resources import InputDatasets
from soil_pipeline.runner import MAIN_JOB, SCENARIO_JOB, run_job
from soil_pipeline.science.grid import cell_area_ha
from soil_pipeline_tests.conftest import FIXTURES

POTENTIAL = "regional_sequestration_potential"


@pytest.fixture(scope="module")
def store(embedded_run, scenario_runs):
    return VersionedParquetStore(embedded_run[1])


@pytest.fixture(scope="module")
def potential(store):
    return store.read(POTENTIAL)


@pytest.fixture(scope="module")
def scenario_tables(store):
    versions = store.latest_by_partition("restoration_scenario")
    return {key: store.read("restoration_scenario", version) for key, version in versions.items()}


def _world(table: pd.DataFrame, estimate: str = "central") -> pd.Series:
    """The World's row; in scenario tables its row of one estimate (central, low, eventual_recovery)."""
    central = table["estimate"] == estimate if "estimate" in table else True
    [row] = table[(table["region_type"] == "global") & central].itertuples(index=False)
    return pd.Series(row._asdict())


def test_potential_has_every_region_type_and_global_figures(potential):
    counts = potential["region_type"].value_counts()
    assert counts["global"] == 1 and counts["priority_region"] == 3 and counts["climate_zone"] == 13
    assert counts["country"] == 251  # 250 Natural Earth 1:10m countries + UNASSIGNED
    world = _world(potential)
    assert world["soc_stock_2010_pg_c"] == pytest.approx(867.1, abs=0.05)
    # HYDE's 1,591.3 Mha less 0.06 Mha in the 706 cells whose rounded km2 exceed the cell area (capped)
    assert world["cropland_area_mha"] == pytest.approx(1591.24, abs=0.005)
    assert world["target_4p1000_tg_c_per_yr"] == pytest.approx(3468.2, abs=0.1)


def test_potential_regions_add_up_to_the_world(potential):
    world = _world(potential)
    for region_type in ("country", "climate_zone"):
        part = potential[potential["region_type"] == region_type]
        columns = ("cropland_area_mha", "zomer_medium_reproduction_tg_c_per_yr", "zomer_high_independent_tg_c_per_yr")
        for column in (*columns, "target_4p1000_tg_c_per_yr"):
            assert part[column].sum() == pytest.approx(world[column], rel=1e-9), (region_type, column)


def test_zomer_style_global_figures_follow_the_formula(potential):
    # Rate = content increase (% -> x 10 g/kg) x BD x 30 cm x 0.1 / 20 yr = delta x BD x 1.5 t C/ha/yr.
    # reproduction: BD_zomer = 0.56 / (0.27 x 1.5) = 1.382716 g/cm3 on all 1591.24 Mha of cropland:
    #   medium 0.27 x 1.382716 x 1.5 = 0.56 t C/ha/yr, x 1591.24 Mha = 891.10 Tg C/yr (Zomer et al.: 900)
    #   high   1.12 t C/ha/yr, 1782.19 Tg C/yr (Zomer et al.: 1,850)
    # independent: area-weighted Manrique & Jones BD 1.2712 on the 1580.16 Mha of cropland that has one:
    #   medium 0.27 x 1.2712 x 1.5 = 0.5148 t C/ha/yr, x 1580.16 Mha = 813.5 Tg C/yr; high 1627.1 Tg C/yr
    world = _world(potential)
    assert world["zomer_reproduction_bd_g_per_cm3"] == pytest.approx(0.56 / (0.27 * 1.5), rel=1e-9)
    assert world["zomer_reproduction_cropland_area_mha"] == world["cropland_area_mha"]
    assert world["zomer_independent_bd_g_per_cm3"] == pytest.approx(1.2712, abs=5e-5)
    assert world["zomer_independent_cropland_area_mha"] == pytest.approx(1580.16, abs=0.005)
    expected = {
        ("medium", "reproduction"): (0.56, 891.10),
        ("high", "reproduction"): (1.12, 1782.19),
        ("medium", "independent"): (0.5148, 813.54),
        ("high", "independent"): (1.0297, 1627.09),
    }
    for (level, variant), (rate, total) in expected.items():
        delta = {"medium": 0.27, "high": 0.54}[level]
        expected_rate = delta * world[f"zomer_{variant}_bd_g_per_cm3"] * 1.5
        expected_total = expected_rate * world[f"zomer_{variant}_cropland_area_mha"]
        expected_share = 100 * expected_total / world["target_4p1000_tg_c_per_yr"]
        name = f"zomer_{level}_{variant}"
        assert world[f"{name}_t_c_per_ha_per_yr"] == pytest.approx(expected_rate, rel=1e-9)
        assert world[f"{name}_tg_c_per_yr"] == pytest.approx(expected_total, rel=1e-9)
        assert world[f"{name}_share_of_4p1000_all_land_pct"] == pytest.approx(expected_share, rel=1e-9)
        assert (expected_rate, expected_total) == pytest.approx((rate, total), abs=5e-3)


def test_every_central_figure_lies_in_its_interval_and_uncertain_figures_have_width(potential, scenario_tables):
    # Central figures use each parameter's mean, intervals its draws. Every figure with an interval carries at least
    # one uncertain parameter (targets and shares the stock factor, scenario gains the debt factor), so
    # a nonzero figure has an interval of nonzero width; a zero figure (no stock, no cropland, nothing restored) is
    # zero in every draw.
    for name, table in {POTENTIAL: potential, **scenario_tables}.items():
        for column in [c for c in table.columns if c.endswith("_p05")]:
            base = column.removesuffix("_p05")
            valid = table[base].notna()
            central, p05, p95 = (table.loc[valid, c] for c in (base, f"{base}_p05", f"{base}_p95"))
            assert ((p05 <= central) & (central <= p95)).all(), (name, base)
            nonzero = central != 0
            assert nonzero.sum() > 100, (name, base)
            assert (p95[nonzero] > p05[nonzero]).all(), (name, base)
            assert (p05[~nonzero] == 0).all() and (p95[~nonzero] == 0).all(), (name, base)


def test_full_restoration_never_gains_more_than_the_soil_carbon_debt(store, scenario_tables):
    stocks = _world(store.read("regional_soc_stocks"))
    net_debt = stocks["soc_stock_no_land_use_pg_c"] - stocks["soc_stock_2010_pg_c"]
    assert net_debt == pytest.approx(factor("sanderman_2017", "soc_debt_0_30cm"), abs=0.05)
    full = _world(scenario_tables["all_converted_100pct"])
    assert full["restored_area_mha"] == pytest.approx(full["converted_land_area_mha"])
    # 10.1 Mha of HYDE cropland lies in cells without a WHRC stock: restored, but without a gain
    assert full["restored_area_mha"] - full["restored_area_with_soc_mha"] == pytest.approx(10.11, abs=0.01)
    assert 0 < full["soc_gain_lower_bound_pg_c"] < full["soc_gain_pg_c"] < full["soc_gain_upper_bound_pg_c"] < net_debt
    eventual = _world(scenario_tables["all_converted_100pct"], "eventual_recovery")
    assert full["soc_gain_pg_c"] < eventual["soc_gain_pg_c"] < net_debt


def test_bounds_enclose_the_central_gain_in_every_region(scenario_tables):
    for key, table in scenario_tables.items():
        central = table[table["estimate"] == "central"]
        lower, gain, upper = (
            central[c] for c in ("soc_gain_lower_bound_pg_c", "soc_gain_pg_c", "soc_gain_upper_bound_pg_c")
        )
        assert ((lower <= gain + 1e-12) & (gain <= upper + 1e-12)).all(), key


def test_sensitivity_rows_are_global_and_labelled(scenario_tables):
    for key, table in scenario_tables.items():
        rows = table[table["estimate"] == "sensitivity"]
        # two attribution bounds, the 2019-Refinement edition, five grazing losses
        assert (rows["region_type"] == "global").all() and len(rows) == 8, key
        world = _world(table)
        bounds = rows[rows["attribution"] != world["attribution"]].set_index("attribution")["soc_gain_pg_c"]
        assert bounds.filter(like="lower bound").item() == pytest.approx(world["soc_gain_lower_bound_pg_c"])
        assert bounds.filter(like="upper bound").item() == pytest.approx(world["soc_gain_upper_bound_pg_c"])
        grazing = rows[rows["grazing_loss"] != world["grazing_loss"]].set_index("grazing_loss")["soc_gain_pg_c"]
        assert len(grazing) == 5
        # more loss per ha on grazing land leaves less of the debt on the restored cropland
        assert grazing.filter(like="0.20 of the native").item() < grazing.filter(like="0.10 of the native").item()
        assert grazing.filter(like="0.50 x").item() < world["soc_gain_pg_c"] < grazing.filter(like="0.40 x").item()
        assert grazing.filter(like="moderately degraded").item() == grazing.max()
        # Post & Kwon (the low case): at most 0.33 t C/ha/yr x 20 yr = 6.6 t C per restored ha (1e-3 Pg C / Mha)
        low = _world(table, "low")
        assert 0 < low["soc_gain_pg_c"] <= 6.6e-3 * low["restored_area_with_soc_mha"] + 1e-9
        assert low["implied_rate_t_c_per_ha_per_yr"] <= 0.33 + 1e-9


def test_headline_restoration_figures(scenario_tables):
    # Regression anchors (Pg C at 20 yr, world): the IPCC set-aside central, the low and eventual-recovery cases, and
    # the set-aside curve with the previous grazing stand-in (IPCC moderately degraded grassland), which gives the
    # 3.9 / 6.2 / 9.9 Pg C that issue 22 expected for the set-aside curve alone.
    expected = {
        "global_priority_15pct": (2.87, 1.58, 5.10, 3.86),
        "global_priority_30pct": (4.51, 3.15, 7.70, 6.20),
        "all_converted_100pct": (6.89, 6.40, 11.20, 9.90),
    }
    for key, (central, low, eventual, moderately) in expected.items():
        table = scenario_tables[key]
        got = [_world(table, estimate)["soc_gain_pg_c"] for estimate in ("central", "low", "eventual_recovery")]
        rows = table[table["estimate"] == "sensitivity"]
        got.append(rows.loc[rows["grazing_loss"].str.contains("moderately degraded"), "soc_gain_pg_c"].item())
        assert got == pytest.approx([central, low, eventual, moderately], abs=0.01), key


def test_intervals_differ_by_region_and_scenario(scenario_tables):
    spreads = {}
    for key, table in scenario_tables.items():
        rows = table[(table["estimate"] == "central") & (table["region_type"] == "country")]
        rows = rows[rows["soc_gain_pg_c"] > 0.01]
        relative = rows["soc_gain_pg_c_p05"] / rows["soc_gain_pg_c"]
        assert relative.max() - relative.min() > 0.1, key  # not one global rescaling of the central figure
        world = _world(table)
        spreads[key] = world["soc_gain_pg_c_p05"] / world["soc_gain_pg_c"]
    assert max(spreads.values()) - min(spreads.values()) > 0.02


def test_gains_are_monotone_in_the_restored_fraction(scenario_tables):
    worlds = [_world(scenario_tables[key]) for key in ("global_priority_15pct", "global_priority_30pct")]
    worlds.append(_world(scenario_tables["all_converted_100pct"]))
    for column in ("soc_gain_lower_bound_pg_c", "soc_gain_pg_c", "soc_gain_upper_bound_pg_c"):
        gains = [world[column] for world in worlds]
        assert gains[0] < gains[1] < gains[2], column
    converted = worlds[0]["converted_land_area_mha"]
    assert worlds[0]["restored_area_mha"] == pytest.approx(0.15 * converted)
    assert worlds[1]["restored_area_mha"] == pytest.approx(0.30 * converted)


def test_within_country_scenario_restores_the_share_of_every_country(scenario_tables):
    countries = scenario_tables["within_country_15pct"].query(
        "region_type == 'country' and converted_land_area_mha > 0"
    )
    np.testing.assert_allclose(countries["restored_area_mha"], 0.15 * countries["converted_land_area_mha"], rtol=1e-6)
    global_priority = _world(scenario_tables["global_priority_15pct"])["soc_gain_pg_c"]
    assert _world(scenario_tables["within_country_15pct"])["soc_gain_pg_c"] < global_priority


def test_scenario_gain_units(scenario_tables):
    world = _world(scenario_tables["global_priority_15pct"])
    assert world["soc_gain_gt_co2"] == pytest.approx(world["soc_gain_pg_c"] * 44 / 12)
    assert world["soc_gain_rate_tg_c_per_yr"] == pytest.approx(world["soc_gain_pg_c"] * 1000 / 20)
    share = 100 * world["soc_gain_rate_tg_c_per_yr"] / world["target_4p1000_tg_c_per_yr"]
    assert world["soc_gain_share_of_4p1000_all_land_pct"] == pytest.approx(share)
    implied = world["soc_gain_pg_c"] * 1e9 / (world["restored_area_with_soc_mha"] * 1e6) / 20
    assert world["implied_rate_t_c_per_ha_per_yr"] == pytest.approx(implied)


def test_each_scenario_run_has_a_png_map_and_its_definition_in_the_manifest(store, scenario_runs):
    for key, outcome in scenario_runs.items():
        [materialization] = outcome.result.get_asset_materialization_events()
        materialization = materialization.materialization
        [contract_check] = outcome.result.get_asset_check_evaluations()
        assert contract_check.passed and contract_check.metadata["contract"].value == "restoration_scenario v3.1.0"
        path = materialization.metadata["restored_cells_map_file"].value
        assert "![restored cells" in materialization.metadata["restored_cells_map"].value
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n", key
        version = store.latest_by_partition("restoration_scenario")[key]
        manifest = json.loads((store.version_path("restoration_scenario", version) / "manifest.json").read_text())
        assert manifest["provenance"]["parameters"]["scenario"]["id"] == key
        assert f"scenario[{key}]" in manifest["provenance"]["inputs"]
        assert "climate_zone_legend" in manifest["provenance"]["inputs"]


def test_scenarios_run_together_publish_what_each_publishes_alone(embedded_run, scenario_runs, tmp_path):
    """One run of every scenario shares the streaming passes (one step): each table is the version its own run
    published, bit for bit, so nothing new is published."""
    root = tmp_path / "published"
    shutil.copytree(embedded_run[1], root)
    outcome = run_job(root, SCENARIO_JOB)
    assert outcome.success, outcome.failures()
    assert [event.step_key for event in outcome.result.get_step_success_events()] == ["restoration_scenarios"]
    together = {
        event.asset_key: event.materialization.metadata for event in outcome.result.get_asset_materialization_events()
    }
    assert set(together) == {scenario_key(key) for key in scenario_ids()}
    for key, alone in scenario_runs.items():
        [event] = alone.result.get_asset_materialization_events()
        assert together[scenario_key(key)]["version"] == event.materialization.metadata["version"], key
        assert together[scenario_key(key)]["newly_published"].value is False
        assert (
            together[scenario_key(key)]["global_soc_gain_pg_c"]
            == event.materialization.metadata["global_soc_gain_pg_c"]
        )
    assert len(outcome.result.get_asset_check_evaluations()) == len(scenario_ids())


def test_a_scenario_that_cannot_be_used_fails_the_step_after_the_others_are_published(
    embedded_run, scenario_runs, tmp_path, monkeypatch
):
    """A broken scenario file fails its asset, naming the file and rule; the other scenarios selected with it still
    publish (as they would in runs of their own)."""
    root = tmp_path / "published"
    shutil.copytree(embedded_run[1], root)
    broken, good = "global_priority_15pct", "all_converted_100pct"

    def load(scenario_id):
        if scenario_id == broken:
            raise DeclarationError(scenario_path(broken), "fraction must be in (0, 1], got 1.5")
        return load_scenario(scenario_id)

    monkeypatch.setattr(scenarios_assets, "load_scenario", load)
    outcome = run_job(root, SCENARIO_JOB, asset_selection=[scenario_key(broken), scenario_key(good)])
    assert not outcome.success
    [failure] = outcome.failures()
    assert (failure.step, failure.rule) == ("restoration_scenarios", "fraction must be in (0, 1], got 1.5")
    assert failure.file == str(scenario_path(broken))
    [event] = outcome.result.get_asset_materialization_events()
    assert event.asset_key == scenario_key(good)
    [alone] = scenario_runs[good].result.get_asset_materialization_events()
    assert event.materialization.metadata["version"] == alone.materialization.metadata["version"]


def test_potential_and_scenarios_depend_on_the_climate_zone_legend_they_name_regions_from(store):
    manifest = store.manifest(POTENTIAL, store.latest(POTENTIAL))
    assert "climate_zone_legend" in manifest["provenance"]["inputs"]
    graph = build_definitions().resolve_asset_graph()
    for asset in (dg.AssetKey(POTENTIAL), *(scenario_key(key) for key in scenario_ids())):
        assert dg.AssetKey("climate_zone_legend") in graph.get(asset).parent_keys, asset


@pytest.fixture(scope="module")
def copied_root(embedded_run, tmp_path_factory):
    """A private copy of the embedded run's outputs, to materialize single assets without touching the shared one."""
    target = tmp_path_factory.mktemp("copy") / "published"
    shutil.copytree(embedded_run[1], target)
    return target


def _materialize(root, asset, run_config=None, inputs=None, job_name=MAIN_JOB):
    outcome = run_job(root, job_name, inputs=inputs, run_config=run_config, asset_selection=[asset])
    assert outcome.success, outcome.failures()
    return outcome


def _potential_with_seed(root, seed: int) -> pd.DataFrame:
    config = {"ops": {POTENTIAL: {"config": {"seed": seed, "n_draws": 300}}}}
    result = _materialize(root, POTENTIAL, config)
    [materialization] = result.result.asset_materializations_for_node(POTENTIAL)
    return VersionedParquetStore(root).read(POTENTIAL, materialization.metadata["version"].value)


def test_potential_is_reproducible_from_its_seed(copied_root):
    first = _potential_with_seed(copied_root, 1)
    again = _potential_with_seed(copied_root, 1)
    other = _potential_with_seed(copied_root, 2)
    pd.testing.assert_frame_equal(first, again)
    share = "zomer_medium_reproduction_share_of_4p1000_all_land_pct"
    assert not first[f"{share}_p05"].equals(other[f"{share}_p05"])
    pd.testing.assert_series_equal(first[share], other[share])


def test_a_configured_pasture_raster_adds_to_converted_land(copied_root):
    # Stand-in pasture layer: HYDE cropland on the exact 1/12-degree lattice (km2 per cell, nodata 255), so converted
    # land is cropland plus a second copy of it, capped at the cell area, with nodata counting as no pasture. The WHRC
    # grid's transform is rounded (0.0833333 deg) but of the same resolution: the layer is placed cell for cell.
    pasture_path = FIXTURES / "hyde32_cropland_km2_2016_5arcmin_aligned.tif"
    result = _materialize(copied_root, "converted_land_grid", inputs=InputDatasets(pasture_raster=str(pasture_path)))
    layer = result.layer("converted_land_grid")
    cropland_tif = copied_root / VersionedParquetStore(copied_root).document()["intermediates"]["cropland_grid"]
    with rasterio.open(cropland_tif) as source:
        cropland = source.read(1).astype("float64")
    with rasterio.open(pasture_path) as source:
        pasture = source.read(1).astype("float64")
        pasture[pasture == source.nodata] = 0.0
    cell_km2 = cell_area_ha(layer.grid)[:, None] / 100.0
    converted = layer.data.astype("float64")
    assert (converted <= cell_km2 * (1 + 1e-6)).all()
    np.testing.assert_allclose(converted, np.minimum(cropland + pasture, cell_km2), rtol=1e-6)
    assert converted.sum() > 1.5 * cropland.sum()
    assert layer.alignment["components"]["pasture"]["shift_cells"] == {"columns": 0, "rows": 0}
    assert "pasture_raster" in layer.provenance["inputs"]
    # The scenario then restores cropland + pasture, and a sensitivity row restores cropland only.
    inputs = InputDatasets(pasture_raster=str(pasture_path))
    result = _materialize(copied_root, scenario_key("global_priority_15pct"), inputs=inputs, job_name=SCENARIO_JOB)
    [event] = result.result.get_asset_materialization_events()
    materialization = event.materialization
    table = VersionedParquetStore(copied_root).read("restoration_scenario", materialization.metadata["version"].value)
    world = _world(table)
    assert world["converted_land"] == "cropland (HYDE 3.2) + pasture"
    assert world["converted_land_area_mha"] == pytest.approx(converted.sum() / 1e4, rel=1e-4)
    cropland_only = table[table["converted_land"] == "cropland only (HYDE 3.2)"]
    assert cropland_only["restored_area_mha"].item() == pytest.approx(0.15 * 1591.24, abs=0.01)
    assert 0 < cropland_only["soc_gain_pg_c"].item() < world["soc_gain_pg_c"]


def test_a_pasture_raster_breaking_its_contract_is_refused_naming_the_rule(copied_root, tmp_path):
    # The same layer stored in hectares (x 100, float32): refused as stored, read once its unit is declared.
    with rasterio.open(FIXTURES / "hyde32_cropland_km2_2016_5arcmin_aligned.tif") as source:
        profile, values = source.profile, source.read(1)
    hectares = np.where(values == 255, np.float32(-1), values.astype("float32") * 100)
    pasture = tmp_path / "pasture_ha.tif"
    with rasterio.open(pasture, "w", **{**profile, "dtype": "float32", "nodata": -1}) as target:
        target.write(hectares, 1)
    outcome = run_job(
        copied_root, inputs=InputDatasets(pasture_raster=str(pasture)), asset_selection=["converted_land_grid"]
    )
    assert not outcome.success
    [check] = outcome.result.get_asset_check_evaluations()
    assert not check.passed
    message = check.metadata["error"].value
    assert message.startswith(f"{pasture}: breaks contract pasture_raster v1.0.0 (")
    assert "rule dtype: expected uint8, found float32" in message and "rule valueRange: " in message
    declaration = tmp_path / "rasters.yaml"
    declaration.write_text("declaration: 1\nrasters:\n  pasture_raster: {unit: ha}\n")
    inputs = InputDatasets(pasture_raster=str(pasture), raster_declaration=str(declaration))
    layer = _materialize(copied_root, "converted_land_grid", inputs=inputs).layer("converted_land_grid")
    assert "raster_declaration:pasture_raster" in layer.provenance["parameters"]
    cropland_tif = copied_root / VersionedParquetStore(copied_root).document()["intermediates"]["cropland_grid"]
    with rasterio.open(cropland_tif) as source:
        cropland = source.read(1).astype("float64")
    cell_km2 = cell_area_ha(layer.grid)[:, None] / 100.0
    pasture_km2 = np.where(values == 255, 0.0, values.astype("float64"))
    np.testing.assert_allclose(layer.data, np.minimum(cropland + pasture_km2, cell_km2), rtol=1e-6)


def test_definitions_keep_the_monthly_job_and_schedule_and_add_the_scenario_job():
    definitions = build_definitions()
    main = definitions.resolve_job_def("soil_pipeline_job")
    scenario_job = definitions.resolve_job_def("restoration_scenarios_job")
    assert definitions.resolve_schedule_def("monthly_refresh").job_name == "soil_pipeline_job"
    assert dg.AssetKey(POTENTIAL) in main.asset_layer.executable_asset_keys
    scenario_keys = {scenario_key(key) for key in scenario_ids()}
    assert not scenario_keys & main.asset_layer.executable_asset_keys
    assert scenario_job.asset_layer.executable_asset_keys == scenario_keys
