"""Restoration-scenario formulas and bounds against hand-computed values on tiny grids."""

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science import scenarios
from soil_pipeline.science.scenarios import Recovery, Scenario

LINEAR_20 = {"curve": "linear", "period_yr": 20, "label": "IPCC 20 yr", "source": "ipcc_2006_soc_transition"}
RATE_033 = {"curve": "rate", "rate_t_c_per_ha_per_yr": 0.33, "label": "Post & Kwon", "source": "post_kwon_2000"}


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
    np.testing.assert_allclose(density["cell_average"], [10.0, 40.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(density["literature"], [30.0, 60.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(density["all_on_converted"], [50.0, 60.0, 0.0, 0.0, 0.0])


def test_attribution_with_pasture_by_hand():
    # 100 ha, debt 10 t C/ha; 20 ha cropland (loss 0.3), 40 ha pasture (loss 0.1), 40 ha never converted (loss 0):
    # weights 6 and 4: cropland carries 600 t C (30 t C/ha), pasture 400 (10 t C/ha); per converted ha 1,000 / 60
    land = _land([100.0], [20.0], pasture=[40.0], pasture_loss=0.1, other_loss=0.0)
    density = scenarios.attributed_debt_density(np.array([50.0]), np.array([60.0]), land)
    np.testing.assert_allclose(density["literature"], [1000.0 / 60.0])
    np.testing.assert_allclose(density["all_on_converted"], [1000.0 / 60.0])
    np.testing.assert_allclose(density["cell_average"], [10.0])


def test_zone_without_factors_spreads_the_debt_as_the_cell_average():
    land = _land([100.0], [20.0], crop_loss=1.0, other_loss=1.0)
    density = scenarios.attributed_debt_density(np.array([50.0]), np.array([60.0]), land)
    np.testing.assert_allclose(density["literature"], density["cell_average"])


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
    density = scenarios.attributed_debt_density(soc_2010, soc_nolu, land)
    assert (density["cell_average"] <= density["literature"] + 1e-9).all()
    assert (density["literature"] <= density["all_on_converted"] + 1e-9).all()
    assert (density["all_on_converted"] <= np.clip(np.nan_to_num(soc_nolu), 0, None) + 1e-9).all()  # capped per ha
    assert (density["cell_average"] < density["all_on_converted"]).any()


def test_gains_are_monotone_in_the_fraction_and_bounded_by_the_attributed_debt():
    soc_2010, soc_nolu, land = _random_grid()
    gains = []
    for fraction in (0.05, 0.15, 0.3, 0.5, 1.0):
        q = scenarios.cell_quantities(make(fraction), soc_2010, soc_nolu, land)
        debt = q["restored_ha"] * scenarios.attributed_debt_density(soc_2010, soc_nolu, land)["literature"]
        assert q["soc_gain_t_c"].sum() <= debt.sum() + 1e-9
        assert (
            q["soc_gain_cell_average_t_c"].sum() <= q["soc_gain_t_c"].sum() <= q["soc_gain_all_on_converted_t_c"].sum()
        )
        gains.append(q["soc_gain_t_c"].sum())
    assert all(later >= earlier for earlier, later in zip(gains, gains[1:], strict=False))
    # 100 % restored, cell average: the positive debt density of every cell on its converted land
    positive_debt = np.nansum(np.clip(soc_nolu - soc_2010, 0, None) * land.cropland_ha)
    assert q["soc_gain_cell_average_t_c"].sum() == pytest.approx(positive_debt)


def test_alternative_recovery_gains_at_the_horizon():
    # one cell, all restored: 10 ha x 30 t C/ha attributed; IPCC linear 20 yr recovers it all, 0.33 t C/ha/yr 6.6
    land = _land([100.0], [10.0], other_loss=0.0)
    scenario = make(1.0, alternative_recovery=[RATE_033])
    q = scenarios.cell_quantities(scenario, np.array([50.0]), np.array([53.0]), land)
    np.testing.assert_allclose(q["soc_gain_t_c"], [300.0])
    np.testing.assert_allclose(q["soc_gain_recovery0_t_c"], [66.0])
    np.testing.assert_allclose(q["soc_gain_cell_average_t_c"], [30.0])


def test_priority_restoration_gains_more_than_the_same_area_at_random():
    soc_2010, soc_nolu, land = _random_grid()
    q = scenarios.cell_quantities(make(0.15), soc_2010, soc_nolu, land)
    density = scenarios.attributed_debt_density(soc_2010, soc_nolu, land)["literature"]
    random_order = scenarios.restore(land.converted_ha, np.random.default_rng(0).random(density.size), 0.15)
    assert q["soc_gain_t_c"].sum() > (random_order * density).sum()


def _sums():
    return pd.DataFrame(
        {
            "region_type": ["global", "country"],
            "region_id": ["GLOBAL", "B"],
            "region_name": ["World", "b"],
            "soc_stock_2010_t_c": [1e12, 0.0],
            "converted_land_ha": [4e6, 1e6],
            "restored_ha": [1e6, 0.0],
            "soc_gain_t_c": [1e9, 0.0],
            "soc_gain_cell_average_t_c": [0.5e9, 0.0],
            "soc_gain_all_on_converted_t_c": [2e9, 0.0],
            "soc_gain_recovery0_t_c": [0.2e9, 0.0],
        }
    )


def test_regional_scenario_by_hand():
    draws = {"soc_debt_factor": np.array([0.5, 1.0, 1.5]), "soc_stock_factor": np.ones(3)}
    scenario = make(0.25, horizon_yr=20, alternative_recovery=[RATE_033])
    central = {"soc_debt_factor": 1.0, "soc_stock_factor": 1.0}
    table = scenarios.regional_scenario(_sums(), scenario, 0.004, draws, central, "cropland")
    a = table.iloc[0]
    assert (a["estimate"], a["recovery_curve"], a["converted_land"]) == ("central", "IPCC 20 yr", "cropland")
    assert a["restored_area_mha"] == pytest.approx(1.0)
    assert a["converted_land_area_mha"] == pytest.approx(4.0)
    assert a["soc_gain_pg_c"] == pytest.approx(1.0)
    assert a["soc_gain_gt_co2"] == pytest.approx(44 / 12)
    assert (a["soc_gain_lower_bound_pg_c"], a["soc_gain_upper_bound_pg_c"]) == pytest.approx((0.5, 2.0))
    assert a["soc_gain_upper_bound_gt_co2"] == pytest.approx(2.0 * 44 / 12)
    assert a["soc_gain_rate_tg_c_per_yr"] == pytest.approx(50.0)  # 1000 Tg C over 20 yr
    assert a["target_4p1000_tg_c_per_yr"] == pytest.approx(4000.0)  # 0.4 % of 1000 Pg C
    assert a["soc_gain_share_of_4p1000_all_land_pct"] == pytest.approx(1.25)
    assert a["soc_gain_pg_c_p05"] == pytest.approx(0.55)  # 5 % of the way from 0.5 to 1.0
    assert a["soc_gain_pg_c_p95"] == pytest.approx(1.45)
    assert "restored_soc_debt_pg_c" not in table  # equal to the gain under the IPCC curve: not published twice
    assert np.isnan(table.iloc[1]["soc_gain_share_of_4p1000_all_land_pct"])


def test_sensitivity_rows_label_each_structural_alternative():
    draws = {"soc_debt_factor": np.array([0.5, 1.0, 1.5]), "soc_stock_factor": np.ones(3)}
    scenario = make(0.25, alternative_recovery=[RATE_033])
    central = {"soc_debt_factor": 1.0, "soc_stock_factor": 1.0}
    crop_only = _sums().iloc[:1].assign(restored_ha=0.5e6, soc_gain_t_c=0.7e9)
    rows = scenarios.sensitivity_rows(
        _sums().iloc[:1], scenario, 0.004, draws, central, "cropland + pasture", {"cropland only": crop_only}
    )
    assert (rows["estimate"] == "sensitivity").all()
    labels = rows["attribution"] + " | " + rows["recovery_curve"] + " | " + rows["converted_land"]
    got = dict(zip(labels, rows["soc_gain_pg_c"], strict=True))
    lit = scenarios.ATTRIBUTIONS["literature"]
    assert got == pytest.approx(
        {
            f"{scenarios.ATTRIBUTIONS['cell_average']} | IPCC 20 yr | cropland + pasture": 0.5,
            f"{scenarios.ATTRIBUTIONS['all_on_converted']} | IPCC 20 yr | cropland + pasture": 2.0,
            f"{lit} | Post & Kwon | cropland + pasture": 0.2,
            f"{lit} | IPCC 20 yr | cropland only": 0.7,
        }
    )
    assert rows.loc[rows["converted_land"] == "cropland only", "restored_area_mha"].item() == pytest.approx(0.5)
    assert rows["soc_gain_pg_c_p95"].to_numpy() == pytest.approx(1.45 * rows["soc_gain_pg_c"].to_numpy())
