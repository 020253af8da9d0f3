"""Seeded Monte Carlo: reproducible from its seed, and percentiles as numpy computes them."""

import numpy as np
import pytest

from soil_pipeline.reference_data import monte_carlo_parameters
from soil_pipeline.science import uncertainty

SPEC = {
    "a": {"distribution": "normal", "mean": 1.0, "sd": 0.1},
    "b": {"distribution": "uniform", "low": 2.0, "high": 4.0},
}


def test_same_seed_same_draws_different_seed_different_draws():
    first = uncertainty.draw(SPEC, 500, seed=11)
    again = uncertainty.draw(SPEC, 500, seed=11)
    other = uncertainty.draw(SPEC, 500, seed=12)
    for name in SPEC:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])


def test_a_parameter_draws_do_not_depend_on_the_others():
    alone = uncertainty.draw({"a": SPEC["a"]}, 100, seed=5)
    together = uncertainty.draw(SPEC, 100, seed=5)
    np.testing.assert_array_equal(alone["a"], together["a"])


def test_draws_follow_their_distributions():
    draws = uncertainty.draw(SPEC, 20000, seed=1)
    assert draws["a"].mean() == pytest.approx(1.0, abs=0.005)
    assert draws["a"].std() == pytest.approx(0.1, rel=0.03)
    assert draws["b"].min() >= 2.0 and draws["b"].max() < 4.0
    assert uncertainty.central(SPEC) == {"a": 1.0, "b": 3.0}


def test_unknown_distribution_and_empty_runs_are_refused():
    with pytest.raises(ValueError, match="unknown distribution"):
        uncertainty.draw({"c": {"distribution": "beta"}}, 10, seed=1)
    with pytest.raises(ValueError, match="n_draws"):
        uncertainty.draw(SPEC, 0, seed=1)


def test_interval_columns_are_the_5th_50th_95th_percentiles_per_region():
    samples = np.column_stack([np.arange(101.0), 2 * np.arange(101.0)])  # 101 draws x 2 regions
    columns = uncertainty.interval_columns("x_pg_c", [7.0, 8.0], samples)
    np.testing.assert_array_equal(columns["x_pg_c"], [7.0, 8.0])
    np.testing.assert_allclose(columns["x_pg_c_p05"], [5.0, 10.0])
    np.testing.assert_allclose(columns["x_pg_c_p50"], [50.0, 100.0])
    np.testing.assert_allclose(columns["x_pg_c_p95"], [95.0, 190.0])


@pytest.mark.parametrize("n_draws", [1, 2, 3, 100, 2000, 2001])
def test_percentiles_of_sorted_draws_are_numpys_bit_for_bit(n_draws):
    # Draws of every scale, with ties, constants, infinities and NaN (a whole region, or one draw), sorted as the
    # interval columns sort them; the percentiles read from the order statistics are np.percentile's, bit for bit.
    rng = np.random.default_rng(n_draws)
    for scale in (1e-3, 1.0, 1e6):
        draws = rng.normal(0.0, scale, (n_draws, 8))
        draws[:, 0] = np.nan
        draws[rng.integers(n_draws), 1] = np.nan
        draws[:, 2] = 5.0
        draws[:, 3] = np.round(draws[:, 3] / scale) + 0.0  # ties (no negative zero: see below)
        draws[:, 4] = np.inf
        draws[rng.integers(n_draws), 5] = -np.inf
        ordered = np.sort(draws, axis=0)
        for percentiles in ([5.0, 50.0, 95.0], [0.0, 100.0], [2.5, 33.3, 97.5]):
            with np.errstate(invalid="ignore"):
                numpys = np.percentile(ordered, percentiles, axis=0)
            assert uncertainty.sorted_percentiles(ordered, percentiles).tobytes() == numpys.tobytes()
    # numpy selects its order statistics again, which may swap a -0.0 and a 0.0 draw (equal as numbers): the value
    # is the same, its sign of zero may not be
    zeros = np.sort(np.array([[-0.0], [0.0]] * 50), axis=0)
    np.testing.assert_array_equal(uncertainty.sorted_percentiles(zeros, [5.0]), np.percentile(zeros, [5.0], axis=0))


def test_interval_columns_of_sorted_multiples_of_the_draws_are_those_of_the_multiples():
    draws = np.random.default_rng(0).lognormal(0.0, 1.0, (2000, 5))
    factor = np.array([3.0, 0.5, 1e-9, 44 / 12, 7.0])
    ordered = np.sort(draws, axis=0) * factor
    unsorted = uncertainty.interval_columns("x", 1.0, draws * factor)
    for name, values in uncertainty.interval_columns("x", 1.0, ordered, ordered=True).items():
        assert values.tobytes() == unsorted[name].tobytes()


def test_normal_draws_are_clipped_only_to_their_declared_bounds():
    free = uncertainty.draw({"z": {"distribution": "normal", "mean": 0.0, "sd": 1.0}}, 2000, seed=2)["z"]
    assert free.min() < 0 < free.max()  # a standard normal z is never clipped
    bounded = uncertainty.draw({"f": uncertainty.factor_spec(0.48, 200.0)}, 2000, seed=2)["f"]
    assert bounded.min() == 0.0 and bounded.max() == 1.0  # an IPCC factor stays within [0, 1]


def test_factor_spec_reads_the_ipcc_error_as_two_standard_deviations():
    # F_LU tropical moist/wet 0.48 +- 46 %: sd = 0.48 x 0.46 / 2 = 0.1104
    spec = uncertainty.factor_spec(0.48, 46)
    assert (spec["mean"], spec["sd"], spec["low"], spec["high"]) == pytest.approx((0.48, 0.1104, 0.0, 1.0))
    draws = uncertainty.draw({"f": spec}, 20000, seed=4)["f"]
    assert draws.std() == pytest.approx(0.1104, rel=0.03)
    assert uncertainty.central({"f": uncertainty.factor_spec(0.83, None)}) == {"f": 0.83}  # no error: fixed


def test_shipped_spec_draws_match_their_configured_distributions():
    spec = monte_carlo_parameters()
    n = 1000
    draws = uncertainty.draw(spec, n, seed=4001)
    assert set(draws) == {"soc_stock_error_z", "soc_debt_residual_factor"}
    for name, parameter in spec.items():
        mean, sd, kurtosis = parameter["mean"], parameter["sd"], 3.0
        # Standard errors over n draws: sd / sqrt(n) for the mean, sd * sqrt((kurtosis - 1) / 4n) for the sd
        # (0.0158 sd at n = 1000); 4 standard errors of slack.
        assert draws[name].mean() == pytest.approx(mean, abs=4 * sd / n**0.5), name
        assert draws[name].std() == pytest.approx(sd, abs=4 * sd * ((kurtosis - 1) / (4 * n)) ** 0.5), name
