"""Map-against-field agreement, the spatial block bootstrap, the calibrated ratio estimate, the map's stated error
against the field and the area near a site, on values computed by hand."""

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from rasterio.windows import Window

from soil_pipeline.science.grid import GridSpec, row_areas_ha
from soil_pipeline.science.plausibility import field_stock_verdict
from soil_pipeline.science.representativeness import BLOCK_CELLS, MAPPED_AREA, NearSites, near_name, site_trees
from soil_pipeline.science.sites import great_circle_km
from soil_pipeline.science.validation import (
    METRICS,
    Bootstrap,
    CalibrationRules,
    _weighted_medians,
    agreement,
    agreement_with_intervals,
    block_bootstrap,
    calibrated_total,
    grouped_agreement,
    interval_coverage,
    map_total_error,
    ratio_estimate,
    spatial_blocks,
)

MAP = [10.0, 20.0, 30.0, 40.0]
FIELD = [12.0, 18.0, 33.0, 37.0]


def test_agreement_metrics_equal_the_hand_computed_values():
    # residuals (map - field): -2, 2, -3, 3; field mean 25, SST 426; map variance 125, field variance 106.5,
    # covariance 112.5; ratios 0.8333, 1.1111, 0.9091, 1.0811
    metrics = agreement(MAP, FIELD)
    assert metrics["n"] == 4
    assert metrics["bias_t_c_per_ha"] == pytest.approx(0.0)
    assert metrics["rmse_t_c_per_ha"] == pytest.approx(np.sqrt(6.5))
    assert metrics["mec"] == pytest.approx(1 - 26 / 426)
    assert metrics["lin_ccc"] == pytest.approx(225 / 231.5)
    assert metrics["median_map_to_field_ratio"] == pytest.approx((30 / 33 + 40 / 37) / 2)


def test_a_map_twice_the_field_has_a_ratio_of_two_and_a_poor_concordance():
    metrics = agreement([2 * v for v in FIELD], FIELD)
    assert metrics["median_map_to_field_ratio"] == pytest.approx(2.0)
    assert metrics["bias_t_c_per_ha"] == pytest.approx(25.0)
    assert metrics["lin_ccc"] < 0.5 and metrics["mec"] < 0


def test_pairs_with_a_missing_value_are_left_out():
    metrics = agreement([*MAP, np.nan, 5.0], [*FIELD, 7.0, np.nan])
    assert metrics["n"] == 4 and metrics["rmse_t_c_per_ha"] == pytest.approx(np.sqrt(6.5))


def test_sites_fall_into_the_square_block_that_holds_them():
    blocks = spatial_blocks([0.5, 1.9, 2.1, 0.5], [0.5, 1.9, 0.5, -0.5], 2.0)
    assert blocks[0] == blocks[1] != blocks[2] and blocks[3] != blocks[0]


def test_block_resamples_draw_whole_blocks():
    blocks = np.array([7, 7, 7, 3])
    sizes = block_bootstrap(blocks, lambda index: len(index), Bootstrap(n_resamples=200, seed=1))[:, 0]
    # two blocks drawn twice: 3+3, 3+1 or 1+1 sites
    assert set(sizes) == {6, 4, 2}


def _two_clusters(sites_per_cluster: int = 20) -> pd.DataFrame:
    """Two surveys 10 degrees apart, one whose map is 10 t C/ha too high, one 10 too low."""
    rng = np.random.default_rng(3)
    field = rng.uniform(20, 60, 2 * sites_per_cluster)
    offset = np.repeat([10.0, -10.0], sites_per_cluster)
    return pd.DataFrame(
        {
            "longitude_deg": np.repeat([30.0, 40.0], sites_per_cluster) + rng.uniform(0, 0.5, 2 * sites_per_cluster),
            "latitude_deg": rng.uniform(0, 0.5, 2 * sites_per_cluster),
            "map": field + offset,
            "field": field,
        }
    )


def test_clustered_sites_get_a_wider_bias_interval_than_independent_ones():
    frame = _two_clusters()
    clustered = agreement_with_intervals(frame, Bootstrap(block_deg=2.0, n_resamples=400), "map", "field")
    as_if_independent = agreement_with_intervals(frame, Bootstrap(block_deg=0.01, n_resamples=400), "map", "field")
    assert clustered["n_blocks"] == 2 and clustered["bias_t_c_per_ha"] == pytest.approx(0.0)
    # two blocks: resamples are both surveys (bias 0) or one twice (+10 or -10)
    assert clustered["bias_t_c_per_ha_p05"] == pytest.approx(-10.0)
    assert clustered["bias_t_c_per_ha_p95"] == pytest.approx(10.0)
    width = as_if_independent["bias_t_c_per_ha_p95"] - as_if_independent["bias_t_c_per_ha_p05"]
    assert 0 < width < 10.0


def test_intervals_are_reproducible_from_the_seed():
    frame = _two_clusters()
    first = agreement_with_intervals(frame, Bootstrap(block_deg=0.2, seed=9), "map", "field")
    again = agreement_with_intervals(frame, Bootstrap(block_deg=0.2, seed=9), "map", "field")
    assert first == again


def test_ratio_estimate_scales_the_map_total_and_its_error_comes_from_the_blocks():
    # one block with field/map 1.2, one with 0.8: the ratio is 1.0; block resamples give 1.2, 0.8 or 1.0 with
    # probabilities 1/4, 1/4, 1/2, so the ratio's standard deviation is sqrt(0.02)
    total, se = ratio_estimate(1000.0, [10.0, 10.0], [12.0, 8.0], [1, 2], Bootstrap(n_resamples=4000, seed=5))
    assert total == pytest.approx(1000.0)
    assert se == pytest.approx(1000 * np.sqrt(0.02), rel=0.05)


def test_a_map_reading_low_everywhere_is_corrected_up():
    total, se = ratio_estimate(500.0, [10.0, 20.0, 30.0], [12.0, 24.0, 36.0], [1, 2, 3], Bootstrap(seed=2))
    assert total == pytest.approx(600.0) and se == pytest.approx(0.0, abs=1e-9)


def test_interval_coverage_counts_field_values_inside_the_stated_interval():
    assert interval_coverage([10, 20, 30, np.nan], [11, 25, 30, 5], [1, 2, 1, 1], z=1.0) == pytest.approx(2 / 3)


def test_block_sum_intervals_are_those_of_concatenating_the_drawn_blocks():
    rng = np.random.default_rng(11)
    field = rng.lognormal(3.5, 0.5, 300)
    frame = pd.DataFrame(
        {
            "longitude_deg": rng.uniform(0, 20, 300),
            "latitude_deg": rng.uniform(-10, 10, 300),
            "map": field * rng.lognormal(0.1, 0.3, 300),
            "field": field,
        }
    )
    settings = Bootstrap(block_deg=3.0, n_resamples=250, seed=4)
    fast = agreement_with_intervals(frame, settings, "map", "field")
    names = METRICS[1:]
    m, f = frame["map"].to_numpy(), frame["field"].to_numpy()
    blocks = spatial_blocks(frame["longitude_deg"], frame["latitude_deg"], settings.block_deg)
    slow = block_bootstrap(blocks, lambda i: [agreement(m[i], f[i])[name] for name in names], settings)
    low, high = np.quantile(slow, [0.05, 0.95], axis=0)
    for k, name in enumerate(names):
        assert fast[f"{name}_p05"] == pytest.approx(low[k], rel=1e-9), name
        assert fast[f"{name}_p95"] == pytest.approx(high[k], rel=1e-9), name


def test_weighted_medians_are_the_medians_of_the_concatenated_resamples():
    # sorted values of sites in blocks 0, 1, 0, 1, 2; a resample's weights are its block counts
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    site_block = np.array([0, 1, 0, 1, 2])
    counts = np.array(
        [
            [1, 1, 1],  # 1 2 3 4 5 -> 3
            [2, 0, 0],  # 1 1 3 3 -> 2
            [0, 0, 0],  # nothing drawn -> NaN
            [0, 1, 2],  # 2 4 5 5 -> 4.5
            [0, 0, 3],  # 5 5 5 -> 5
        ]
    )
    medians = _weighted_medians(values, site_block, counts)
    np.testing.assert_array_equal(medians, [3.0, 2.0, np.nan, 4.5, 5.0])


def test_grouped_agreement_counts_what_the_stated_error_covers_per_group():
    frame = pd.DataFrame(
        {
            "longitude_deg": [0.5, 0.6, 10.5, 10.6],
            "latitude_deg": [0.5, 0.6, 0.5, 0.6],
            "map": [10.0, 20.0, 30.0, 40.0],
            "field": [12.0, 18.0, 33.0, 37.0],
            "error": [1.0, 1.5, 2.0, 3.5],
            "country": ["A", "A", "B", "B"],
        }
    )
    table = grouped_agreement(frame, {"global": None, "country": "country"}, Bootstrap(), "map", "field", "error")
    world = table[table["region_type"] == "global"].iloc[0]
    assert world["region_id"] == "GLOBAL" and world["n_sites"] == 4 and world["n_blocks"] == 2
    assert world["rmse_t_c_per_ha"] == pytest.approx(np.sqrt(6.5))
    # |field - map| = 2, 2, 3, 3 against 1 x error 1, 1.5, 2, 3.5 -> one of four; against 1.645 x error -> 2.47, 3.29,
    # 5.76: three of four
    assert world["stated_error_coverage_68_pct"] == pytest.approx(25.0)
    assert world["stated_error_coverage_90_pct"] == pytest.approx(75.0)
    assert world["mean_field_t_c_per_ha"] == pytest.approx(25.0) and world["mean_map_t_c_per_ha"] == 25.0
    b = table[(table["region_type"] == "country") & (table["region_id"] == "B")].iloc[0]
    assert b["n_sites"] == 2 and b["bias_t_c_per_ha"] == pytest.approx(0.0)


RULES = CalibrationRules(min_sites=3, min_blocks=2, min_area_near_a_site_pct=20.0, distance_km=25.0)


def _sites(map_values, field_values, longitudes) -> pd.DataFrame:
    return pd.DataFrame(
        {"longitude_deg": longitudes, "latitude_deg": 0.5, "map": map_values, "field": field_values},
    )


def test_a_calibrated_total_is_the_map_total_times_the_field_to_map_ratio():
    # two blocks: field/map 1.2 in one, 0.8 in the other, equal map sums -> ratio 1.0, se sqrt(0.02) (as above)
    sites = _sites([10.0, 10.0, 10.0, 10.0], [12.0, 12.0, 8.0, 8.0], [0.5, 0.6, 10.5, 10.6])
    found = calibrated_total(500.0, sites, "map", "field", 35.0, RULES, Bootstrap(block_deg=3.0, n_resamples=4000))
    assert found["field_to_map_ratio"] == pytest.approx(1.0)
    assert found["calibrated_total"] == pytest.approx(500.0)
    assert found["field_to_map_ratio_se"] == pytest.approx(np.sqrt(0.02), rel=0.05)
    assert found["calibrated_total_se"] == pytest.approx(500.0 * found["field_to_map_ratio_se"])
    assert found["map_total_error"] == pytest.approx(found["field_to_map_ratio_se"])  # no bias: the se alone
    assert found["label"] == (
        "field-calibrated (ratio estimator): 4 sites in 2 blocks, 35.0 % of the mapped area within 25 km of a site"
    )


def test_the_map_total_error_adds_the_bias_the_field_measures_to_the_calibration_error():
    assert map_total_error(0.7, 0.4) == pytest.approx(0.5)  # sqrt(0.3^2 + 0.4^2)


@pytest.mark.parametrize(
    ("longitudes", "near_pct", "reason"),
    [
        ([0.5, 0.6], 50.0, "map-only: 2 site(s) with a map value, 3 required"),
        ([0.5, 0.6, 0.7], 50.0, "map-only: sites in 1 bootstrap block(s), 2 required"),
        ([0.5, 0.6, 10.5], 12.5, "map-only: 12.5 % of the mapped area within 25 km of a site, 20 % required"),
    ],
)
def test_a_region_without_enough_sites_blocks_or_coverage_stays_map_only_saying_why(longitudes, near_pct, reason):
    n = len(longitudes)
    sites = _sites([10.0] * n, [9.0] * n, longitudes)
    found = calibrated_total(500.0, sites, "map", "field", near_pct, RULES, Bootstrap(block_deg=3.0))
    assert found["label"] == reason
    assert np.isnan(found["calibrated_total"]) and np.isnan(found["map_total_error"])


def test_the_area_near_a_site_is_summed_over_the_cells_whose_centre_is_within_the_distance():
    # 1-degree cells on the equator, 4 x 4 from (0, 2) to (4, -2); one site at the centre of cell (row 1, col 1),
    # i.e. (1.5 E, 0.5 N). Cell centres 1 degree away along a row or column lie 111.2 km from it, diagonal ones
    # 157.2 km: within 120 km, the site's cell and its four neighbours; cell (row 1, col 2) has no stock.
    grid = GridSpec(width=4, height=4, transform=Affine(1.0, 0, 0.0, 0, -1.0, 2.0))
    stock = np.full((4, 4), 50.0)
    stock[1, 2] = np.nan
    task = NearSites(site_trees({"all": (np.array([1.5]), np.array([0.5]))}), distance_km=120.0, stock="soc")
    window = Window(0, 0, 4, 4)
    areas = row_areas_ha(grid, window)[:, 0]
    found = task({"soc": stock}, areas, grid, window)
    near = np.zeros((4, 4), dtype=bool)
    near[[0, 1, 2, 1], [1, 1, 1, 0]] = True  # (1, 2) is near but has no stock
    expected = np.where(near, areas[:, None], 0.0)
    assert np.array_equal(found[near_name("all")], expected)
    assert found[MAPPED_AREA].sum() == pytest.approx(areas.sum() * 4 - areas[1])
    assert great_circle_km(1.5, 0.5, 2.5, 0.5) == pytest.approx(111.2, abs=0.1)


def test_scopes_of_the_same_sites_share_one_tree_and_the_same_area_near_a_site():
    # the only drop holds the same sites as all drops; a second drop's one site (3.5 E, 1.5 S) is near 3 cells
    grid = GridSpec(width=4, height=4, transform=Affine(1.0, 0, 0.0, 0, -1.0, 2.0))
    one_site = (np.array([1.5]), np.array([0.5]))
    trees = site_trees({"all": one_site, "2012-10": one_site, "2013-01": (np.array([3.5]), np.array([-1.5]))})
    assert trees["all"] is trees["2012-10"] and trees["2013-01"] is not trees["all"]
    window = Window(0, 0, 4, 4)
    areas = row_areas_ha(grid, window)[:, 0]
    found = NearSites(trees, distance_km=120.0, stock="soc")({"soc": np.full((4, 4), 50.0)}, areas, grid, window)
    assert np.array_equal(found[near_name("all")], found[near_name("2012-10")])
    assert (found[near_name("all")] > 0).sum() == 5 and (found[near_name("2013-01")] > 0).sum() == 3


def test_cells_near_a_site_are_found_in_every_block_of_the_window_they_fall_in():
    # 0.1-degree cells, a 40 x 40 window from (10 E, 50 N): blocks of BLOCK_CELLS cells are checked against the
    # sites before their cells. One site on a block corner (11.6 E, 48.4 N), one just outside the window
    # (9.95 E, 49 N): the cells within 15 km of either, by the haversine distance, span several blocks.
    grid = GridSpec(width=3600, height=1800, transform=Affine(0.1, 0, -180.0, 0, -0.1, 90.0))
    window = Window(1900, 400, 40, 40)
    lon, lat = np.meshgrid(10.05 + 0.1 * np.arange(40), 49.95 - 0.1 * np.arange(40))
    sites = (np.array([11.6, 9.95]), np.array([48.4, 49.0]))
    km = np.minimum(*(great_circle_km(lon, lat, site_lon, site_lat) for site_lon, site_lat in zip(*sites, strict=True)))
    areas = row_areas_ha(grid, window)[:, 0]
    found = NearSites(site_trees({"all": sites}), distance_km=15.0, stock="soc")(
        {"soc": np.full((40, 40), 50.0)}, areas, grid, window
    )
    near = found[near_name("all")] > 0
    assert np.array_equal(near, km <= 15.0)
    rows, cols = np.nonzero(near)
    assert len(set(zip(rows // BLOCK_CELLS, cols // BLOCK_CELLS, strict=True))) >= 4 and near[:, 0].any()
    assert not near[:, -1].any()


def test_a_stock_raster_a_tenth_of_the_field_stocks_fails_and_one_like_them_passes():
    assert field_stock_verdict(29, 0.1, "soc_stock_2010_raster") is None  # too few sites to judge
    passed = field_stock_verdict(19022, 1.215, "soc_stock_2010_raster")
    assert passed.passed and passed.figures["sites"] == 19022
    failed = field_stock_verdict(19022, 0.12, "soc_stock_2010_raster")
    assert not failed.passed
    assert failed.text.startswith(
        "median ratio 0.12 of soc_stock_2010_raster's stock at the cells of 19022 accumulated field sites (every "
        "published drop) to their field stocks, beyond a factor of 4"
    )
