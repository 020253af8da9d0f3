"""Map-against-field agreement, the spatial block bootstrap and the calibrated ratio estimate, on values computed
by hand."""

import numpy as np
import pandas as pd
import pytest

from soil_pipeline.science.validation import (
    Bootstrap,
    agreement,
    agreement_with_intervals,
    block_bootstrap,
    interval_coverage,
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
