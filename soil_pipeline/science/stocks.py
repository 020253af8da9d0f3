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


def is_member(values: pd.Series, allowed) -> pd.Series:
    """`values.isin(allowed)` for ids compared as text, by pyarrow hash lookup (pandas' isin on arrow strings
    boxes every allowed value in Python)."""
    allowed = pd.Series(list(allowed) if isinstance(allowed, set) else allowed, dtype="str")
    value_set = pa.array(allowed.dropna(), type=pa.string(), from_pandas=True)
    found = pc.is_in(pa.array(values.astype("str"), type=pa.string(), from_pandas=True), value_set=value_set)
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


def _union_coverage_cm(layers: pd.DataFrame) -> pd.Series:
    """Per site, the length of the union of the clipped intervals (overlapping horizons are not double-counted)."""
    ordered = layers.sort_values(["site_id", "clip_upper", "clip_lower"], kind="mergesort")
    reach = ordered.groupby("site_id", sort=False)["clip_lower"].cummax()
    previous_reach = reach.groupby(ordered["site_id"], sort=False).shift(1).fillna(-np.inf)
    start = np.maximum(ordered["clip_upper"], previous_reach)
    new_length = np.clip(ordered["clip_lower"] - start, 0.0, None)
    return new_length.groupby(ordered["site_id"], sort=False).sum()


def prepare_horizons(
    horizons: pd.DataFrame,
    top_cm: float = 0.0,
    bottom_cm: float = 30.0,
    ptf: PedotransferFunction = MANRIQUE_JONES_1991,
) -> pd.DataFrame:
    """Per-horizon overlap with the interval, filled BD with its source, and the horizon's stock contribution."""
    out = horizons.copy()
    out["inverted_depths"] = out["lower_depth_cm"] <= out["upper_depth_cm"]
    out["overlap_cm"] = overlap_cm(out["upper_depth_cm"], out["lower_depth_cm"], top_cm, bottom_cm)
    measured = out["bulk_density_g_per_cm3"].notna()
    predicted = ptf.fill(out["soc_g_per_kg"].to_numpy(dtype=float, na_value=np.nan))
    out["bd_filled_g_per_cm3"] = out["bulk_density_g_per_cm3"].where(measured, predicted)
    out["bd_from_ptf"] = ~measured & out["bd_filled_g_per_cm3"].notna()
    out["coarse_fragments_assumed_zero"] = out["coarse_fragments_vol_pct"].isna()
    out["stock_t_c_per_ha"] = horizon_stock_t_c_per_ha(
        out["soc_g_per_kg"].to_numpy(dtype=float, na_value=np.nan),
        out["bd_filled_g_per_cm3"].to_numpy(dtype=float, na_value=np.nan),
        out["overlap_cm"],
        out["coarse_fragments_vol_pct"].fillna(0.0).to_numpy(dtype=float),
    )
    return out


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
    ``bd_plausible_max_g_per_cm3`` in the interval is used and flagged (``bd_above_plausible_max``).
    """
    layers = prepare_horizons(horizons, top_cm, bottom_cm, ptf)
    layers["bd_implausible"] = layers["bulk_density_g_per_cm3"] > bd_plausible_max_g_per_cm3
    inside = layers[layers["overlap_cm"] > 0].copy()
    inside["clip_upper"] = np.maximum(inside["upper_depth_cm"], top_cm)
    inside["clip_lower"] = np.minimum(inside["lower_depth_cm"], bottom_cm)
    inside["soc_missing"] = inside["soc_g_per_kg"].isna()
    inside["bd_missing"] = inside["bd_filled_g_per_cm3"].isna()

    by_site = inside.groupby("site_id", sort=False)
    per_site = pd.DataFrame(
        {
            "stock": by_site["stock_t_c_per_ha"].sum(min_count=1),
            "n_horizons": by_site.size(),
            "summed_overlap": by_site["overlap_cm"].sum(),
            "missing_soc": by_site["soc_missing"].any(),
            "missing_bd": by_site["bd_missing"].any(),
            "any_ptf": by_site["bd_from_ptf"].any(),
            "all_ptf": by_site["bd_from_ptf"].all(),
            "cf_assumed": by_site["coarse_fragments_assumed_zero"].any(),
            "bd_flag": by_site["bd_implausible"].any(),
        }
    )
    per_site["coverage"] = _union_coverage_cm(inside)
    inverted_sites = set(layers.loc[layers["inverted_depths"], "site_id"])

    result = pd.DataFrame({"site_id": pd.Series(site_ids).drop_duplicates().reset_index(drop=True)})
    result = result.join(per_site, on="site_id")
    has_horizons = is_member(result["site_id"], horizons["site_id"].unique())
    required = bottom_cm - top_cm
    reasons = {
        "no_horizons": ~has_horizons,
        "inverted_depth_interval": is_member(result["site_id"], inverted_sites),
        "incomplete_depth_coverage": has_horizons
        & ~(result["coverage"].fillna(0.0) >= required - COVERAGE_TOLERANCE_CM),
        "overlapping_horizons": result["summed_overlap"] > result["coverage"] + COVERAGE_TOLERANCE_CM,
        "missing_soc": result["missing_soc"].fillna(False).astype(bool),
        "missing_bd_outside_ptf_domain": result["missing_bd"].fillna(False).astype(bool)
        & ~result["missing_soc"].fillna(False).astype(bool),
    }
    reason_text = pd.Series("", index=result.index, dtype="str")
    for name, mask in reasons.items():
        mask = mask.fillna(False).astype(bool)
        reason_text = reason_text.where(~mask, reason_text.where(reason_text == "", reason_text + ";") + name)
    excluded = reason_text != ""

    bd_source = np.select(
        [result["all_ptf"].fillna(False).astype(bool), result["any_ptf"].fillna(False).astype(bool)],
        ["pedotransfer", "measured+pedotransfer"],
        default="measured",
    )
    return pd.DataFrame(
        {
            "site_id": result["site_id"].astype("str"),
            "topsoil_soc_stock_t_c_per_ha": result["stock"].where(~excluded).astype("float64"),
            "depth_top_cm": float(top_cm),
            "depth_bottom_cm": float(bottom_cm),
            "depth_coverage_cm": result["coverage"].fillna(0.0).astype("float64"),
            "n_horizons": result["n_horizons"].fillna(0).astype("int64"),
            "bd_source": pd.Series(bd_source, dtype="str").where(has_horizons & ~excluded),
            "bd_pedotransfer_function": pd.Series(ptf.name, index=result.index, dtype="str").where(
                result["any_ptf"].fillna(False).astype(bool) & ~excluded
            ),
            "coarse_fragments_assumed_zero": result["cf_assumed"].fillna(False).astype(bool),
            "bd_above_plausible_max": result["bd_flag"].fillna(False).astype(bool),
            "exclusion_reason": reason_text.where(excluded),
        }
    )


def flag_quarantined_horizons(stocks: pd.DataFrame, rejected_sites: set) -> pd.DataFrame:
    """A site with a quarantined horizon in 0-30 cm gets no stock: what is left there cannot be trusted."""
    hit = is_member(stocks["site_id"], rejected_sites)
    reason = stocks["exclusion_reason"].fillna("")
    stocks = stocks.copy()
    stocks.loc[hit, "exclusion_reason"] = (reason[hit] + ";").str.lstrip(";") + "quarantined_horizon"
    stocks.loc[hit, ["topsoil_soc_stock_t_c_per_ha", "bd_source", "bd_pedotransfer_function"]] = None
    return stocks
