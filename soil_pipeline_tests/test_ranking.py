"""Restoring a share in priority order from per-window histograms equals the global sort of scenarios.restore."""

import numpy as np
import pytest

from soil_pipeline.science import ranking
from soil_pipeline.science.scenarios import restore


def _streamed(area, priority, fraction, zones, n_windows):
    zone = np.zeros(area.shape, "int64") if zones is None else zones
    key, position = ranking.rank_key(priority), np.arange(area.size)
    windows = np.array_split(np.arange(area.size), n_windows)
    histogram = ranking.HistogramSum()
    for w in windows:
        histogram.add(ranking.window_histogram(key[w], zone[w], area[w]))
    state = ranking.thresholds(*histogram.result(), int(zone.max()) + 1, fraction)
    cells = [ranking.threshold_cells(key[w], position[w], zone[w], area[w], state) for w in windows]
    shares = ranking.BinShares.from_cells(cells, state)
    return np.concatenate(
        [ranking.restored_in_window(key[w], position[w], zone[w], area[w], state, shares) for w in windows]
    )


@pytest.mark.parametrize("fraction", [0.15, 0.3, 1.0])
@pytest.mark.parametrize("scoped", [False, True])
def test_histogram_ranking_equals_the_global_sort(fraction, scoped):
    rng = np.random.default_rng(7)
    n = 200_000
    area = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(2.0, 500.0, n))
    # debt densities with many exact ties (rounded), zeros, negatives and missing values
    priority = np.round(rng.normal(20.0, 15.0, n), 1)
    priority[rng.random(n) < 0.05] = np.nan
    priority[rng.random(n) < 0.05] = 0.0
    zones = rng.integers(0, 40, n) if scoped else None
    expected = restore(area, priority, fraction, zones)
    streamed = _streamed(area, priority, fraction, zones, n_windows=17)
    np.testing.assert_allclose(streamed, expected, rtol=1e-9, atol=1e-9 * area.max())
    assert streamed.sum() == pytest.approx(fraction * area.sum(), rel=1e-12)


@pytest.mark.parametrize("scoped", [False, True])
def test_a_window_has_threshold_cells_exactly_when_its_histogram_has_a_threshold_bin(scoped):
    """The threshold pass reads only the windows whose histograms hold a threshold bin: none of the others has a
    cell to gather."""
    rng = np.random.default_rng(5)
    n = 100_000
    area = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(2.0, 500.0, n))
    priority = np.round(rng.lognormal(2.5, 1.0, n), 2)
    zone = np.where(rng.random(n) < 0.1, -1, rng.integers(0, 30, n)) if scoped else np.zeros(n, "int64")
    key, position = ranking.rank_key(priority), np.arange(n)
    windows = np.array_split(np.arange(n), 400)
    histograms = [ranking.window_histogram(key[w], zone[w], area[w]) for w in windows]
    histogram = ranking.HistogramSum()
    for part in histograms:
        histogram.add(part)
    state = ranking.thresholds(*histogram.result(), int(zone.max()) + 1, 0.3)
    flagged = [bool(state.in_histogram(ids).any()) for ids, _ in histograms]
    gathered = [len(ranking.threshold_cells(key[w], position[w], zone[w], area[w], state)[0]) > 0 for w in windows]
    assert flagged == gathered
    assert 0 < sum(flagged) < len(windows)


@pytest.mark.parametrize("scoped", [False, True])
def test_restoring_everything_takes_no_ranking_and_restores_every_hectare(scoped):
    rng = np.random.default_rng(11)
    n = 50_000
    area = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(2.0, 500.0, n))
    priority = np.where(rng.random(n) < 0.05, np.nan, rng.normal(20.0, 15.0, n))
    zone = rng.integers(0, 40, n) if scoped else np.zeros(n, "int64")
    key, position = ranking.rank_key(priority), np.arange(n)
    state = ranking.restore_all(int(zone.max()) + 1)
    restored = ranking.restored_in_window(key, position, zone, area, state, ranking.BinShares.none())
    assert np.array_equal(restored, area)
    np.testing.assert_allclose(restored, restore(area, priority, 1.0, zone if scoped else None), rtol=1e-9)


def test_window_histograms_merged_as_they_come_stay_bounded_and_equal_one_merge(monkeypatch):
    """At 1 km a scenario has 3,600 windows: their histograms are merged whenever those pending pass a bound,
    not kept until the last window."""
    monkeypatch.setattr(ranking, "PENDING_ENTRIES", 2_000)
    rng = np.random.default_rng(11)
    parts = []
    for _ in range(60):
        n = 5_000
        priority = np.round(rng.normal(20.0, 15.0, n), 2)
        parts.append(
            ranking.window_histogram(ranking.rank_key(priority), rng.integers(0, 5, n), rng.gamma(2.0, 500.0, n))
        )
    histogram, held = ranking.HistogramSum(), []
    for part in parts:
        histogram.add(part)
        held.append(histogram.entries)
    ids, sums = histogram.result()
    expected_ids, expected_sums = ranking.merge_histograms(parts)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12)
    assert max(held) <= 2_000 + len(expected_ids) + max(len(p[0]) for p in parts) < sum(len(p[0]) for p in parts) / 4
