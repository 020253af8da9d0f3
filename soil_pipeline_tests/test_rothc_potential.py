"""GSOCseq-style procedure on real cells of the common grid, and the published rothc_sequestration_potential."""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling

from soil_pipeline.assets.rothc import (
    OVERVIEWS_ABOVE,
    RateMaps,
    RothCInputs,
    cell_inputs,
    load_scenarios,
    read_sampled,
    series_years,
)
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science import gsocseq, rothc
from soil_pipeline.science.grid import GridSpec
from soil_pipeline_tests.whole_array import align

FIVE_MINUTES = GridSpec(4320, 2160, Affine(1 / 12, 0, -180, 0, -1 / 12, 90))


@pytest.fixture(scope="module")
def real_cells():
    """Every 97th cell of the WHRC grid with a 2010 stock (about 21,000 cells on every continent)."""
    with rasterio.open(InputDatasets().soc_stock_2010_raster) as src:
        soc = src.read(1).astype("float64")
        soc[soc == src.nodata] = np.nan
    flat = np.flatnonzero(np.isfinite(soc.ravel()))[::97]
    cells, _ = cell_inputs(RothCInputs(), FIVE_MINUTES, flat, soc.ravel()[flat])
    return cells


def test_nearest_sampling_equals_gdal_nearest_for_north_up_and_south_up_sources():
    with rasterio.open(RothCInputs().clay_coarse_raster) as src:
        clay, transform = src.read(1), src.transform
    gdal = align(clay, transform, "EPSG:4326", -9999.0, FIVE_MINUTES, Resampling.nearest, -9999.0)
    flat = np.arange(0, FIVE_MINUTES.width * FIVE_MINUTES.height, 101)
    north_up = gsocseq.sample(clay, gsocseq.nearest_source_index(FIVE_MINUTES, flat, transform, clay.shape))
    np.testing.assert_array_equal(north_up, gdal.ravel()[flat])
    south_up_transform = Affine(transform.a, 0, transform.c, 0, -transform.e, transform.f + transform.e * 360)
    south_up = clay[::-1]
    index = gsocseq.nearest_source_index(FIVE_MINUTES, flat, south_up_transform, south_up.shape)
    np.testing.assert_array_equal(gsocseq.sample(south_up, index), north_up)


def _cells(soc, clay, tmp, pre, pet, sand=40.0, **optional) -> gsocseq.CellInputs:
    """CellInputs of cells whose 12 months are the columns of tmp, pre, pet (or one climate for all)."""
    soc = np.atleast_1d(np.asarray(soc, dtype=float))
    months = [np.broadcast_to(np.asarray(v, dtype=float).reshape(12, -1), (12, soc.size)) for v in (tmp, pre, pet)]
    climate = gsocseq.MonthlyClimate(*(np.array(v) for v in months))
    full = {"clay_pct": clay, "sand_pct": sand}
    full = {k: np.broadcast_to(np.asarray(v, dtype=float), soc.shape).copy() for k, v in full.items()}
    return gsocseq.CellInputs(soc, full["clay_pct"], full["sand_pct"], climate, **optional)


# A humid-tropical cropland cell: 27 degC, 200 mm rain and 120 mm PET every month (every month a growing month),
# 30 % clay, 80 t C/ha. MIAMI: NPP_T = 3000 / (1 + e^(1.315 - 0.119 x 27)) = 2609.0, NPP_P = 3000 (1 -
# e^(-0.000664 x 2400)) = 2390.4 g DM/m2/yr, so NPP = 2390.4 x 0.01 x 0.48 = 11.474 t C/ha/yr.
HUMID = {"soc": 80.0, "clay": 30.0, "tmp": np.full(12, 27.0), "pre": np.full(12, 200.0), "pet": np.full(12, 120.0)}
HUMID_NPP_T_C = 11.474024


def test_miami_npp_by_hand():
    # 25 degC, 2000 mm: NPP_T = 3000 / (1 + e^-1.66) = 2520.7, NPP_P = 3000 (1 - e^-1.328) = 2205.0: water-limited
    assert gsocseq.miami_npp(25.0, 2000.0) == pytest.approx(2204.98, abs=0.01)
    # 10 degC, 1000 mm: NPP_T = 3000 / (1 + e^0.125) = 1406.4 < NPP_P = 1455.6: temperature-limited
    assert gsocseq.miami_npp(10.0, 1000.0) == pytest.approx(1406.37, abs=0.01)
    # 30 degC, 300 mm: NPP_P = 3000 (1 - e^-0.1992) = 541.8
    assert gsocseq.miami_npp(30.0, 300.0) == pytest.approx(541.84, abs=0.01)
    # in t C/ha/yr: x 0.01 (g/m2 -> t/ha) x 0.48 (carbon in dry matter, GSOCseq manual eq. 6.9)
    climate = gsocseq.MonthlyClimate(np.full((12, 1), 25.0), np.full((12, 1), 2000.0 / 12), np.full((12, 1), 100.0))
    assert gsocseq.climate_npp_t_c(climate, 0.48)[0, 0] == pytest.approx(10.5839, abs=1e-4)


def test_an_equilibrium_input_above_npp_is_capped_and_the_stock_declines_toward_the_capped_equilibrium():
    scenarios = load_scenarios()
    assert scenarios.max_input_share_of_npp == 1.0 and scenarios.npp_carbon_fraction == 0.48
    humid = _cells(**HUMID)
    results = gsocseq.run_cells(humid, scenarios)
    equilibrium = results.equilibrium_input_t_c_per_ha_per_yr[0]
    assert results.npp_t_c_per_ha_per_yr[0] == pytest.approx(HUMID_NPP_T_C, rel=1e-6)
    assert equilibrium > HUMID_NPP_T_C and results.input_above_npp[0]
    assert results.input_t_c_per_ha_per_yr[0] == pytest.approx(HUMID_NPP_T_C, rel=1e-6)
    # the run starts from the stock, not from the capped input's equilibrium, and loses carbon under BAU
    assert results.soc_t0_t_c_per_ha[0] == pytest.approx(80.0, rel=1e-12)
    bau, ssm1, ssm2, ssm3 = results.soc_final_t_c_per_ha[:, 0]
    assert bau < 80.0
    # ...toward the equilibrium of the capped input: RothC is linear in the input, IOM = 0.049 x 80^1.139 stays
    iom = 0.049 * 80**1.139
    long_run = gsocseq.run_cells(humid, dataclasses.replace(scenarios, horizon_yr=3000))
    expected = iom + (80.0 - iom) * HUMID_NPP_T_C / equilibrium
    assert long_run.soc_final_t_c_per_ha[0, 0] == pytest.approx(expected, rel=1e-6)
    # SSM gains scale with the input increase, and without the cap they would scale with the equilibrium input
    assert ssm2 - bau == pytest.approx(2 * (ssm1 - bau), rel=1e-9) and ssm3 - bau == pytest.approx(4 * (ssm1 - bau))
    assert results.ssm_gain_uncapped_t_c_per_ha[0] == pytest.approx((ssm3 - bau) * equilibrium / HUMID_NPP_T_C)
    # a stock the climate can hold is not capped
    held = gsocseq.run_cells(_cells(**{**HUMID, "soc": 20.0}), scenarios)
    assert not held.input_above_npp[0] and held.soc_final_t_c_per_ha[0, 0] == pytest.approx(20.0, rel=1e-9)


def test_spin_up_holds_the_stock_and_bau_on_the_spin_up_climate_stays_there(real_cells):
    """Without a warm-up series the forward climate is the spin-up climate: BAU is a steady state wherever the input
    was not capped; SSM gains scale with the input increase (RothC is linear in inputs)."""
    results = gsocseq.run_cells(real_cells, load_scenarios())
    ok = results.status == gsocseq.MODELLED
    assert ok.sum() > 15_000
    soc = real_cells.soc_t_c_per_ha[ok]
    np.testing.assert_allclose(results.soc_t0_t_c_per_ha[ok], soc, rtol=1e-12)
    bau, ssm1, ssm2, ssm3 = results.soc_final_t_c_per_ha[:, ok]
    held = ~results.input_above_npp[ok]
    np.testing.assert_allclose(bau[held], soc[held], rtol=1e-9)
    assert np.all(bau[~held] < soc[~held]) and 0.05 < np.mean(~held) < 0.5
    np.testing.assert_allclose(ssm2 - bau, 2 * (ssm1 - bau), rtol=1e-6)
    np.testing.assert_allclose(ssm3 - bau, 4 * (ssm1 - bau), rtol=1e-6)
    # more input, more carbon; no gain where no rain falls in the climatology (no climatic NPP, input capped at 0)
    grows = results.input_t_c_per_ha_per_yr[ok] > 0
    assert np.all(ssm1[grows] > bau[grows]) and np.all(ssm1[~grows] == bau[~grows])
    inputs = results.equilibrium_input_t_c_per_ha_per_yr[ok]
    assert np.all(inputs > 0) and 1.0 < np.median(inputs) < 10.0
    # the warming response (a sensitivity beside BAU): a warmer forward climate loses carbon almost everywhere
    assert np.mean(results.soc_warmed_t_c_per_ha[ok] < bau) > 0.9


def _by_hand_warm_up(pools, start_input, npp0, series, clay, vegetated):
    """The warm-up month by month with the RothC step, GSOCseq conventions (PET x 1, deficit reset every January,
    SoilR bare soil): each year's input is start_input x NPP(year) / NPP(spin-up), a twelfth a month."""
    to_bio, to_hum = rothc.humification_shares(clay)
    max_def = rothc.max_deficit_mm(clay, 30.0)
    for year in range(series.years):
        months = slice(12 * year, 12 * year + 12)
        npp = gsocseq.miami_npp(series.tmp_degc[months].mean(0), series.pre_mm[months].sum(0)) * 0.0048
        deficit = np.zeros_like(clay)
        for m in range(12):
            month = year * 12 + m
            covered = rothc.is_covered(vegetated[m])
            b, deficit = rothc.moisture_step(
                series.pre_mm[month], series.pet_mm[month], covered, deficit, max_def, 1.0, bare_scaled=True
            )
            rate = rothc.temperature_modifier(series.tmp_degc[month]) * b * rothc.cover_modifier(vegetated[m])
            pools = rothc.step(pools, rate, to_bio, to_hum, start_input * npp / npp0 / 12, 1.44)
    return pools


def test_warm_up_moves_the_stock_as_the_series_dictates():
    scenarios = load_scenarios()
    cells = _cells(
        soc=[40.0, 60.0],
        clay=[20.0, 35.0],
        tmp=np.array([[2, 4, 8, 12, 16, 20, 22, 21, 17, 12, 6, 3], [26] * 12], dtype=float).T,
        pre=np.array([[50, 40, 45, 50, 60, 55, 50, 55, 60, 70, 60, 55], [10, 10, 20, 80, 200, 250] * 2]).T,
        pet=np.array([[5, 10, 30, 55, 85, 100, 110, 95, 65, 35, 12, 5], [120] * 12]).T,
    )
    without = gsocseq.run_cells(cells, scenarios)
    # a series repeating the spin-up climatology: the warm-up leaves the stock where the spin-up put it
    same = gsocseq.MonthlyClimate(*(np.tile(v, (3, 1)) for v in cells.climate.arrays()))
    repeated = gsocseq.run_cells(dataclasses.replace(cells, warm_up_climate=same), scenarios)
    np.testing.assert_allclose(repeated.soc_t0_t_c_per_ha, cells.soc_t_c_per_ha, rtol=1e-9)
    np.testing.assert_allclose(repeated.soc_final_t_c_per_ha, without.soc_final_t_c_per_ha, rtol=1e-9)
    # 3 years warming by 1, 2, 3 degC, the third also 20 % wetter: equal to the month-by-month RothC steps
    steps = np.repeat([1.0, 2.0, 3.0], 12)[:, None]
    wetter = np.repeat([1.0, 1.0, 1.2], 12)[:, None]
    series = gsocseq.MonthlyClimate(same.tmp_degc + steps, same.pre_mm * wetter, same.pet_mm)
    warmed = gsocseq.run_cells(dataclasses.replace(cells, warm_up_climate=series), scenarios)
    vegetated, _ = gsocseq.monthly_cover(cells, scenarios)
    unit = rothc.unit_equilibrium(
        rothc.climatology_rates(*cells.climate.arrays(), cells.clay_pct, 30.0, vegetated, rothc.GSOCSEQ),
        cells.clay_pct,
        1.44,
    )
    start = unit * warmed.equilibrium_input_t_c_per_ha_per_yr  # the stock, whatever input the NPP check leaves
    npp0 = gsocseq.miami_npp(cells.climate.tmp_degc.mean(0), cells.climate.pre_mm.sum(0)) * 0.0048
    pools = _by_hand_warm_up(start, warmed.input_t_c_per_ha_per_yr, npp0, series, cells.clay_pct, vegetated)
    iom = rothc.falloon_iom(cells.soc_t_c_per_ha)
    np.testing.assert_allclose(warmed.soc_t0_t_c_per_ha, pools.sum(0) + iom, rtol=1e-10)
    assert np.all(warmed.soc_t0_t_c_per_ha < cells.soc_t_c_per_ha)  # warmer years decompose faster


def test_crop_calendar_cover_by_hand():
    """FAO's growing period, monthly: 20 degC; six months of 200 mm rain on 100 mm PET fill the 100 mm store, then
    six of 10 mm on 160 mm PET. July draws 75 mm or more (half its 150 mm deficit) from the full store: covered;
    August finds it empty: bare until the rains. A wet month at 4 degC is bare (too cold)."""
    tmp = np.full(12, 20.0)
    tmp[2] = 4.0
    pre = np.array([200.0] * 6 + [10.0] * 6)
    pet = np.array([100.0] * 6 + [160.0] * 6)
    climate = gsocseq.MonthlyClimate(tmp[:, None], pre[:, None], pet[:, None])
    growing = gsocseq.growing_months(climate, 5.0, 0.5, 100.0)[:, 0]
    assert growing.tolist() == [True, True, False, True, True, True, True] + [False] * 5
    # without the store only the wet, warm months count; a 60 mm store cannot carry July (60 < 75)
    assert gsocseq.growing_months(climate, 5.0, 0.5, 0.0)[:, 0].sum() == 5
    assert not gsocseq.growing_months(climate, 5.0, 0.5, 60.0)[6, 0]


def test_ndvi_cover_where_given_else_the_rule_and_the_paddy_factor_only_with_a_rice_mask():
    scenarios = load_scenarios()
    share = np.full((12, 3), 0.75)
    share[:, 2] = np.nan  # no NDVI share for the third cell: the rule covers it
    cells = _cells(soc=[50.0, 50.0, 50.0], clay=25.0, **{k: HUMID[k] for k in ("tmp", "pre", "pet")})
    with_ndvi = dataclasses.replace(cells, vegetated_share=share)
    vegetated, from_rule = gsocseq.monthly_cover(with_ndvi, scenarios)
    assert from_rule.tolist() == [False, False, True]
    np.testing.assert_array_equal(vegetated[:, :2], 0.75)
    np.testing.assert_array_equal(vegetated[:, 2], 1.0)  # every month a growing month in this climate
    # c = 1 - 0.4 x 0.75 = 0.7 instead of 0.6: faster decomposition, a larger input holds the same stock
    results = gsocseq.run_cells(with_ndvi, scenarios)
    inputs = results.equilibrium_input_t_c_per_ha_per_yr
    assert inputs[0] == pytest.approx(inputs[2] * 0.7 / 0.6, rel=0.05) and inputs[0] > inputs[2]
    # no rice mask: no cell is paddy (the factor is absent); with one, paddy cells decompose 0.4 x as fast
    assert not results.paddy.any()
    rice = dataclasses.replace(cells, paddy_share=np.array([0.9, 0.2, np.nan]))
    paddy = gsocseq.run_cells(rice, scenarios)
    assert paddy.paddy.tolist() == [True, False, False]
    upland = gsocseq.run_cells(cells, scenarios).equilibrium_input_t_c_per_ha_per_yr
    assert paddy.equilibrium_input_t_c_per_ha_per_yr[0] < 0.5 * upland[0]
    np.testing.assert_allclose(paddy.equilibrium_input_t_c_per_ha_per_yr[1:], upland[1:], rtol=1e-14)


def test_regional_shares_by_hand():
    """Two modelled cells of 1 ha (no warm-up): one capped (BAU -2 t C/ha, gain 1, uncapped 2 t C/ha over the
    horizon), one not (BAU 0, gain 3). Shares of the gain: 1 / 4 = 25 % after the cap, 2 / 5 = 40 % before."""
    scenarios = load_scenarios()
    soc = np.array([50.0, 30.0])
    results = gsocseq.CellResults(
        status=np.array([gsocseq.MODELLED] * 2, dtype=object),
        equilibrium_input_t_c_per_ha_per_yr=np.array([12.0, 3.0]),
        npp_t_c_per_ha_per_yr=np.array([6.0, 5.0]),
        input_t_c_per_ha_per_yr=np.array([6.0, 3.0]),
        soc_t0_t_c_per_ha=soc,
        soc_final_t_c_per_ha=np.array([[48.0, 30.0], [48.25, 30.75], [48.5, 31.5], [49.0, 33.0]]),
        soc_warmed_t_c_per_ha=np.array([47.0, 29.0]),
        ssm_gain_uncapped_t_c_per_ha=np.array([2.0, 3.0]),
        paddy=np.zeros(2, dtype=bool),
        crop_calendar_cover=np.ones(2, dtype=bool),
    )
    per_cell = gsocseq.cell_quantities(results, scenarios, soc, np.ones(2), np.zeros(2, dtype=bool))
    assert list(per_cell) == gsocseq.quantity_names(scenarios)
    sums = pd.DataFrame({name: [values.sum()] for name, values in per_cell.items()})
    sums["region_type"], sums["region_id"], sums["region_name"] = "global", "GLOBAL", "World"
    row = gsocseq.regional_table(sums, scenarios, [0.004 * 80 * 10 / 1e6], [0.004 * 80 / 1e6]).iloc[0]
    assert row["input_above_npp_share_of_modelled_cropland_pct"] == pytest.approx(50.0)
    assert row["input_above_npp_share_of_ssm_gain_pct"] == pytest.approx(25.0)
    assert row["input_above_npp_share_of_ssm_gain_uncapped_pct"] == pytest.approx(40.0)
    assert row["bau_rate_t_c_per_modelled_ha_per_yr"] == pytest.approx(-1.0 / 20)
    assert row["input_above_npp_bau_rate_pg_c_per_yr"] == pytest.approx(row["bau_rate_pg_c_per_yr"])
    assert row["equilibrium_carbon_input_t_c_per_modelled_ha_per_yr"] == pytest.approx(7.5)
    assert row["carbon_input_t_c_per_modelled_ha_per_yr"] == pytest.approx(4.5)
    assert row["bau_warming_response_rate_t_c_per_modelled_ha_per_yr"] == pytest.approx(-1.0 / 20)
    # gain 4 t C in 20 yr = 0.2 t C/yr against targets of 3.2 (all land) and 0.32 t C/yr (cropland)
    assert row["ssm3_minus_bau_share_of_4p1000_all_land_pct"] == pytest.approx(100 * 0.2 / 3.2)
    assert row["ssm3_minus_bau_share_of_4p1000_cropland_pct"] == pytest.approx(100 * 0.2 / 0.32)


def test_every_cell_gets_a_result_or_the_first_reason_it_is_excluded():
    nan12 = np.full(12, np.nan)
    warm, cold = np.full(12, 15.0), np.full(12, -20.0)
    rain = np.full(12, 60.0)
    cases = {  # soc, clay, sand, tmp, pre
        gsocseq.MODELLED: (50.0, 20.0, 40.0, warm, rain),
        "no_soc_stock": (np.nan, np.nan, 95.0, nan12, rain),
        "soc_above_max": (250.0, 20.0, 40.0, warm, rain),
        "no_climate": (50.0, np.nan, 40.0, nan12, rain),
        "no_clay": (50.0, np.nan, 95.0, warm, rain),
        "sand_above_max": (50.0, 3.0, 95.0, warm, rain),
        "no_decomposition": (50.0, 20.0, 40.0, cold, rain),
    }
    soc, clay, sand, tmp, pre = (np.array(column) for column in zip(*cases.values(), strict=True))
    cells = _cells(soc, clay, tmp.T, pre.T, np.full((12, len(cases)), 50.0), sand=sand)
    results = gsocseq.run_cells(cells, load_scenarios())
    assert list(results.status) == list(cases)
    assert np.isfinite(results.soc_final_t_c_per_ha[:, 0]).all()
    assert np.isnan(results.soc_final_t_c_per_ha[:, 1:]).all()
    assert set(gsocseq.EXCLUSIONS) == set(cases) - {gsocseq.MODELLED}
    # a warm-up series with a gap leaves the cell without climate
    series = gsocseq.MonthlyClimate(*(np.tile(v, (2, 1)) for v in cells.climate.arrays()))
    series.tmp_degc[15, 0] = np.nan
    gap = gsocseq.run_cells(dataclasses.replace(cells, warm_up_climate=series), load_scenarios())
    assert gap.status[0] == "no_climate"


@pytest.fixture(scope="module")
def published(embedded_run):
    _, root = embedded_run
    return VersionedParquetStore(root).read("rothc_sequestration_potential")


def test_published_table_accounts_for_all_cropland(published):
    excluded = published[[f"excluded_{reason}_mha" for reason in gsocseq.EXCLUSIONS]].sum(axis=1)
    np.testing.assert_allclose(published["modelled_cropland_area_mha"] + excluded, published["cropland_area_mha"])
    world = published[published["region_type"] == "global"].iloc[0]
    assert world["cropland_area_mha"] == pytest.approx(1591.3, abs=0.1)
    assert world["modelled_cropland_area_mha"] > 0.97 * world["cropland_area_mha"]
    countries = published[published["region_type"] == "country"]
    assert countries["cropland_area_mha"].sum() == pytest.approx(world["cropland_area_mha"])
    # no vegetated-share raster, no rice mask: all modelled cropland covered by the rule, none paddy
    np.testing.assert_allclose(published["crop_calendar_cover_area_mha"], published["modelled_cropland_area_mha"])
    assert (published["paddy_rice_area_mha"] == 0).all()


def test_published_npp_check_and_rates(published):
    world = published[published["region_type"] == "global"].iloc[0]
    capped = world["carbon_input_t_c_per_modelled_ha_per_yr"]
    assert world["equilibrium_carbon_input_t_c_per_modelled_ha_per_yr"] > capped
    assert 5 < world["input_above_npp_share_of_modelled_cropland_pct"] < 50
    assert world["input_above_npp_share_of_ssm_gain_uncapped_pct"] > world["input_above_npp_share_of_ssm_gain_pct"]
    assert world["ssm3_minus_bau_uncapped_rate_pg_c_per_yr"] > world["ssm3_minus_bau_rate_pg_c_per_yr"]
    # no warm-up series: the stock starts the forward runs as given, BAU is the decline of the capped cells alone
    np.testing.assert_allclose(published["warm_up_stock_change_t_c_per_modelled_ha"].fillna(0), 0, atol=1e-9)
    np.testing.assert_allclose(
        published["bau_rate_pg_c_per_yr"], published["input_above_npp_bau_rate_pg_c_per_yr"], rtol=1e-9, atol=1e-9
    )
    assert world["bau_warming_response_rate_pg_c_per_yr"] < 0
    rates = [world[f"{name}_rate_pg_c_per_yr"] for name in ("bau", "ssm1", "ssm2", "ssm3")]
    assert rates == sorted(rates) and rates[0] < 0 < rates[3]
    gains = [world[f"ssm{i}_minus_bau_rate_pg_c_per_yr"] for i in (1, 2, 3)]
    np.testing.assert_allclose(gains, np.array([1, 2, 4]) * gains[0], rtol=1e-6)
    share = 100 * gains[2] * 1000 / world["target_4p1000_tg_c_per_yr"]
    assert world["ssm3_minus_bau_share_of_4p1000_all_land_pct"] == pytest.approx(share)
    cropland_share = 100 * gains[2] * 1000 / world["cropland_target_4p1000_tg_c_per_yr"]
    assert world["ssm3_minus_bau_share_of_4p1000_cropland_pct"] == pytest.approx(cropland_share)
    # the all-land target is about 9.4 x the cropland one: the two shares differ by that factor
    assert 8 < world["target_4p1000_tg_c_per_yr"] / world["cropland_target_4p1000_tg_c_per_yr"] < 11


def test_rate_maps_are_a_cog_with_one_band_per_scenario(embedded_run, published):
    outcome, _ = embedded_run
    [materialization] = outcome.result.asset_materializations_for_node("rothc_sequestration_potential")
    metadata = materialization.metadata
    with rasterio.open(metadata["rate_maps_cog"].value) as cog:
        assert cog.count == 4 and cog.is_tiled and cog.overviews(1) == []  # a 5' map is read whole
        assert cog.transform.almost_equals(FIVE_MINUTES.transform)
        ssm3, bau = cog.read(4), cog.read(1)
    assert np.isfinite(ssm3).sum() == metadata["modelled_cells"].value
    world = published[published["region_type"] == "global"].iloc[0]
    assert np.nanmean(ssm3 - bau) == pytest.approx(world["ssm3_minus_bau_rate_t_c_per_modelled_ha_per_yr"], rel=0.5)
    assert metadata["paddy_rice_mask"].value.startswith("none given: absent")
    assert metadata["warm_up"].value.startswith("none")
    assert metadata["crop_calendar_cover_cells"].value == metadata["modelled_cells"].value
    above = metadata["input_above_npp_share_of_modelled_cells_pct"].value
    assert 0 < above < 100


def test_a_texture_raster_out_of_range_or_with_wrong_bands_fails_naming_file_and_rule(tmp_path):
    with rasterio.open(RothCInputs().clay_coarse_raster) as src:
        clay, profile = src.read(), src.profile
    clay[0, 101, 301] = 140.0
    bad = tmp_path / "clay_pct_times_10.tif"
    with rasterio.open(bad, "w", **profile) as dst:
        dst.write(clay)
    flat = np.arange(0, FIVE_MINUTES.width * FIVE_MINUTES.height, 1001)
    with pytest.raises(dg.Failure, match=r"clay_pct_times_10\.tif: clay_coarse_pct values outside \[0\.0, 100\.0\]"):
        read_sampled(str(bad), "clay_coarse_pct", FIVE_MINUTES, flat)
    with pytest.raises(dg.Failure, match=r"tmp_degc raster must be EPSG:4326 with 12 band\(s\)"):
        read_sampled(RothCInputs().clay_coarse_raster, "tmp_degc", FIVE_MINUTES, flat)


def test_rate_maps_wider_than_a_viewer_reads_whole_get_average_overviews(tmp_path):
    width = 2 * (OVERVIEWS_ABOVE + 512)
    grid = GridSpec(width, 1024, Affine(360 / width, 0, -180, 0, -360 / width, 90))
    scenarios = load_scenarios()
    rates = np.full((len(scenarios.names), 1024, width), np.nan, dtype="float32")
    rates[:, :512, :1024] = 1.0  # one overview cell of the first level: half of its 2 x 2 cells are NaN
    rates[:, :1, :1] = 3.0
    with RateMaps(tmp_path / "rates.tif", grid, scenarios) as maps:
        maps.consume(rasterio.windows.Window(0, 0, width, 1024), {"rate_map": rates})
    (tmp_path / "cog.tif").write_bytes(maps.cog().read_bytes())
    with rasterio.open(tmp_path / "cog.tif") as cog:
        assert cog.overviews(1)[0] == 2
        first = cog.read(1, out_shape=(512, width // 2))
    assert first[0, 0] == pytest.approx(1.5) and np.isnan(first[0, 600])


def _write(path, bands: np.ndarray, nodata=-9999.0):
    """A small EPSG:4326 GeoTIFF at 0.5 deg over 100-110 E, 0-10 N (20 x 20 cells)."""
    profile = {"driver": "GTiff", "height": 20, "width": 20, "count": len(bands), "dtype": "float32"}
    transform = Affine(0.5, 0, 100.0, 0, -0.5, 10.0)
    with rasterio.open(path, "w", crs="EPSG:4326", transform=transform, nodata=nodata, **profile) as dst:
        dst.write(bands.astype("float32"))
    return str(path)


def test_optional_rasters_reach_the_cells_and_bad_ones_fail_naming_file_and_rule(tmp_path):
    """Vegetated shares (12 bands), a paddy-rice share (1 band) and a 2-year series (24 bands per variable), made
    here; cells outside them get NaN (rule cover, not paddy, and no climate for the warm-up)."""
    months = np.arange(12, dtype=float)[:, None, None]
    share = np.broadcast_to(0.3 + 0.05 * months, (12, 20, 20))
    paddy = np.zeros((1, 20, 20))
    paddy[0, :, :10] = 1.0  # paddy west of 105 E
    years = np.repeat([0.0, 1.0], 12)[:, None, None]
    series = {
        "tmp_series_raster": np.broadcast_to(25.0 + years, (24, 20, 20)),
        "pre_series_raster": np.full((24, 20, 20), 150.0),
        "pet_series_raster": np.full((24, 20, 20), 110.0),
    }
    config = RothCInputs(
        vegetated_share_raster=_write(tmp_path / "ndvi_share.tif", share),
        paddy_rice_raster=_write(tmp_path / "paddy.tif", paddy),
        **{name: _write(tmp_path / f"{name}.tif", bands) for name, bands in series.items()},
    )
    # three cells of the 5' grid: at 5 N 102 E (paddy), 5 N 107 E (upland), and 20 N 107 E (outside the rasters)
    rows, cols = np.array([1020, 1020, 840]), np.array([3384, 3444, 3444])
    flat = rows * FIVE_MINUTES.width + cols
    cells, _ = cell_inputs(config, FIVE_MINUTES, flat, np.array([50.0, 50.0, 50.0]))
    np.testing.assert_allclose(cells.vegetated_share[:, :2], np.broadcast_to(0.3 + 0.05 * months[:, :, 0], (12, 2)))
    assert np.isnan(cells.vegetated_share[:, 2]).all()
    np.testing.assert_array_equal(cells.paddy_share[:2], [1.0, 0.0])
    assert cells.warm_up_climate.years == 2 and cells.warm_up_climate.tmp_degc[12, 0] == 26.0
    assert np.isnan(cells.warm_up_climate.tmp_degc[:, 2]).all()
    assert series_years(config) == 2
    results = gsocseq.run_cells(cells, load_scenarios())
    assert results.paddy.tolist()[:2] == [True, False]
    assert results.status[2] == "no_climate"  # the series does not reach it
    # the three series must agree; a share outside [0, 1] fails naming the file
    with pytest.raises(dg.Failure, match=r"same number of bands, 12 x years"):
        series_years(config.model_copy(update={"pet_series_raster": config.vegetated_share_raster}))
    with pytest.raises(dg.Failure, match=r"give all three"):
        series_years(config.model_copy(update={"pet_series_raster": None}))
    bad = _write(tmp_path / "ndvi_share_percent.tif", share * 100)
    with pytest.raises(dg.Failure, match=r"ndvi_share_percent\.tif: vegetated_share values outside \[0\.0, 1\.0\]"):
        read_sampled(bad, "vegetated_share", FIVE_MINUTES, flat)
