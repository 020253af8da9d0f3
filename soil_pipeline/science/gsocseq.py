"""GSOCseq-style sequestration potential per cell with RothC-26.3 (FAO 2020 technical manual, chapter 5).

Per cell: IOM from the current stock (Falloon et al. 1998); the annual plant input that puts RothC in equilibrium
with that stock under the spin-up climate, solved from the periodic steady state for a unit input (the model is
linear in inputs, so input = (SOC - IOM) / active carbon per unit input) instead of GSOCseq's 10,000-year runs;
then forward runs from that state for business as usual (the same input, or scaled by the change in MIAMI NPP
with the forward climate, as GSOCseq does) and the SSM scenarios (BAU input increased by 5 / 10 / 20 %). Cells
the procedure cannot or must not model get an exclusion reason instead of a result.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from affine import Affine

from soil_pipeline.science import rothc
from soil_pipeline.science.aggregation import ratio
from soil_pipeline.science.grid import GridSpec
from soil_pipeline.science.units import HA_PER_MHA, T_PER_PG, T_PER_TG

MODELLED = "modelled"
# Exclusion reasons, in the order they are tested; a cell gets the first that applies.
EXCLUSIONS = (
    "no_soc_stock",
    "soc_above_max",
    "no_climate",
    "no_clay",
    "sand_above_max",
    "no_decomposition",
)
BAU = "bau"


@dataclass(frozen=True)
class RothCScenarios:
    """The scenario file (data/rothc/gsocseq_scenarios.yaml) as plain values."""

    version: int
    horizon_yr: int
    depth_cm: float
    dpm_rpm_ratio: float
    conventions: rothc.Conventions
    covered_all_year: bool
    forward_warming_degc: float
    bau_input_follows_npp: bool
    max_sand_pct: float
    max_soc_t_c_per_ha: float
    ssm_input_increase: dict[str, float]

    @classmethod
    def from_dict(cls, raw: dict) -> "RothCScenarios":
        return cls(
            version=int(raw["version"]),
            horizon_yr=int(raw["horizon_yr"]),
            depth_cm=float(raw["depth_cm"]),
            dpm_rpm_ratio=float(raw["dpm_rpm_ratio"]),
            conventions=rothc.Conventions(float(raw["evaporation_factor"]), bool(raw["reset_deficit_yearly"])),
            covered_all_year=bool(raw["covered_all_year"]),
            forward_warming_degc=float(raw["forward_warming_degc"]),
            bau_input_follows_npp=bool(raw["bau_input_follows_npp"]),
            max_sand_pct=float(raw["max_sand_pct"]),
            max_soc_t_c_per_ha=float(raw["max_soc_t_c_per_ha"]),
            ssm_input_increase={k: float(v) for k, v in raw["ssm_input_increase"].items()},
        )

    @property
    def names(self) -> list[str]:
        return [BAU, *self.ssm_input_increase]

    @property
    def input_factors(self) -> np.ndarray:
        return np.array([1.0, *(1.0 + v for v in self.ssm_input_increase.values())])


@dataclass(frozen=True)
class CellInputs:
    """Per-cell inputs (n cells): SOC stock t C/ha, clay and sand %, monthly climate (12, n): mean temperature
    degC, precipitation and PET mm/month. Missing values are NaN."""

    soc_t_c_per_ha: np.ndarray
    clay_pct: np.ndarray
    sand_pct: np.ndarray
    tmp_degc: np.ndarray
    pre_mm: np.ndarray
    pet_mm: np.ndarray


@dataclass(frozen=True)
class CellResults:
    status: np.ndarray  # str per cell: MODELLED or an exclusion reason
    carbon_input_t_c_per_ha_per_yr: np.ndarray  # NaN where excluded
    soc_final_t_c_per_ha: np.ndarray  # (n_scenarios, n), NaN where excluded


def miami_npp(mean_temperature_degc, annual_precipitation_mm):
    """Climatic NPP of the MIAMI model (Lieth 1975), g DM/m2/yr: the lesser of 3000 / (1 + exp(1.315 - 0.119 T))
    and 3000 (1 - exp(-0.000664 P)). GSOCseq scales BAU inputs by its change between periods."""
    by_temperature = 3000.0 / (1.0 + np.exp(1.315 - 0.119 * np.asarray(mean_temperature_degc, dtype="float64")))
    by_precipitation = 3000.0 * (1.0 - np.exp(-0.000664 * np.asarray(annual_precipitation_mm, dtype="float64")))
    return np.minimum(by_temperature, by_precipitation)


def exclusion_status(cells: CellInputs, scenarios: RothCScenarios) -> np.ndarray:
    soc, clay, sand = cells.soc_t_c_per_ha, cells.clay_pct, cells.sand_pct
    climate_ok = np.all([np.isfinite(v).all(0) for v in (cells.tmp_degc, cells.pre_mm, cells.pet_mm)], axis=0)
    tests = {
        "no_soc_stock": ~(soc > 0),
        "soc_above_max": soc > scenarios.max_soc_t_c_per_ha,
        "no_climate": ~climate_ok,
        "no_clay": ~np.isfinite(clay),
        "sand_above_max": sand > scenarios.max_sand_pct,
        # every month below -5 degC: RothC decomposes nothing, no input can hold any stock
        "no_decomposition": climate_ok & ~(np.nan_to_num(cells.tmp_degc, nan=-99.0) >= -5.0).any(0),
    }
    status = np.full(soc.shape, MODELLED, dtype=object)
    for reason in reversed(EXCLUSIONS):
        status[tests[reason]] = reason
    return status


def run_cells(cells: CellInputs, scenarios: RothCScenarios, chunk: int = 100_000) -> CellResults:
    """Equilibrium input and SOC at the horizon for each scenario, in chunks of cells to bound memory."""
    status = exclusion_status(cells, scenarios)
    ok = np.flatnonzero(status == MODELLED)
    n_scen = len(scenarios.names)
    carbon_input = np.full(status.shape, np.nan)
    final = np.full((n_scen, status.size), np.nan)
    for start in range(0, ok.size, chunk):
        idx = ok[start : start + chunk]
        carbon_input[idx], final[:, idx] = _run_chunk(cells, idx, scenarios)
    return CellResults(status, carbon_input, final)


def _run_chunk(cells: CellInputs, idx: np.ndarray, scenarios: RothCScenarios):
    soc = cells.soc_t_c_per_ha[idx]
    clay = cells.clay_pct[idx]
    tmp, pre, pet = (np.asarray(a[:, idx], dtype="float64") for a in (cells.tmp_degc, cells.pre_mm, cells.pet_mm))
    covered = scenarios.covered_all_year
    args = (clay, scenarios.depth_cm, covered, scenarios.conventions)
    spin_up = rothc.climatology_rates(tmp, pre, pet, *args)
    unit = rothc.unit_equilibrium(spin_up, clay, scenarios.dpm_rpm_ratio)
    iom = rothc.falloon_iom(soc)
    carbon_input = (soc - iom) / unit.sum(axis=0)
    forward_rates = rothc.climatology_rates(tmp + scenarios.forward_warming_degc, pre, pet, *args)
    forward_year = rothc.annual_map(forward_rates, clay, scenarios.dpm_rpm_ratio)
    bau_input = carbon_input
    if scenarios.bau_input_follows_npp:
        base = miami_npp(tmp.mean(axis=0), pre.sum(axis=0))
        warmed = miami_npp(tmp.mean(axis=0) + scenarios.forward_warming_degc, pre.sum(axis=0))
        # no rain, no climatic NPP in either period: the input stays as it was
        bau_input = carbon_input * np.divide(warmed, base, out=np.ones_like(base), where=base > 0)
    inputs = scenarios.input_factors[:, None] * bau_input  # (scenarios, n)
    start = np.broadcast_to(unit * carbon_input, (len(inputs),) + unit.shape)
    pools = rothc.run_years(start, forward_year, inputs, scenarios.horizon_yr)
    return carbon_input, pools.sum(axis=-2) + iom


def nearest_source_index(target: GridSpec, flat_index: np.ndarray, source: Affine, source_shape) -> np.ndarray:
    """Flat index into a source raster of the cell containing each target cell's centre (-1 outside it): nearest
    neighbour through the source's own transform, so south-up and north-up sources both land right."""
    rows, cols = np.divmod(flat_index, target.width)
    x, y = target.transform @ (cols + 0.5, rows + 0.5)
    src_col, src_row = ~source @ (x, y)
    src_row, src_col = np.floor(src_row).astype("int64"), np.floor(src_col).astype("int64")
    height, width = source_shape
    inside = (src_row >= 0) & (src_row < height) & (src_col >= 0) & (src_col < width)
    return np.where(inside, src_row * width + src_col, -1)


def sample(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[..., index] on flattened (..., rows, cols) rasters, NaN where index is -1."""
    flat = values.reshape(values.shape[:-2] + (-1,))
    out = flat[..., np.maximum(index, 0)].astype("float64")
    out[..., index < 0] = np.nan
    return out


def cell_quantities(
    results: CellResults, scenarios: RothCScenarios, soc: np.ndarray, cropland_ha: np.ndarray, clay_filled
) -> dict[str, np.ndarray]:
    """Per-cell sums for the regional table: areas (ha), stocks and changes (t C), inputs (t C/yr)."""
    ok = results.status == MODELLED
    modelled_ha = np.where(ok, cropland_ha, 0.0)
    quantities = {
        "cropland_area_ha": cropland_ha,
        "modelled_cropland_area_ha": modelled_ha,
        "clay_filled_cropland_area_ha": np.where(ok & clay_filled, cropland_ha, 0.0),
        **{f"excluded_{r}_ha": np.where(results.status == r, cropland_ha, 0.0) for r in EXCLUSIONS},
        "modelled_cropland_soc_stock_t_c": np.where(ok, soc * cropland_ha, 0.0),
        "carbon_input_t_c_per_yr": np.where(ok, results.carbon_input_t_c_per_ha_per_yr * cropland_ha, 0.0),
    }
    for name, final in zip(scenarios.names, results.soc_final_t_c_per_ha, strict=True):
        quantities[f"{name}_stock_change_t_c"] = np.where(ok, (final - soc) * cropland_ha, 0.0)
    return quantities


def regional_table(sums: pd.DataFrame, scenarios: RothCScenarios, target_4p1000_tg_c_per_yr) -> pd.DataFrame:
    """Regional rows from zone sums of `cell_quantities`: areas (Mha), stock change over the horizon and rates for
    BAU and each SSM (t C/ha, t C/ha/yr over the modelled cropland; Pg C/yr), SSM minus BAU and its share of the
    region's 4p1000 target (all land, Tg C/yr)."""
    table = sums[["region_type", "region_id", "region_name"]].copy()
    modelled = sums["modelled_cropland_area_ha"].to_numpy()
    table["cropland_area_mha"] = sums["cropland_area_ha"] / HA_PER_MHA
    table["modelled_cropland_area_mha"] = modelled / HA_PER_MHA
    for reason in EXCLUSIONS:
        table[f"excluded_{reason}_mha"] = sums[f"excluded_{reason}_ha"] / HA_PER_MHA
    table["clay_filled_cropland_area_mha"] = sums["clay_filled_cropland_area_ha"] / HA_PER_MHA
    table["modelled_cropland_soc_stock_pg_c"] = sums["modelled_cropland_soc_stock_t_c"] / T_PER_PG
    table["carbon_input_t_c_per_ha_per_yr"] = ratio(sums["carbon_input_t_c_per_yr"], modelled)
    table["target_4p1000_tg_c_per_yr"] = np.asarray(target_4p1000_tg_c_per_yr, dtype=float)
    years = scenarios.horizon_yr
    change = {name: sums[f"{name}_stock_change_t_c"].to_numpy() for name in scenarios.names}
    for name in scenarios.names:
        table[f"{name}_stock_change_t_c_per_ha"] = ratio(change[name], modelled)
        table[f"{name}_rate_t_c_per_ha_per_yr"] = ratio(change[name], modelled) / years
        table[f"{name}_rate_pg_c_per_yr"] = change[name] / years / T_PER_PG
    for name in scenarios.ssm_input_increase:
        gain = change[name] - change[BAU]
        table[f"{name}_minus_bau_rate_t_c_per_ha_per_yr"] = ratio(gain, modelled) / years
        table[f"{name}_minus_bau_rate_pg_c_per_yr"] = gain / years / T_PER_PG
        gain_tg = gain / years / T_PER_TG
        table[f"{name}_minus_bau_share_of_4p1000_pct"] = 100.0 * ratio(gain_tg, table["target_4p1000_tg_c_per_yr"])
    return table
