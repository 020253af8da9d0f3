"""RothC-26.3 core against the official RothC_Py reference run (fixtures/rothc_reference_run, see its SOURCE.md)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science import rothc

REFERENCE = Path(__file__).parent / "fixtures" / "rothc_reference_run"
POOLS = ["DPM_t_C_ha", "RPM_t_C_ha", "BIO_t_C_ha", "HUM_t_C_ha"]


@pytest.fixture(scope="module")
def reference_input():
    head = pd.read_csv(REFERENCE / "RothC_input.dat", skiprows=3, nrows=1, sep=r"\s+")
    months = pd.read_csv(REFERENCE / "RothC_input.dat", skiprows=6, sep=r"\s+")
    assert len(months) == head.loc[0, "nsteps"] == 840
    return head.loc[0, "clay"], head.loc[0, "depth"], head.loc[0, "iom"], months


def _month(pools, deficit, row, clay, depth):
    """One month driven exactly as RothC_Py drives it (open-pan evaporation x 0.75, deficit carried over)."""
    covered = row.PC == 1
    b, deficit = rothc.moisture_step(
        row.Rain, row.Evap, covered, deficit, rothc.max_deficit_mm(clay, depth), rothc.ROTHC_PY.evaporation_factor
    )
    rate = rothc.temperature_modifier(row.Tmp) * b * rothc.cover_modifier(covered)
    to_bio, to_hum = rothc.humification_shares(clay)
    return rothc.step(pools, rate, to_bio, to_hum, row.C_inp, row.DPM_RPM, row.FYM), deficit


def _spin_up(first_year, clay, depth):
    """RothC_Py's equilibrium: repeat the first 12 months from empty pools until the active carbon changes by
    less than 1e-6 t C/ha in a year."""
    pools, deficit, previous, months = np.zeros(4), 0.0, 0.0, 0
    while True:
        for row in first_year:
            pools, deficit = _month(pools, deficit, row, clay, depth)
            months += 1
        if abs(pools.sum() - previous) <= 1e-6:
            return pools, deficit, months
        previous = pools.sum()


def test_reference_run_every_month_within_1e_6(reference_input):
    clay, depth, iom, months = reference_input
    rows = list(months.itertuples())
    pools, deficit, spin_up_months = _spin_up(rows[:12], clay, depth)
    years = pd.read_csv(REFERENCE / "year_results.csv")
    assert spin_up_months == years.loc[0, "Month"] == 19872
    np.testing.assert_allclose(pools, years.loc[0, POOLS].to_numpy(float), rtol=0, atol=1e-6)

    simulated = []
    for row in rows[12:]:
        pools, deficit = _month(pools, deficit, row, clay, depth)
        simulated.append(pools)
    simulated = np.array(simulated)
    expected = pd.read_csv(REFERENCE / "month_results.csv")
    assert len(expected) == len(simulated) == 828
    np.testing.assert_allclose(simulated, expected[POOLS].to_numpy(float), rtol=0, atol=1e-6)
    np.testing.assert_allclose(simulated.sum(axis=1) + iom, expected["SOC_t_C_ha"], rtol=0, atol=1e-6)
    december = expected[expected["Month"] == 12].reset_index(drop=True)
    np.testing.assert_allclose(december[POOLS], years.loc[1:, POOLS].reset_index(drop=True), rtol=0, atol=1e-6)


def test_analytic_equilibrium_is_the_limit_of_the_reference_spin_up(reference_input):
    """The steady state solved from the year's transfer matrix equals RothC_Py's 1,656-year spin-up; the spin-up
    stops at a yearly change below 1e-6 t C/ha, when HUM (k = 0.02/yr) is still 1.3e-4 t C/ha short of it."""
    clay, depth, _, months = reference_input
    first = months.iloc[:12]
    column = lambda name: first[name].to_numpy(float)[:, None]  # noqa: E731
    rates = rothc.climatology_rates(
        column("Tmp"), column("Rain"), column("Evap"), np.array([clay]), depth, column("PC") == 1, rothc.ROTHC_PY
    )
    annual = first["C_inp"].sum()
    equilibrium = annual * rothc.unit_equilibrium(rates, np.array([clay]), 1.44, column("C_inp")[:, 0] / annual)[:, 0]
    spun_up = pd.read_csv(REFERENCE / "year_results.csv").loc[0, POOLS].to_numpy(float)
    np.testing.assert_allclose(equilibrium[:3], spun_up[:3], rtol=0, atol=1e-6)
    assert 0 < equilibrium[3] - spun_up[3] < 2e-4


def test_whole_years_equal_month_by_month_steps():
    rng = np.random.default_rng(14)
    n = 50
    rates = rng.uniform(0.05, 1.5, (12, n))
    clay = rng.uniform(5, 60, n)
    pools = rng.uniform(0, 30, (4, n))
    final = rothc.run_years(pools, rothc.annual_map(rates, clay, 1.44), np.full(n, 2.4), 3)
    to_bio, to_hum = rothc.humification_shares(clay)
    expected = pools
    for _ in range(3):
        for m in range(12):
            expected = rothc.step(expected, rates[m], to_bio, to_hum, 2.4 / 12, 1.44)
    np.testing.assert_allclose(final, expected, rtol=1e-12)


def test_equilibrium_is_a_fixed_point_and_linear_in_inputs():
    rng = np.random.default_rng(3)
    n = 20
    rates = rng.uniform(0.05, 1.5, (12, n))
    clay = rng.uniform(5, 60, n)
    unit = rothc.unit_equilibrium(rates, clay, 1.44)
    inputs = rng.uniform(0.5, 5, n)
    after = rothc.run_years(unit * inputs, rothc.annual_map(rates, clay, 1.44), inputs, 5)
    np.testing.assert_allclose(after, unit * inputs, rtol=1e-10)


def test_conventions_differ_where_the_soil_dries():
    """A dry summer: GSOCseq's PET x 1 dries the soil more than 0.75 x pan; resetting the deficit in January
    only matters when it has not refilled by then."""
    tmp = np.full((12, 1), 15.0)
    rain = np.array([5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5.0])[:, None]
    pet = np.full((12, 1), 60.0)
    clay = np.array([20.0])
    carried = rothc.climatology_rates(tmp, rain, pet, clay, 30.0, True, rothc.ROTHC_PY)
    reset = rothc.climatology_rates(tmp, rain, pet, clay, 30.0, True, rothc.Conventions(0.75, True))
    assert carried[0, 0] == pytest.approx(0.2 * rothc.COVERED_RATE * rothc.temperature_modifier(15.0))
    assert reset[0, 0] > carried[0, 0]
    gsocseq = rothc.climatology_rates(tmp, rain, pet, clay, 30.0, True, rothc.GSOCSEQ)
    assert np.all(gsocseq <= reset)


def test_modifiers_and_falloon_iom():
    assert rothc.temperature_modifier(-6.0) == 0.0
    assert rothc.temperature_modifier(9.25) == pytest.approx(1.0, abs=0.01)  # ~1 near the Rothamsted mean
    # Falloon et al. (1998): IOM = 0.049 SOC^1.139; 50 t C/ha -> 4.14 t C/ha
    assert rothc.falloon_iom(50.0) == pytest.approx(0.049 * 50**1.139)
    assert 4.0 < rothc.falloon_iom(50.0) < 4.3
    bio, hum = rothc.humification_shares(23.4)
    assert (bio + hum) == pytest.approx(1 / (1 + 1.67 * (1.85 + 1.60 * np.exp(-0.0786 * 23.4))))


def test_cover_modifier_is_rothc_at_the_ends_and_gsocseq_ndvi_in_between():
    """RothC-26.3: c = 0.6 under a crop, 1.0 bare; GSOCseq's NDVI share P_veg gives c = 1 - 0.4 P_veg, and the month
    dries as bare soil when c > 0.8, i.e. P_veg < 0.5."""
    assert rothc.cover_modifier(True) == pytest.approx(0.6) and rothc.cover_modifier(False) == 1.0
    assert rothc.cover_modifier(0.25) == pytest.approx(0.9)
    assert rothc.is_covered(0.5) and not rothc.is_covered(0.49)


def test_bare_month_dries_the_rothc_26_3_way_or_the_soilr_way():
    """Clay 20 %, 23 cm: covered maximum deficit -(20 + 26 - 4) = -42 mm. A bare month losing 100 mm: RothC-26.3
    stops at 0.556 x -42 = -23.352 mm, b = 0.2 + 0.8 x (-42 + 23.352) / (-42 + 18.648) = 0.8388; SoilR / GSOCseq's
    scripts stop at -42 / 1.8 = -23.333 mm, the bare maximum, so b = 0.2."""
    max_def = rothc.max_deficit_mm(20.0, 23.0)
    assert max_def == pytest.approx(-42.0)
    b, deficit = rothc.moisture_step(0.0, 100.0, False, 0.0, max_def, 1.0)
    assert deficit == pytest.approx(-23.352) and b == pytest.approx(0.8388489, abs=1e-6)
    b, deficit = rothc.moisture_step(0.0, 100.0, False, 0.0, max_def, 1.0, bare_scaled=True)
    assert deficit == pytest.approx(-42.0 / 1.8) and b == pytest.approx(0.2)
    # covered months are the same under both
    covered = rothc.moisture_step(0.0, 100.0, True, 0.0, max_def, 1.0)
    np.testing.assert_array_equal(covered, rothc.moisture_step(0.0, 100.0, True, 0.0, max_def, 1.0, bare_scaled=True))
    assert covered[1] == pytest.approx(-42.0) and covered[0] == pytest.approx(0.2)


def test_rate_factor_scales_every_month_and_slows_the_equilibrium():
    """GSOCseq's paddy factor multiplies a x b x c of every month: the rates are exactly 0.4 x, and the same input
    holds more carbon."""
    rng = np.random.default_rng(5)
    tmp, rain, pet = rng.uniform(5, 30, (12, 3)), rng.uniform(0, 200, (12, 3)), rng.uniform(20, 150, (12, 3))
    clay = np.array([10.0, 30.0, 50.0])
    upland = rothc.climatology_rates(tmp, rain, pet, clay, 30.0, True, rothc.GSOCSEQ)
    paddy = rothc.climatology_rates(tmp, rain, pet, clay, 30.0, True, rothc.GSOCSEQ, rate_factor=np.full(3, 0.4))
    np.testing.assert_allclose(paddy, 0.4 * upland, rtol=1e-15)
    assert np.all(rothc.unit_equilibrium(paddy, clay, 1.44).sum(0) > rothc.unit_equilibrium(upland, clay, 1.44).sum(0))


def _run_years_by_arrays(pools, year_map, annual_input, years):
    """The year runs as whole-array operations, each pool's sum in the order added + j = 0..3 (the reference for
    the compiled loop)."""
    year, from_inputs = year_map
    added = from_inputs * annual_input[..., None, :]
    for _ in range(years):
        new = added.copy()
        for i in range(4):
            for j in range(4):
                if i == j or year[i, j].any():
                    new[..., i, :] = new[..., i, :] + year[i, j] * pools[..., j, :]
        pools = new
    return pools


def test_year_runs_equal_the_array_operations_bit_for_bit_with_shared_year_maps():
    rng = np.random.default_rng(7)
    rates = rng.uniform(0.05, 1.5, (12, 5))
    year_map = rothc.annual_map(rates, rng.uniform(5, 60, 5), 1.44)
    maps = np.array([0, 3, 3, 1, 4, 4, 2, 0])
    per_cell = tuple(v[..., maps] for v in year_map)
    pools = rng.uniform(0, 30, (3, 4, maps.size))
    inputs = rng.uniform(0, 5, (3, maps.size))
    expected = _run_years_by_arrays(pools, per_cell, inputs, 20)
    assert np.array_equal(rothc.run_years(pools, per_cell, inputs, 20), expected)
    assert np.array_equal(rothc.run_years(pools, year_map, inputs, 20, maps), expected)
