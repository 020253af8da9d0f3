"""Sequestration potential: the 4-per-1000 target and Zomer et al. (2017)-style cropland rates.

Zomer et al. raise the SOC content of the cropland topsoil by a fixed number of percentage points over a fixed
duration; the rate per hectare is that content increase times bulk density times depth, divided by the duration.
Per-cell arrays come in, per-region tables go out; every literature value arrives as an argument.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from soil_pipeline.science.aggregation import capped_land_ha, four_per_1000_target, nan_to_zero, ratio, stock_t_c
from soil_pipeline.science.pedotransfer import PedotransferFunction
from soil_pipeline.science.scenarios import (
    field_errors,
    relative_stock_error,
    stock_error_basis,
    stock_error_quantities,
)
from soil_pipeline.science.stocks import horizon_stock_t_c_per_ha
from soil_pipeline.science.uncertainty import interval_columns
from soil_pipeline.science.units import HA_PER_MHA, T_PER_PG, T_PER_TG

BISECTION_STEPS = 60


@dataclass(frozen=True)
class PotentialParameters:
    """Literature values for the potential; `content_increase_pct` maps a level name to percentage points."""

    four_per_1000_rate: float
    content_increase_pct: dict[str, float]
    depth_cm: float
    duration_yr: float
    bulk_density_zomer_g_per_cm3: float


def content_increase_rate_t_c_per_ha_per_yr(delta_content_pct, bulk_density_g_per_cm3, depth_cm, duration_yr):
    """Delta content (percentage points) x BD (g/cm3) x depth (cm) / duration (yr), in t C/ha/yr.

    E.g. 0.27 % x 1.38 g/cm3 x 30 cm / 20 yr = 0.559 t C/ha/yr.
    """
    stock_increase = horizon_stock_t_c_per_ha(delta_content_pct, bulk_density_g_per_cm3, depth_cm, soc_unit="%")
    return stock_increase / duration_yr


def implied_bulk_density(rate_t_c_per_ha_per_yr, delta_content_pct, depth_cm, duration_yr) -> float:
    """The bulk density (g/cm3) at which a content increase gives a reported rate: the inverse of the rate formula."""
    per_unit_bd = content_increase_rate_t_c_per_ha_per_yr(delta_content_pct, 1.0, depth_cm, duration_yr)
    return rate_t_c_per_ha_per_yr / per_unit_bd


def bulk_density_from_stock(stock_t_c_per_ha, depth_cm: float, ptf: PedotransferFunction) -> np.ndarray:
    """Bulk density (g/cm3) consistent with a layer's stock under a content-based pedotransfer function.

    Solves stock = SOC (g/kg) x BD(SOC) x depth x 0.1 for SOC by bisection over the function's SOC domain, on which
    the stock must rise with SOC (true for Manrique & Jones 1991 up to its 120 g/kg bound). Stocks beyond the
    domain (organic soils), negative or missing stocks get NaN. Each distinct stock is solved once (a stock raster
    repeats a few hundred values over a window's cells) and the result spread back to its cells.
    """
    stock = np.asarray(stock_t_c_per_ha, dtype=float)
    cells, distinct = pd.factorize(stock.reshape(-1), use_na_sentinel=False)
    return _bulk_density_by_bisection(distinct, depth_cm, ptf)[cells].reshape(stock.shape)


def _bulk_density_by_bisection(stock: np.ndarray, depth_cm: float, ptf: PedotransferFunction) -> np.ndarray:
    low, high = ptf.soc_domain_g_per_kg

    def stock_at(soc):
        return horizon_stock_t_c_per_ha(soc, ptf.predict(soc), depth_cm)

    lo = np.full(stock.shape, float(low))
    hi = np.full(stock.shape, float(high))
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = stock_at(mid) < stock
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    solvable = (stock >= stock_at(np.float64(low))) & (stock <= stock_at(np.float64(high)))
    return np.where(solvable, ptf.predict(0.5 * (lo + hi)), np.nan)


def cell_quantities(soc_2010, cropland_ha, area_ha, bulk_density, stock_error) -> dict[str, np.ndarray]:
    """Per-cell sums the regional potential needs: stocks (t C), cropland areas (ha), BD x area (g/cm3 ha) and the
    stock error sums of all land and of cropland (`stock_error_quantities`: error t C and stock without an error)."""
    with_bd = np.where(np.isnan(bulk_density), 0.0, cropland_ha)
    errors = stock_error_quantities(soc_2010, stock_error, area_ha, cropland_ha)
    return {
        "soc_stock_2010_t_c": stock_t_c(soc_2010, area_ha),
        "cropland_area_ha": cropland_ha,
        "cropland_soc_stock_2010_t_c": stock_t_c(soc_2010, cropland_ha),
        "cropland_area_with_bd_ha": with_bd,
        "cropland_bd_x_area": nan_to_zero(bulk_density) * with_bd,
        "soc_stock_error_t_c": errors["soc_stock_error_t_c"],
        "soc_stock_2010_without_error_t_c": errors["soc_stock_2010_without_error_t_c"],
        "cropland_soc_stock_error_t_c": errors["restored_soc_stock_error_t_c"],
        "cropland_soc_stock_2010_without_error_t_c": errors["restored_soc_stock_2010_without_error_t_c"],
    }


def window_quantities(layers: dict, row_area_ha: np.ndarray, depth_cm: float, ptf) -> dict[str, np.ndarray]:
    """`cell_quantities` of one window of the streaming engine (layers `soc_stock`, band 0 = 2010, `cropland` in km2
    per cell and `soc_stock_error` in t C/ha): BD from the stock by `ptf` on the cropped cells."""
    soc = layers["soc_stock"][0].astype("float64")
    area = np.broadcast_to(row_area_ha[:, None], soc.shape)
    cropland_ha = capped_land_ha(layers["cropland"].astype("float64"), area)
    cropped = cropland_ha > 0
    bd = np.full(soc.shape, np.nan)
    bd[cropped] = bulk_density_from_stock(soc[cropped], depth_cm, ptf)
    return cell_quantities(soc, cropland_ha, area, bd, layers["soc_stock_error"].astype("float64"))


ZOMER_VARIANTS = ("reproduction", "independent")


def regional_potential(
    sums: pd.DataFrame, params: PotentialParameters, stock_z: np.ndarray, fallback_relative_sd: float
) -> pd.DataFrame:
    """Per region: 4p1000 targets and Zomer-style rates (Tg C/yr, t C/ha/yr, % of the targets), with intervals.

    `sums` holds per-region totals of `cell_quantities` (and `scenarios.FIELD_ERROR`, the stock error a region's
    field sites measure, where there is one). The targets' samples are target x (1 + z x the relative stock error of
    the region's land, all or cropland: its field sites' where measured, else its error layers'), `stock_z` the
    draws of z shared by every region (errors fully correlated, see `scenarios.relative_stock_error`;
    `fallback_relative_sd` where no error value exists). Two Zomer
    variants, never blended: "reproduction" puts the BD implied by Zomer et al.'s own medium figures on all
    cropland; "independent" uses the per-cell pedotransfer BD, on the cropland that has one. The rates carry no
    sampled parameter (their BD is a published variant, not a draw); their shares of the targets carry the
    targets' intervals.
    """
    table = sums[["region_type", "region_id", "region_name"]].copy()
    stock = sums["soc_stock_2010_t_c"].to_numpy()
    crop_stock = sums["cropland_soc_stock_2010_t_c"].to_numpy()
    table["soc_stock_2010_pg_c"] = stock / T_PER_PG
    table["cropland_area_mha"] = sums["cropland_area_ha"].to_numpy() / HA_PER_MHA
    field = field_errors(sums)
    errors = {
        "all_land": relative_stock_error(
            sums["soc_stock_error_t_c"], sums["soc_stock_2010_without_error_t_c"], stock, fallback_relative_sd, field
        ),
        "cropland": relative_stock_error(
            sums["cropland_soc_stock_error_t_c"],
            sums["cropland_soc_stock_2010_without_error_t_c"],
            crop_stock,
            fallback_relative_sd,
            field,
        ),
    }
    table["soc_stock_2010_relative_sd_pct"] = 100.0 * errors["all_land"]
    table["soc_stock_error_basis"] = stock_error_basis(sums["soc_stock_2010_without_error_t_c"], stock, field)
    table["cropland_soc_stock_2010_relative_sd_pct"] = 100.0 * errors["cropland"]
    target = four_per_1000_target(stock, params.four_per_1000_rate) / T_PER_TG
    crop_target = four_per_1000_target(crop_stock, params.four_per_1000_rate)
    targets = {"all_land": target, "cropland": crop_target / T_PER_TG}
    samples = {
        name: value * np.clip(1.0 + stock_z[:, None] * errors[name], 0.0, None) for name, value in targets.items()
    }
    table = table.assign(
        **interval_columns("target_4p1000_tg_c_per_yr", target, samples["all_land"]),
        **interval_columns("cropland_target_4p1000_tg_c_per_yr", targets["cropland"], samples["cropland"]),
    )
    for variant, (area_ha, bd_x_area) in _zomer_bulk_density(sums, params).items():
        table[f"zomer_{variant}_cropland_area_mha"] = area_ha / HA_PER_MHA
        table[f"zomer_{variant}_bd_g_per_cm3"] = ratio(bd_x_area, area_ha)
        for level, delta in params.content_increase_pct.items():
            unit_rate = content_increase_rate_t_c_per_ha_per_yr(delta, 1.0, params.depth_cm, params.duration_yr)
            total_tg = unit_rate * bd_x_area / T_PER_TG
            name = f"zomer_{level}_{variant}"
            table[f"{name}_tg_c_per_yr"] = total_tg
            table[f"{name}_t_c_per_ha_per_yr"] = ratio(total_tg * T_PER_TG, area_ha)
            for denominator, target_tg in targets.items():
                table = table.assign(
                    **interval_columns(
                        f"{name}_share_of_4p1000_{denominator}_pct",
                        100.0 * ratio(total_tg, target_tg),
                        100.0 * ratio(total_tg, samples[denominator]),
                    )
                )
    return table


def _zomer_bulk_density(sums: pd.DataFrame, params: PotentialParameters) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(cropland area (ha), sum of BD x area (g/cm3 ha)) per Zomer variant."""
    all_cropland = sums["cropland_area_ha"].to_numpy()
    return {
        "reproduction": (all_cropland, params.bulk_density_zomer_g_per_cm3 * all_cropland),
        "independent": (sums["cropland_area_with_bd_ha"].to_numpy(), sums["cropland_bd_x_area"].to_numpy()),
    }
