"""GSOCseq-style sequestration potential per cell with RothC-26.3, in the phases of FAO's GSOCseq technical manual
(FAO 2020, section 5.4.1-5.4.3; the GSP's scripts, FAO-SID/GSOCseq-scripts v1.2, `8_ROTH_C/11-13`):

1. Spin-up: IOM from the current stock (Falloon et al. 1998) and the annual plant input that holds that stock in
   equilibrium under the spin-up climate (manual eq. 5.1), solved from the periodic steady state of a unit input
   (RothC is linear in inputs) instead of 10,000-year runs.
   NPP check: that equilibrium input against the climatic NPP of the spin-up climate (MIAMI, Lieth 1975; manual
   eq. 6.6-6.9). Where it exceeds `max_input_share_of_npp` x NPP the equilibrium assumption, not the stock, is
   dropped: the input is capped there and the runs start from the stock (with the equilibrium's pool partition),
   so the model moves toward the lower equilibrium of the input the climate can grow.
2. Warm-up (the manual's "short spin-up", section 5.4.2; inputs by eq. 6.4-6.5), only when a year-by-year climate
   series is given: its years in order from the spin-up pools, each year's input = the (capped) equilibrium input x
   NPP(year) / NPP(spin-up).
3. Forward: `horizon_yr` years of business as usual (BAU: the mean warm-up input, or the capped equilibrium input
   without a warm-up) and SSM1-3 (BAU input + 5 / 10 / 20 %, section 6.5 eq. 6.14) on the forward climate: the series'
   mean year (GSOCseq: 2001-2020 averages), or the spin-up climate itself without a series. Stock changes are
   counted from the start of the forward runs.
   Warming response (not part of BAU, a labelled sensitivity): BAU on the forward climate warmed by
   `warming_response_degc` in every month, its input scaled by the change in NPP, minus BAU.

Monthly soil cover is the vegetated share of each month: from NDVI when given (share of observations above the
threshold, manual eq. 6.3), else a crop-calendar rule (`growing_months`). A paddy-rice cell's rate modifiers are
multiplied by `paddy_rate_factor` in every month and phase (GSOCseq scripts: fPR = 0.4). Cells the procedure cannot
or must not model get an exclusion reason instead of a result.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from affine import Affine

from soil_pipeline.science import rothc
from soil_pipeline.science.aggregation import ratio
from soil_pipeline.science.distinct import distinct_cells
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
# Fixed-width strings: comparing a status array with a reason runs in C (an object array compares per element).
STATUS_DTYPE = f"<U{max(len(status) for status in (MODELLED, *EXCLUSIONS))}"
BAU = "bau"
# MIAMI NPP in g dry matter/m2/yr to t/ha/yr (the carbon fraction of dry matter is a scenario parameter).
G_PER_M2_TO_T_PER_HA = 0.01


@dataclass(frozen=True)
class RothCScenarios:
    """The scenario file (data/rothc/gsocseq_scenarios.yaml) as plain values."""

    version: int
    horizon_yr: int
    depth_cm: float
    dpm_rpm_ratio: float
    conventions: rothc.Conventions
    cover_without_ndvi: str
    bau_input_follows_npp: bool
    npp_carbon_fraction: float
    max_input_share_of_npp: float
    warming_response_degc: float
    growing_month_min_tmp_degc: float
    growing_month_min_pre_to_pet: float
    growing_month_stored_water_mm: float
    paddy_rate_factor: float
    paddy_min_share: float
    max_sand_pct: float
    max_soc_t_c_per_ha: float
    ssm_input_increase: dict[str, float]

    @classmethod
    def from_dict(cls, raw: dict) -> "RothCScenarios":
        growing, paddy = raw["crop_calendar"], raw["paddy_rice"]
        return cls(
            version=int(raw["version"]),
            horizon_yr=int(raw["horizon_yr"]),
            depth_cm=float(raw["depth_cm"]),
            dpm_rpm_ratio=float(raw["dpm_rpm_ratio"]),
            conventions=rothc.Conventions(
                float(raw["evaporation_factor"]), bool(raw["reset_deficit_yearly"]), bool(raw["bare_deficit_scaled"])
            ),
            cover_without_ndvi=str(raw["cover_without_ndvi"]),
            bau_input_follows_npp=bool(raw["bau_input_follows_npp"]),
            npp_carbon_fraction=float(raw["npp_carbon_fraction"]),
            max_input_share_of_npp=float(raw["max_input_share_of_npp"]),
            warming_response_degc=float(raw["warming_response_degc"]),
            growing_month_min_tmp_degc=float(growing["min_temperature_degc"]),
            growing_month_min_pre_to_pet=float(growing["min_precipitation_to_pet"]),
            growing_month_stored_water_mm=float(growing["stored_water_mm"]),
            paddy_rate_factor=float(paddy["rate_factor"]),
            paddy_min_share=float(paddy["min_share"]),
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
class MonthlyClimate:
    """Consecutive months (axis 0, January first) of n cells: mean temperature degC, precipitation and PET
    mm/month. A climatology has 12 months; a year-by-year series 12 x years."""

    tmp_degc: np.ndarray
    pre_mm: np.ndarray
    pet_mm: np.ndarray

    @property
    def years(self) -> int:
        return self.tmp_degc.shape[0] // rothc.MONTHS_PER_YEAR

    def complete(self) -> np.ndarray:
        """Cells (n,) with every month of every variable."""
        return np.all([np.isfinite(v).all(0) for v in (self.tmp_degc, self.pre_mm, self.pet_mm)], axis=0)

    def cells(self, idx) -> "MonthlyClimate":
        return MonthlyClimate(*(np.asarray(v[:, idx], dtype="float64") for v in self.arrays()))

    def mean_year(self) -> "MonthlyClimate":
        """The climatology of the series: each calendar month's mean over the years."""
        shape = (self.years, rothc.MONTHS_PER_YEAR, -1)
        return MonthlyClimate(*(v.reshape(shape).mean(axis=0) for v in self.arrays()))

    def warmed(self, degc: float) -> "MonthlyClimate":
        return replace(self, tmp_degc=self.tmp_degc + degc)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.tmp_degc, self.pre_mm, self.pet_mm


@dataclass(frozen=True)
class CellInputs:
    """Per-cell inputs (n cells): SOC stock t C/ha, clay and sand %, the spin-up climatology (12 months); optional:
    each month's vegetated share (12, n; from NDVI, NaN where unknown), the paddy-rice share of the cell (n) and a
    year-by-year climate series for the warm-up. Missing values are NaN."""

    soc_t_c_per_ha: np.ndarray
    clay_pct: np.ndarray
    sand_pct: np.ndarray
    climate: MonthlyClimate
    vegetated_share: np.ndarray | None = None
    paddy_share: np.ndarray | None = None
    warm_up_climate: MonthlyClimate | None = None

    def cells(self, idx) -> "CellInputs":
        optional = {
            "vegetated_share": None if self.vegetated_share is None else self.vegetated_share[:, idx],
            "paddy_share": None if self.paddy_share is None else self.paddy_share[idx],
            "warm_up_climate": None if self.warm_up_climate is None else self.warm_up_climate.cells(idx),
        }
        return CellInputs(
            self.soc_t_c_per_ha[idx], self.clay_pct[idx], self.sand_pct[idx], self.climate.cells(idx), **optional
        )


@dataclass(frozen=True)
class CellResults:
    """Per cell (NaN where excluded): the equilibrium input, the climatic NPP and the input the runs start from
    (t C/ha/yr), the stock at the start of the forward runs (after the warm-up), at the horizon for each scenario
    (n_scenarios, n) and for BAU on the warmed forward climate, and the last SSM's gain over BAU had the input not
    been capped (t C/ha); whether the cell was run as paddy rice and
    whether its cover came from the crop-calendar rule."""

    status: np.ndarray  # str per cell: MODELLED or an exclusion reason
    equilibrium_input_t_c_per_ha_per_yr: np.ndarray
    npp_t_c_per_ha_per_yr: np.ndarray
    input_t_c_per_ha_per_yr: np.ndarray
    soc_t0_t_c_per_ha: np.ndarray
    soc_final_t_c_per_ha: np.ndarray
    soc_warmed_t_c_per_ha: np.ndarray
    ssm_gain_uncapped_t_c_per_ha: np.ndarray  # last SSM minus BAU at the horizon without the NPP cap
    paddy: np.ndarray
    crop_calendar_cover: np.ndarray

    @property
    def input_above_npp(self) -> np.ndarray:
        """Modelled cells whose equilibrium input exceeds the cap (share of NPP): their input was capped."""
        return self.equilibrium_input_t_c_per_ha_per_yr > self.input_t_c_per_ha_per_yr


def miami_npp(mean_temperature_degc, annual_precipitation_mm):
    """Climatic NPP of the MIAMI model (Lieth 1975), g DM/m2/yr: the lesser of 3000 / (1 + exp(1.315 - 0.119 T))
    and 3000 (1 - exp(-0.000664 P)) (GSOCseq manual eq. 6.6-6.8)."""
    by_temperature = 3000.0 / (1.0 + np.exp(1.315 - 0.119 * np.asarray(mean_temperature_degc, dtype="float64")))
    by_precipitation = 3000.0 * (1.0 - np.exp(-0.000664 * np.asarray(annual_precipitation_mm, dtype="float64")))
    return np.minimum(by_temperature, by_precipitation)


def climate_npp_t_c(climate: MonthlyClimate, carbon_fraction: float) -> np.ndarray:
    """MIAMI NPP (t C/ha/yr) of each year of `climate` (years, n): g DM/m2/yr x 0.01 x the carbon fraction of dry
    matter (manual eq. 6.9: 0.48)."""
    shape = (climate.years, rothc.MONTHS_PER_YEAR, -1)
    tmp, pre = climate.tmp_degc.reshape(shape), climate.pre_mm.reshape(shape)
    return miami_npp(tmp.mean(axis=1), pre.sum(axis=1)) * G_PER_M2_TO_T_PER_HA * carbon_fraction


COVER_RULES = ("fao_growing_period", "covered_all_year")


def growing_months(climate: MonthlyClimate, min_tmp_degc: float, min_pre_to_pet: float, stored_water_mm: float):
    """Crop-calendar cover (12, n), True in a month of FAO's growing period (FAO 1978, Report on the Agro-ecological
    Zones project vol. 1, World Soil Resources Report 48/1): mean temperature >= `min_tmp_degc` (5) and either
    precipitation >= `min_pre_to_pet` (0.5) x PET, or the month still supplied by water stored in the soil (FAO adds
    the time to evapotranspire 100 mm of excess precipitation): a bucket of `stored_water_mm` filled by P - PET,
    and a drier month counts when its storage at the start covers at least half its deficit PET - P. Outside the
    growing period, between harvest and sowing, the soil is bare."""
    tmp, pre, pet = climate.tmp_degc, climate.pre_mm, climate.pet_mm
    storage = _periodic_storage(pre - pet, stored_water_mm)
    return (tmp >= min_tmp_degc) & ((pre >= min_pre_to_pet * pet) | (storage >= 0.5 * (pet - pre)))


def _periodic_storage(balance: np.ndarray, capacity: float) -> np.ndarray:
    """Water stored (mm) at the start of each month (12, n) of a climatological year repeated, in a bucket of
    `capacity` filled and emptied by the monthly `balance` (P - PET). The periodic year touches the top when the
    annual balance is >= 0, else the bottom; starting there, the second year is periodic."""
    stored = np.where(balance.sum(axis=0) >= 0, capacity, 0.0)
    starts = np.empty(balance.shape)
    for _ in range(2):
        for m in range(balance.shape[0]):
            starts[m] = stored
            stored = np.clip(stored + balance[m], 0.0, capacity)
    return starts


def monthly_cover(cells: CellInputs, scenarios: RothCScenarios) -> tuple[np.ndarray, np.ndarray]:
    """Each month's vegetated share (12, n) and the cells (n) whose cover comes from the rule without NDVI (FAO's
    growing period, or covered all year): those without an NDVI-derived share in every month (all of them when none
    is given). The same 12 months serve every phase, as in GSOCseq."""
    if scenarios.cover_without_ndvi not in COVER_RULES:
        raise ValueError(f"cover_without_ndvi must be one of {COVER_RULES}, not {scenarios.cover_without_ndvi!r}")
    if scenarios.cover_without_ndvi == "covered_all_year":
        rule = np.ones(cells.climate.tmp_degc.shape, dtype=bool)
    else:
        rule = growing_months(
            cells.climate,
            scenarios.growing_month_min_tmp_degc,
            scenarios.growing_month_min_pre_to_pet,
            scenarios.growing_month_stored_water_mm,
        )
    if cells.vegetated_share is None:
        return rule.astype("float64"), np.ones(rule.shape[1], dtype=bool)
    from_rule = ~np.isfinite(cells.vegetated_share).all(axis=0)
    return np.where(from_rule, rule, cells.vegetated_share), from_rule


def paddy_cells(cells: CellInputs, scenarios: RothCScenarios) -> np.ndarray:
    """Cells (n) run as paddy rice: paddy share >= `paddy_min_share` (the cell's predominant use); none without a
    paddy-rice raster."""
    if cells.paddy_share is None:
        return np.zeros(cells.soc_t_c_per_ha.shape, dtype=bool)
    return np.nan_to_num(cells.paddy_share, nan=0.0) >= scenarios.paddy_min_share


def exclusion_status(cells: CellInputs, scenarios: RothCScenarios) -> np.ndarray:
    soc, clay, sand = cells.soc_t_c_per_ha, cells.clay_pct, cells.sand_pct
    climate_ok = cells.climate.complete()
    if cells.warm_up_climate is not None:
        climate_ok &= cells.warm_up_climate.complete()
    tests = {
        "no_soc_stock": ~(soc > 0),
        "soc_above_max": soc > scenarios.max_soc_t_c_per_ha,
        "no_climate": ~climate_ok,
        "no_clay": ~np.isfinite(clay),
        "sand_above_max": sand > scenarios.max_sand_pct,
        # every month below -5 degC: RothC decomposes nothing, no input can hold any stock
        "no_decomposition": climate_ok & ~(cells.climate.tmp_degc >= -5.0).any(0),  # NaN >= -5 is False
    }
    status = np.full(soc.shape, MODELLED, dtype=STATUS_DTYPE)
    for reason in reversed(EXCLUSIONS):
        status[tests[reason]] = reason
    return status


def run_cells(cells: CellInputs, scenarios: RothCScenarios, chunk: int = 100_000) -> CellResults:
    """All phases for each modelled cell, in chunks of cells to bound memory."""
    status = exclusion_status(cells, scenarios)
    ok = np.flatnonzero(status == MODELLED)
    n, n_scen = status.size, len(scenarios.names)
    per_cell = {name: np.full(n, np.nan) for name in ("equilibrium", "npp", "input", "t0", "warmed", "uncapped")}
    final = np.full((n_scen, n), np.nan)
    paddy, crop_calendar = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for start in range(0, ok.size, chunk):
        idx = ok[start : start + chunk]
        part = _run_chunk(cells.cells(idx), scenarios)
        for name, values in per_cell.items():
            values[idx] = part[name]
        final[:, idx], paddy[idx], crop_calendar[idx] = part["final"], part["paddy"], part["crop_calendar"]
    return CellResults(
        status,
        per_cell["equilibrium"],
        per_cell["npp"],
        per_cell["input"],
        per_cell["t0"],
        final,
        per_cell["warmed"],
        per_cell["uncapped"],
        paddy,
        crop_calendar,
    )


def _run_chunk(cells: CellInputs, scenarios: RothCScenarios) -> dict[str, np.ndarray]:
    # 1. spin-up and NPP check: what depends on the spin-up inputs alone, once per distinct set of them (`sets`: each
    # cell's); copied to the cells by fancy indexing, which lays each cell's values out together as `CellInputs.cells`
    # and `rothc.steady_state` do (numpy's sums along an axis depend on the layout). Year maps stay per set.
    shared, sets = _spin_up(cells, scenarios, with_warmed=cells.warm_up_climate is None)

    def per_cell(values):
        return values if sets is None else values[..., sets]

    unit, npp = per_cell(shared["unit"]), per_cell(shared["npp"])
    iom = rothc.falloon_iom(cells.soc_t_c_per_ha)
    equilibrium = (cells.soc_t_c_per_ha - iom) / unit.sum(axis=0)
    start_input = np.minimum(equilibrium, scenarios.max_input_share_of_npp * npp)
    pools = unit * equilibrium  # the stock, partitioned as in equilibrium, whatever the input
    # 2. warm-up over the year-by-year series, when given: BAU input = start input x mean NPP ratio of its years
    forward, forward_sets, bau_ratio = (shared["spin_up"], shared["spin_up_inputs"]), sets, np.ones_like(npp)
    if cells.warm_up_climate is None:
        warmed_ratio, warmed_year = per_cell(shared["warmed_ratio"]), (shared["warmed"], shared["warmed_inputs"])
        warmed_sets = sets
    else:
        model = _Model(cells.clay_pct, per_cell(shared["vegetated"]), per_cell(shared["rate_factor"]), scenarios)
        pools, bau_ratio = model.warm_up(pools, start_input, cells.climate, cells.warm_up_climate)
        forward_climate = cells.warm_up_climate.mean_year()
        moisture = model.moisture(forward_climate)
        forward, forward_sets = model.year(model.rates(forward_climate, moisture)), None
        warmed_climate = forward_climate.warmed(scenarios.warming_response_degc)
        warmed_ratio = model.npp_ratio(warmed_climate, forward_climate)[0]
        warmed_year, warmed_sets = model.year(model.rates(warmed_climate, moisture)), None
    # 3. forward runs, and BAU on the warmed forward climate (warming changes the temperature modifier only)
    bau_input = start_input * bau_ratio
    final = _forward(pools, scenarios.input_factors[:, None] * bau_input, forward, forward_sets, scenarios)
    warmed = _forward(pools, (bau_input * warmed_ratio)[None], warmed_year, warmed_sets, scenarios)[0]
    # SSM minus BAU = the run of the extra input alone from empty pools (linearity): without the cap, from the
    # equilibrium input
    extra = (scenarios.input_factors[-1] - 1.0) * equilibrium * bau_ratio
    uncapped = _forward(np.zeros_like(pools), extra[None], forward, forward_sets, scenarios)[0]
    return {
        "equilibrium": equilibrium,
        "npp": npp,
        "input": start_input,
        "t0": cells.soc_t_c_per_ha if cells.warm_up_climate is None else pools.sum(axis=0) + iom,
        "final": final + iom,
        "warmed": warmed + iom,
        "uncapped": uncapped,
        "paddy": per_cell(shared["paddy"]),
        "crop_calendar": per_cell(shared["crop_calendar"]),
    }


def _forward(pools, inputs, year, sets, scenarios: RothCScenarios) -> np.ndarray:
    """Active carbon (scenarios, n) after `horizon_yr` repetitions of `year` (from `_Model.year`; cell c's map
    sets[c] of it with `sets`) from `pools`, one run per row of `inputs` (scenarios, n)."""
    start = np.broadcast_to(pools, (len(inputs),) + pools.shape)
    return rothc.run_years(start, year, inputs, scenarios.horizon_yr, sets).sum(axis=-2)


def _spin_up(cells: CellInputs, scenarios: RothCScenarios, with_warmed: bool) -> tuple[dict, np.ndarray | None]:
    """What depends on a cell's spin-up inputs alone (climate, clay, vegetated and paddy shares): the cover, paddy
    flag and rate factor, the spin-up year (`_Model.year`), its unit steady state and NPP, and `with_warmed` the year
    and NPP ratio of the spin-up climate warmed; computed once per distinct set of inputs (cells of one climate pixel
    and soil share them): (the values per set, the set of each cell), or (the values per cell, None)."""
    first, sets = distinct_cells(_spin_up_inputs(cells))
    part = cells if first is None else cells.cells(first)
    vegetated, crop_calendar = monthly_cover(part, scenarios)
    paddy = paddy_cells(part, scenarios)
    rate_factor = np.where(paddy, scenarios.paddy_rate_factor, 1.0)
    model = _Model(part.clay_pct, vegetated, rate_factor, scenarios)
    moisture = model.moisture(part.climate)
    year, inputs = model.year(model.rates(part.climate, moisture))
    shared = {"vegetated": vegetated, "crop_calendar": crop_calendar, "paddy": paddy, "rate_factor": rate_factor}
    shared.update(spin_up=year, spin_up_inputs=inputs, unit=rothc.steady_state((year, inputs)))
    shared["npp"] = climate_npp_t_c(part.climate, scenarios.npp_carbon_fraction)[0]
    if with_warmed:
        warmed_climate = part.climate.warmed(scenarios.warming_response_degc)
        shared["warmed_ratio"] = model.npp_ratio(warmed_climate, part.climate)[0]
        shared["warmed"], shared["warmed_inputs"] = model.year(model.rates(warmed_climate, moisture))
    return shared, sets


def _spin_up_inputs(cells: CellInputs) -> list[np.ndarray]:
    """The per-cell inputs `_spin_up` reads, each (..., n)."""
    inputs = [*cells.climate.arrays(), cells.clay_pct]
    return inputs + [v for v in (cells.vegetated_share, cells.paddy_share) if v is not None]


@dataclass(frozen=True)
class _Model:
    """RothC for one chunk of cells: their clay, monthly cover, paddy factor and the scenario conventions."""

    clay: np.ndarray
    vegetated: np.ndarray
    rate_factor: np.ndarray
    scenarios: RothCScenarios

    def _args(self, climate: MonthlyClimate):
        vegetated = np.tile(self.vegetated, (climate.years, 1))
        args = (climate.tmp_degc, climate.pre_mm, climate.pet_mm, self.clay, self.scenarios.depth_cm, vegetated)
        return args + (self.scenarios.conventions,)

    def moisture(self, climatology: MonthlyClimate) -> np.ndarray:
        """Moisture rate modifiers (12, n) of the climatology repeated."""
        return rothc.climatology_moisture(*self._args(climatology))

    def rates(self, climatology: MonthlyClimate, moisture: np.ndarray) -> np.ndarray:
        """Rate modifiers (12, n) of the climatology repeated, given its `moisture()` (or that of a climatology with
        the same rain and PET: the moisture modifier does not depend on temperature)."""
        return rothc.combined_rates(climatology.tmp_degc, moisture, self.vegetated, self.rate_factor)

    def npp_ratio(self, climate: MonthlyClimate, reference: MonthlyClimate) -> np.ndarray:
        """NPP(climate) / NPP(reference) per year of `climate` (years, n) when BAU inputs follow NPP, else 1; 1 where
        the reference grows nothing (no rain, no climatic NPP in either)."""
        fraction = self.scenarios.npp_carbon_fraction
        npp, base = climate_npp_t_c(climate, fraction), climate_npp_t_c(reference, fraction)[0]
        if not self.scenarios.bau_input_follows_npp:
            return np.ones_like(npp)
        return np.divide(npp, base, out=np.ones_like(npp), where=base > 0)

    def warm_up(self, pools, start_input, spin_up: MonthlyClimate, series: MonthlyClimate):
        """Pools after the series' years in order, each with its own climate and input start_input x NPP(year) /
        NPP(spin-up) (manual eq. 6.4-6.5; the deficit starts from the spin-up's), and the mean of the years' NPP
        ratios (GSOCseq's BAU input for the forward runs is the mean warm-up input)."""
        deficit = rothc.periodic_deficit(*self._args(spin_up))
        rates, _ = rothc.monthly_rates(*self._args(series), deficit, self.rate_factor)
        ratios = self.npp_ratio(series, spin_up)
        for y in range(series.years):
            months = slice(y * rothc.MONTHS_PER_YEAR, (y + 1) * rothc.MONTHS_PER_YEAR)
            pools = rothc.run_years(pools, self.year(rates[months]), start_input * ratios[y], 1)
        return pools, ratios.mean(axis=0)

    def year(self, rates) -> tuple[np.ndarray, np.ndarray]:
        """The year of rate modifiers `rates` (12, n) as an affine map of the pools (`rothc.annual_map`)."""
        return rothc.annual_map(rates, self.clay, self.scenarios.dpm_rpm_ratio)


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
    out = np.take(flat, np.maximum(index, 0), axis=-1).astype("float64")
    out[..., index < 0] = np.nan
    return out


def cell_quantities(
    results: CellResults, scenarios: RothCScenarios, soc: np.ndarray, cropland_ha: np.ndarray, clay_filled
) -> dict[str, np.ndarray]:
    """Per-cell sums for the regional table: areas (ha), stocks and changes (t C), inputs and NPP (t C/yr)."""
    ok = results.status == MODELLED
    above = ok & results.input_above_npp

    def on_modelled(values, where=ok):
        return np.where(where, values * cropland_ha, 0.0)

    t0 = results.soc_t0_t_c_per_ha
    finals = zip(scenarios.names, results.soc_final_t_c_per_ha, strict=True)
    change = {name: on_modelled(final - t0) for name, final in finals}
    ssm = list(scenarios.ssm_input_increase)[-1]
    gain = change[ssm] - change[BAU]
    uncapped = on_modelled(results.ssm_gain_uncapped_t_c_per_ha)
    return {
        "cropland_area_ha": cropland_ha,
        "modelled_cropland_area_ha": on_modelled(1.0),
        "clay_filled_cropland_area_ha": on_modelled(1.0, ok & clay_filled),
        **{f"excluded_{r}_ha": np.where(results.status == r, cropland_ha, 0.0) for r in EXCLUSIONS},
        "crop_calendar_cover_area_ha": on_modelled(1.0, ok & results.crop_calendar_cover),
        "paddy_rice_area_ha": on_modelled(1.0, ok & results.paddy),
        "cropland_soc_stock_2010_t_c": np.where(soc > 0, soc * cropland_ha, 0.0),
        "modelled_cropland_soc_stock_t_c": on_modelled(soc),
        "equilibrium_carbon_input_t_c_per_yr": on_modelled(results.equilibrium_input_t_c_per_ha_per_yr),
        "carbon_input_t_c_per_yr": on_modelled(results.input_t_c_per_ha_per_yr),
        "miami_npp_t_c_per_yr": on_modelled(results.npp_t_c_per_ha_per_yr),
        "input_above_npp_area_ha": on_modelled(1.0, above),
        "warm_up_stock_change_t_c": on_modelled(t0 - soc),
        **{f"{name}_stock_change_t_c": values for name, values in change.items()},
        "bau_warming_response_t_c": on_modelled(results.soc_warmed_t_c_per_ha - results.soc_final_t_c_per_ha[0]),
        "input_above_npp_bau_stock_change_t_c": np.where(above, change[BAU], 0.0),
        "ssm_gain_t_c": gain,
        "input_above_npp_ssm_gain_t_c": np.where(above, gain, 0.0),
        "input_above_npp_ssm_gain_uncapped_t_c": np.where(above, uncapped, 0.0),
        "ssm_gain_uncapped_t_c": uncapped,
    }


def quantity_names(scenarios: RothCScenarios) -> list[str]:
    """The keys of `cell_quantities`, in order."""
    names = ["cropland_area_ha", "modelled_cropland_area_ha", "clay_filled_cropland_area_ha"]
    names += [f"excluded_{reason}_ha" for reason in EXCLUSIONS]
    names += ["crop_calendar_cover_area_ha", "paddy_rice_area_ha", "cropland_soc_stock_2010_t_c"]
    names += ["modelled_cropland_soc_stock_t_c", "equilibrium_carbon_input_t_c_per_yr", "carbon_input_t_c_per_yr"]
    names += ["miami_npp_t_c_per_yr", "input_above_npp_area_ha", "warm_up_stock_change_t_c"]
    names += [f"{name}_stock_change_t_c" for name in scenarios.names]
    names += ["bau_warming_response_t_c", "input_above_npp_bau_stock_change_t_c", "ssm_gain_t_c"]
    names += ["input_above_npp_ssm_gain_t_c"]
    return names + ["input_above_npp_ssm_gain_uncapped_t_c", "ssm_gain_uncapped_t_c"]


def regional_table(
    sums: pd.DataFrame, scenarios: RothCScenarios, target_4p1000_tg_c_per_yr, cropland_target_4p1000_tg_c_per_yr
) -> pd.DataFrame:
    """Regional rows from zone sums of `cell_quantities`: areas (Mha), per modelled hectare the equilibrium and
    capped inputs and NPP, stock change over the horizon and rates for BAU and each SSM (t C/ha, t C/ha/yr per
    modelled hectare; Pg C/yr), SSM minus BAU and its share of the region's 4p1000 targets (all land, cropland),
    the warming response, and the share of cropland and of the SSM gain whose equilibrium input exceeded NPP."""
    table = sums[["region_type", "region_id", "region_name"]].copy()
    modelled = sums["modelled_cropland_area_ha"].to_numpy()
    years = scenarios.horizon_yr

    def per_modelled_ha(name):
        return ratio(sums[name], modelled)

    table["cropland_area_mha"] = sums["cropland_area_ha"] / HA_PER_MHA
    table["modelled_cropland_area_mha"] = modelled / HA_PER_MHA
    for reason in EXCLUSIONS:
        table[f"excluded_{reason}_mha"] = sums[f"excluded_{reason}_ha"] / HA_PER_MHA
    table["clay_filled_cropland_area_mha"] = sums["clay_filled_cropland_area_ha"] / HA_PER_MHA
    table["crop_calendar_cover_area_mha"] = sums["crop_calendar_cover_area_ha"] / HA_PER_MHA
    table["paddy_rice_area_mha"] = sums["paddy_rice_area_ha"] / HA_PER_MHA
    table["modelled_cropland_soc_stock_pg_c"] = sums["modelled_cropland_soc_stock_t_c"] / T_PER_PG
    table["equilibrium_carbon_input_t_c_per_modelled_ha_per_yr"] = per_modelled_ha(
        "equilibrium_carbon_input_t_c_per_yr"
    )
    table["miami_npp_t_c_per_modelled_ha_per_yr"] = per_modelled_ha("miami_npp_t_c_per_yr")
    table["carbon_input_t_c_per_modelled_ha_per_yr"] = per_modelled_ha("carbon_input_t_c_per_yr")
    table["input_above_npp_cropland_area_mha"] = sums["input_above_npp_area_ha"] / HA_PER_MHA
    table["input_above_npp_share_of_modelled_cropland_pct"] = 100.0 * per_modelled_ha("input_above_npp_area_ha")
    table["target_4p1000_tg_c_per_yr"] = np.asarray(target_4p1000_tg_c_per_yr, dtype=float)
    table["cropland_target_4p1000_tg_c_per_yr"] = np.asarray(cropland_target_4p1000_tg_c_per_yr, dtype=float)
    table["warm_up_stock_change_t_c_per_modelled_ha"] = per_modelled_ha("warm_up_stock_change_t_c")
    change = {name: sums[f"{name}_stock_change_t_c"].to_numpy() for name in scenarios.names}
    for name in scenarios.names:
        table[f"{name}_stock_change_t_c_per_modelled_ha"] = ratio(change[name], modelled)
        table[f"{name}_rate_t_c_per_modelled_ha_per_yr"] = ratio(change[name], modelled) / years
        table[f"{name}_rate_pg_c_per_yr"] = change[name] / years / T_PER_PG
    table["bau_warming_response_rate_t_c_per_modelled_ha_per_yr"] = per_modelled_ha("bau_warming_response_t_c") / years
    table["bau_warming_response_rate_pg_c_per_yr"] = sums["bau_warming_response_t_c"] / years / T_PER_PG
    for name in scenarios.ssm_input_increase:
        gain = change[name] - change[BAU]
        table[f"{name}_minus_bau_rate_t_c_per_modelled_ha_per_yr"] = ratio(gain, modelled) / years
        table[f"{name}_minus_bau_rate_pg_c_per_yr"] = gain / years / T_PER_PG
        gain_tg = gain / years / T_PER_TG
        table[f"{name}_minus_bau_share_of_4p1000_all_land_pct"] = 100.0 * ratio(
            gain_tg, table["target_4p1000_tg_c_per_yr"]
        )
        table[f"{name}_minus_bau_share_of_4p1000_cropland_pct"] = 100.0 * ratio(
            gain_tg, table["cropland_target_4p1000_tg_c_per_yr"]
        )
    ssm = list(scenarios.ssm_input_increase)[-1]
    table[f"{ssm}_minus_bau_uncapped_rate_pg_c_per_yr"] = sums["ssm_gain_uncapped_t_c"] / years / T_PER_PG
    table["input_above_npp_bau_rate_pg_c_per_yr"] = sums["input_above_npp_bau_stock_change_t_c"] / years / T_PER_PG
    # per-cell gains summed alike on both sides, so a share never exceeds 100 % by rounding
    table["input_above_npp_share_of_ssm_gain_pct"] = 100.0 * ratio(
        sums["input_above_npp_ssm_gain_t_c"], sums["ssm_gain_t_c"]
    )
    table["input_above_npp_share_of_ssm_gain_uncapped_pct"] = 100.0 * ratio(
        sums["input_above_npp_ssm_gain_uncapped_t_c"], sums["ssm_gain_uncapped_t_c"]
    )
    return table
