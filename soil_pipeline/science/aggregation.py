"""Zonal sums of gridded stocks and areas, and the regional SOC / 4-per-1000 table built from them."""

import numpy as np
import pandas as pd

from soil_pipeline.science.units import HA_PER_KM2, HA_PER_MHA, T_PER_PG, T_PER_TG

# The name of the all-region row (region_type global) of a run over the whole globe (zones.extent_name).
WORLD = "World"


def zonal_sum(values: np.ndarray, zones: np.ndarray, n_zones: int) -> np.ndarray:
    """Sum of `values` per zone index 0..n_zones-1; NaN values and negative zone indices are ignored."""
    valid = (zones >= 0) & ~np.isnan(values)
    return np.bincount(zones[valid], weights=values[valid], minlength=n_zones)[:n_zones]


def four_per_1000_target(stock, annual_rate: float) -> np.ndarray:
    """Annual increase asked by "4 per 1000": `annual_rate` (0.004/yr) times the 0-30 cm stock, in the stock's
    unit per yr; the caller converts units after the multiplication."""
    return np.asarray(stock, dtype=float) * annual_rate


def stock_t_c(density_t_c_per_ha, area_ha):
    """Stock (t C) of a cell from its stock density (t C/ha) and an area (ha); NaN density gives NaN."""
    return density_t_c_per_ha * area_ha


def capped_land_ha(land_km2, cell_area_ha):
    """Land area (ha) from km2 per cell, missing counted as none, capped at the cell's own area (ha)."""
    return np.minimum(nan_to_zero(land_km2) * HA_PER_KM2, cell_area_ha)


def nan_to_zero(values, in_place: bool = False) -> np.ndarray:
    """`np.nan_to_num(values)` (NaN 0, infinities the largest finite values of the type) in at most three passes over
    the values where numpy's takes about a dozen: `values` itself when they are all finite or not floats (not to be
    written into), else a new array, or with `in_place` `values` changed."""
    values = np.asarray(values)
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return values
    big = np.finfo(values.dtype).max
    if in_place:
        np.copyto(values, 0.0, where=np.isnan(values))
        out = values
    else:
        out = np.where(np.isnan(values), 0.0, values)
    return np.clip(out, -big, big, out=out)


def cell_quantities(
    soc_2010: np.ndarray, soc_nolu: np.ndarray, cropland_km2: np.ndarray, row_area_ha: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-cell areas (ha) and stocks (t C) from stock densities (t C/ha) and cropland area (km2 per cell)."""
    area = np.broadcast_to(row_area_ha[:, None], soc_2010.shape)
    mapped = ~np.isnan(soc_2010)
    cropland_ha = capped_land_ha(cropland_km2, area)
    return {
        "soc_mapped_area_ha": np.where(mapped, area, np.nan),
        "soc_stock_2010_t_c": stock_t_c(soc_2010, area),
        "soc_stock_no_land_use_t_c": stock_t_c(soc_nolu, area),
        "cropland_area_ha": cropland_ha,
        "cropland_soc_stock_2010_t_c": stock_t_c(soc_2010, cropland_ha),
    }


def second_source_quantities(
    second: np.ndarray, covered: np.ndarray, soc_2010: np.ndarray, row_area_ha: np.ndarray
) -> dict[str, np.ndarray]:
    """A second stock source per cell, from its stock over the part of the cell it covers (t C/ha) and that covered
    fraction (0-1): its mapped area (ha, the covered part only) and stock (t C), and the first source's 2010 stock
    (t C) on the same covered area, so the two compare on the same area."""
    area = np.broadcast_to(row_area_ha[:, None], second.shape) * np.where(np.isfinite(second), covered, np.nan)
    return {
        "second_soc_mapped_area_ha": area,
        "second_soc_stock_t_c": stock_t_c(second, area),
        "soc_stock_2010_on_second_cells_t_c": stock_t_c(soc_2010, area),
    }


def regional_cell_quantities(layers: dict[str, np.ndarray], row_area_ha: np.ndarray) -> dict[str, np.ndarray]:
    """`cell_quantities` of one window of the streaming engine: layers `soc_stock` (bands 2010, no land use) and
    `cropland` (km2 per cell), and the `second_source_quantities` when a `second_soc` layer is read (bands: t C/ha
    over the covered part, covered fraction)."""
    soc = layers["soc_stock"]
    quantities = cell_quantities(soc[0], soc[1], layers["cropland"], row_area_ha)
    if "second_soc" in layers:
        second = layers["second_soc"]
        quantities.update(second_source_quantities(second[0], second[1], soc[0], row_area_ha))
    return quantities


def ratio(numerator, denominator, fill: float = np.nan) -> np.ndarray:
    """numerator / denominator, `fill` (NaN) where the denominator is zero or missing (e.g. a zone with no SOC
    stock)."""
    num, den = np.broadcast_arrays(np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float))
    out = np.full(num.shape, fill)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return out


def zone_sums(quantities: dict[str, np.ndarray], zones: np.ndarray, zone_table: pd.DataFrame) -> pd.DataFrame:
    """The region columns of `zone_table` (zone_index, region_type, region_id, region_name) with, per row, the sum
    of each quantity over the zone's cells, in the quantity's own unit."""
    n = int(zone_table["zone_index"].max()) + 1 if len(zone_table) else 0
    flat_zones = zones.ravel()
    idx = zone_table["zone_index"].to_numpy()
    table = zone_table[["region_type", "region_id", "region_name"]].reset_index(drop=True).copy()
    for name, values in quantities.items():
        table[name] = zonal_sum(np.ravel(values), flat_zones, n)[idx]
    return table


def regional_table(
    quantities: dict[str, np.ndarray], zones: np.ndarray, zone_table: pd.DataFrame, four_per_1000_rate: float
) -> pd.DataFrame:
    """One row per zone of `zone_table` (columns zone_index, region_type, region_id, region_name) with totals."""
    return regional_table_from_sums(zone_sums(quantities, zones, zone_table), four_per_1000_rate)


def regional_table_from_sums(sums: pd.DataFrame, four_per_1000_rate: float) -> pd.DataFrame:
    """`regional_table` from the zone sums (ha, t C) of `cell_quantities`."""
    table = sums[["region_type", "region_id", "region_name"]].copy()
    table["soc_mapped_area_mha"] = sums["soc_mapped_area_ha"] / HA_PER_MHA
    table["soc_stock_2010_pg_c"] = sums["soc_stock_2010_t_c"] / T_PER_PG
    table["soc_stock_no_land_use_pg_c"] = sums["soc_stock_no_land_use_t_c"] / T_PER_PG
    table["cropland_area_mha"] = sums["cropland_area_ha"] / HA_PER_MHA
    table["cropland_soc_stock_2010_pg_c"] = sums["cropland_soc_stock_2010_t_c"] / T_PER_PG
    return add_4p1000_targets(table, four_per_1000_rate)


def add_4p1000_targets(table: pd.DataFrame, rate_per_yr: float) -> pd.DataFrame:
    """4 per 1000: 0.4 % of the 0-30 cm stock per year, in Tg C/yr, for all land and for cropland."""
    out = table.copy()
    tg_per_pg = T_PER_PG / T_PER_TG
    out["target_4p1000_tg_c_per_yr"] = four_per_1000_target(out["soc_stock_2010_pg_c"], rate_per_yr) * tg_per_pg
    crop_target = four_per_1000_target(out["cropland_soc_stock_2010_pg_c"], rate_per_yr)
    out["cropland_target_4p1000_tg_c_per_yr"] = crop_target * tg_per_pg
    return out


def site_summary(stocks: pd.DataFrame, key: str) -> pd.DataFrame:
    """n sites with a stock and their median topsoil stock (t C/ha), per value of column `key`."""
    valid = stocks.dropna(subset=["topsoil_soc_stock_t_c_per_ha", key])
    grouped = valid.groupby(key, sort=True)["topsoil_soc_stock_t_c_per_ha"]
    return pd.DataFrame(
        {"n_field_sites": grouped.size().astype("int64"), "median_field_topsoil_soc_t_c_per_ha": grouped.median()}
    )


def global_row(table: pd.DataFrame) -> pd.Series:
    """The row of a regional table whose region_type is "global" (the World, or a regional run's region)."""
    return table[table["region_type"] == "global"].iloc[0]
