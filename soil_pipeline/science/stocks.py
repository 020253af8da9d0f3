"""Topsoil SOC stock per site (t C/ha) from horizon measurements, by depth-overlap weighting.

Depths are measured from the mineral soil surface, so organic layers above it carry negative depths and fall
outside the 0-30 cm interval by construction. A site gets a stock only when its horizons cover the whole interval
with SOC and bulk density known (measured, or filled by a pedotransfer function); otherwise it keeps a null stock
and an ``exclusion_reason`` naming every rule it failed.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991, PedotransferFunction
from soil_pipeline.science.units import to_g_per_cm3, to_g_per_kg

COVERAGE_TOLERANCE_CM = 1e-6


def horizon_stock_t_c_per_ha(
    soc,
    bulk_density,
    thickness_cm,
    coarse_fragments_vol_pct=0.0,
    *,
    soc_unit: str = "g/kg",
    bd_unit: str = "g/cm3",
):
    """SOC stock of one layer: SOC (g/kg) x BD (g/cm3) x thickness (cm) x (1 - CF/100) x 0.1, in t C/ha."""
    fine_earth_fraction = 1.0 - np.asarray(coarse_fragments_vol_pct, dtype=float) / 100.0
    return (
        to_g_per_kg(np.asarray(soc, dtype=float), soc_unit)
        * to_g_per_cm3(np.asarray(bulk_density, dtype=float), bd_unit)
        * np.asarray(thickness_cm, dtype=float)
        * fine_earth_fraction
        * 0.1
    )


def overlap_cm(upper_cm, lower_cm, top_cm: float, bottom_cm: float) -> np.ndarray:
    """Thickness of each [upper, lower) horizon inside [top, bottom); 0 for no overlap or inverted depths."""
    upper = np.maximum(np.asarray(upper_cm, dtype=float), top_cm)
    lower = np.minimum(np.asarray(lower_cm, dtype=float), bottom_cm)
    return np.clip(lower - upper, 0.0, None)


def text_array(values: pd.Series) -> pa.Array:
    """Ids (a pandas column) as one pyarrow text array."""
    array = pa.array(values.astype("str"), type=pa.string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def is_member(values: pd.Series, allowed) -> pd.Series:
    """`values.isin(allowed)` for ids compared as text, by pyarrow hash lookup (pandas' isin on arrow strings
    boxes every allowed value in Python)."""
    allowed = pd.Series(list(allowed) if isinstance(allowed, set) else allowed, dtype="str")
    found = pc.is_in(text_array(values), value_set=text_array(allowed.dropna()))
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index).fillna(False).astype(bool)


def blocking_sites(rejects: pd.DataFrame, top_cm: float = 0.0, bottom_cm: float = 30.0) -> set:
    """Sites whose stock a quarantined horizon makes untrustworthy: those with a rejected row overlapping
    [top_cm, bottom_cm), or whose depths are unknown (inverted depths count by the interval they span)."""
    upper = np.fmin(rejects["upper_depth_cm"], rejects["lower_depth_cm"])
    lower = np.fmax(rejects["upper_depth_cm"], rejects["lower_depth_cm"])
    unknown = rejects["upper_depth_cm"].isna() | rejects["lower_depth_cm"].isna()
    touches = (
        unknown
        | ((upper < bottom_cm) & (lower > top_cm))
        | ((upper == lower) & (upper >= top_cm) & (upper < bottom_cm))
    )
    return set(rejects.loc[touches, "site_id"].dropna())


def _site_keys(sites: pd.Series, site_ids: pd.Series) -> np.ndarray:
    """Each id as a number: its position among `sites` (unique ids), the count of sites plus k for the k-th other
    distinct id, NaN when missing. Grouped by these numbers, rows form the same groups in the same order as grouped
    by their ids, so pandas' groupby adds each group as it would (its path depends on that order)."""
    encoded = pc.dictionary_encode(text_array(site_ids))
    position = pc.index_in(encoded.dictionary, text_array(sites)).to_numpy(zero_copy_only=False).astype(float)
    other = np.isnan(position)
    position[other] = len(sites) + np.arange(other.sum())
    return pc.take(pa.array(position), encoded.indices).to_numpy(zero_copy_only=False)


def _by_site(sums: pd.Series, n_sites: int) -> np.ndarray:
    """A groupby result indexed by site key (`_site_keys`) as one value per site, NaN for a site without rows."""
    out = np.full(n_sites, np.nan)
    key = sums.index.to_numpy(dtype=float)
    mine = key < n_sites
    out[key[mine].astype(np.intp)] = sums.to_numpy(dtype=float)[mine]
    return out


def _sites_with(site: np.ndarray, flags: np.ndarray, n_sites: int) -> np.ndarray:
    """Whether each site has a row with its flag set (`site`: position among the sites, -1 for none)."""
    return np.bincount(site[flags & (site >= 0)], minlength=n_sites) > 0


def _union_coverage_cm(key: np.ndarray, clip_upper: np.ndarray, clip_lower: np.ndarray) -> pd.Series:
    """Per site key, the length of the union of the clipped intervals (overlapping horizons are not double-counted)."""
    order = np.lexsort((clip_lower, clip_upper, key))
    ordered = pd.DataFrame({"key": key[order], "clip_upper": clip_upper[order], "clip_lower": clip_lower[order]})
    reach = ordered.groupby("key", sort=False)["clip_lower"].cummax()
    previous_reach = reach.groupby(ordered["key"], sort=False).shift(1).fillna(-np.inf)
    start = np.maximum(ordered["clip_upper"], previous_reach)
    new_length = np.clip(ordered["clip_lower"] - start, 0.0, None)
    return new_length.groupby(ordered["key"], sort=False).sum()


def text_series(text: pa.Array) -> pd.Series:
    """Pyarrow text as a pandas text column (the dtype the readers give text), without a copy through Python."""
    return pd.Series(pd.array(text, dtype="str"))


def _labels(names: list[str], which: np.ndarray, present: np.ndarray) -> pd.Series:
    """A text column of `names[which]`, missing where not `present`."""
    return text_series(pa.array(names, pa.string()).take(pa.array(which, mask=~present)))


def _reason_text(reasons: dict[str, np.ndarray], n_sites: int) -> pd.Series:
    """Per site, the names of the rules it failed joined by ";" in the order of `reasons`; missing for none."""
    code = np.zeros(n_sites, dtype=np.int64)
    for bit, failed in enumerate(reasons.values()):
        code |= failed.astype(np.int64) << bit
    distinct, inverse = np.unique(code, return_inverse=True)
    texts = [";".join(name for bit, name in enumerate(reasons) if value >> bit & 1) for value in distinct]
    return _labels(texts, inverse.reshape(-1), code != 0)


def _zero_if_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=float, na_value=np.nan)


def topsoil_stocks(
    site_ids: pd.Series,
    horizons: pd.DataFrame,
    top_cm: float = 0.0,
    bottom_cm: float = 30.0,
    ptf: PedotransferFunction = MANRIQUE_JONES_1991,
    bd_plausible_max_g_per_cm3: float = np.inf,
) -> pd.DataFrame:
    """One row per site: stock over [top_cm, bottom_cm) in t C/ha, how it was derived, or why it is missing.

    ``horizons`` columns: site_id, upper_depth_cm, lower_depth_cm, soc_g_per_kg, bulk_density_g_per_cm3,
    coarse_fragments_vol_pct (depths in cm from the mineral surface). A measured BD above
    ``bd_plausible_max_g_per_cm3`` in the interval is used and flagged (``bd_above_plausible_max``). Per-site sums
    are pandas' groupby sums over the horizons in their order in ``horizons``, grouped by a number per site id
    (`_site_keys`): the same groups in the same order as by the ids, so the same floating-point additions.
    """
    sites = pd.Series(site_ids).drop_duplicates().reset_index(drop=True)
    n_sites = len(sites)
    key = _site_keys(sites, horizons["site_id"])
    site = np.where(key < n_sites, key, -1).astype(np.intp)  # NaN compares False: -1
    upper, lower = _floats(horizons["upper_depth_cm"]), _floats(horizons["lower_depth_cm"])
    soc, bd = _floats(horizons["soc_g_per_kg"]), _floats(horizons["bulk_density_g_per_cm3"])
    coarse = _floats(horizons["coarse_fragments_vol_pct"])
    overlap = overlap_cm(upper, lower, top_cm, bottom_cm)
    measured = ~np.isnan(bd)
    bd_filled = np.where(measured, bd, ptf.fill(soc))
    stock = horizon_stock_t_c_per_ha(soc, bd_filled, overlap, _zero_if_nan(coarse))
    has_horizons = _sites_with(site, np.ones(len(site), dtype=bool), n_sites)
    inverted = _sites_with(site, lower <= upper, n_sites)

    inside = overlap > 0
    by_site = pd.DataFrame({"stock": stock[inside], "overlap": overlap[inside]}).groupby(key[inside], sort=False)
    coverage = _by_site(
        _union_coverage_cm(key[inside], np.maximum(upper[inside], top_cm), np.minimum(lower[inside], bottom_cm)),
        n_sites,
    )
    from_ptf = ~measured & ~np.isnan(bd_filled)
    missing_soc = _sites_with(site, inside & np.isnan(soc), n_sites)
    any_ptf = _sites_with(site, inside & from_ptf, n_sites)
    reason = _reason_text(
        {
            "no_horizons": ~has_horizons,
            "inverted_depth_interval": inverted,
            "incomplete_depth_coverage": has_horizons
            & ~(_zero_if_nan(coverage) >= bottom_cm - top_cm - COVERAGE_TOLERANCE_CM),
            "overlapping_horizons": _by_site(by_site["overlap"].sum(), n_sites) > coverage + COVERAGE_TOLERANCE_CM,
            "missing_soc": missing_soc,
            "missing_bd_outside_ptf_domain": _sites_with(site, inside & np.isnan(bd_filled), n_sites) & ~missing_soc,
        },
        n_sites,
    )
    kept = reason.isna().to_numpy()
    n_horizons = np.bincount(site[inside & (site >= 0)], minlength=n_sites)
    all_ptf = (n_horizons > 0) & ~_sites_with(site, inside & ~from_ptf, n_sites)
    bd_source = np.where(all_ptf, 2, np.where(any_ptf, 1, 0))
    return pd.DataFrame(
        {
            "site_id": sites.astype("str"),
            "topsoil_soc_stock_t_c_per_ha": np.where(
                kept, _by_site(by_site["stock"].sum(min_count=1), n_sites), np.nan
            ),
            "depth_top_cm": float(top_cm),
            "depth_bottom_cm": float(bottom_cm),
            "depth_coverage_cm": _zero_if_nan(coverage),
            "n_horizons": n_horizons.astype("int64"),
            "bd_source": _labels(["measured", "measured+pedotransfer", "pedotransfer"], bd_source, has_horizons & kept),
            "bd_pedotransfer_function": _labels([ptf.name], np.zeros(n_sites, dtype=np.intp), any_ptf & kept),
            "coarse_fragments_assumed_zero": _sites_with(site, inside & np.isnan(coarse), n_sites),
            "bd_above_plausible_max": _sites_with(site, inside & (bd > bd_plausible_max_g_per_cm3), n_sites),
            "exclusion_reason": reason,
        }
    )


def flag_quarantined_horizons(stocks: pd.DataFrame, rejected_sites: set) -> pd.DataFrame:
    """A site with a quarantined horizon in 0-30 cm gets no stock: what is left there cannot be trusted."""
    hit = is_member(stocks["site_id"], rejected_sites)
    stocks = stocks.copy()
    if not hit.any():
        return stocks  # (pandas sets text through an all-false mask as slowly as through any other)
    reason = stocks["exclusion_reason"].fillna("")
    stocks.loc[hit, "exclusion_reason"] = (reason[hit] + ";").str.lstrip(";") + "quarantined_horizon"
    stocks.loc[hit, ["topsoil_soc_stock_t_c_per_ha", "bd_source", "bd_pedotransfer_function"]] = None
    return stocks
