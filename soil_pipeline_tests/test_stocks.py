"""Topsoil SOC stock arithmetic against hand-computed cases, including the usual unit traps."""

import math

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991
from soil_pipeline.science.stocks import horizon_stock_t_c_per_ha, topsoil_stocks


def horizons(*rows):
    columns = [
        "site_id",
        "upper_depth_cm",
        "lower_depth_cm",
        "soc_g_per_kg",
        "bulk_density_g_per_cm3",
        "coarse_fragments_vol_pct",
    ]
    return pd.DataFrame(rows, columns=columns).astype({"site_id": "str"})


def test_single_layer_stock():
    # 10 g/kg x 1.3 g/cm3 x 30 cm x 0.1 = 39 t C/ha
    assert horizon_stock_t_c_per_ha(10, 1.3, 30) == pytest.approx(39.0)


def test_soc_in_percent_equals_g_per_kg_times_ten():
    assert horizon_stock_t_c_per_ha(1.0, 1.3, 30, soc_unit="%") == pytest.approx(39.0)


def test_bulk_density_in_kg_per_m3():
    assert horizon_stock_t_c_per_ha(10, 1300, 30, bd_unit="kg/m3") == pytest.approx(39.0)


def test_coarse_fragments_reduce_fine_earth():
    # 20 g/kg x 1.5 x 10 cm x (1 - 0.25) x 0.1 = 22.5
    assert horizon_stock_t_c_per_ha(20, 1.5, 10, 25) == pytest.approx(22.5)


def test_horizon_straddling_30cm_counts_only_its_overlap():
    table = horizons(("a", 0, 20, 10.0, 1.2, 0.0), ("a", 20, 50, 5.0, 1.4, 10.0))
    stock = topsoil_stocks(pd.Series(["a"]), table).iloc[0]
    # 10 x 1.2 x 20 x 0.1 = 24 ; 5 x 1.4 x 10 x 0.9 x 0.1 = 6.3
    assert stock["topsoil_soc_stock_t_c_per_ha"] == pytest.approx(30.3)
    assert stock["depth_coverage_cm"] == pytest.approx(30.0)
    assert stock["bd_source"] == "measured"
    assert pd.isna(stock["exclusion_reason"])


def test_organic_layer_with_negative_upper_depth_lies_outside_0_30():
    table = horizons(("o", -5, 0, 400.0, 0.2, 0.0), ("o", 0, 30, 8.0, 1.25, 0.0))
    stock = topsoil_stocks(pd.Series(["o"]), table).iloc[0]
    assert stock["topsoil_soc_stock_t_c_per_ha"] == pytest.approx(8 * 1.25 * 30 * 0.1)


def test_layer_crossing_the_surface_counts_its_mineral_part():
    table = horizons(("x", -10, 30, 10.0, 1.0, 0.0))
    stock = topsoil_stocks(pd.Series(["x"]), table).iloc[0]
    assert stock["topsoil_soc_stock_t_c_per_ha"] == pytest.approx(30.0)


def test_missing_bd_is_filled_by_manrique_jones_and_flagged():
    table = horizons(("p", 0, 30, 10.0, np.nan, np.nan))
    stock = topsoil_stocks(pd.Series(["p"]), table).iloc[0]
    bd = 1.660 - 0.318 * math.sqrt(1.0)  # OC 1 % -> 1.342 g/cm3
    assert stock["topsoil_soc_stock_t_c_per_ha"] == pytest.approx(10 * bd * 30 * 0.1)
    assert stock["bd_source"] == "pedotransfer"
    assert stock["bd_pedotransfer_function"] == "manrique_jones_1991"
    assert bool(stock["coarse_fragments_assumed_zero"])


def test_manrique_jones_values_and_domain():
    assert MANRIQUE_JONES_1991.fill([10.0, 40.0])[0] == pytest.approx(1.342)
    assert MANRIQUE_JONES_1991.fill([40.0])[0] == pytest.approx(1.660 - 0.318 * 2.0)
    assert np.isnan(MANRIQUE_JONES_1991.fill([570.0])[0])


def test_sites_without_full_cover_or_soc_keep_a_reason():
    table = horizons(
        ("short", 0, 20, 10.0, 1.2, 0.0),
        ("nosoc", 0, 30, np.nan, 1.2, 0.0),
        ("peat", 0, 30, 570.0, np.nan, 0.0),
        ("inv", 30, 0, 10.0, 1.2, 0.0),
        ("gap", 0, 10, 10.0, 1.2, 0.0),
        ("gap", 15, 30, 10.0, 1.2, 0.0),
        ("overlap", 0, 30, 10.0, 1.2, 0.0),
        ("overlap", 10, 30, 10.0, 1.2, 0.0),
    )
    ids = ["short", "nosoc", "peat", "inv", "gap", "overlap", "empty"]
    stocks = topsoil_stocks(pd.Series(ids), table).set_index("site_id")
    assert stocks["topsoil_soc_stock_t_c_per_ha"].isna().all()
    reasons = stocks["exclusion_reason"].to_dict()
    assert reasons == {
        "short": "incomplete_depth_coverage",
        "nosoc": "missing_soc",
        "peat": "missing_bd_outside_ptf_domain",
        "inv": "inverted_depth_interval;incomplete_depth_coverage",
        "gap": "incomplete_depth_coverage",
        "overlap": "overlapping_horizons",
        "empty": "no_horizons",
    }
    assert stocks.loc["gap", "depth_coverage_cm"] == pytest.approx(25.0)


def test_a_site_counts_only_its_own_horizons_and_appears_once():
    table = horizons(
        ("a", 0, 30, 10.0, 1.0, 0.0),
        ("other", 0, 30, 50.0, 1.0, 0.0),
        (None, 0, 30, 50.0, 1.0, 0.0),
        ("a", 30, 60, 99.0, 1.0, 0.0),
    )
    stocks = topsoil_stocks(pd.Series(["a", "b", "a"]), table)
    assert stocks["site_id"].tolist() == ["a", "b"]
    # 10 g/kg x 1.0 g/cm3 x 30 cm x 0.1 = 30 t C/ha; the 30-60 cm horizon lies outside 0-30 cm
    assert stocks["topsoil_soc_stock_t_c_per_ha"].iloc[0] == pytest.approx(30.0)
    assert stocks["n_horizons"].tolist() == [1, 0]
    assert stocks["exclusion_reason"].iloc[1] == "no_horizons"


def test_measured_and_predicted_bd_in_one_site_name_both_sources():
    table = horizons(("m", 0, 10, 10.0, 1.2, 0.0), ("m", 10, 30, 10.0, np.nan, 0.0))
    stock = topsoil_stocks(pd.Series(["m"]), table).iloc[0]
    # 10 x 1.2 x 10 x 0.1 = 12 ; 10 x 1.342 x 20 x 0.1 = 26.84
    assert stock["topsoil_soc_stock_t_c_per_ha"] == pytest.approx(38.84)
    assert stock["bd_source"] == "measured+pedotransfer"
    assert stock["bd_pedotransfer_function"] == "manrique_jones_1991"
