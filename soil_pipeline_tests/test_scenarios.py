"""Restoration-scenario formulas and bounds against hand-computed values on tiny grids."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from soil_pipeline import reference_data
from soil_pipeline.engine import zonal
from soil_pipeline.science import grid_windows, scenarios
from soil_pipeline.science.scenarios import Recovery, Scenario
from soil_pipeline.zones import climate_zone_names

LINEAR_20 = {"curve": "linear", "period_yr": 20, "label": "IPCC 20 yr", "source": "ipcc_2006_soc_transition"}
RATE_033 = {"curve": "rate", "rate_t_c_per_ha_per_yr": 0.33, "label": "Post & Kwon", "source": "post_kwon_2000"}
SET_ASIDE = {
    "curve": "set_aside",
    "period_yr": 20,
    "factors": "ipcc_2006",
    "label": "IPCC set-aside",
    "source": "ipcc_2006_set_aside",
}


def make(fraction=0.5, scope="global", recovery=None, horizon_yr=20, **extra) -> Scenario:
    data = {
        "version": 1,
        "description": "test",
        "fraction": fraction,
        "scope": scope,
        "priority": "carbon_debt_density",
        "recovery": recovery or LINEAR_20,
        "horizon_yr": horizon_yr,
        **extra,
    }
    return Scenario.from_dict("test", data)


def test_recovery_curves():
    debt = np.array([10.0, 4.0, 0.0])
    np.testing.assert_allclose(Recovery("linear", "", "", period_yr=20).gain_density(debt, 10), [5.0, 2.0, 0.0])
    np.testing.assert_allclose(Recovery("linear", "", "", period_yr=20).gain_density(debt, 30), debt)
    halving = Recovery("exponential", "", "", half_life_yr=10)
    np.testing.assert_allclose(halving.gain_density(debt, 20), 0.75 * debt)
    # 0.33 t C/ha/yr for 20 yr = 6.6 t C/ha, never more than the debt
    np.testing.assert_allclose(Recovery(**RATE_033).gain_density(debt, 20), [6.6, 4.0, 0.0])
    scenario = make(recovery=LINEAR_20, alternative_recovery=[RATE_033])
    assert scenario.alternative_recovery == (Recovery(**RATE_033),)
    # set-aside: the linear path toward the whole debt; the recovered share is applied per climate class
    np.testing.assert_allclose(Recovery(**SET_ASIDE).gain_density(debt, 10), [5.0, 2.0, 0.0])
    assert Recovery(**SET_ASIDE).by_climate_class and not Recovery(**LINEAR_20).by_climate_class


def test_set_aside_share_by_hand_for_each_climate_class_of_table_5_5():
    # (F_SA - F_LU) / (1 - F_LU), IPCC 2006 Table 5.5: temperate/boreal dry (0.93 - 0.80) / 0.20, moist
    # (0.82 - 0.69) / 0.31, tropical dry (0.93 - 0.58) / 0.42, moist/wet (0.82 - 0.48) / 0.52, montane
    # (0.88 - 0.64) / 0.36; a set-aside factor below the cultivated one recovers nothing, F_LU = 1 nothing either
    f_lu = np.array([0.80, 0.69, 0.58, 0.48, 0.64, 0.83, 1.0])
    f_sa = np.array([0.93, 0.82, 0.93, 0.82, 0.88, 0.82, 0.9])
    np.testing.assert_allclose(
        scenarios.set_aside_share(f_lu, f_sa), [0.65, 0.13 / 0.31, 0.35 / 0.42, 0.34 / 0.52, 0.24 / 0.36, 0.0, 0.0]
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"fraction": 0.0}, r"fraction must be in \(0, 1\], got 0.0"),
        ({"fraction": 1.5}, r"fraction must be in \(0, 1\], got 1.5"),
        ({"fraction": "15 %"}, "fraction must be a number, got '15 %'"),
        ({"scope": "continental"}, "scope must be one of"),
        ({"scope": "within_region"}, "scope_region_type is required for, and only for, within_region"),
        ({"scope_region_type": "country"}, "scope_region_type is required for, and only for, within_region"),
        ({"priority": "random"}, "unknown priority 'random'"),
        ({"horizon_yr": 0}, "horizon_yr must be positive"),
        ({"horizon_yr": None}, "horizon_yr must be a number, got None"),
        (
            {"recovery": {**LINEAR_20, "period_yr": None}},
            "recovery: linear recovery needs a positive period_yr, got None",
        ),
        (
            {"recovery": {**LINEAR_20, "period_yr": "20"}},
            "recovery: linear recovery needs a positive period_yr, got '20'",
        ),
        ({"recovery": {**LINEAR_20, "curve": "logistic"}}, "recovery: recovery curve must be one of linear, exp"),
        ({"recovery": {**LINEAR_20, "half_life_yr": 5}}, "recovery: linear recovery takes no half_life_yr"),
        ({"recovery": {**SET_ASIDE, "factors": None}}, "recovery: set_aside recovery: factors .an IPCC edition. is"),
        (
            {"recovery": {**LINEAR_20, "factors": "ipcc_2006"}},
            "recovery: linear recovery: factors .an IPCC edition. is",
        ),
        ({"low": {**RATE_033, "rate_t_c_per_ha_per_yr": 0}}, "low: rate recovery needs a positive rate"),
        ({"recovery": {"period_yr": 20}}, "recovery: missing field.s. curve, label, source"),
        ({"recovery": {**LINEAR_20, "rate": 2}}, "recovery: unknown field.s. rate"),
        (
            {"alternative_recovery": [{**RATE_033, "rate_t_c_per_ha_per_yr": -1}]},
            r"alternative_recovery\[0\]: rate rec",
        ),
        ({"alternative_recovery": RATE_033}, "alternative_recovery must be a list of recovery curves"),
        ({"recovery": 20}, "recovery must be a mapping of fields, got int"),
        ({"horizon": 20}, "unknown field.s. horizon"),
        ({"id": "other"}, "unknown field.s. id"),
    ],
)
def test_invalid_scenarios_are_refused(bad, message):
    data = {"version": 1, "description": "", "fraction": 0.15, "scope": "global"}
    data |= {"priority": "carbon_debt_density", "recovery": LINEAR_20, "horizon_yr": 20} | bad
    with pytest.raises(ValueError, match=f"^scenario bad: {message}"):
        Scenario.from_dict("bad", data)


@pytest.mark.parametrize("field", ["version", "description", "fraction", "scope", "priority", "recovery", "horizon_yr"])
def test_a_scenario_missing_a_required_field_is_refused(field):
    data = {"version": 1, "description": "", "fraction": 0.15, "scope": "global"}
    data |= {"priority": "carbon_debt_density", "recovery": LINEAR_20, "horizon_yr": 20}
    del data[field]
    with pytest.raises(ValueError, match=f"^scenario bad: missing field.s. {field}$"):
        Scenario.from_dict("bad", data)


def test_priority_order_breaks_ties_by_cell_index_and_puts_missing_last():
    priority = np.array([1.0, 3.0, 3.0, np.nan, 2.0, 3.0])
    np.testing.assert_array_equal(scenarios.priority_order(priority), [1, 2, 5, 4, 0, 3])
    zones = np.array([1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(scenarios.priority_order(priority, zones), [1, 4, 3, 2, 5, 0])


def test_restore_fills_in_priority_order_with_a_partial_last_cell():
    # 3 x 4 grid, converted ha per cell and priority (debt density, t C/ha)
    converted = np.array([[10.0, 0.0, 20.0, 10.0], [5.0, 5.0, 0.0, 10.0], [0.0, 20.0, 10.0, 10.0]])
    priority = np.array([[5.0, 9.0, 1.0, 7.0], [7.0, np.nan, 3.0, 2.0], [8.0, 6.0, -1.0, 7.0]])
    # total 100 ha, 30 % = 30 ha; order by priority: (0,1) 0 ha, (2,0) 0 ha, (0,3) 10, (1,0) 5, (2,3) 10 (ties 7:
    # by index), then (2,1) 20 ha of which 5 ha are needed
    restored = scenarios.restore(converted.ravel(), priority.ravel(), 0.3).reshape(3, 4)
    expected = np.array([[0.0, 0.0, 0.0, 10.0], [5.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 10.0]])
    np.testing.assert_allclose(restored, expected)


def test_restore_within_zones_restores_the_share_of_each_zone():
    converted = np.array([10.0, 10.0, 10.0, 30.0, 10.0])
    priority = np.array([1.0, 2.0, 3.0, 1.0, 2.0])
    zones = np.array([0, 0, 0, 1, 1])
    # zone 0: 30 ha -> 15 ha: cell 2 (10 ha) then 5 ha of cell 1; zone 1: 40 ha -> 20 ha: cell 4, then 10 of cell 3
    restored = scenarios.restore(converted, priority, 0.5, zones)
    np.testing.assert_allclose(restored, [0.0, 5.0, 10.0, 10.0, 10.0])


def test_full_restoration_restores_every_converted_hectare():
    rng = np.random.default_rng(7)
    converted = rng.uniform(0, 50, 1000)
    restored = scenarios.restore(converted, rng.normal(size=1000), 1.0)
    np.testing.assert_allclose(restored, converted, rtol=1e-12, atol=1e-9)


def test_ranking_is_deterministic_under_ties():
    # 10,000 cells in two tied priority classes (an unstable sort would shuffle them): the lowest indices go first
    converted = np.full(10_000, 10.0)
    tied = np.where(np.arange(10_000) % 2 == 0, 4.0, 1.0)
    first = scenarios.restore(converted, tied, 0.25)
    np.testing.assert_array_equal(first, scenarios.restore(converted.copy(), tied.copy(), 0.25))
    np.testing.assert_array_equal(np.flatnonzero(first), np.arange(0, 5_000, 2))


def _land(area, cropland, pasture=None, crop_loss=0.3, pasture_loss=0.05, other_loss=0.05):
    area = np.asarray(area, dtype=float)
    full = np.ones_like(area)
    return scenarios.LandUse(
        area_ha=area,
        cropland_ha=np.asarray(cropland, dtype=float),
        pasture_ha=np.zeros_like(area) if pasture is None else np.asarray(pasture, dtype=float),
        cropland_loss=crop_loss * full,
        pasture_loss=pasture_loss * full,
        other_loss=other_loss * full,
    )


def test_attribution_by_hand():
    # cell 0: 100 ha, debt 10 t C/ha (1,000 t C), 20 ha cropland: average 10; literature weights 20 x 0.3 = 6 on
    #   cropland and 80 x 0.05 = 4 elsewhere: 1,000 x 0.6 / 20 = 30; all on cropland 1,000 / 20 = 50
    # cell 1: debt 40 t C/ha on 100 ha, 5 ha cropland: literature 4,000 x 1.5 / 6.25 / 5 = 192, capped at the
    #   no-land-use stock 60; all on cropland 800, capped at 60
    # cell 2: negative debt; cell 3: missing 2010 stock; cell 4: no cropland
    soc_2010 = np.array([50.0, 20.0, 50.0, np.nan, 10.0])
    soc_nolu = np.array([60.0, 60.0, 40.0, 60.0, 30.0])
    land = _land([100.0] * 5, [20.0, 5.0, 50.0, 50.0, 0.0])
    density = scenarios.attributed_debt_density(soc_2010, soc_nolu, land)
    np.testing.assert_allclose(density["cell_average"][0], [10.0, 40.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(density["literature"][0], [30.0, 60.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(density["all_on_converted"][0], [50.0, 60.0, 0.0, 0.0, 0.0])


def test_attribution_with_pasture_by_hand():
    # 100 ha, debt 10 t C/ha; 20 ha cropland (loss 0.3), 40 ha pasture (loss 0.1), 40 ha never converted (loss 0):
    # weights 6 and 4: cropland carries 600 t C (30 t C/ha), pasture 400 (10 t C/ha); per converted ha 1,000 / 60
    land = _land([100.0], [20.0], pasture=[40.0], pasture_loss=0.1, other_loss=0.0)
    density = scenarios.attributed_debt_density(np.array([50.0]), np.array([60.0]), land)
    np.testing.assert_allclose(density["literature"], [[30.0], [10.0]])
    np.testing.assert_allclose(scenarios.mean_density(land, density["literature"]), [1000.0 / 60.0])
    np.testing.assert_allclose(density["all_on_converted"], [[1000.0 / 60.0], [1000.0 / 60.0]])
    np.testing.assert_allclose(density["cell_average"][0], [10.0])


def test_zone_without_factors_spreads_the_debt_as_the_cell_average():
    land = _land([100.0], [20.0], crop_loss=1.0, other_loss=1.0)
    density = scenarios.attributed_debt_density(np.array([50.0]), np.array([60.0]), land)
    np.testing.assert_allclose(density["literature"][0], density["cell_average"][0])


def test_shipped_grazing_loss_gives_cropland_a_smaller_share_of_a_half_cropland_cell():
    factors = reference_data.land_use_factors(climate_zone_names())
    # codes 3 (Tropical Moist, F_LU 0.48) and 5 (Warm Temperate Moist, F_LU 0.69); 100 ha, 50 ha cropland, 10 t C/ha
    codes = np.array([3, 5])
    np.testing.assert_allclose(factors.cropland_loss[codes], [0.52, 0.31])
    np.testing.assert_allclose(factors.grazing_loss[codes], [0.45 * 0.52, 0.45 * 0.31])
    land = _land([100.0, 100.0], [50.0, 50.0], crop_loss=factors.cropland_loss[codes])
    land = dataclasses.replace(land, other_loss=factors.grazing_loss[codes], pasture_loss=factors.grazing_loss[codes])
    density = scenarios.attributed_debt_density(np.array([50.0, 50.0]), np.array([60.0, 60.0]), land)
    # cropland's share of the cell's 1,000 t C: 50 x l / (50 x l + 50 x 0.45 l) = 1 / 1.45 in every zone (it was
    # 0.52 / 0.55 = 95 % and 0.31 / 0.36 = 86 % with the moderately degraded grassland loss, 0.03 and 0.05)
    np.testing.assert_allclose(density["literature"][0] * 50.0, [1000.0 / 1.45] * 2)
    flat = dict(zip(factors.grazing_alternatives, factors.grazing_alternatives.values(), strict=True))
    label = next(name for name in flat if "0.10 of the native stock" in name)
    land_010 = dataclasses.replace(land, other_loss=flat[label][codes])
    density_010 = scenarios.attributed_debt_density(np.array([50.0, 50.0]), np.array([60.0, 60.0]), land_010)
    np.testing.assert_allclose(density_010["literature"][0] * 50.0, [1000.0 * 0.52 / 0.62, 1000.0 * 0.31 / 0.41])


def _random_grid(seed=3, n=5000):
    rng = np.random.default_rng(seed)
    soc_2010 = rng.uniform(10, 100, n)
    soc_nolu = soc_2010 + rng.normal(2, 5, n)
    soc_2010[rng.random(n) < 0.05] = np.nan
    converted = rng.uniform(0, 80, n) * (rng.random(n) < 0.6)
    land = _land(np.full(n, 80.0), converted, crop_loss=rng.uniform(0.2, 0.52, n), other_loss=rng.uniform(0, 0.2, n))
    return soc_2010, soc_nolu, land


def test_bounds_order_lower_central_upper_in_every_cell():
    soc_2010, soc_nolu, land = _random_grid()
    density = {name: crop for name, (crop, _) in scenarios.attributed_debt_density(soc_2010, soc_nolu, land).items()}
    assert (density["cell_average"] <= density["literature"] + 1e-9).all()
    assert (density["literature"] <= density["all_on_converted"] + 1e-9).all()
    assert (density["all_on_converted"] <= np.clip(np.nan_to_num(soc_nolu), 0, None) + 1e-9).all()  # capped per ha
    assert (density["cell_average"] < density["all_on_converted"]).any()


def _quantities(scenario, soc_2010, soc_nolu, land, classes=None, **extra):
    classes = np.zeros(soc_2010.shape, "int64") if classes is None else classes
    return scenarios.cell_quantities(scenario, soc_2010, soc_nolu, land, classes, 5, **extra)


def test_gains_are_monotone_in_the_fraction_and_bounded_by_the_attributed_debt():
    soc_2010, soc_nolu, land = _random_grid()
    central, lower, upper = (
        scenarios.gain_name("central", a) for a in ("literature", "cell_average", "all_on_converted")
    )
    gains = []
    for fraction in (0.05, 0.15, 0.3, 0.5, 1.0):
        q = _quantities(make(fraction), soc_2010, soc_nolu, land)
        debt = q["restored_ha"] * scenarios.attributed_debt_density(soc_2010, soc_nolu, land)["literature"][0]
        assert q[central].sum() <= debt.sum() + 1e-9
        assert q[lower].sum() <= q[central].sum() <= q[upper].sum()
        gains.append(q[central].sum())
    assert all(later >= earlier for earlier, later in zip(gains, gains[1:], strict=False))
    # 100 % restored, cell average: the positive debt density of every cell on its converted land
    positive_debt = np.nansum(np.clip(soc_nolu - soc_2010, 0, None) * land.cropland_ha)
    assert q[lower].sum() == pytest.approx(positive_debt)
    # the restored land with a SOC value excludes the cells with a missing stock
    missing = np.isnan(soc_2010)
    assert q["restored_with_soc_ha"].sum() == pytest.approx(q["restored_ha"][~missing].sum())


def test_recovery_cases_and_alternatives_at_the_horizon():
    # one cell, all restored: 10 ha x 30 t C/ha attributed; linear 20 yr recovers it all, 0.33 t C/ha/yr 6.6 / ha
    land = _land([100.0], [10.0], other_loss=0.0)
    scenario = make(1.0, low=RATE_033, eventual_recovery=LINEAR_20, alternative_recovery=[RATE_033])
    q = _quantities(scenario, np.array([50.0]), np.array([53.0]), land)
    np.testing.assert_allclose(q[scenarios.gain_name("central")], [300.0])
    np.testing.assert_allclose(q[scenarios.gain_name("low")], [66.0])
    np.testing.assert_allclose(q[scenarios.gain_name("eventual_recovery")], [300.0])
    np.testing.assert_allclose(q[scenarios.gain_name("alternative0")], [66.0])
    np.testing.assert_allclose(q[scenarios.gain_name("central", "cell_average")], [30.0])


def test_set_aside_curve_by_hand_on_a_cell_of_each_climate_class():
    # six cells all cropland (the whole debt on it), 100 ha each, debt 10 t C/ha, classes 0-4 of Table 5.5 and none;
    # all restored: each regains 1,000 t C x its class's recovered share at 20 yr, half of it at 10 yr
    factors = reference_data.land_use_factors(climate_zone_names())
    classes = np.arange(6)
    land = _land(np.full(6, 100.0), np.full(6, 100.0))
    central_share, _ = factors.recovered_shares("ipcc_2006", 10, seed=1)
    expected_share = [0.65, 0.13 / 0.31, 0.35 / 0.42, 0.34 / 0.52, 0.24 / 0.36, 1.0]
    np.testing.assert_allclose(central_share, expected_share)
    for horizon, part in ((20, 1.0), (10, 0.5)):
        scenario = make(1.0, recovery=SET_ASIDE, horizon_yr=horizon)
        q = _quantities(scenario, np.full(6, 50.0), np.full(6, 60.0), land, classes)
        sums = pd.DataFrame({name: [values.sum()] for name, values in q.items()})
        name = scenarios.gain_name("central")
        for k in range(6):
            assert sums[f"{name}.class{k}"].item() == pytest.approx(1000.0 * part)
        gain = scenarios.curve_gain_t_c(sums, name, scenario.recovery, central_share)
        assert gain.item() == pytest.approx(1000.0 * part * sum(expected_share))


def test_set_aside_recovers_pasture_in_full_and_cropland_by_its_share():
    # 100 ha: 20 ha cropland (30 t C/ha attributed) and 40 ha pasture (10 t C/ha), tropical moist/wet (class 3)
    land = _land([100.0], [20.0], pasture=[40.0], pasture_loss=0.1, other_loss=0.0)
    q = _quantities(make(1.0, recovery=SET_ASIDE), np.array([50.0]), np.array([60.0]), land, np.array([3]))
    sums = pd.DataFrame({name: values for name, values in q.items()})
    share = np.array([0.0, 0.0, 0.0, 0.34 / 0.52, 0.0, 1.0])
    gain = scenarios.curve_gain_t_c(sums, scenarios.gain_name("central"), Recovery(**SET_ASIDE), share)
    assert gain.item() == pytest.approx(20 * 30.0 * 0.34 / 0.52 + 40 * 10.0)


def test_grazing_alternatives_are_summed_beside_the_central_attribution():
    # 100 ha, 50 ha cropland, debt 10 t C/ha; central grazing loss 0.45 x 0.52, alternative flat 0.10
    land = _land([100.0], [50.0], crop_loss=0.52, other_loss=0.45 * 0.52)
    other = dataclasses.replace(land, other_loss=np.array([0.10]))
    scenario = make(1.0, recovery=SET_ASIDE)
    q = _quantities(scenario, np.array([50.0]), np.array([60.0]), land, np.array([3]), grazing={"grazing0": other})
    central, alternative = scenarios.gain_name("central"), scenarios.gain_name("central", grazing="grazing0")
    assert q[f"{central}.class3"].item() == pytest.approx(1000.0 / 1.45)
    assert q[f"{alternative}.class3"].item() == pytest.approx(1000.0 * 0.52 / 0.62)


def test_scenarios_sharing_one_cell_debt_get_the_quantities_each_gets_alone():
    # the streaming engine makes each window's CellDebt once and hands it to every scenario on the window: its
    # attributed densities are computed for the first and reused (the same arrays) by the others, unchanged
    soc_2010, soc_nolu, land = _random_grid()
    other = dataclasses.replace(land, other_loss=land.other_loss * 0.5)
    debt = scenarios.CellDebt.of(soc_2010, soc_nolu, land.area_ha)
    for scenario in (make(0.15), make(1.0, recovery=SET_ASIDE), make(0.3, low=RATE_033)):
        alone = _quantities(scenario, soc_2010, soc_nolu, land, grazing={"grazing0": other})
        shared = _quantities(scenario, soc_2010, soc_nolu, land, grazing={"grazing0": other}, debt=debt)
        assert alone.keys() == shared.keys()
        for name, values in alone.items():
            np.testing.assert_array_equal(shared[name], values, err_msg=name)
    assert debt.attributed(land) is debt.attributed(land)
    assert (
        debt.attributed(other, ("literature",))["literature"][0]
        is debt.attributed(other, ("literature",))["literature"][0]
    )


def test_set_aside_gains_summed_per_region_and_class_in_one_loop_equal_the_per_class_quantities_bit_for_bit():
    # what the streaming engine sums (`split_classes=False`: each set-aside gain's cropland part once, over the cross
    # zoning region x class) against the per-class quantities (one masked array per class) summed per region
    soc_2010, soc_nolu, land = _random_grid()
    rng = np.random.default_rng(5)
    classes, regions = rng.integers(0, 6, soc_2010.shape), rng.integers(-1, 7, soc_2010.shape)
    other = dataclasses.replace(land, other_loss=2.0 * land.other_loss)
    scenario = make(0.3, recovery=SET_ASIDE, low=RATE_033, alternative_recovery=[{**SET_ASIDE, "factors": "ipcc_2019"}])
    split = _quantities(scenario, soc_2010, soc_nolu, land, classes, grazing={"grazing0": other})
    joint = _quantities(scenario, soc_2010, soc_nolu, land, classes, grazing={"grazing0": other}, split_classes=False)
    by_class = [name for name in joint if name.endswith(scenarios.BY_CLASS)]
    assert len(by_class) == 5  # central, alternative0, the two bounds, grazing0
    sums = zonal.window_sums(split, {"region": regions}, {"region": 7})
    crossed = zonal.window_sums(
        {name: joint[name] for name in by_class}, {"x": zonal.CrossZones(regions, classes, 6)}, {"x": 42}
    )
    assert any(sums[f"region/{name}"].any() for name in split if ".class" in name)
    for name in joint:
        if name in by_class:
            per_class = crossed[f"x/{name}"].reshape(7, 6)
            for k, class_name in enumerate(scenarios.class_names(name.removesuffix(scenarios.BY_CLASS), 5)[:-1]):
                assert per_class[:, k].tobytes() == sums[f"region/{class_name}"].tobytes(), class_name
        else:
            assert joint[name].tobytes() == split[name].tobytes(), name


def test_priority_restoration_gains_more_than_the_same_area_at_random():
    soc_2010, soc_nolu, land = _random_grid()
    q = _quantities(make(0.15), soc_2010, soc_nolu, land)
    density = scenarios.attributed_debt_density(soc_2010, soc_nolu, land)["literature"][0]
    random_order = scenarios.restore(land.converted_ha, np.random.default_rng(0).random(density.size), 0.15)
    assert q[scenarios.gain_name("central")].sum() > (random_order * density).sum()


def _sums():
    """Two regions; the central set-aside gain summed over one climate class (0) and no class (1)."""
    central = scenarios.gain_name("central")
    return pd.DataFrame(
        {
            "region_type": ["global", "country"],
            "region_id": ["GLOBAL", "B"],
            "region_name": ["World", "b"],
            "soc_stock_2010_t_c": [1e12, 0.0],
            "soc_stock_error_t_c": [0.5e11, 0.0],
            "soc_stock_2010_without_error_t_c": [1e11, 0.0],
            "restored_soc_stock_2010_t_c": [1e8, 0.0],
            "restored_soc_stock_error_t_c": [1e7, 0.0],
            "restored_soc_stock_2010_without_error_t_c": [0.0, 0.0],
            "converted_land_ha": [4e6, 1e6],
            "restored_ha": [1e6, 0.0],
            "restored_with_soc_ha": [0.8e6, 0.0],
            f"{central}.class0": [1e7, 0.0],
            f"{central}.class1": [0.2e7, 0.0],
            f"{central}.pasture": [0.0, 0.0],
            **{
                f"{scenarios.gain_name('central', a)}.class0": [v, 0.0]
                for a, v in (("cell_average", 0.6e7), ("all_on_converted", 2e7))
            },
            **{f"{scenarios.gain_name('central', a)}.class1": [0.0, 0.0] for a in ("cell_average", "all_on_converted")},
            **{
                f"{scenarios.gain_name('central', a)}.pasture": [0.0, 0.0] for a in ("cell_average", "all_on_converted")
            },
            scenarios.gain_name("low"): [0.3e7, 0.0],
            scenarios.gain_name("eventual_recovery"): [1.2e7, 0.0],
        }
    )


def _draws(z=(-1.0, 0.0, 1.0), class0=(0.5, 0.5, 0.5)):
    return scenarios.Draws(
        stock_z=np.array(z),
        debt_residual=np.ones(len(z)),
        shares={"ipcc_2006": np.column_stack([class0, np.ones(len(z))])},
        central_shares={"ipcc_2006": np.array([0.5, 1.0])},
        fallback_relative_sd=0.1,
    )


def test_regional_scenario_by_hand():
    scenario = make(0.25, recovery=SET_ASIDE, low=RATE_033, eventual_recovery=LINEAR_20, horizon_yr=20)
    table = scenarios.regional_scenario(_sums(), scenario, 0.004, _draws(), scenarios.Labels("cropland", "g"))
    world = table[table["region_type"] == "global"].set_index("estimate")
    a = world.loc["central"]
    assert (a["recovery_curve"], a["converted_land"], a["grazing_loss"]) == ("IPCC set-aside", "cropland", "g")
    assert (a["restored_area_mha"], a["restored_area_with_soc_mha"]) == pytest.approx((1.0, 0.8))
    assert a["converted_land_area_mha"] == pytest.approx(4.0)
    # central: 0.5 x 1e7 (class 0) + 1 x 0.2e7 (no class) = 0.7e7 t C
    assert a["soc_gain_pg_c"] == pytest.approx(0.007)
    assert a["soc_gain_gt_co2"] == pytest.approx(0.007 * 44 / 12)
    assert (a["soc_gain_lower_bound_pg_c"], a["soc_gain_upper_bound_pg_c"]) == pytest.approx((0.003, 0.01))
    assert a["soc_gain_rate_tg_c_per_yr"] == pytest.approx(0.35)  # 7 Tg C over 20 yr
    assert a["implied_rate_t_c_per_ha_per_yr"] == pytest.approx(0.7e7 / 0.8e6 / 20)  # 0.4375
    assert a["target_4p1000_tg_c_per_yr"] == pytest.approx(4000.0)  # 0.4 % of 1000 Pg C
    assert a["soc_gain_share_of_4p1000_all_land_pct"] == pytest.approx(100 * 0.35 / 4000)
    # restored land's stock error 1e7 / 1e8 = 10 %: gains 0.9, 1.0, 1.1 x central over z = -1, 0, 1
    assert (a["soc_gain_pg_c_p05"], a["soc_gain_pg_c_p95"]) == pytest.approx((0.007 * 0.91, 0.007 * 1.09))
    # target: (0.5e11 + 10 % of 1e11 without an error value) / 1e12 = 6 %; share = gain / target, drawn together
    share_samples = 100 * 0.35 * np.array([0.9 / 0.94, 1.0, 1.1 / 1.06]) / 4000
    assert a["soc_gain_share_of_4p1000_all_land_pct_p95"] == pytest.approx(np.percentile(share_samples, 95))
    low, eventual = world.loc["low"], world.loc["eventual_recovery"]
    assert (low["soc_gain_pg_c"], eventual["soc_gain_pg_c"]) == pytest.approx((0.003, 0.012))
    assert (low["recovery_curve"], eventual["recovery_curve"]) == ("Post & Kwon", "IPCC 20 yr")
    assert low["implied_rate_t_c_per_ha_per_yr"] == pytest.approx(0.3e7 / 0.8e6 / 20)
    assert np.isnan(low["soc_gain_lower_bound_pg_c"])  # bounds on central rows only
    b = table[table["region_id"] == "B"]
    assert set(b["estimate"]) == {"central", "low", "eventual_recovery"}
    assert b["soc_gain_share_of_4p1000_all_land_pct"].isna().all() and b["implied_rate_t_c_per_ha_per_yr"].isna().all()


def test_a_class_with_a_wider_factor_range_gives_its_region_a_wider_interval():
    # two regions, each all in one class; the classes' factors share their values, one has 5x the error
    table = {
        "long_term_cultivated": {"narrow": {"value": 0.6, "error_pct": 10}, "wide": {"value": 0.6, "error_pct": 50}},
        "set_aside": {"narrow": {"value": 0.9, "error_pct": 10}, "wide": {"value": 0.9, "error_pct": 50}},
    }
    factors = scenarios.LandUseFactors(("narrow", "wide"), np.arange(3), *[np.ones(3)] * 2, "g", {}, {"e": table})
    central_share, drawn = factors.recovered_shares("e", 4000, seed=4001)
    np.testing.assert_allclose(central_share, [0.75, 0.75, 1.0])
    name = scenarios.gain_name("central")
    bounds = [scenarios.gain_name("central", a) for a in ("cell_average", "all_on_converted")]
    sums = _sums().assign(**{f"{name}.class0": [1e7, 0.0], f"{name}.class1": [0.0, 1e7], f"{name}.class2": [0.0, 0.0]})
    sums = sums.assign(restored_with_soc_ha=[1e6, 1e6], restored_soc_stock_2010_t_c=[1e8, 1e8])
    sums = sums.assign(**{f"{bound}.class2": [0.0, 0.0] for bound in bounds})
    draws = scenarios.Draws(np.zeros(4000), np.ones(4000), {"e": drawn}, {"e": central_share}, 0.1)
    curve = Recovery(**{**SET_ASIDE, "factors": "e"})
    scenario = make(0.25, recovery={**SET_ASIDE, "factors": "e"})
    rows = scenarios.regional_scenario(sums, scenario, 0.004, draws, scenarios.Labels("cropland", "g"))
    width = (rows["soc_gain_pg_c_p95"] - rows["soc_gain_pg_c_p05"]).to_numpy()
    assert rows["soc_gain_pg_c"].to_numpy() == pytest.approx([0.0075, 0.0075])
    assert width[1] > 2 * width[0] > 0  # 0.0100 vs 0.0037 Pg C (the wide share is clipped to [0, 1])
    assert curve.by_climate_class


def test_recovered_share_draws_are_fixed_by_the_seed():
    factors = reference_data.land_use_factors(climate_zone_names())
    _, first = factors.recovered_shares("ipcc_2006", 500, seed=11)
    _, again = factors.recovered_shares("ipcc_2006", 500, seed=11)
    _, other = factors.recovered_shares("ipcc_2006", 500, seed=12)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert ((first >= 0) & (first <= 1)).all() and (first[:, -1] == 1).all()


def test_regional_stock_error_from_the_error_layers_on_a_tiny_grid():
    # density errors 0.1 kg C/m3 at 0 and 30 cm -> 0.15 x (err0 + err30) t C/ha; NaN where either is missing
    layers = {"0cm": np.array([[10.0, 20.0], [np.nan, 0.0]]), "30cm": np.array([[4.0, 6.0], [5.0, np.nan]])}
    (error,), _ = grid_windows.stock_error_window(layers, None, None, None)
    np.testing.assert_allclose(error, [[2.1, 3.9], [np.nan, np.nan]], rtol=1e-6)
    soc = np.array([[40.0, 60.0], [50.0, np.nan]])
    area = np.array([[100.0, 100.0], [200.0, 200.0]])
    q = scenarios.stock_error_quantities(soc, error, area, restored_ha=np.zeros((2, 2)))
    zones = {"region": np.array([[0, 0], [1, 1]]), "world": np.zeros((2, 2), "int64")}
    sums = zonal.window_sums(q, zones, {"region": 2, "world": 1})
    stock = {"region": np.array([10000.0, 10000.0]), "world": np.array([20000.0])}
    relative = {
        kind: scenarios.relative_stock_error(
            sums[f"{kind}/soc_stock_error_t_c"], sums[f"{kind}/soc_stock_2010_without_error_t_c"], stock[kind], 0.1
        )
        for kind in zones
    }
    # region 0: (210 + 390) t C / 10,000 t C; region 1 has no error value: the 10 % fallback; the world:
    # (600 + 0.1 x 10,000) / 20,000 (pixel errors fully correlated: they add)
    np.testing.assert_allclose(relative["region"], [0.06, 0.10], rtol=1e-6)
    np.testing.assert_allclose(relative["world"], [0.08], rtol=1e-6)


def test_a_stock_error_measured_by_field_sites_replaces_that_of_the_layers_and_says_so():
    error, without, stock = np.array([600.0, 0.0, 100.0]), np.array([0.0, 10000.0, 0.0]), np.full(3, 10000.0)
    field = np.array([np.nan, np.nan, 0.25])
    relative = scenarios.relative_stock_error(error, without, stock, 0.1, field)
    np.testing.assert_allclose(relative, [0.06, 0.10, 0.25])
    assert scenarios.stock_error_basis(without, stock, field).tolist() == ["error layers", "fallback", "field sites"]
    assert scenarios.stock_error_basis([0.0], [0.0]).tolist() == ["no stock"]


def test_sensitivity_rows_label_each_structural_alternative():
    scenario = make(0.25, recovery=SET_ASIDE, alternative_recovery=[RATE_033])
    lit = scenarios.ATTRIBUTIONS["literature"]
    grazing = scenarios.gain_name("central", grazing="grazing0")
    sums = (
        _sums()
        .iloc[:1]
        .assign(
            **{scenarios.gain_name("alternative0"): 0.2e7, f"{grazing}.class0": 0.4e7, f"{grazing}.class1": 0.0},
            **{f"{grazing}.pasture": 0.0},
        )
    )
    crop_only = sums.assign(restored_ha=0.5e6, **{f"{scenarios.gain_name('central')}.class0": 0.6e7})
    labels = scenarios.Labels("cropland + pasture", "central grazing")
    rows = scenarios.sensitivity_rows(
        sums, scenario, 0.004, _draws(), labels, {"grazing0": "grazing 0.10"}, {"cropland only": crop_only}
    )
    assert (rows["estimate"] == "sensitivity").all()
    labels = rows["attribution"] + " | " + rows["grazing_loss"] + " | " + rows["recovery_curve"]
    got = dict(zip(labels + " | " + rows["converted_land"], rows["soc_gain_pg_c"], strict=True))
    lower, upper = scenarios.ATTRIBUTIONS["cell_average"], scenarios.ATTRIBUTIONS["all_on_converted"]
    assert got == pytest.approx(
        {
            f"{lower} | central grazing | IPCC set-aside | cropland + pasture": 0.003,
            f"{upper} | central grazing | IPCC set-aside | cropland + pasture": 0.01,
            f"{lit} | central grazing | Post & Kwon | cropland + pasture": 0.002,
            f"{lit} | grazing 0.10 | IPCC set-aside | cropland + pasture": 0.002,
            f"{lit} | central grazing | IPCC set-aside | cropland only": 0.005,
        }
    )
    assert rows.loc[rows["converted_land"] == "cropland only", "restored_area_mha"].item() == pytest.approx(0.5)
    assert rows["implied_rate_t_c_per_ha_per_yr"].notna().all()
