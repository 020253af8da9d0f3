"""Restoration scenarios: restore a share of converted land in priority order and let its soil carbon recover.

A scenario is data (see `Scenario.from_dict`): the share of converted land to restore, globally or within each
region, the priority criterion that orders cells, and cited recovery curves up to a horizon: the central one (IPCC
Tier 1 set-aside), a low and an eventual-recovery case, and sensitivity alternatives. Cells are ranked with a stable
sort, so ties keep cell-index order and the ranking is deterministic.

The debt of a cell (no-land-use minus 2010 stock, never negative, times its area) was caused by land use, so it is
attributed to the land used. A restored hectare recovers (part of) the debt density attributed to the converted land
of its cell, by one of three methods (ATTRIBUTIONS), all capped per hectare at the cell's no-land-use stock:
  - "cell_average" (lower bound): the cell's debt spread over its whole area, as if all land lost alike;
  - "literature" (central): shares by area x relative loss per hectare of each land use (IPCC Tier 1 F_LU for
    cropland, a fixed multiple of cropland's loss for grazing land);
  - "all_on_converted" (upper bound): the whole debt on the converted land.
No scenario gains more than the debt attributed to the area it restores. A set-aside curve's gain depends on the
climate class's factors, so it is summed per class and weighted by each class's recovered share afterwards: the
Monte Carlo then draws the factors without revisiting the cells.
"""

import dataclasses
import functools
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from soil_pipeline.science.aggregation import four_per_1000_target, nan_to_zero, ratio, stock_t_c
from soil_pipeline.science.uncertainty import central, draw, factor_spec, interval_columns
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
    `half_life_yr`) of the debt; "rate", a constant `rate_t_c_per_ha_per_yr` until the debt is repaid; or
    "set_aside", IPCC Tier 1 for cropland taken out of cultivation: linear over `period_yr` from F_LU(long-term
    cultivated) to F_LU(set aside) of the native stock, i.e. the share (F_SA - F_LU) / (1 - F_LU) of the cropland's
    attributed debt, with the factors of the `factors` edition in literature/land_use_loss.yaml (pasture, under no
    Table 5.5 factor, recovers its attributed debt in full as nominally managed grassland, F_MG = 1). `label` says
    what the curve is and `source` names its entry in literature/factors.yaml."""

    curve: str
    label: str
    source: str
    period_yr: float | None = None
    half_life_yr: float | None = None
    rate_t_c_per_ha_per_yr: float | None = None
    factors: str | None = None

    def __post_init__(self):
        needed = {
            "linear": "period_yr",
            "exponential": "half_life_yr",
            "rate": "rate_t_c_per_ha_per_yr",
            "set_aside": "period_yr",
        }
        if self.curve not in needed:
            raise ValueError(f"recovery curve must be one of {', '.join(needed)}, got {self.curve!r}")
        value = getattr(self, needed[self.curve])
        if not _is_number(value) or value <= 0:
            raise ValueError(f"{self.curve} recovery needs a positive {needed[self.curve]}, got {value!r}")
        names = {"period_yr", "half_life_yr", "rate_t_c_per_ha_per_yr"} - {needed[self.curve]}
        if extra := sorted(name for name in names if getattr(self, name) is not None):
            raise ValueError(f"{self.curve} recovery takes no {', '.join(extra)}")
        if (self.curve == "set_aside") != isinstance(self.factors, str):
            raise ValueError(
                f"{self.curve} recovery: factors (an IPCC edition) is required for, and only for, set_aside"
            )

    @property
    def shape(self) -> tuple:
        """What `gain_density` depends on: curves of one shape regain the same density."""
        kind = "linear" if self.curve == "set_aside" else self.curve
        return kind, self.period_yr, self.half_life_yr, self.rate_t_c_per_ha_per_yr

    @property
    def by_climate_class(self) -> bool:
        """Whether the gain depends on the climate class's factors (summed per class, weighted afterwards)."""
        return self.curve == "set_aside"

    def gain_density(self, debt_t_c_per_ha, years: float) -> np.ndarray:
        """SOC regained per restored hectare (t C/ha) after `years`, never more than the debt density. For
        "set_aside", the path toward the full debt: `set_aside_share` scales it per climate class. A linear curve at
        or past its period regains the whole debt: the result is then the debt array itself, not a copy."""
        debt = np.asarray(debt_t_c_per_ha, dtype=float)
        if self.curve in ("linear", "set_aside"):
            share = min(years / self.period_yr, 1.0)
            return debt if share == 1.0 else debt * share
        if self.curve == "exponential":
            return debt * (1.0 - 0.5 ** (years / self.half_life_yr))
        return np.minimum(debt, self.rate_t_c_per_ha_per_yr * years)


def set_aside_share(f_cultivated, f_set_aside) -> np.ndarray:
    """Share of the debt attributed to cropland that restoring it regains under IPCC Tier 1: (F_SA - F_LU) /
    (1 - F_LU), clipped to [0, 1] (e.g. 2006 tropical moist: (0.82 - 0.48) / 0.52 = 0.654)."""
    f_lu, f_sa = np.asarray(f_cultivated, dtype=float), np.asarray(f_set_aside, dtype=float)
    return np.clip(np.nan_to_num(ratio(f_sa - f_lu, 1.0 - f_lu)), 0.0, 1.0)


def _recovery(where: str, data) -> Recovery:
    _check_fields(where, data, Recovery)
    try:
        return Recovery(**data)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


# Recovery cases published beside the central curve for every region: the `estimate` of their rows.
CASES = ("low", "eventual_recovery")


@dataclass(frozen=True)
class Scenario:
    """`recovery` is the central curve; `low` and `eventual_recovery` the cases published for every region;
    each of `alternative_recovery` a labelled sensitivity row."""

    id: str
    version: int
    description: str
    fraction: float
    scope: str
    priority: str
    recovery: Recovery
    horizon_yr: float
    scope_region_type: str | None = None
    low: Recovery | None = None
    eventual_recovery: Recovery | None = None
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
        cases = {case: _recovery(f"{where}: {case}", fields.pop(case)) for case in CASES if case in fields}
        alternatives = fields.pop("alternative_recovery", [])
        if not isinstance(alternatives, list):
            raise ValueError(f"{where}: alternative_recovery must be a list of recovery curves")
        alternative = tuple(_recovery(f"{where}: alternative_recovery[{i}]", a) for i, a in enumerate(alternatives))
        return cls(id=scenario_id, recovery=recovery, alternative_recovery=alternative, **cases, **fields)

    def curves(self) -> dict[str, Recovery]:
        """Every curve by its key in the summed quantities: central, the cases, alternative<i>."""
        curves = {"central": self.recovery}
        curves.update({case: getattr(self, case) for case in CASES if getattr(self, case) is not None})
        curves.update({f"alternative{i}": curve for i, curve in enumerate(self.alternative_recovery)})
        return curves


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

    @functools.cached_property
    def converted_ha(self) -> np.ndarray:
        return self.cropland_ha + self.pasture_ha


def attributed_debt_density(
    soc_2010, soc_no_land_use, land: LandUse, names=tuple(ATTRIBUTIONS)
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(cropland, pasture) debt density (t C/ha) of each cell under each of ATTRIBUTIONS (or those in `names`),
    capped per ha at the cell's no-land-use stock; 0 where the cell has no converted land, no debt or a missing stock.
    The two bounds put the same density on cropland and pasture.

    E.g. a 100 ha cell with 10 t C/ha of debt (1,000 t C) and 20 ha of cropland, losses 0.3 on cropland and 0.05 on
    the other 80 ha: cell average 10; literature 1,000 x 6 / (6 + 4) / 20 = 30; all on converted 1,000 / 20 = 50.
    """
    return CellDebt.of(soc_2010, soc_no_land_use, land.area_ha).attributed(land, names)


@dataclass(frozen=True)
class CellDebt:
    """What every attribution of a cell's debt starts from, whatever its land uses: the no-land-use stock (t C/ha,
    the cap per ha), the debt density (t C/ha) and the debt (t C), 0 where missing or negative."""

    nolu: np.ndarray
    density: np.ndarray
    debt_t_c: np.ndarray
    # What the land uses of the same areas or losses share (e.g. the grazing alternatives), keyed by the ids of the
    # arrays it comes from, which each entry keeps alive so that the ids stay theirs.
    shared: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, soc_2010, soc_no_land_use, area_ha) -> "CellDebt":
        nolu = np.clip(nan_to_zero(np.asarray(soc_no_land_use, dtype=float)), 0.0, None)
        density = np.clip(nan_to_zero(carbon_debt_density(soc_2010, soc_no_land_use)), 0.0, nolu)
        return cls(nolu, density, density * area_ha)

    def attributed(self, land: LandUse, names=tuple(ATTRIBUTIONS)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`attributed_debt_density` on the cells' `land` (of the same cell areas); computed once per land use
        object and names (scenarios on the same cells share them), to be read, not written."""
        key = ("attributed", id(land), tuple(names))
        if key not in self.shared:
            self.shared[key] = self._attributed(land, names), land
        return self.shared[key][0]

    def _attributed(self, land: LandUse, names) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        converted, on_converted, cell_average, other_ha = self._areas(land)
        out = {}
        for name in (name for name in ATTRIBUTIONS if name in names):
            if name == "cell_average":
                out[name] = (cell_average, cell_average)
            elif name == "literature":
                out[name] = self._literature(land, cell_average, on_converted, other_ha)
            else:
                all_on = np.minimum(ratio(self.debt_t_c, converted), self.nolu)
                all_on = nan_to_zero(np.where(on_converted, all_on, 0.0), in_place=True)
                out[name] = (all_on, all_on)
        return out

    def _areas(self, land: LandUse) -> tuple:
        """(converted ha, whether any, the cell average density where any (the density is finite: nothing to make
        0) else 0, the ha of other land) of `land`'s areas."""
        arrays = (land.area_ha, land.cropland_ha, land.pasture_ha)
        key = ("areas", *map(id, arrays))
        if key not in self.shared:
            converted = land.converted_ha
            on_converted = converted > 0
            cell_average = np.where(on_converted, self.density, 0.0)
            other_ha = np.clip(land.area_ha - converted, 0.0, None)
            self.shared[key] = (converted, on_converted, cell_average, other_ha), arrays
        return self.shared[key][0]

    def _product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        key = ("product", id(a), id(b))
        if key not in self.shared:
            self.shared[key] = a * b, (a, b)
        return self.shared[key][0]

    def _literature(self, land: LandUse, cell_average, on_converted, other_ha) -> tuple[np.ndarray, np.ndarray]:
        """Per ha of cropland and of pasture: the cell's debt x the land use's loss per ha / sum over the cell's land
        of area x loss, capped at the no-land-use stock. Where every loss is zero the cell average applies, and 0
        where the cell has no converted land. Computed on the cells with converted land only (often the fewer):
        each cell's value is the same, by the same operations."""
        at = functools.partial(self._at_converted, on_converted)
        crop_weight = self._product(at(land.cropland_ha), at(land.cropland_loss))
        weight = crop_weight + at(land.pasture_ha) * at(land.pasture_loss) + at(other_ha) * at(land.other_loss)
        weighted = weight > 0
        debt, nolu = at(self.debt_t_c), at(self.nolu)
        with np.errstate(divide="ignore", invalid="ignore"):  # where the weight is 0 the cell average applies
            crop = np.minimum(self._product(debt, at(land.cropland_loss)) / weight, nolu)
            pasture = np.minimum(debt * at(land.pasture_loss) / weight, nolu)
        out = []
        for values in (crop, pasture):
            full = np.zeros(on_converted.shape)
            full.reshape(-1)[self._converted_cells(on_converted)] = nan_to_zero(
                np.where(weighted, values, at(cell_average)), in_place=True
            )
            out.append(full)
        return tuple(out)

    def _converted_cells(self, on_converted: np.ndarray) -> np.ndarray:
        key = ("cells", id(on_converted))
        if key not in self.shared:
            self.shared[key] = np.flatnonzero(on_converted), on_converted
        return self.shared[key][0]

    def _at_converted(self, on_converted: np.ndarray, values) -> np.ndarray:
        """`values` (broadcast to the cells) at the cells with converted land, in cell order."""
        key = ("at", id(on_converted), id(values))
        if key not in self.shared:
            flat = np.broadcast_to(np.asarray(values), on_converted.shape).reshape(-1)
            self.shared[key] = flat[self._converted_cells(on_converted)], (on_converted, values)
        return self.shared[key][0]


def _share_or_zero(part, whole) -> np.ndarray:
    """`nan_to_zero(ratio(part, whole))` (0 where `whole` is 0 or missing), without first filling NaN where most
    cells may have none of `whole`."""
    return nan_to_zero(ratio(part, whole, fill=0.0), in_place=True)


def mean_density(land: LandUse, densities: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Area-weighted mean of the (cropland, pasture) densities over the converted land (t C/ha); 0 without any."""
    crop, pasture = densities
    return np.nan_to_num(ratio(land.cropland_ha * crop + land.pasture_ha * pasture, land.converted_ha))


def stock_error_quantities(soc_2010, stock_error, area_ha, restored_ha) -> dict[str, np.ndarray]:
    """Per-cell sums for each region's stock error (t C): the error (t C/ha, NaN where no layer value) over the
    cell's area and over its restored area, and the stock of the cells that have no error value (those take the
    fallback relative error at the regional stage, `relative_stock_error`). `restored_ha` has the cells' shape: the
    products over it are written into the per-hectare arrays they start from."""
    soc = np.asarray(soc_2010, dtype=float)
    error = np.asarray(stock_error, dtype=float)
    has_soc = ~np.isnan(soc)
    has_error = has_soc & ~np.isnan(error)
    without = np.where(has_soc & ~has_error, soc, 0.0)
    error_or_zero = np.where(has_error, error, 0.0)
    soc_or_zero = np.where(has_soc, soc, 0.0)
    return {
        "soc_stock_error_t_c": error_or_zero * area_ha,
        "soc_stock_2010_without_error_t_c": without * area_ha,
        "restored_soc_stock_2010_t_c": np.multiply(soc_or_zero, restored_ha, out=soc_or_zero),
        "restored_soc_stock_error_t_c": np.multiply(error_or_zero, restored_ha, out=error_or_zero),
        "restored_soc_stock_2010_without_error_t_c": np.multiply(without, restored_ha, out=without),
    }


# A column of per-region sums: the relative error (1 sd) of the region's 2010 stock that its field sites measure
# (`validation.map_total_error`, from regional_soc_stocks), NaN where the region is map-only.
FIELD_ERROR = "soc_stock_field_relative_sd"
STOCK_ERROR_BASES = ("field sites", "error layers", "fallback", "no stock")


def relative_stock_error(error_t_c, stock_without_error_t_c, stock_t_c, fallback: float, field=None) -> np.ndarray:
    """A region's relative stock error (1 sd): the error its field sites measure (`field`, per region) where there is
    one; else (sum of pixel errors + fallback x stock without an error value) / stock, the pixel errors fully
    correlated; 0 where the region has no stock."""
    total = np.asarray(error_t_c, dtype=float) + fallback * np.asarray(stock_without_error_t_c, dtype=float)
    layers = np.nan_to_num(ratio(total, stock_t_c))
    if field is None:
        return layers
    field = np.asarray(field, dtype=float)
    return np.where(np.isfinite(field), field, layers)


def stock_error_basis(stock_without_error_t_c, stock_t_c, field=None) -> np.ndarray:
    """Where each region's stock error comes from (`STOCK_ERROR_BASES`): its field sites; else the error layers
    (the fallback taking the part of its stock without an error value), or the fallback when that is most of it."""
    without, stock = np.asarray(stock_without_error_t_c, dtype=float), np.asarray(stock_t_c, dtype=float)
    measured = np.isfinite(np.asarray(field, dtype=float)) if field is not None else np.zeros(len(stock), dtype=bool)
    return np.select(
        [measured, ~(stock > 0), 2 * without > stock],
        ["field sites", "no stock", "fallback"],
        default="error layers",
    ).astype("str")


def field_errors(sums: pd.DataFrame):
    """The `FIELD_ERROR` column of per-region sums, or None."""
    return sums[FIELD_ERROR].to_numpy(dtype=float) if FIELD_ERROR in sums else None


def gain_name(curve_key: str, attribution: str = "literature", grazing: str | None = None) -> str:
    """The summed quantity (t C) of a curve's gain; a set-aside curve's is summed per climate class (`class_name`)."""
    return ".".join(["soc_gain", curve_key, attribution, *([grazing] if grazing else [])])


# The suffix of a set-aside gain's cropland part left unsplit (`cell_quantities(split_classes=False)`), for the
# caller to sum per climate class: its sums per class are the gain's `class_names`.
BY_CLASS = ".by_class"


def class_names(name: str, n_classes: int) -> list[str]:
    """The per-class quantities of a set-aside gain `name`: one per climate class (the last: no class), then pasture."""
    return [f"{name}.class{k}" for k in range(n_classes + 1)] + [f"{name}.pasture"]


class _Gains:
    """The per-cell gains (t C) of curves on the restored land of cells, sharing what the curves and attributions of
    one scenario have in common: the restored cropland and pasture of each cell, each climate class's cells, and the
    gain of each curve shape (`Recovery.shape`) on each density, so that curves of one shape on one density (e.g. the
    central set-aside curve and its other IPCC edition) give the same arrays."""

    def __init__(self, restored, land: LandUse, climate_class, n_classes: int, horizon: float, split: bool = True):
        self.restored_ha = (
            restored * _share_or_zero(land.cropland_ha, land.converted_ha),
            restored * _share_or_zero(land.pasture_ha, land.converted_ha),
        )
        self.classes = [climate_class == k for k in range(n_classes + 1)] if split else None
        self.horizon = horizon
        # keyed by the ids of the arrays a result is computed from, which each entry keeps alive so ids stay unique
        self.cache: dict[tuple, tuple] = {}

    def __call__(self, name: str, curve: Recovery, densities) -> dict[str, np.ndarray]:
        crop, pasture = (self._gain(curve, density, use) for use, density in enumerate(densities))
        if not curve.by_climate_class:
            key = ("sum", id(crop), id(pasture))
            if key not in self.cache:
                self.cache[key] = (crop + pasture, crop, pasture)
            return {name: self.cache[key][0]}
        if self.classes is None:
            return {f"{name}{BY_CLASS}": crop, f"{name}.pasture": pasture}
        names = class_names(name, len(self.classes) - 1)
        out = {class_name: self._class_share(crop, k) for k, class_name in enumerate(names[:-1])}
        out[names[-1]] = pasture
        return out

    def _gain(self, curve: Recovery, density: np.ndarray, use: int) -> np.ndarray:
        key = ("gain", curve.shape, id(density), use)
        if key not in self.cache:
            self.cache[key] = (self.restored_ha[use] * curve.gain_density(density, self.horizon), density)
        return self.cache[key][0]

    def _class_share(self, gain: np.ndarray, k: int) -> np.ndarray:
        key = ("class", k, id(gain))
        if key not in self.cache:
            self.cache[key] = (np.where(self.classes[k], gain, 0.0), gain)
        return self.cache[key][0]


def cell_quantities(
    scenario: Scenario,
    soc_2010,
    soc_no_land_use,
    land: LandUse,
    climate_class: np.ndarray,
    n_classes: int,
    restored=None,
    zones=None,
    grazing: dict[str, LandUse] | None = None,
    split_classes: bool = True,
    debt: CellDebt | None = None,
) -> dict:
    """Per-cell areas (ha) and carbon (t C) of one scenario; `zones` are the scope regions for within_region;
    `climate_class` the Table 5.5 class of each cell (0..n_classes-1, n_classes = none) for set-aside curves.

    Restored hectares are the same for every attribution (cells ranked by the scenario's priority; or `restored`
    when given, e.g. ranked by the streaming engine). Every curve's gain (`gain_name`) uses the "literature"
    attribution; the central curve's also the two bounds and, on each land use of `grazing` (same areas, other
    grazing losses), the literature attribution. Quantities of equal values may be one array (see `_Gains`). With
    `split_classes` False a set-aside gain's cropland part is one quantity, `BY_CLASS`, rather than one per class.
    `debt` is the cells' `CellDebt` of `land`'s areas when already made (other scenarios' calls on the same cells
    then share its attributed densities)."""
    if restored is None:
        priority = PRIORITY_CRITERIA[scenario.priority](soc_2010, soc_no_land_use)
        scoped = zones if scenario.scope == "within_region" else None
        restored = restore(land.converted_ha, priority, scenario.fraction, scoped)
    has_soc = ~np.isnan(np.asarray(soc_2010, dtype=float)) & ~np.isnan(np.asarray(soc_no_land_use, dtype=float))
    quantities = {
        "soc_stock_2010_t_c": stock_t_c(soc_2010, land.area_ha),
        "converted_land_ha": land.converted_ha,
        "restored_ha": restored,
        "restored_with_soc_ha": np.where(has_soc, restored, 0.0),
    }
    if debt is None:
        debt = CellDebt.of(soc_2010, soc_no_land_use, land.area_ha)
    densities = debt.attributed(land)
    gains = _Gains(restored, land, climate_class, n_classes, scenario.horizon_yr, split_classes)
    for key, curve in scenario.curves().items():
        quantities |= gains(gain_name(key), curve, densities["literature"])
    for attribution in ("cell_average", "all_on_converted"):
        quantities |= gains(gain_name("central", attribution), scenario.recovery, densities[attribution])
    for label, other in (grazing or {}).items():
        same = other.cropland_ha is land.cropland_ha and other.pasture_ha is land.pasture_ha
        other_gains = (
            gains if same else _Gains(restored, other, climate_class, n_classes, scenario.horizon_yr, split_classes)
        )
        other_debt = debt if other.area_ha is land.area_ha else CellDebt.of(soc_2010, soc_no_land_use, other.area_ha)
        other_density = other_debt.attributed(other, ("literature",))["literature"]
        quantities |= other_gains(gain_name("central", grazing=label), scenario.recovery, other_density)
    return quantities


@dataclass(frozen=True)
class Draws:
    """The Monte Carlo draws a regional table needs: `stock_z` (n,) the stock error z shared by every region,
    `debt_residual` (n,) the residual debt factor, `shares` {edition: (n, classes + 1)} the set-aside recovered share
    per climate class (last column: no class, 1), `central_shares` {edition: (classes + 1,)} at the table values,
    `fallback_relative_sd` the stock error where no layer value exists."""

    stock_z: np.ndarray
    debt_residual: np.ndarray
    shares: dict[str, np.ndarray]
    central_shares: dict[str, np.ndarray]
    fallback_relative_sd: float


def curve_gain_t_c(sums: pd.DataFrame, name: str, curve: Recovery, shares=None) -> np.ndarray:
    """A curve's regional gain (t C): a set-aside curve's per-class sums weighted by the recovered share of each
    class, `shares` (classes + 1,) for the central figure or (n draws, classes + 1) for samples (n draws x
    regions), plus its pasture; any other curve's sum as summed."""
    if not curve.by_climate_class:
        return sums[name].to_numpy(dtype=float)
    n_classes = np.shape(shares)[-1] - 1
    per_class = np.stack([sums[f"{name}.class{k}"].to_numpy(dtype=float) for k in range(n_classes + 1)])
    return np.asarray(shares) @ per_class + sums[f"{name}.pasture"].to_numpy(dtype=float)


def _gain_columns(sums, name: str, curve: Recovery, horizon_yr: float, target_tg, draws: Draws):
    """SOC gain (Pg C, Gt CO2), mean annual rate (Tg C/yr), implied mean rate per restored ha with a SOC value
    (t C/ha/yr) and share of the all-land 4p1000 target (%), central and with intervals. The gain's samples carry the
    IPCC factor draws (set-aside curves), the stock error of the restored land (1 + z x its relative error) and
    the residual debt error; the target's samples the stock error of the whole region."""
    fallback, field = draws.fallback_relative_sd, field_errors(sums)
    restored_error = relative_stock_error(
        sums["restored_soc_stock_error_t_c"],
        sums["restored_soc_stock_2010_without_error_t_c"],
        sums["restored_soc_stock_2010_t_c"],
        fallback,
        field,
    )
    target_error = relative_stock_error(
        sums["soc_stock_error_t_c"],
        sums["soc_stock_2010_without_error_t_c"],
        sums["soc_stock_2010_t_c"],
        fallback,
        field,
    )
    edition = curve.factors
    gain_central = curve_gain_t_c(sums, name, curve, draws.central_shares.get(edition)) / T_PER_PG
    by_factors = curve_gain_t_c(sums, name, curve, draws.shares.get(edition)) / T_PER_PG
    z = draws.stock_z[:, None]
    gain_samples = by_factors * np.clip(1.0 + z * restored_error, 0.0, None) * draws.debt_residual[:, None]
    target_samples = target_tg * np.clip(1.0 + z * target_error, 0.0, None)
    rate_tg = T_PER_PG / T_PER_TG / horizon_yr
    per_ha = ratio(T_PER_PG / horizon_yr, sums["restored_with_soc_ha"].to_numpy(dtype=float))
    share_central = 100.0 * ratio(gain_central * rate_tg, target_tg)
    share_samples = 100.0 * ratio(gain_samples * rate_tg, target_samples)
    # The gain in other units is the gain's draws times a positive factor (per region): in the same order, so the
    # draws are sorted once.
    gain_ordered = np.sort(gain_samples, axis=0)
    return {
        **interval_columns("soc_gain_pg_c", gain_central, gain_ordered, ordered=True),
        **interval_columns("soc_gain_gt_co2", gain_central * CO2_PER_C, gain_ordered * CO2_PER_C, ordered=True),
        **interval_columns("soc_gain_rate_tg_c_per_yr", gain_central * rate_tg, gain_ordered * rate_tg, ordered=True),
        **interval_columns(
            "implied_rate_t_c_per_ha_per_yr", gain_central * per_ha, gain_ordered * per_ha, ordered=True
        ),
        **interval_columns("soc_gain_share_of_4p1000_all_land_pct", share_central, share_samples),
    }


def _base(sums: pd.DataFrame, scenario: Scenario, four_per_1000_rate: float, labels: dict) -> dict:
    """The leading columns of a table of rows per region of `sums` (`labels`: estimate, attribution, grazing_loss,
    recovery_curve, converted_land), the regions' 4p1000 target (Tg C/yr) last. Columns, not a frame: a frame is
    built once from all of them (inserting columns one by one costs more than their arithmetic)."""
    target_tg = four_per_1000_target(sums["soc_stock_2010_t_c"].to_numpy(), four_per_1000_rate) / T_PER_TG
    return {
        "scenario_id": scenario.id,
        "scenario_version": scenario.version,
        "estimate": labels["estimate"],
        **{name: sums[name] for name in ("region_type", "region_id", "region_name")},
        "attribution": labels["attribution"],
        "grazing_loss": labels["grazing_loss"],
        "recovery_curve": labels["recovery_curve"],
        "converted_land": labels["converted_land"],
        "horizon_yr": float(scenario.horizon_yr),
        "soc_stock_error_basis": stock_error_basis(
            sums["soc_stock_2010_without_error_t_c"], sums["soc_stock_2010_t_c"], field_errors(sums)
        ),
        "converted_land_area_mha": sums["converted_land_ha"].to_numpy() / HA_PER_MHA,
        "restored_area_mha": sums["restored_ha"].to_numpy() / HA_PER_MHA,
        "restored_area_with_soc_mha": sums["restored_with_soc_ha"].to_numpy() / HA_PER_MHA,
        "target_4p1000_tg_c_per_yr": target_tg,
    }


@dataclass(frozen=True)
class Labels:
    """What the rows' land columns say: the restorable land and the central grazing loss."""

    converted_land: str
    grazing: str


def regional_scenario(
    sums: pd.DataFrame, scenario: Scenario, four_per_1000_rate: float, draws: Draws, labels: Labels
) -> pd.DataFrame:
    """Per region: rows "central" (the central curve, with the gain's lower and upper bounds of the debt
    attribution under the same curve) and one row per recovery case ("low", "eventual_recovery"): area restored
    (Mha, all and with a SOC value), SOC gain at the horizon (Pg C, Gt CO2), mean annual rate (Tg C/yr), implied mean
    rate (t C/ha/yr) and share of the all-land 4p1000 target, with intervals."""
    curves = scenario.curves()
    parts = []
    for key in ("central", *CASES):
        if key not in curves:
            continue
        curve = curves[key]
        labels_of_rows = {
            "estimate": key,
            "attribution": ATTRIBUTIONS["literature"],
            "grazing_loss": labels.grazing,
            "recovery_curve": curve.label,
            "converted_land": labels.converted_land,
        }
        columns = _base(sums, scenario, four_per_1000_rate, labels_of_rows)
        columns |= _gain_columns(
            sums, gain_name(key), curve, scenario.horizon_yr, columns["target_4p1000_tg_c_per_yr"], draws
        )
        if key == "central":
            for bound, attribution in (("lower", "cell_average"), ("upper", "all_on_converted")):
                name = gain_name("central", attribution)
                gain_pg = curve_gain_t_c(sums, name, curve, draws.central_shares.get(curve.factors)) / T_PER_PG
                columns[f"soc_gain_{bound}_bound_pg_c"] = gain_pg
                columns[f"soc_gain_{bound}_bound_gt_co2"] = gain_pg * CO2_PER_C
        parts.append(pd.DataFrame(columns, index=sums.index))
    return pd.concat(parts, ignore_index=True)


def sensitivity_rows(
    sums: pd.DataFrame,
    scenario: Scenario,
    four_per_1000_rate: float,
    draws: Draws,
    labels: Labels,
    grazing: dict[str, str] | None = None,
    other_converted_land: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The structural alternatives of each region of `sums` as rows (estimate "sensitivity"), each labelled by its
    attribution, grazing loss, recovery curve and converted land: the two other attributions, the scenario's
    alternative recovery curves, the central curve under each other grazing loss of `grazing` ({key as summed by
    `cell_quantities`: label}) and the scenario run on other converted land, {label: its sums} (e.g. cropland only)."""
    central_curve = scenario.recovery
    variants = [
        (sums, ATTRIBUTIONS[name], labels.grazing, central_curve, labels.converted_land, gain_name("central", name))
        for name in ("cell_average", "all_on_converted")
    ]
    variants += [
        (sums, ATTRIBUTIONS["literature"], labels.grazing, curve, labels.converted_land, gain_name(f"alternative{i}"))
        for i, curve in enumerate(scenario.alternative_recovery)
    ]
    variants += [
        (
            sums,
            ATTRIBUTIONS["literature"],
            label,
            central_curve,
            labels.converted_land,
            gain_name("central", grazing=key),
        )
        for key, label in (grazing or {}).items()
    ]
    variants += [
        (other, ATTRIBUTIONS["literature"], labels.grazing, central_curve, label, gain_name("central"))
        for label, other in (other_converted_land or {}).items()
    ]
    parts = []
    for variant_sums, attribution, grazing_label, curve, land, name in variants:
        labels_of_rows = {
            "estimate": "sensitivity",
            "attribution": attribution,
            "grazing_loss": grazing_label,
            "recovery_curve": curve.label,
            "converted_land": land,
        }
        columns = _base(variant_sums, scenario, four_per_1000_rate, labels_of_rows)
        columns |= _gain_columns(
            variant_sums, name, curve, scenario.horizon_yr, columns["target_4p1000_tg_c_per_yr"], draws
        )
        parts.append(pd.DataFrame(columns, index=variant_sums.index))
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class LandUseFactors:
    """The IPCC Tier 1 factors the scenarios use, resolved onto climate-zone codes: Table 5.5 climate `classes`,
    the class index of each zone code (`class_of_code`, len(classes) = no class), relative loss per ha of cropland and
    of grazing land per code (1 for both where no class: equal losses), the central grazing label, each alternative
    grazing loss per code by its label, and each edition's factors {edition: {factor: {class: {value, error_pct}}}}
    (factor "long_term_cultivated" or "set_aside")."""

    classes: tuple[str, ...]
    class_of_code: np.ndarray
    cropland_loss: np.ndarray
    grazing_loss: np.ndarray
    grazing_label: str
    grazing_alternatives: dict[str, np.ndarray]
    editions: dict[str, dict[str, dict[str, dict]]]

    def recovered_shares(self, edition: str, n_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(central (classes + 1,), draws (n_draws, classes + 1)) of the set-aside recovered share per class, the
        last column (no class) 1. Each factor of each class is one seeded parameter (`uncertainty.factor_spec`),
        named `<edition>.<factor>.<class>`: independent between classes and factors, fixed by the seed."""
        table = self.editions[edition]
        specs = {
            f"{edition}.{factor}.{name}": factor_spec(
                table[factor][name]["value"], table[factor][name].get("error_pct")
            )
            for factor in ("long_term_cultivated", "set_aside")
            for name in self.classes
        }
        drawn, means = draw(specs, n_draws, seed), central(specs)

        def shares(values, n):
            f_lu = np.column_stack([values[f"{edition}.long_term_cultivated.{c}"] for c in self.classes])
            f_sa = np.column_stack([values[f"{edition}.set_aside.{c}"] for c in self.classes])
            return np.column_stack([set_aside_share(f_lu, f_sa), np.ones(n)])

        return shares({k: np.atleast_1d(v) for k, v in means.items()}, 1)[0], shares(drawn, n_draws)
