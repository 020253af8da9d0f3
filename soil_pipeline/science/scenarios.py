"""Restoration scenarios: restore a share of converted land in priority order and let its soil carbon recover.

A scenario is data (see `Scenario.from_dict`): the share of converted land to restore, globally or within each
region, the priority criterion that orders cells, and the recovery curve up to a horizon. Cells are ranked with a
stable sort, so ties keep cell-index order and the ranking is deterministic. The gain of a restored hectare is the
cell's soil carbon debt density (no-land-use minus current stock, never negative) times the share of it recovered
by the horizon, so no scenario can gain more than the debt of the area it restores.
"""

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from soil_pipeline.science.aggregation import four_per_1000_target, ratio, stock_t_c
from soil_pipeline.science.uncertainty import interval_columns
from soil_pipeline.science.units import CO2_PER_C, HA_PER_MHA, T_PER_PG, T_PER_TG

SCOPES = ("global", "within_region")


def carbon_debt_density(soc_2010, soc_no_land_use) -> np.ndarray:
    """Soil carbon debt (t C/ha): no-land-use stock minus 2010 stock; NaN where either is missing."""
    return np.asarray(soc_no_land_use, dtype=float) - np.asarray(soc_2010, dtype=float)


PRIORITY_CRITERIA = {"carbon_debt_density": carbon_debt_density}


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_fields(where: str, data, cls, given=()) -> None:
    """ValueError unless `data` is a mapping with every required field of dataclass `cls` and no other field;
    fields named in `given` are supplied by the caller, not by `data`."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping of fields, got {type(data).__name__}")
    fields = [f for f in dataclasses.fields(cls) if f.name not in given]
    known = {f.name for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    if missing := sorted(required - set(data)):
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    if unknown := sorted(set(data) - known):
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


@dataclass(frozen=True)
class Recovery:
    """Share of the debt recovered after t years: linear to 1 at `period_yr`, or 1 - 2^(-t / `half_life_yr`)."""

    curve: str
    period_yr: float | None = None
    half_life_yr: float | None = None

    def __post_init__(self):
        needed = {"linear": self.period_yr, "exponential": self.half_life_yr}
        if self.curve not in needed:
            raise ValueError(f"recovery curve must be linear or exponential, got {self.curve!r}")
        if not _is_number(needed[self.curve]) or needed[self.curve] <= 0:
            field = "period_yr" if self.curve == "linear" else "half_life_yr"
            raise ValueError(f"{self.curve} recovery needs a positive {field}, got {needed[self.curve]!r}")

    def fraction(self, years: float) -> float:
        if self.curve == "linear":
            return float(min(years / self.period_yr, 1.0))
        return float(1.0 - 0.5 ** (years / self.half_life_yr))


@dataclass(frozen=True)
class Scenario:
    id: str
    version: int
    description: str
    fraction: float
    scope: str
    priority: str
    recovery: Recovery
    horizon_yr: float
    scope_region_type: str | None = None

    def __post_init__(self):
        for name in ("fraction", "horizon_yr"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"scenario {self.id}: {name} must be a number, got {getattr(self, name)!r}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"scenario {self.id}: fraction must be in (0, 1], got {self.fraction}")
        if self.scope not in SCOPES:
            raise ValueError(f"scenario {self.id}: scope must be one of {SCOPES}, got {self.scope!r}")
        if (self.scope == "within_region") != (self.scope_region_type is not None):
            raise ValueError(f"scenario {self.id}: scope_region_type is required for, and only for, within_region")
        if self.priority not in PRIORITY_CRITERIA:
            known = ", ".join(PRIORITY_CRITERIA)
            raise ValueError(f"scenario {self.id}: unknown priority {self.priority!r} (known: {known})")
        if self.horizon_yr <= 0:
            raise ValueError(f"scenario {self.id}: horizon_yr must be positive")

    @classmethod
    def from_dict(cls, scenario_id: str, data: dict) -> "Scenario":
        """A scenario from its YAML mapping; ValueError, naming the scenario, for any missing, unknown or bad field."""
        where = f"scenario {scenario_id}"
        _check_fields(where, data, cls, given=("id",))
        fields = dict(data)
        _check_fields(f"{where}: recovery", fields["recovery"], Recovery)
        try:
            recovery = Recovery(**fields.pop("recovery"))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from error
        return cls(id=scenario_id, recovery=recovery, **fields)

    @property
    def recovered_fraction(self) -> float:
        return self.recovery.fraction(self.horizon_yr)


def priority_order(priority: np.ndarray, zones: np.ndarray | None = None) -> np.ndarray:
    """Cell positions by zone, then priority from high to low (NaN last); ties keep position order."""
    key = -np.where(np.isnan(priority), -np.inf, priority)
    if zones is None:
        return np.argsort(key, kind="stable")
    return np.lexsort((key, zones))


def restore(converted_ha: np.ndarray, priority: np.ndarray, fraction: float, zones: np.ndarray | None = None):
    """Hectares restored per cell: `fraction` of the converted land of all cells (or of each zone, indices >= 0),
    taken in priority order; the last cell reached is restored in part so that exactly that share is restored."""
    zone_ids = np.zeros(converted_ha.shape, dtype="int64") if zones is None else zones
    order = priority_order(priority, zones)
    area = converted_ha[order]
    zone_sorted = zone_ids[order]
    totals = np.bincount(zone_ids, weights=converted_ha)
    offsets = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    before = np.cumsum(area) - area - offsets[zone_sorted]
    restored = np.empty_like(converted_ha, dtype=float)
    restored[order] = np.clip(fraction * totals[zone_sorted] - before, 0.0, area)
    return restored


def soc_gain_t_c(restored_ha, debt_density, recovered_fraction: float) -> np.ndarray:
    """Gain at the horizon (t C): restored ha x debt density (t C/ha; missing or negative debt gains nothing) x the
    share of the debt recovered."""
    debt = np.clip(np.nan_to_num(np.asarray(debt_density, dtype=float), nan=0.0), 0.0, None)
    return np.asarray(restored_ha, dtype=float) * debt * recovered_fraction


def cell_quantities(scenario: Scenario, soc_2010, soc_no_land_use, converted_ha, area_ha, zones=None) -> dict:
    """Per-cell areas (ha) and carbon (t C) of one scenario; `zones` are the scope regions for within_region."""
    debt = carbon_debt_density(soc_2010, soc_no_land_use)
    priority = PRIORITY_CRITERIA[scenario.priority](soc_2010, soc_no_land_use)
    restored = restore(converted_ha, priority, scenario.fraction, zones if scenario.scope == "within_region" else None)
    return {
        "soc_stock_2010_t_c": stock_t_c(soc_2010, area_ha),
        "converted_land_ha": converted_ha,
        "restored_ha": restored,
        "restored_soc_debt_t_c": soc_gain_t_c(restored, debt, 1.0),
        "soc_gain_t_c": soc_gain_t_c(restored, debt, scenario.recovered_fraction),
    }


def regional_scenario(
    sums: pd.DataFrame,
    scenario: Scenario,
    four_per_1000_rate: float,
    draws: dict[str, np.ndarray],
    central: dict[str, float],
) -> pd.DataFrame:
    """Per region: area restored (Mha), SOC gain at the horizon (Pg C, Gt CO2), mean annual rate (Tg C/yr) and its
    share of the region's 4p1000 target, with intervals from the debt and stock factors."""
    table = sums[["region_type", "region_id", "region_name"]].copy()
    table.insert(0, "scenario_version", scenario.version)
    table.insert(0, "scenario_id", scenario.id)
    table["horizon_yr"] = float(scenario.horizon_yr)
    table["converted_land_area_mha"] = sums["converted_land_ha"].to_numpy() / HA_PER_MHA
    table["restored_area_mha"] = sums["restored_ha"].to_numpy() / HA_PER_MHA
    table["restored_soc_debt_pg_c"] = sums["restored_soc_debt_t_c"].to_numpy() / T_PER_PG
    gain = sums["soc_gain_t_c"].to_numpy() / T_PER_PG
    debt_f, stock_f = draws["soc_debt_factor"][:, None], draws["soc_stock_factor"][:, None]
    gain_central, gain_samples = gain * central["soc_debt_factor"], gain * debt_f
    rate_tg = T_PER_PG / T_PER_TG / scenario.horizon_yr
    target_tg = four_per_1000_target(sums["soc_stock_2010_t_c"].to_numpy(), four_per_1000_rate) / T_PER_TG
    table["target_4p1000_tg_c_per_yr"] = target_tg * central["soc_stock_factor"]
    share_central = 100.0 * ratio(gain_central * rate_tg, table["target_4p1000_tg_c_per_yr"].to_numpy())
    share_samples = 100.0 * ratio(gain_samples * rate_tg, target_tg * stock_f)
    return table.assign(
        **interval_columns("soc_gain_pg_c", gain_central, gain_samples),
        **interval_columns("soc_gain_gt_co2", gain_central * CO2_PER_C, gain_samples * CO2_PER_C),
        **interval_columns("soc_gain_rate_tg_c_per_yr", gain_central * rate_tg, gain_samples * rate_tg),
        **interval_columns("soc_gain_share_of_4p1000_pct", share_central, share_samples),
    )
