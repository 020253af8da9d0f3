"""Field sites across drops (`science.sites`): a re-delivered drop, a corrected drop, a drop of new sites and a
repeated observation, on deliveries written out by hand."""

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science.sites import great_circle_km, sampling_decade, site_history, site_stocks

DATES = {"a": "1985-06-01", "b": "2003-02-10", "c": None}


def drop(key: str, rows: list[tuple]) -> pd.DataFrame:
    """A drop's deliveries: (site id, sampling date, stock t C/ha, longitude, latitude) each, source AfSPDB."""
    frame = pd.DataFrame(rows, columns=["site_id", "sampling_date", "topsoil_soc_stock_t_c_per_ha", "lon", "lat"])
    return pd.DataFrame(
        {
            "field_drop": key,
            "source_db": "AfSPDB",
            "site_id": frame["site_id"],
            "sampling_date": pd.to_datetime(frame["sampling_date"]),
            "longitude_deg": frame["lon"],
            "latitude_deg": frame["lat"],
            "topsoil_soc_stock_t_c_per_ha": frame["topsoil_soc_stock_t_c_per_ha"],
            "exclusion_reason": np.where(frame["topsoil_soc_stock_t_c_per_ha"].isna(), "missing_soc", None),
            "country_adm0_a3": "KEN",
            "climate_zone_code": 3,
        }
    )


FIRST = drop("2024-01", [("a", DATES["a"], 40.0, 36.0, -1.0), ("b", DATES["b"], 55.0, 36.5, -1.2)])


def history(*drops: pd.DataFrame) -> pd.DataFrame:
    return site_history(pd.concat(drops, ignore_index=True), map_year=2010)


def test_a_first_drop_brings_new_sites_each_current_and_representative():
    found = history(FIRST)
    assert found["delivery"].tolist() == ["new site", "new site"]
    assert found["current"].all() and found["representative"].all()
    assert found["superseded_by"].isna().all() and found["moved_km"].isna().all()
    assert len(site_stocks(found)) == 2


def test_a_re_delivered_drop_supersedes_and_leaves_the_distinct_sites_unchanged():
    again = FIRST.assign(field_drop="2024-02")
    found = history(FIRST, again)
    assert len(found) == 4 and len(site_stocks(found)) == 2
    first = found[found["field_drop"] == "2024-01"]
    assert first["superseded_by"].eq("2024-02").all() and not first["current"].any()
    later = found[found["field_drop"] == "2024-02"]
    assert later["delivery"].eq("re-delivered").all() and later["representative"].all()
    assert later["moved_km"].eq(0.0).all()


def test_a_corrected_drop_replaces_the_stock_and_keeps_the_old_value_in_the_history():
    corrected = drop("2024-03", [("a", DATES["a"], 44.0, 36.0, -1.0)])
    found = history(FIRST, corrected)
    site_a = found[found["site_id"] == "a"].set_index("field_drop")
    assert site_a.loc["2024-03", "delivery"] == "corrected"
    assert site_a.loc["2024-01", "topsoil_soc_stock_t_c_per_ha"] == 40.0
    assert site_a.loc["2024-01", "superseded_by"] == "2024-03"
    stocks = site_stocks(found).set_index("site_id")["topsoil_soc_stock_t_c_per_ha"]
    assert stocks.to_dict() == {"a": 44.0, "b": 55.0}


def test_a_correction_that_removes_the_stock_removes_the_site_from_the_figures():
    quarantined = drop("2024-03", [("b", DATES["b"], None, 36.5, -1.2)])
    found = history(FIRST, quarantined)
    assert site_stocks(found)["site_id"].tolist() == ["a"]
    assert found.loc[found["field_drop"] == "2024-03", "delivery"].item() == "corrected"


def test_a_drop_of_new_sites_adds_them():
    new = drop("2024-02", [("c", DATES["b"], 30.0, 37.0, 0.5), ("d", None, 25.0, 37.2, 0.6)])
    found = history(FIRST, new)
    assert found.loc[found["field_drop"] == "2024-02", "delivery"].eq("new site").all()
    assert sorted(site_stocks(found)["site_id"]) == ["a", "b", "c", "d"]


def test_a_repeated_observation_is_the_same_site_and_the_one_closest_to_the_map_year_represents_it():
    # site a resampled in 2011 (closer to 2010 than its 1985 profile), site b resampled undated
    resampled = drop("2024-02", [("a", "2011-03-01", 48.0, 36.0, -1.0), ("b", None, 60.0, 36.5, -1.2)])
    found = history(FIRST, resampled)
    later = found[found["field_drop"] == "2024-02"]
    assert later["delivery"].eq("repeated observation").all()
    assert found["current"].all() and found["site_observations"].eq(2).all()
    chosen = site_stocks(found).set_index("site_id")
    assert len(chosen) == 2
    assert chosen.loc["a", "sampling_date"] == pd.Timestamp("2011-03-01")  # 1 yr from 2010 against 25
    assert chosen.loc["b", "sampling_date"] == pd.Timestamp(DATES["b"])  # a date beats none


def test_the_same_id_from_another_source_is_another_site():
    other = FIRST.assign(field_drop="2024-02", source_db="WISE")
    assert len(site_stocks(history(FIRST, other))) == 4


def test_a_delivery_moving_a_site_records_how_far():
    moved = drop("2024-02", [("a", DATES["a"], 40.0, 36.0, -1.1)])  # 0.1 deg of latitude further south
    found = history(FIRST, moved)
    row = found[found["field_drop"] == "2024-02"].iloc[0]
    assert row["delivery"] == "corrected"
    assert row["moved_km"] == pytest.approx(2 * np.pi * 6371.0072 * 0.1 / 360, rel=1e-9)


def test_great_circle_distance_of_a_quarter_meridian():
    assert great_circle_km(0, 0, 0, 90) == pytest.approx(np.pi / 2 * 6371.0072)


def test_sampling_decades():
    dates = pd.Series(pd.to_datetime(["1938-12-17", None, "2012-10-08"]))
    assert sampling_decade(dates).tolist() == ["1930s", "unknown", "2010s"]
