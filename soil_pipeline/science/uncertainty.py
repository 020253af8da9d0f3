"""Seeded Monte Carlo over uncertain parameters, drawn once per run and applied to regional aggregates.

Each parameter has its own generator seeded by (seed, CRC32 of its name), so adding or removing a parameter does
not change the draws of the others, and the same seed always gives the same draws. A `product` parameter is the
draw-by-draw product of other parameters, so errors they share are drawn jointly (correlated), not independently.
"""

import zlib

import numpy as np

PERCENTILES = {"p05": 5.0, "p50": 50.0, "p95": 95.0}


def _generator(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _sample(rng: np.random.Generator, spec: dict, n_draws: int) -> np.ndarray:
    kind = spec["distribution"]
    if kind == "normal":
        # Multiplicative factors cannot turn negative; with the shipped sds a clip at 0 is a > 4-sd event.
        return np.clip(rng.normal(spec["mean"], spec["sd"], n_draws), 0.0, None)
    if kind == "uniform":
        return rng.uniform(spec["low"], spec["high"], n_draws)
    raise ValueError(f"unknown distribution {kind!r} (expected normal or uniform)")


def _products(parameters: dict[str, dict], values: dict) -> dict:
    """`values` of the sampled parameters plus each `product` parameter, the product of its factors' values."""
    out = dict(values)
    for name, spec in parameters.items():
        if spec["distribution"] == "product":
            if unknown := [factor for factor in spec["of"] if factor not in values]:
                raise ValueError(f"{name}: product of unknown or non-sampled parameter(s) {unknown}")
            out[name] = np.prod([values[factor] for factor in spec["of"]], axis=0)
    return out


def draw(parameters: dict[str, dict], n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """`n_draws` values of every parameter, from its distribution spec (normal: mean, sd; uniform: low, high;
    product: of, a list of other parameters)."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    sampled = {
        name: _sample(_generator(seed, name), spec, n_draws)
        for name, spec in parameters.items()
        if spec["distribution"] != "product"
    }
    return _products(parameters, sampled)


def central(parameters: dict[str, dict]) -> dict[str, float]:
    """Each parameter's mean (a product's: the product of its factors' means): the central figures use these."""
    means = {"normal": lambda s: s["mean"], "uniform": lambda s: 0.5 * (s["low"] + s["high"])}
    sampled = {
        name: float(means[spec["distribution"]](spec))
        for name, spec in parameters.items()
        if spec["distribution"] != "product"
    }
    return {name: float(value) for name, value in _products(parameters, sampled).items()}


def interval_columns(name: str, central_value, samples: np.ndarray) -> dict[str, np.ndarray]:
    """`name` (the central figure) and `name_p05`, `name_p50`, `name_p95` over the draws (axis 0 of `samples`)."""
    columns = {name: np.asarray(central_value, dtype=float)}
    with np.errstate(invalid="ignore"):
        for suffix, q in PERCENTILES.items():
            columns[f"{name}_{suffix}"] = np.percentile(samples, q, axis=0)
    return columns
