"""Sequestration-potential formulas against hand-computed values on tiny inputs."""

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science import potential
from soil_pipeline.science.aggregation import capped_land_ha, four_per_1000_target, nan_to_zero, ratio, zone_sums
from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991
from soil_pipeline.science.scenarios import FIELD_ERROR


def test_content_increase_rate_is_delta_times_bd_times_depth_over_duration():
    # 0.27 % = 2.7 g/kg; 2.7 g/kg x 1.38 g/cm3 x 30 cm x 0.1 = 11.178 t C/ha over 20 yr
    assert potential.content_increase_rate_t_c_per_ha_per_yr(0.27, 1.38, 30, 20) == pytest.approx(0.5589)
    assert potential.content_increase_rate_t_c_per_ha_per_yr(0.54, 1.38, 30, 20) == pytest.approx(1.1178)


def test_implied_bulk_density_inverts_the_rate():
    # 0.56 t C/ha/yr / (0.27 % x 30 cm / 20 yr = 0.405) = 1.3827 g/cm3
    assert potential.implied_bulk_density(0.56, 0.27, 30, 20) == pytest.approx(0.56 / 0.405)
    bd = potential.implied_bulk_density(0.9, 0.54, 30, 20)
    assert potential.content_increase_rate_t_c_per_ha_per_yr(0.54, bd, 30, 20) == pytest.approx(0.9)


def test_four_per_1000_target():
    # 867.1 Pg C x 0.004/yr = 3.4684 Pg C/yr, in the stock's own unit
    assert four_per_1000_target(867.1, 0.004) == pytest.approx(3.4684)


def test_land_is_capped_at_the_cell_area_and_missing_land_is_none():
    # 0.5 km2 = 50 ha under a 80 ha cell; 1 km2 = 100 ha capped at 80 ha; NaN counts as 0 ha
    np.testing.assert_array_equal(capped_land_ha(np.array([0.5, 1.0, np.nan]), np.array(80.0)), [50.0, 80.0, 0.0])


def test_nan_to_zero_is_numpys_nan_to_num():
    # NaN 0; +-inf the largest finite float32 (3.4028235e38); -0.0 keeps its sign
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 2.5], dtype="float32")
    out = nan_to_zero(values)
    big = np.float32(3.4028235e38)
    assert out.dtype == np.float32 and out.tobytes() == np.array([0.0, big, -big, -0.0, 2.5], "float32").tobytes()
    assert np.isnan(values[0])  # a new array
    changed = values.copy()
    assert nan_to_zero(changed, in_place=True) is changed and changed.tobytes() == out.tobytes()
    finite = np.array([1.0, -0.0])
    assert nan_to_zero(finite) is finite  # nothing to replace: no copy


def test_ratio_is_the_fill_where_the_denominator_is_zero_or_missing():
    # 1 / 0 and 3 / NaN are undefined: NaN by default, else the fill given; 2 / 4 = 0.5
    numerator, denominator = np.array([1.0, 2.0, 3.0]), np.array([0.0, 4.0, np.nan])
    np.testing.assert_array_equal(ratio(numerator, denominator), [np.nan, 0.5, np.nan])
    np.testing.assert_array_equal(ratio(numerator, denominator, fill=0.0), [0.0, 0.5, 0.0])


def test_bulk_density_from_stock_inverts_manrique_jones():
    # SOC 10 g/kg: BD = 1.660 - 0.318 * sqrt(1) = 1.342, stock = 10 * 1.342 * 30 * 0.1 = 40.26 t C/ha
    # SOC 40 g/kg: BD = 1.660 - 0.318 * sqrt(4) = 1.024, stock = 40 * 1.024 * 3 = 122.88 t C/ha
    # 250 t C/ha is beyond 120 g/kg (201 t C/ha at most): organic soil, no BD; NaN stays NaN
    stock = np.array([[40.26, 122.88], [250.0, np.nan]])
    bd = potential.bulk_density_from_stock(stock, 30.0, MANRIQUE_JONES_1991)
    np.testing.assert_allclose(bd[0], [1.342, 1.024], rtol=1e-9)
    assert np.isnan(bd[1]).all()


def test_bulk_density_from_stock_gives_a_repeated_stock_the_bd_it_gets_alone():
    # each distinct stock is solved once: every cell must still get its own stock's BD, in place
    stock = np.array([[122.88, 40.26, np.nan], [40.26, 250.0, 122.88]])
    bd = potential.bulk_density_from_stock(stock, 30.0, MANRIQUE_JONES_1991)
    alone = [potential.bulk_density_from_stock(np.array([s]), 30.0, MANRIQUE_JONES_1991)[0] for s in stock.ravel()]
    assert bd.shape == (2, 3)
    np.testing.assert_array_equal(bd.ravel(), alone)
    np.testing.assert_allclose(bd[1, [0, 2]], [1.342, 1.024], rtol=1e-9)


def _sums(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    regions = {"region_type": ["country"] * n, "region_id": [f"R{i}" for i in range(n)], "region_name": "r"}
    return pd.DataFrame({**regions, **columns})


PARAMS = potential.PotentialParameters(
    four_per_1000_rate=0.004,
    content_increase_pct={"medium": 0.27, "high": 0.54},
    depth_cm=30.0,
    duration_yr=20.0,
    bulk_density_zomer_g_per_cm3=1.4,
)


def test_regional_potential_by_hand():
    sums = _sums(
        soc_stock_2010_t_c=[1e9, 0.0],
        cropland_area_ha=[1e6, 2e6],
        cropland_soc_stock_2010_t_c=[5e7, 0.0],
        cropland_area_with_bd_ha=[0.5e6, 2e6],
        cropland_bd_x_area=[0.6e6, 2.4e6],
        soc_stock_error_t_c=[1e8, 0.0],
        soc_stock_2010_without_error_t_c=[0.0, 0.0],
        cropland_soc_stock_error_t_c=[0.25e7, 0.0],
        cropland_soc_stock_2010_without_error_t_c=[2.5e7, 0.0],
    )
    # z = -1, 0, 1 shared by the regions; stock error 1e8 / 1e9 = 10 %; cropland (0.25e7 + 10 % fallback of the
    # 2.5e7 without an error value) / 5e7 = 10 %: the targets' samples are 0.9, 1.0, 1.1 x the target
    table = potential.regional_potential(sums, PARAMS, np.array([-1.0, 0.0, 1.0]), 0.1)
    first = table.iloc[0]
    assert first["soc_stock_2010_pg_c"] == pytest.approx(1.0)
    assert first["soc_stock_2010_relative_sd_pct"] == pytest.approx(10.0)
    assert first["cropland_soc_stock_2010_relative_sd_pct"] == pytest.approx(10.0)
    assert first["target_4p1000_tg_c_per_yr"] == pytest.approx(4.0)
    assert first["target_4p1000_tg_c_per_yr_p05"] == pytest.approx(4.0 * 0.91)  # linear between 0.9 and 1.0
    assert first["cropland_target_4p1000_tg_c_per_yr"] == pytest.approx(0.2)
    # reproduction: the Zomer-implied BD 1.4 on all 1 Mha of cropland; 0.27 x 1.4 x 30 / 20 = 0.567 t C/ha/yr
    assert first["zomer_reproduction_bd_g_per_cm3"] == pytest.approx(1.4)
    assert first["zomer_reproduction_cropland_area_mha"] == pytest.approx(1.0)
    assert first["zomer_medium_reproduction_t_c_per_ha_per_yr"] == pytest.approx(0.567)
    assert first["zomer_medium_reproduction_tg_c_per_yr"] == pytest.approx(0.567)
    assert first["zomer_medium_reproduction_share_of_4p1000_all_land_pct"] == pytest.approx(14.175)  # of 4 Tg C/yr
    assert first["zomer_medium_reproduction_share_of_4p1000_cropland_pct"] == pytest.approx(283.5)  # of 0.2
    assert first["zomer_high_reproduction_tg_c_per_yr"] == pytest.approx(1.134)
    # independent: the pedotransfer BD 1.2 on the 0.5 Mha that has one; 0.27 x 1.2 x 30 / 20 = 0.486 t C/ha/yr
    assert first["zomer_independent_bd_g_per_cm3"] == pytest.approx(1.2)
    assert first["zomer_independent_cropland_area_mha"] == pytest.approx(0.5)
    assert first["zomer_medium_independent_t_c_per_ha_per_yr"] == pytest.approx(0.486)
    assert first["zomer_medium_independent_tg_c_per_yr"] == pytest.approx(0.243)
    # the rates carry no sampled parameter; their shares carry the stock factor's interval
    assert "zomer_medium_reproduction_tg_c_per_yr_p05" not in table
    # shares 24.3 / (4 x {0.9, 1.0, 1.1}) = {6.75, 6.075, 5.52} %: p95 is 90 % of the way from 6.075 to 6.75
    assert first["zomer_medium_independent_share_of_4p1000_all_land_pct_p95"] == pytest.approx(6.6825)
    second = table.iloc[1]
    assert second["zomer_medium_reproduction_tg_c_per_yr"] == pytest.approx(0.27 * 1.4 * 1.5 * 2)
    assert np.isnan(second["zomer_medium_reproduction_share_of_4p1000_all_land_pct"])  # no stock: no share


def test_a_region_whose_field_sites_measure_its_stock_error_takes_that_error_for_its_targets():
    sums = _sums(
        soc_stock_2010_t_c=[1e9, 1e9],
        cropland_area_ha=[1e6, 1e6],
        cropland_soc_stock_2010_t_c=[5e7, 5e7],
        cropland_area_with_bd_ha=[1e6, 1e6],
        cropland_bd_x_area=[1.2e6, 1.2e6],
        soc_stock_error_t_c=[1e8, 1e8],
        soc_stock_2010_without_error_t_c=[0.0, 0.0],
        cropland_soc_stock_error_t_c=[0.5e7, 0.5e7],
        cropland_soc_stock_2010_without_error_t_c=[0.0, 0.0],
    ).assign(**{FIELD_ERROR: [np.hypot(0.2, 0.1), np.nan]})
    # region 0: field/map ratio 0.8 with a 0.1 standard error -> sqrt(0.2^2 + 0.1^2) = 22.4 % for all land and
    # cropland; region 1 is map-only: 10 % from its error layers. z = -1, 0, 1 -> p05 = target x (1 - 0.9 x error)
    table = potential.regional_potential(sums, PARAMS, np.array([-1.0, 0.0, 1.0]), 0.1)
    measured, mapped = table.iloc[0], table.iloc[1]
    assert measured["soc_stock_error_basis"] == "field sites" and mapped["soc_stock_error_basis"] == "error layers"
    assert measured["soc_stock_2010_relative_sd_pct"] == pytest.approx(100 * np.hypot(0.2, 0.1))
    assert measured["cropland_soc_stock_2010_relative_sd_pct"] == pytest.approx(100 * np.hypot(0.2, 0.1))
    assert mapped["soc_stock_2010_relative_sd_pct"] == pytest.approx(10.0)
    assert measured["target_4p1000_tg_c_per_yr"] == mapped["target_4p1000_tg_c_per_yr"] == pytest.approx(4.0)
    assert measured["target_4p1000_tg_c_per_yr_p05"] == pytest.approx(4.0 * (1 - 0.9 * np.hypot(0.2, 0.1)))
    assert mapped["target_4p1000_tg_c_per_yr_p05"] == pytest.approx(4.0 * 0.91)


def test_cell_quantities_and_zone_sums_on_a_3x4_grid():
    soc = np.array([[10.0, 20.0, np.nan, 40.0], [50.0, 60.0, 70.0, 80.0], [0.0, 10.0, 10.0, np.nan]])
    cropland = np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 1.0], [0.0, 0.0, 4.0, 0.0]])
    area = np.full(soc.shape, 10.0)
    bd = np.where(cropland > 0, 1.5, np.nan)
    bd[0, 2] = np.nan  # cropland without a stock has no BD
    zones = np.array([[0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, -1]])
    table = pd.DataFrame({"zone_index": [0, 1], "region_type": "x", "region_id": ["A", "B"], "region_name": "z"})
    error = np.where(np.isnan(soc), np.nan, 0.1 * soc)
    error[1, 0] = np.nan  # a stock without an error value
    sums = zone_sums(potential.cell_quantities(soc, cropland, area, bd, error), zones, table)
    # zone A: stocks (10 + 20 + 0 + 10 + 10) x 10 ha; cropland 1 + 2 + 4 ha; with BD 1 + 4 ha
    assert sums.loc[0, "soc_stock_2010_t_c"] == pytest.approx(500.0)
    assert sums.loc[0, "cropland_area_ha"] == pytest.approx(7.0)
    assert sums.loc[0, "cropland_soc_stock_2010_t_c"] == pytest.approx(10.0 * 1 + 10.0 * 4)
    assert sums.loc[0, "cropland_area_with_bd_ha"] == pytest.approx(5.0)
    assert sums.loc[0, "cropland_bd_x_area"] == pytest.approx(7.5)
    # zone B: stocks (40 + 50 + 60 + 70 + 80) x 10 ha; cropland 3 + 1 ha
    assert sums.loc[1, "soc_stock_2010_t_c"] == pytest.approx(3000.0)
    assert sums.loc[1, "cropland_area_with_bd_ha"] == pytest.approx(4.0)
    # stock error 10 % of each stock, but (1, 0) has none: its stock (50 x 10 ha) is counted apart for the fallback
    assert sums.loc[1, "soc_stock_error_t_c"] == pytest.approx(0.1 * (3000.0 - 500.0))
    assert sums.loc[1, "soc_stock_2010_without_error_t_c"] == pytest.approx(500.0)
    assert sums.loc[1, "cropland_soc_stock_error_t_c"] == pytest.approx(0.1 * (60.0 * 3 + 80.0 * 1))
