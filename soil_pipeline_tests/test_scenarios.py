"""Restoration-scenario formulas and bounds against hand-computed values on tiny grids."""

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science import scenarios
from soil_pipeline.science.scenarios import Recovery, Scenario

LINEAR_20 = {"curve": "linear", "period_yr": 20}


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
    assert Recovery("linear", period_yr=20).fraction(10) == pytest.approx(0.5)
    assert Recovery("linear", period_yr=20).fraction(30) == 1.0
    assert Recovery("exponential", half_life_yr=10).fraction(10) == pytest.approx(0.5)
    assert Recovery("exponential", half_life_yr=10).fraction(20) == pytest.approx(0.75)
    assert make(recovery={"curve": "exponential", "half_life_yr": 40}).recovered_fraction == pytest.approx(1 - 2**-0.5)


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
        ({"recovery": {"curve": "linear"}}, "linear recovery needs a positive period_yr, got None"),
        ({"recovery": {"curve": "linear", "period_yr": "20"}}, "linear recovery needs a positive period_yr, got '20'"),
        ({"recovery": {"curve": "logistic", "period_yr": 20}}, "recovery curve must be linear or exponential"),
        ({"recovery": {"period_yr": 20}}, "recovery: missing field.s. curve"),
        ({"recovery": {**LINEAR_20, "rate": 2}}, "recovery: unknown field.s. rate"),
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


def test_gain_clips_missing_and_negative_debt_and_scales_with_recovery():
    gain = scenarios.soc_gain_t_c(np.array([2.0, 2.0, 2.0]), np.array([5.0, -3.0, np.nan]), 0.5)
    np.testing.assert_allclose(gain, [5.0, 0.0, 0.0])


def _random_grid(seed=3, n=5000):
    rng = np.random.default_rng(seed)
    soc_2010 = rng.uniform(10, 100, n)
    soc_nolu = soc_2010 + rng.normal(2, 5, n)
    soc_2010[rng.random(n) < 0.05] = np.nan
    converted = rng.uniform(0, 80, n) * (rng.random(n) < 0.6)
    return soc_2010, soc_nolu, converted, np.full(n, 80.0)


def test_gains_are_monotone_in_the_fraction_and_bounded_by_the_debt():
    soc_2010, soc_nolu, converted, area = _random_grid()
    gains = []
    for fraction in (0.05, 0.15, 0.3, 0.5, 1.0):
        q = scenarios.cell_quantities(make(fraction), soc_2010, soc_nolu, converted, area)
        assert q["soc_gain_t_c"].sum() <= q["restored_soc_debt_t_c"].sum() + 1e-9
        gains.append(q["soc_gain_t_c"].sum())
    assert all(later >= earlier for earlier, later in zip(gains, gains[1:], strict=False))
    positive_debt = np.nansum(np.clip(soc_nolu - soc_2010, 0, None) * converted)
    assert gains[-1] == pytest.approx(positive_debt)


def test_priority_restoration_gains_more_than_the_same_area_at_random():
    soc_2010, soc_nolu, converted, area = _random_grid()
    priority = scenarios.cell_quantities(make(0.15), soc_2010, soc_nolu, converted, area)["soc_gain_t_c"].sum()
    debt = np.clip(np.nan_to_num(soc_nolu - soc_2010), 0, None)
    random_order = scenarios.restore(converted, np.random.default_rng(0).random(converted.size), 0.15)
    assert priority > (random_order * debt).sum()


def test_regional_scenario_by_hand():
    sums = pd.DataFrame(
        {
            "region_type": ["country", "country"],
            "region_id": ["A", "B"],
            "region_name": ["a", "b"],
            "soc_stock_2010_t_c": [1e12, 0.0],
            "converted_land_ha": [4e6, 1e6],
            "restored_ha": [1e6, 0.0],
            "restored_soc_debt_t_c": [2e9, 0.0],
            "soc_gain_t_c": [1e9, 0.0],
        }
    )
    draws = {"soc_debt_factor": np.array([0.5, 1.0, 1.5]), "soc_stock_factor": np.ones(3)}
    scenario = make(0.25, horizon_yr=20)
    table = scenarios.regional_scenario(sums, scenario, 0.004, draws, {"soc_debt_factor": 1.0, "soc_stock_factor": 1.0})
    a = table.iloc[0]
    assert a["restored_area_mha"] == pytest.approx(1.0)
    assert a["converted_land_area_mha"] == pytest.approx(4.0)
    assert a["soc_gain_pg_c"] == pytest.approx(1.0)
    assert a["soc_gain_gt_co2"] == pytest.approx(44 / 12)
    assert a["soc_gain_rate_tg_c_per_yr"] == pytest.approx(50.0)  # 1000 Tg C over 20 yr
    assert a["target_4p1000_tg_c_per_yr"] == pytest.approx(4000.0)  # 0.4 % of 1000 Pg C
    assert a["soc_gain_share_of_4p1000_pct"] == pytest.approx(1.25)
    assert a["soc_gain_pg_c_p05"] == pytest.approx(0.55)  # 5 % of the way from 0.5 to 1.0
    assert a["soc_gain_pg_c_p95"] == pytest.approx(1.45)
    assert np.isnan(table.iloc[1]["soc_gain_share_of_4p1000_pct"])
