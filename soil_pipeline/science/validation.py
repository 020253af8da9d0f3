"""How well a stock map agrees with field-measured stocks, and what the field sites say about the map's regional
totals: agreement metrics, a bootstrap that respects the spatial clustering of legacy surveys, and a ratio
estimator of a regional total calibrated on the sites.

Conventions: the residual is map minus field (a positive bias means the map is higher than the field); stocks are
t C/ha over the same depth (0-30 cm).

- Agreement (`agreement`): n, mean error (bias), RMSE, model efficiency coefficient (MEC = 1 - SSE / SST, Janssen
  & Heuberger 1995, Ecol. Model. 83:55; the "amount of variance explained" of Wadoux et al. 2021, Ecol. Model.
  457:109692), Lin's concordance correlation coefficient (Lin 1989, Biometrics 45:255, with moments over n), and
  the median map/field ratio over sites with a positive field stock.
- Intervals (`block_bootstrap`): legacy surveys sample in clusters (a transect, a project area), so sites near one
  another are not independent draws. Sites are grouped into square spatial blocks of `block_deg` degrees and whole
  blocks are resampled with replacement (the spatial block bootstrap; Lahiri 2003, Resampling Methods for Dependent
  Data, ch. 2 and 12; blocks as in Roberts et al. 2017, Ecography 40:913). With blocks wider than the range of
  the residuals' spatial correlation, blocks are close to independent and the interval is honest for clustered
  sites; a block narrower than that range makes it too narrow.
- Calibrated totals (`ratio_estimate`): the regional map total times the ratio of the field stocks to the map
  values at the sites (Cochran 1977, Sampling Techniques, 3rd ed., ch. 6), with the standard error of that ratio
  from the same block bootstrap. Field sites of legacy surveys are not a probability sample of the region, so this
  is a model-based correction: it assumes the map's relative error at the sites is that of the region as a whole.
  It is given only where a region has at least a stated number of sites (see the asset) and labelled so.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS = ("n", "bias_t_c_per_ha", "rmse_t_c_per_ha", "mec", "lin_ccc", "median_map_to_field_ratio")


def agreement(map_value, field_value) -> dict[str, float]:
    """The agreement metrics (`METRICS`) of map against field values at the same sites (NaN pairs dropped)."""
    map_value, field_value = np.asarray(map_value, dtype=float), np.asarray(field_value, dtype=float)
    keep = np.isfinite(map_value) & np.isfinite(field_value)
    m, f = map_value[keep], field_value[keep]
    n = len(m)
    if n == 0:
        return {"n": 0, **{name: np.nan for name in METRICS[1:]}}
    residual = m - f
    sst = np.sum((f - f.mean()) ** 2)
    covariance = np.mean((m - m.mean()) * (f - f.mean()))
    concordance_denominator = m.var() + f.var() + (m.mean() - f.mean()) ** 2
    positive = f > 0
    return {
        "n": n,
        "bias_t_c_per_ha": float(residual.mean()),
        "rmse_t_c_per_ha": float(np.sqrt(np.mean(residual**2))),
        "mec": float(1.0 - np.sum(residual**2) / sst) if sst > 0 else np.nan,
        "lin_ccc": float(2.0 * covariance / concordance_denominator) if concordance_denominator > 0 else np.nan,
        "median_map_to_field_ratio": float(np.median(m[positive] / f[positive])) if positive.any() else np.nan,
    }


def spatial_blocks(longitude_deg, latitude_deg, block_deg: float) -> np.ndarray:
    """Block id of each site: the `block_deg` square (from -180, -90) that holds it."""
    columns = np.floor((np.asarray(longitude_deg, dtype=float) + 180.0) / block_deg).astype("int64")
    rows = np.floor((np.asarray(latitude_deg, dtype=float) + 90.0) / block_deg).astype("int64")
    return rows * (int(np.ceil(360.0 / block_deg)) + 1) + columns


@dataclass(frozen=True)
class Bootstrap:
    """Settings of the spatial block bootstrap: block size, number of resamples, seed and interval quantiles."""

    block_deg: float = 2.0
    n_resamples: int = 500
    seed: int = 20
    low: float = 0.05
    high: float = 0.95


def block_bootstrap(blocks: np.ndarray, statistic, settings: Bootstrap) -> np.ndarray:
    """`statistic(index)` for each of `settings.n_resamples` resamples of whole blocks, shape (resamples, k).

    `statistic` takes the site indices of one resample (a site appears once per draw of its block) and returns k
    values. Each resample draws as many blocks as there are, with replacement."""
    blocks = np.asarray(blocks)
    labels, members = np.unique(blocks, return_inverse=True)
    by_block = np.split(np.argsort(members, kind="stable"), np.cumsum(np.bincount(members))[:-1])
    rng = np.random.default_rng(settings.seed)
    draws = rng.integers(0, len(labels), size=(settings.n_resamples, len(labels)))
    return np.array([np.atleast_1d(statistic(np.concatenate([by_block[b] for b in row]))) for row in draws])


def agreement_with_intervals(frame: pd.DataFrame, settings: Bootstrap, map_column: str, field_column: str) -> dict:
    """`agreement` of `map_column` against `field_column` with a block-bootstrap interval for each metric
    (`<metric>_p05`, `<metric>_p95` at the settings' quantiles); `frame` also holds longitude_deg, latitude_deg."""
    frame = frame[np.isfinite(frame[map_column]) & np.isfinite(frame[field_column])]
    point = agreement(frame[map_column], frame[field_column])
    out = dict(point)
    names = METRICS[1:]
    if len(frame) < 2:
        return out | {f"{name}_{q}": np.nan for name in names for q in ("p05", "p95")}
    m, f = frame[map_column].to_numpy(), frame[field_column].to_numpy()
    blocks = spatial_blocks(frame["longitude_deg"], frame["latitude_deg"], settings.block_deg)

    def stats(index):
        values = agreement(m[index], f[index])
        return [values[name] for name in names]

    resampled = block_bootstrap(blocks, stats, settings)
    low, high = np.nanquantile(resampled, [settings.low, settings.high], axis=0)
    for i, name in enumerate(names):
        out[f"{name}_p05"], out[f"{name}_p95"] = float(low[i]), float(high[i])
    out["n_blocks"] = len(np.unique(blocks))
    return out


def ratio_estimate(map_total: float, map_at_sites, field_at_sites, blocks, settings: Bootstrap) -> tuple[float, float]:
    """(calibrated total, its standard error): `map_total` x sum(field) / sum(map) over the sites, the standard
    error from the block bootstrap of that ratio (the map total taken as known)."""
    m, f = np.asarray(map_at_sites, dtype=float), np.asarray(field_at_sites, dtype=float)
    ratio = f.sum() / m.sum()
    resampled = block_bootstrap(np.asarray(blocks), lambda i: f[i].sum() / m[i].sum(), settings)[:, 0]
    return float(map_total * ratio), float(map_total * np.std(resampled, ddof=1))


def interval_coverage(map_value, field_value, map_error, z: float) -> float:
    """Share of sites whose field value lies within map +- z x the map's stated error (NaN where none has all
    three); for a stated 1-sigma error, z = 1.645 gives the 90 % interval."""
    m, f, e = (np.asarray(v, dtype=float) for v in (map_value, field_value, map_error))
    keep = np.isfinite(m) & np.isfinite(f) & np.isfinite(e)
    if not keep.any():
        return np.nan
    return float(np.mean(np.abs(f[keep] - m[keep]) <= z * e[keep]))
