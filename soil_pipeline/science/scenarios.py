"""Restoration scenarios: restore a share of converted land in priority order and let its soil carbon recover.

A scenario is data (see `Scenario.from_dict`): the share of converted land to restore, globally or within each
region, the priority criterion that orders cells, and the cited recovery curve up to a horizon. Cells are ranked
with a stable sort, so ties keep cell-index order and the ranking is deterministic.

The debt of a cell (no-land-use minus 2010 stock, never negative, times its area) was caused by land use, so it is
attributed to the land used. A restored hectare recovers the debt density attributed to the converted land of its
cell, by one of three methods (ATTRIBUTIONS), all capped per hectare at the cell's no-land-use stock:
  - "cell_average" (lower bound): the cell's debt spread over its whole area, as if all land lost alike;
  - "literature" (central): shares by area x relative loss per hectare of each land use (IPCC Tier 1 factors);
  - "all_on_converted" (upper bound): the whole debt on the converted land.
No scenario gains more than the debt attributed to the area it restores.
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
    """A cited recovery curve: "linear" to the full debt at `period_yr`; "exponential", share 1 - 2^(-t /
    `half_life_yr`) of the debt; or "rate", a constant `rate_t_c_per_ha_per_yr` until the debt is repaid.
    `label` says what the curve is (e.g. an inventory convention or an observed rate) and `source` names its entry
    in literature/factors.yaml."""

    curve: str
    label: str
    source: str
    period_yr: float | None = None
    half_life_yr: float | None = None
    rate_t_c_per_ha_per_yr: float | None = None

    def __post_init__(self):
        needed = {"linear": "period_yr", "exponential": "half_life_yr", "rate": "rate_t_c_per_ha_per_yr"}
        if self.curve not in needed:
            raise ValueError(f"recovery curve must be one of {', '.join(needed)}, got {self.curve!r}")
        value = getattr(self, needed[self.curve])
        if not _is_number(value) or value <= 0:
            raise ValueError(f"{self.curve} recovery needs a positive {needed[self.curve]}, got {value!r}")
        if extra := [name for curve, name in needed.items() if curve != self.curve and getattr(self, name) is not None]:
            raise ValueError(f"{self.curve} recovery takes no {', '.join(extra)}")

    def gain_density(self, debt_t_c_per_ha, years: float) -> np.ndarray:
        """SOC regained per restored hectare (t C/ha) after `years`, never more than the debt density."""
        debt = np.asarray(debt_t_c_per_ha, dtype=float)
        if self.curve == "linear":
            return debt * min(years / self.period_yr, 1.0)
        if self.curve == "exponential":
            return debt * (1.0 - 0.5 ** (years / self.half_life_yr))
        return np.minimum(debt, self.rate_t_c_per_ha_per_yr * years)


def _recovery(where: str, data) -> Recovery:
    _check_fields(where, data, Recovery)
    try:
        return Recovery(**data)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


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
    alternative_recovery: tuple[Recovery, ...] = ()

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
        recovery = _recovery(f"{where}: recovery", fields.pop("recovery"))
        alternatives = fields.pop("alternative_recovery", [])
        if not isinstance(alternatives, list):
            raise ValueError(f"{where}: alternative_recovery must be a list of recovery curves")
        alternative = tuple(_recovery(f"{where}: alternative_recovery[{i}]", a) for i, a in enumerate(alternatives))
        return cls(id=scenario_id, recovery=recovery, alternative_recovery=alternative, **fields)


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


ATTRIBUTIONS = {
    "cell_average": "attribution: cell average (lower bound)",
    "literature": "attribution: area x relative loss per ha, IPCC Tier 1 factors (central)",
    "all_on_converted": "attribution: all of the cell's debt on its converted land (upper bound)",
}


@dataclass(frozen=True)
class LandUse:
    """Per-cell areas (ha) and relative losses per ha (fraction of the no-land-use stock) of a cell's land uses.
    `other_loss` applies to the land that is neither cropland nor pasture."""

    area_ha: np.ndarray
    cropland_ha: np.ndarray
    pasture_ha: np.ndarray
    cropland_loss: np.ndarray
    pasture_loss: np.ndarray
    other_loss: np.ndarray

    @property
    def converted_ha(self) -> np.ndarray:
        return self.cropland_ha + self.pasture_ha


def attributed_debt_density(soc_2010, soc_no_land_use, land: LandUse) -> dict[str, np.ndarray]:
    """Debt density (t C/ha) of each cell's converted land under each of ATTRIBUTIONS, capped per ha at the
    cell's no-land-use stock; 0 where the cell has no converted land, no debt or a missing stock.

    E.g. a 100 ha cell with 10 t C/ha of debt (1,000 t C) and 20 ha of cropland, losses 0.3 on cropland and 0.05 on
    the other 80 ha: cell average 10; literature 1,000 x 6 / (6 + 4) / 20 = 30; all on converted 1,000 / 20 = 50.
    """
    nolu = np.clip(np.nan_to_num(np.asarray(soc_no_land_use, dtype=float), nan=0.0), 0.0, None)
    density = np.clip(np.nan_to_num(carbon_debt_density(soc_2010, soc_no_land_use), nan=0.0), 0.0, nolu)
    debt_t_c = density * land.area_ha
    converted = land.converted_ha
    per_ha = {
        "cell_average": density,
        "literature": _literature_density(debt_t_c, density, land, nolu),
        "all_on_converted": np.minimum(ratio(debt_t_c, converted), nolu),
    }
    return {name: np.where(converted > 0, np.nan_to_num(values, nan=0.0), 0.0) for name, values in per_ha.items()}


def _literature_density(debt_t_c, cell_density, land: LandUse, nolu) -> np.ndarray:
    """Per ha of converted land: the area-weighted mean of cropland's and pasture's densities, each the cell's debt
    x its loss per ha / sum over the cell's land of area x loss, capped at `nolu`. Where every loss is zero the
    cell average applies."""
    other_ha = np.clip(land.area_ha - land.converted_ha, 0.0, None)
    weight = land.cropland_ha * land.cropland_loss + land.pasture_ha * land.pasture_loss + other_ha * land.other_loss
    crop = np.minimum(ratio(debt_t_c * land.cropland_loss, weight), nolu)
    pasture = np.minimum(ratio(debt_t_c * land.pasture_loss, weight), nolu)
    mean = ratio(land.cropland_ha * np.nan_to_num(crop) + land.pasture_ha * np.nan_to_num(pasture), land.converted_ha)
    return np.where(weight > 0, mean, cell_density)


def cell_quantities(scenario: Scenario, soc_2010, soc_no_land_use, land: LandUse, zones=None, restored=None) -> dict:
    """Per-cell areas (ha) and carbon (t C) of one scenario; `zones` are the scope regions for within_region.

    Restored hectares are the same for every attribution (cells ranked by the scenario's priority; or `restored`
    when given, e.g. ranked by the streaming engine). The central gain `soc_gain_t_c` uses the "literature"
    attribution and the scenario's recovery curve; the bounds `soc_gain_<attribution>_t_c` the two other
    attributions; `soc_gain_recovery<i>_t_c` the alternative curves."""
    if restored is None:
        priority = PRIORITY_CRITERIA[scenario.priority](soc_2010, soc_no_land_use)
        scoped = zones if scenario.scope == "within_region" else None
        restored = restore(land.converted_ha, priority, scenario.fraction, scoped)
    densities = attributed_debt_density(soc_2010, soc_no_land_use, land)
    horizon = scenario.horizon_yr
    quantities = {
        "soc_stock_2010_t_c": stock_t_c(soc_2010, land.area_ha),
        "converted_land_ha": land.converted_ha,
        "restored_ha": restored,
        "soc_gain_t_c": restored * scenario.recovery.gain_density(densities["literature"], horizon),
    }
    for name in ("cell_average", "all_on_converted"):
        quantities[f"soc_gain_{name}_t_c"] = restored * scenario.recovery.gain_density(densities[name], horizon)
    for i, curve in enumerate(scenario.alternative_recovery):
        quantities[f"soc_gain_recovery{i}_t_c"] = restored * curve.gain_density(densities["literature"], horizon)
    return quantities


def _gain_columns(gain_t_c, target_tg, horizon_yr: float, draws: dict, central: dict) -> dict[str, np.ndarray]:
    """SOC gain (Pg C, Gt CO2), mean annual rate (Tg C/yr) and share of the all-land 4p1000 target (%), central and
    intervals: the debt factor on the gain and, drawn jointly with it, the stock factor on the target."""
    gain = np.asarray(gain_t_c, dtype=float) / T_PER_PG
    debt_f, stock_f = draws["soc_debt_factor"][:, None], draws["soc_stock_factor"][:, None]
    gain_central, gain_samples = gain * central["soc_debt_factor"], gain * debt_f
    rate_tg = T_PER_PG / T_PER_TG / horizon_yr
    share_central = 100.0 * ratio(gain_central * rate_tg, target_tg * central["soc_stock_factor"])
    share_samples = 100.0 * ratio(gain_samples * rate_tg, target_tg * stock_f)
    return {
        **interval_columns("soc_gain_pg_c", gain_central, gain_samples),
        **interval_columns("soc_gain_gt_co2", gain_central * CO2_PER_C, gain_samples * CO2_PER_C),
        **interval_columns("soc_gain_rate_tg_c_per_yr", gain_central * rate_tg, gain_samples * rate_tg),
        **interval_columns("soc_gain_share_of_4p1000_all_land_pct", share_central, share_samples),
    }


def _base(sums: pd.DataFrame, scenario: Scenario, four_per_1000_rate: float, converted_land: str, central: dict):
    table = sums[["region_type", "region_id", "region_name"]].copy()
    table.insert(0, "estimate", "central")
    table.insert(0, "scenario_version", scenario.version)
    table.insert(0, "scenario_id", scenario.id)
    table["attribution"] = ATTRIBUTIONS["literature"]
    table["recovery_curve"] = scenario.recovery.label
    table["converted_land"] = converted_land
    table["horizon_yr"] = float(scenario.horizon_yr)
    table["converted_land_area_mha"] = sums["converted_land_ha"].to_numpy() / HA_PER_MHA
    table["restored_area_mha"] = sums["restored_ha"].to_numpy() / HA_PER_MHA
    target_tg = four_per_1000_target(sums["soc_stock_2010_t_c"].to_numpy(), four_per_1000_rate) / T_PER_TG
    table["target_4p1000_tg_c_per_yr"] = target_tg * central["soc_stock_factor"]
    return table, target_tg


def regional_scenario(
    sums: pd.DataFrame,
    scenario: Scenario,
    four_per_1000_rate: float,
    draws: dict[str, np.ndarray],
    central: dict[str, float],
    converted_land: str,
) -> pd.DataFrame:
    """Per region (estimate "central"): area restored (Mha), SOC gain at the horizon (Pg C, Gt CO2), mean annual
    rate (Tg C/yr) and its share of the all-land 4p1000 target, with intervals, and the gain's lower and upper
    bounds (cell-average and all-on-converted-land attribution). `converted_land` names what was restorable."""
    table, target_tg = _base(sums, scenario, four_per_1000_rate, converted_land, central)
    table = table.assign(**_gain_columns(sums["soc_gain_t_c"], target_tg, scenario.horizon_yr, draws, central))
    for bound, attribution in (("lower", "cell_average"), ("upper", "all_on_converted")):
        gain_pg = sums[f"soc_gain_{attribution}_t_c"].to_numpy() / T_PER_PG * central["soc_debt_factor"]
        table[f"soc_gain_{bound}_bound_pg_c"] = gain_pg
        table[f"soc_gain_{bound}_bound_gt_co2"] = gain_pg * CO2_PER_C
    return table


def sensitivity_rows(
    sums: pd.DataFrame,
    scenario: Scenario,
    four_per_1000_rate: float,
    draws: dict[str, np.ndarray],
    central: dict[str, float],
    converted_land: str,
    other_converted_land: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The structural alternatives of each region of `sums` as rows (estimate "sensitivity"), each labelled by its
    attribution, recovery curve and converted land: the two other attributions, the scenario's alternative
    recovery curves and the scenario run on other converted land, {label: its sums} (e.g. cropland only)."""
    variants = [
        (sums, ATTRIBUTIONS[name], scenario.recovery.label, converted_land, f"soc_gain_{name}_t_c")
        for name in ("cell_average", "all_on_converted")
    ]
    variants += [
        (sums, ATTRIBUTIONS["literature"], curve.label, converted_land, f"soc_gain_recovery{i}_t_c")
        for i, curve in enumerate(scenario.alternative_recovery)
    ]
    variants += [
        (other, ATTRIBUTIONS["literature"], scenario.recovery.label, label, "soc_gain_t_c")
        for label, other in (other_converted_land or {}).items()
    ]
    parts = []
    for variant_sums, attribution, recovery, land, column in variants:
        table, target_tg = _base(variant_sums, scenario, four_per_1000_rate, land, central)
        table = table.assign(estimate="sensitivity", attribution=attribution, recovery_curve=recovery)
        gain = variant_sums[column].to_numpy()
        parts.append(table.assign(**_gain_columns(gain, target_tg, scenario.horizon_yr, draws, central)))
    return pd.concat(parts, ignore_index=True)
