"""Seeded Monte Carlo over uncertain parameters, drawn once per run and applied to regional aggregates.

Each parameter has its own generator seeded by (seed, CRC32 of its name), so adding or removing a parameter does
not change the draws of the others, and the same seed always gives the same draws.
"""

import zlib

import numpy as np

PERCENTILES = {"p05": 5.0, "p50": 50.0, "p95": 95.0}


def _generator(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _sample(rng: np.random.Generator, spec: dict, n_draws: int) -> np.ndarray:
    kind = spec["distribution"]
    if kind == "normal":
        values = rng.normal(spec["mean"], spec["sd"], n_draws)
        return np.clip(values, spec.get("low"), spec.get("high")) if {"low", "high"} & set(spec) else values
    if kind == "uniform":
        return rng.uniform(spec["low"], spec["high"], n_draws)
    raise ValueError(f"unknown distribution {kind!r} (expected normal or uniform)")


def draw(parameters: dict[str, dict], n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """`n_draws` values of every parameter, from its distribution spec (normal: mean, sd, optional low/high bounds
    the draws are clipped to; uniform: low, high)."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    return {name: _sample(_generator(seed, name), spec, n_draws) for name, spec in parameters.items()}


def central(parameters: dict[str, dict]) -> dict[str, float]:
    """Each parameter's mean (the middle of a uniform range): the central figures use these."""
    means = {"normal": lambda s: s["mean"], "uniform": lambda s: 0.5 * (s["low"] + s["high"])}
    return {name: float(means[spec["distribution"]](spec)) for name, spec in parameters.items()}


def factor_spec(value: float, error_pct: float | None) -> dict:
    """An IPCC stock change factor as a parameter: normal around the table value with sd = value x error_pct / 200
    (the table's error is two standard deviations as % of the mean), clipped to [0, 1]; without an error, fixed."""
    if error_pct is None:
        return {"distribution": "uniform", "low": value, "high": value}
    return {"distribution": "normal", "mean": value, "sd": value * error_pct / 200.0, "low": 0.0, "high": 1.0}


def interval_columns(name: str, central_value, samples: np.ndarray, *, ordered: bool = False) -> dict[str, np.ndarray]:
    """`name` (the central figure) and `name_p05`, `name_p50`, `name_p95` over the draws (axis 0 of `samples`;
    `ordered`: already sorted along it, as a positive multiple of sorted draws is)."""
    columns = {name: np.asarray(central_value, dtype=float)}
    # A percentile interpolates between two order statistics: numpy sorts the draws several times faster than it
    # selects the six of three percentiles out of unsorted ones, and the sorted draws give them at once.
    values = sorted_percentiles(samples if ordered else np.sort(samples, axis=0), list(PERCENTILES.values()))
    columns.update({f"{name}_{suffix}": value for suffix, value in zip(PERCENTILES, values, strict=True)})
    return columns


def sorted_percentiles(ordered: np.ndarray, percentiles: list[float]) -> np.ndarray:
    """`np.percentile(ordered, percentiles, axis=0)` (its linear method) of values sorted along axis 0, read from
    their order statistics rather than selected again: numpy's arithmetic in numpy's order, so the same values bit for
    bit (test_uncertainty; numpy's selection may swap a -0.0 and a 0.0, equal values), at a fraction of the time. A
    slice holding a NaN (sorted last) gives NaN."""
    n = ordered.shape[0]
    virtual = (n - 1) * np.true_divide(percentiles, 100)
    below = np.floor(virtual)
    above = below + 1
    at_end = virtual >= n - 1
    below[at_end], above[at_end] = -1, -1
    below, above = below.astype(np.intp), above.astype(np.intp)
    gamma = (virtual - below).reshape((-1,) + (1,) * (ordered.ndim - 1))
    low, high = ordered[below], ordered[above]
    with np.errstate(invalid="ignore"):  # between two infinities
        diff = high - low
        values = low + diff * gamma
        np.subtract(high, diff * (1 - gamma), out=values, where=gamma >= 0.5)
    nan = np.isnan(ordered[-1])
    if nan.any():
        np.copyto(values, ordered[-1], where=nan)
    return values
