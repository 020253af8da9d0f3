"""How well a stock map agrees with field-measured stocks, and what the field sites say about the map's regional
totals: agreement metrics, a bootstrap that respects the spatial clustering of legacy surveys, the map's stated
error against the field, and a ratio estimator of a regional total calibrated on the sites.

Conventions: the residual is map minus field (a positive bias means the map is higher than the field); stocks are
t C/ha over the same depth (0-30 cm).

- Agreement (`agreement`): n, mean error (bias), RMSE, model efficiency coefficient (MEC = 1 - SSE / SST, Janssen
  & Heuberger 1995, Ecol. Model. 83:55; the "amount of variance explained" of Wadoux et al. 2021, Ecol. Model.
  457:109692), Lin's concordance correlation coefficient (Lin 1989, Biometrics 45:255, with moments over n), and
  the median map/field ratio over sites with a positive field stock.
- Intervals (`agreement_with_intervals`): legacy surveys sample in clusters (a transect, a project area), so sites
  near one another are not independent draws. Sites are grouped into square spatial blocks of `block_deg` degrees
  and whole blocks are resampled with replacement (the spatial block bootstrap; Lahiri 2003, Resampling Methods for
  Dependent Data, ch. 2 and 12; blocks as in Roberts et al. 2017, Ecography 40:913). With blocks wider than the
  range of the residuals' spatial correlation, blocks are close to independent and the interval is honest for
  clustered sites; a block narrower than that range makes it too narrow. Every metric but the median is a function
  of six sums (n, sum of map, field, their squares and cross product), so a resample's metrics come from the
  blocks' sums weighted by how often each block was drawn, and its median ratio from a weighted median: the same
  values as concatenating the drawn blocks' sites, in memory proportional to sites + blocks x resamples.
- The map's stated error (`interval_coverage`): the share of sites whose field stock lies within the map's value
  +- z x its stated error (1 sd): about 68 % at z = 1 and 90 % at z = 1.645 if the stated error is right and the
  residuals are normal. Field stocks also carry their own measurement and support (point vs 5' cell) error, so a
  right map error gives a coverage somewhat below nominal.
- Calibrated totals (`ratio_estimate`): the regional map total times the ratio of the field stocks to the map
  values at the sites (Cochran 1977, Sampling Techniques, 3rd ed., ch. 6), with the standard error of that ratio
  from the same block bootstrap. Field sites of legacy surveys are not a probability sample of the region, so this
  is a model-based estimate, not a design-based one (Brus & de Gruijter 1997, Geoderma 80:1): the ratio estimator is
  the best linear unbiased predictor under the model field = R x map + e with var(e) proportional to map (Royall
  1970, Biometrika 57:377), whatever way the sites were chosen, as long as their choice does not depend on the map's
  error at them. It assumes the map's relative error at the sites is that of the region as a whole; the asset gives
  it only where a region has enough sites, blocks and area near a site to make that credible, and labels it so.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS = ("n", "bias_t_c_per_ha", "rmse_t_c_per_ha", "mec", "lin_ccc", "median_map_to_field_ratio")
# Interval columns `<metric>_p05` and `<metric>_p95`: the 5th and 95th percentiles of the resamples (a 90 % interval).
INTERVAL = {"p05": 0.05, "p95": 0.95}


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
    """Settings of the spatial block bootstrap: block size (deg), number of resamples and seed (the pipeline's come
    from data/literature/field_validation.yaml)."""

    block_deg: float = 2.0
    n_resamples: int = 500
    seed: int = 20


def _draws(n_blocks: int, settings: Bootstrap) -> np.ndarray:
    """The blocks drawn by each resample, shape (resamples, blocks): as many draws as there are blocks."""
    rng = np.random.default_rng(settings.seed)
    return rng.integers(0, n_blocks, size=(settings.n_resamples, n_blocks))


def block_bootstrap(blocks: np.ndarray, statistic, settings: Bootstrap) -> np.ndarray:
    """`statistic(index)` for each of `settings.n_resamples` resamples of whole blocks, shape (resamples, k).

    `statistic` takes the site indices of one resample (a site appears once per draw of its block) and returns k
    values. Each resample draws as many blocks as there are, with replacement."""
    labels, members = np.unique(np.asarray(blocks), return_inverse=True)
    by_block = np.split(np.argsort(members, kind="stable"), np.cumsum(np.bincount(members))[:-1])
    draws = _draws(len(labels), settings)
    return np.array([np.atleast_1d(statistic(np.concatenate([by_block[b] for b in row]))) for row in draws])


# Resamples whose block counts are held at once: (chunk, blocks) integers.
RESAMPLE_CHUNK = 100


def _block_counts(n_blocks: int, settings: Bootstrap):
    """How often each block is drawn by each resample, (chunk, blocks) at a time; the same draws as
    `block_bootstrap`."""
    draws = _draws(n_blocks, settings)
    for start in range(0, len(draws), RESAMPLE_CHUNK):
        chunk = draws[start : start + RESAMPLE_CHUNK]
        offsets = np.arange(len(chunk))[:, None] * n_blocks
        yield np.bincount((chunk + offsets).ravel(), minlength=len(chunk) * n_blocks).reshape(len(chunk), n_blocks)


def _sum_metrics(s: np.ndarray) -> dict[str, np.ndarray]:
    """Bias, RMSE, MEC and Lin's CCC from sums (..., 6): n, sum m, sum f, sum m^2, sum f^2, sum m f."""
    n, sm, sf, smm, sff, smf = np.moveaxis(s, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_m, mean_f = sm / n, sf / n
        sse = smm - 2 * smf + sff
        sst = sff - sf * mean_f
        var_m, var_f = smm / n - mean_m**2, sff / n - mean_f**2
        covariance = smf / n - mean_m * mean_f
        denominator = var_m + var_f + (mean_m - mean_f) ** 2
        return {
            "bias_t_c_per_ha": (sm - sf) / n,
            "rmse_t_c_per_ha": np.sqrt(np.maximum(sse, 0.0) / n),
            "mec": np.where(sst > 0, 1.0 - sse / sst, np.nan),
            "lin_ccc": np.where(denominator > 0, 2.0 * covariance / denominator, np.nan),
        }


def _weighted_medians(values: np.ndarray, site_block: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The median of each resample of `values` (one per site, sorted), each site weighted by its block's count:
    the median of the concatenated sample, the mean of the two middle values when their number is even.

    All resamples at once: one running count over the resamples' weights laid end to end, so that a resample's
    middle ranks, offset by the count before it, fall within its own stretch of one sorted array."""
    out = np.full(len(counts), np.nan)
    n_sites = len(site_block)
    if n_sites == 0:
        return out
    running = np.cumsum(counts[:, site_block].ravel())
    ends = running[n_sites - 1 :: n_sites]
    before = np.concatenate([[0], ends[:-1]])
    total = ends - before
    drawn = np.flatnonzero(total)
    starts = drawn * n_sites
    low = np.searchsorted(running, before[drawn] + (total[drawn] - 1) // 2, side="right") - starts
    high = np.searchsorted(running, before[drawn] + total[drawn] // 2, side="right") - starts
    out[drawn] = 0.5 * (values[low] + values[high])
    return out


def agreement_with_intervals(frame: pd.DataFrame, settings: Bootstrap, map_column: str, field_column: str) -> dict:
    """`agreement` of `map_column` against `field_column` with a block-bootstrap interval for each metric
    (`<metric>_p05`, `<metric>_p95`) and the number of blocks; `frame` also holds longitude_deg, latitude_deg."""
    frame = frame[np.isfinite(frame[map_column]) & np.isfinite(frame[field_column])]
    out = agreement(frame[map_column], frame[field_column])
    names = METRICS[1:]
    blocks = spatial_blocks(frame["longitude_deg"], frame["latitude_deg"], settings.block_deg)
    out["n_blocks"] = len(np.unique(blocks))
    if len(frame) < 2:
        return out | {f"{name}_{q}": np.nan for name in names for q in INTERVAL}
    m, f = frame[map_column].to_numpy(dtype=float), frame[field_column].to_numpy(dtype=float)
    _, members = np.unique(blocks, return_inverse=True)
    n_blocks = int(members.max()) + 1
    sums = np.stack(
        [np.bincount(members, weights=w, minlength=n_blocks) for w in (np.ones_like(m), m, f, m * m, f * f, m * f)],
        axis=1,
    )
    positive = f > 0
    order = np.argsort(m[positive] / f[positive], kind="stable")
    ratios, ratio_blocks = (m[positive] / f[positive])[order], members[positive][order]
    parts = {name: [] for name in names}
    for counts in _block_counts(n_blocks, settings):
        for name, values in _sum_metrics(counts @ sums).items():
            parts[name].append(values)
        parts["median_map_to_field_ratio"].append(_weighted_medians(ratios, ratio_blocks, counts))
    for name in names:
        low, high = np.nanquantile(np.concatenate(parts[name]), list(INTERVAL.values()))
        out[f"{name}_p05"], out[f"{name}_p95"] = float(low), float(high)
    return out


def ratio_estimate(map_total: float, map_at_sites, field_at_sites, blocks, settings: Bootstrap) -> tuple[float, float]:
    """(calibrated total, its standard error): `map_total` x sum(field) / sum(map) over the sites, the standard
    error from the block bootstrap of that ratio (the map total taken as known)."""
    m, f = np.asarray(map_at_sites, dtype=float), np.asarray(field_at_sites, dtype=float)
    _, members = np.unique(np.asarray(blocks), return_inverse=True)
    n_blocks = int(members.max()) + 1
    block_m = np.bincount(members, weights=m, minlength=n_blocks)
    block_f = np.bincount(members, weights=f, minlength=n_blocks)
    resampled = np.concatenate([(c @ block_f) / (c @ block_m) for c in _block_counts(n_blocks, settings)])
    return float(map_total * f.sum() / m.sum()), float(map_total * np.std(resampled, ddof=1))


def map_total_error(field_to_map_ratio, ratio_se) -> np.ndarray:
    """The relative error (1 sd) of a map total that the field sites measure: the root mean square of its
    departure from the calibrated total (ratio - 1) and of that total's own standard error (relative). A Monte
    Carlo drawing the map total x (1 + z x this error) keeps the map's figure central and spreads it as far as
    the field evidence says it may be off."""
    ratio, se = np.asarray(field_to_map_ratio, dtype=float), np.asarray(ratio_se, dtype=float)
    return np.sqrt((ratio - 1.0) ** 2 + se**2)


def interval_coverage(map_value, field_value, map_error, z: float) -> float:
    """Share of sites whose field value lies within map +- z x the map's stated error (NaN where none has all
    three); for a stated 1-sigma error, z = 1.645 gives the 90 % interval."""
    m, f, e = (np.asarray(v, dtype=float) for v in (map_value, field_value, map_error))
    keep = np.isfinite(m) & np.isfinite(f) & np.isfinite(e)
    if not keep.any():
        return np.nan
    return float(np.mean(np.abs(f[keep] - m[keep]) <= z * e[keep]))


# Stated-error intervals whose coverage is measured: (column suffix, z of a 1-sd error, nominal share).
STATED_INTERVALS = (("68", 1.0, 0.683), ("90", 1.645, 0.90))


def without_attrs(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (not a copy of its data) without its attrs: pandas deep-copies a frame's attrs (e.g. its provenance)
    into the result of every operation on it, which costs more than the arithmetic of a loop over small groups."""
    bare = frame.copy(deep=False)
    bare.attrs = {}
    return bare


def group_agreement(sites: pd.DataFrame, settings: Bootstrap, map_column: str, field_column: str, error_column=None):
    """One group's row: `agreement_with_intervals`, the mean field and map stocks (t C/ha) and, given the map's
    stated error (1 sd, t C/ha), the share of sites (%) whose field stock its 68 % and 90 % intervals cover."""
    pairs = sites[np.isfinite(sites[map_column]) & np.isfinite(sites[field_column])]
    row = agreement_with_intervals(pairs, settings, map_column, field_column)
    row["mean_field_t_c_per_ha"] = float(pairs[field_column].mean()) if len(pairs) else np.nan
    row["mean_map_t_c_per_ha"] = float(pairs[map_column].mean()) if len(pairs) else np.nan
    for suffix, z, _ in STATED_INTERVALS:
        covered = np.nan
        if error_column is not None:
            covered = 100.0 * interval_coverage(pairs[map_column], pairs[field_column], pairs[error_column], z)
        row[f"stated_error_coverage_{suffix}_pct"] = covered
    return row


def grouped_agreement(
    sites: pd.DataFrame, groups: dict[str, str], settings: Bootstrap, map_column, field_column, error_column=None
) -> pd.DataFrame:
    """`group_agreement` per value of each grouping column (`groups`: region type -> column; None for one group
    of all sites, id "GLOBAL"): columns region_type, region_id, then the row's figures, n renamed n_sites."""
    sites = without_attrs(sites)
    rows = []
    for region_type, column in groups.items():
        keyed = sites.assign(_group="GLOBAL") if column is None else sites.assign(_group=sites[column].astype("str"))
        for group, part in keyed.groupby("_group", sort=True):
            figures = group_agreement(part, settings, map_column, field_column, error_column)
            rows.append({"region_type": region_type, "region_id": group, **figures})
    return pd.DataFrame(rows).rename(columns={"n": "n_sites"})


@dataclass(frozen=True)
class CalibrationRules:
    """When a region's total is calibrated on its sites (field_validation.yaml, calibration): sites with a map
    value, bootstrap blocks, and share (%) of the mapped area within `distance_km` of a site."""

    min_sites: int
    min_blocks: int
    min_area_near_a_site_pct: float
    distance_km: float

    def unmet(self, n_sites: int, n_blocks: int, area_near_pct: float) -> str | None:
        """Why a region with these figures stays map-only (None: it is calibrated)."""
        if n_sites < self.min_sites:
            return f"{n_sites} site(s) with a map value, {self.min_sites} required"
        if n_blocks < self.min_blocks:
            return f"sites in {n_blocks} bootstrap block(s), {self.min_blocks} required"
        if not area_near_pct >= self.min_area_near_a_site_pct:
            return (
                f"{area_near_pct:.1f} % of the mapped area within {self.distance_km:g} km of a site, "
                f"{self.min_area_near_a_site_pct:g} % required"
            )
        return None


def calibrated_total(
    map_total: float,
    sites: pd.DataFrame,
    map_column: str,
    field_column: str,
    area_near_pct: float,
    rules: CalibrationRules,
    settings: Bootstrap,
) -> dict:
    """A region's field-calibrated total beside its `map_total` (any unit): the field/map ratio over its `sites`
    (pairs with both values; columns longitude_deg, latitude_deg too) and its standard error, the calibrated total
    and its standard error (`ratio_estimate`, in the map total's unit), the map total's relative error the field
    measures (`map_total_error`) and the label saying which it is; NaN and a map-only label where `rules` are
    unmet."""
    m, f, longitude, latitude = (
        sites[column].to_numpy(dtype=float) for column in (map_column, field_column, "longitude_deg", "latitude_deg")
    )
    pair = np.isfinite(m) & np.isfinite(f)
    m, f = m[pair], f[pair]
    blocks = spatial_blocks(longitude[pair], latitude[pair], settings.block_deg)
    n_sites, n_blocks = len(m), len(np.unique(blocks))
    reason = rules.unmet(n_sites, n_blocks, area_near_pct)
    if reason is None and not m.sum() > 0:
        reason = "the map's stock at the sites sums to zero"
    if reason is not None:
        return {
            "field_to_map_ratio": np.nan,
            "field_to_map_ratio_se": np.nan,
            "calibrated_total": np.nan,
            "calibrated_total_se": np.nan,
            "map_total_error": np.nan,
            "label": f"map-only: {reason}",
        }
    ratio, ratio_se = ratio_estimate(1.0, m, f, blocks, settings)
    return {
        "field_to_map_ratio": ratio,
        "field_to_map_ratio_se": ratio_se,
        "calibrated_total": map_total * ratio,
        "calibrated_total_se": map_total * ratio_se,
        "map_total_error": float(map_total_error(ratio, ratio_se)),
        "label": (
            f"field-calibrated (ratio estimator): {n_sites} sites in {n_blocks} blocks, {area_near_pct:.1f} % of the "
            f"mapped area within {rules.distance_km:g} km of a site"
        ),
    }
