"""RothC-26.3 (Coleman & Jenkinson 1996, model description 2014), vectorised over cells with numpy.

Monthly step of the four active pools (DPM, RPM, BIO, HUM, t C/ha) of many cells at once; IOM is inert. The step is
the one of the official Python translation (RothC_Py, Rothamsted Research, Apache-2.0): each pool decays by
exp(-a b c k / 12), the decomposed carbon goes to CO2 and to BIO (46 %) and HUM (54 %) in the clay-dependent ratio
x = 1.67 (1.85 + 1.60 exp(-0.0786 clay)), then the month's plant input is split DPM:RPM and farmyard manure
49 % DPM, 49 % RPM, 2 % HUM. Radiocarbon is not modelled.

Three conventions differ between RothC_Py and FAO GSOCseq (whose R scripts call SoilR's `fW.RothC` or a copy):

- evaporation: RothC_Py takes open-pan evaporation and uses 0.75 x Evap; GSOCseq feeds potential
  evapotranspiration with pE = 1 (`Conventions.evaporation_factor`);
- topsoil moisture deficit: RothC_Py carries it from month to month across years; SoilR computes it over each
  year's 12 months starting from no deficit, so it is reset every January (`Conventions.reset_deficit_yearly`);
- bare soil: RothC-26.3 keeps a bare soil's deficit above 0.556 of the covered maximum, the rate modifier still
  scaled on the covered maximum (so a dry bare month decomposes at b >= 0.84); SoilR divides the whole maximum by
  1.8 for a bare month and scales b on that smaller maximum (a dry bare month reaches b = 0.2), as the GSOCseq
  scripts do month by month (`Conventions.bare_deficit_scaled`).

Plant cover is given per month as the vegetated share of the month (1 covered, 0 bare): the cover rate modifier is
c = 1 - 0.4 x share, RothC's 0.6 covered and 1.0 bare at the ends and GSOCseq's NDVI-derived values in between
(GSOCseq scripts v1.2, `4_Veg_Cov_stack.R`); for the moisture deficit a month counts as covered when the share is
at least one half (the scripts' `bare <- c > 0.8`). `rate_factor` multiplies the combined rate modifier of every
month of a cell (GSOCseq's paddy-rice factor).

The model is linear in the carbon inputs for given climate, clay and cover, so the steady state for a periodic
(climatological) year is solved directly from the year's 4 x 4 transfer matrix per cell (`unit_equilibrium`).
"""

from dataclasses import dataclass

import numpy as np

from soil_pipeline.science import rothc_loops

# Decomposition rate constants (per year) of DPM, RPM, BIO, HUM.
RATE_CONSTANTS_PER_YR = np.array([10.0, 0.3, 0.66, 0.02])
BIO_FRACTION = 0.46  # of the carbon going to BIO + HUM
FYM_SPLIT = np.array([0.49, 0.49, 0.0, 0.02])  # farmyard manure into DPM, RPM, BIO, HUM
MONTHS_PER_YEAR = 12
N_POOLS = 4
MIN_RATE_MOISTURE = 0.2
COVERED_RATE = 0.6  # plant-cover rate modifier when the soil is covered (bare: 1)
COVERED_MIN_SHARE = 0.5  # vegetated share of a month from which the moisture deficit is that of covered soil


@dataclass(frozen=True)
class Conventions:
    """The three switches between RothC_Py and GSOCseq (see the module docstring)."""

    evaporation_factor: float
    reset_deficit_yearly: bool
    bare_deficit_scaled: bool = False


ROTHC_PY = Conventions(evaporation_factor=0.75, reset_deficit_yearly=False)
GSOCSEQ = Conventions(evaporation_factor=1.0, reset_deficit_yearly=True, bare_deficit_scaled=True)
# The terms a year adds to each pool (`run_years`): DPM and RPM keep a share of themselves, BIO and HUM take from all.
CANONICAL_TERMS = np.array([[True, False, False, False], [False, True, False, False], [True] * 4, [True] * 4])
BARE_DEFICIT_DIVISOR = 1.8  # SoilR: a bare soil's maximum deficit is the covered one / 1.8 (RothC-26.3: cap 0.556)


def temperature_modifier(temperature_degc):
    """a = 47.91 / (1 + exp(106.06 / (T + 18.27))), 0 below -5 degC."""
    t = np.asarray(temperature_degc, dtype="float64")
    with np.errstate(divide="ignore", over="ignore"):
        a = 47.91 / (np.exp(106.06 / (t + 18.27)) + 1.0)
    return np.where(t < -5.0, 0.0, a)


def max_deficit_mm(clay_pct, depth_cm):
    """Maximum topsoil moisture deficit (negative mm) of a covered soil of this clay content and depth."""
    clay = np.asarray(clay_pct, dtype="float64")
    return -(20.0 + 1.3 * clay - 0.01 * clay * clay) * depth_cm / 23.0


def moisture_step(
    rain_mm, evaporation_mm, covered, deficit_mm, max_deficit, evaporation_factor: float, bare_scaled: bool = False
):
    """One month of the accumulated topsoil moisture deficit: (rate modifier b, new deficit mm, <= 0). A bare
    month: RothC-26.3's cap at 0.556 x `max_deficit`, or with `bare_scaled` SoilR's maximum `max_deficit` / 1.8."""
    balance = rain_mm - evaporation_factor * evaporation_mm
    if bare_scaled:
        max_deficit = _bare_scaled_max(covered, max_deficit)
    deficit = _next_deficit(balance, covered, deficit_mm, max_deficit, bare_scaled)
    return moisture_modifier(deficit, max_deficit), deficit


def _bare_scaled_max(covered, max_deficit):
    """SoilR's maximum deficit of the month: `max_deficit` covered, `max_deficit` / 1.8 bare."""
    return np.where(covered, max_deficit, max_deficit / BARE_DEFICIT_DIVISOR)


def _next_deficit(balance, covered, deficit_mm, max_deficit, bare_scaled: bool):
    """The deficit after a month of water `balance` (rain - evaporation, mm) from `deficit_mm`; `max_deficit` is
    the month's (`_bare_scaled_max`) with `bare_scaled`, else the covered one."""
    wetted = np.minimum(0.0, deficit_mm + balance)
    floor = max_deficit if bare_scaled else np.where(covered, max_deficit, np.minimum(0.556 * max_deficit, deficit_mm))
    return np.maximum(floor, wetted)


def moisture_modifier(deficit, max_deficit):
    """Rate modifier b of a month that ends at `deficit` (mm) with the maximum deficit `max_deficit`: 1 down to
    0.444 x the maximum, then linear to 0.2 at the maximum."""
    one_bar = 0.444 * max_deficit
    b = MIN_RATE_MOISTURE + (1.0 - MIN_RATE_MOISTURE) * (max_deficit - deficit) / (max_deficit - one_bar)
    return np.where(deficit > one_bar, 1.0, b)


def cover_modifier(vegetated):
    """c = 1 - (1 - 0.6) x the month's vegetated share: 0.6 covered (share 1 or True), 1.0 bare (0 or False)."""
    return 1.0 - (1.0 - COVERED_RATE) * np.asarray(vegetated, dtype="float64")


def is_covered(vegetated):
    """Whether the moisture deficit of a month is that of covered soil: vegetated share >= 0.5."""
    return np.asarray(vegetated, dtype="float64") >= COVERED_MIN_SHARE


def humification_shares(clay_pct) -> tuple[np.ndarray, np.ndarray]:
    """Fractions of decomposed carbon going to BIO and HUM (the rest is CO2), from x = CO2 / (BIO + HUM)."""
    x = 1.67 * (1.85 + 1.60 * np.exp(-0.0786 * np.asarray(clay_pct, dtype="float64")))
    return BIO_FRACTION / (x + 1.0), (1.0 - BIO_FRACTION) / (x + 1.0)


def plant_split(dpm_rpm_ratio, n: int | None = None) -> np.ndarray:
    """Shares of plant input into DPM, RPM, BIO, HUM (pools on axis 0), for `n` cells if given."""
    r = np.asarray(dpm_rpm_ratio, dtype="float64")
    r = r if n is None else np.broadcast_to(r, (n,))
    return np.stack([r / (r + 1.0), 1.0 / (r + 1.0), np.zeros_like(r), np.zeros_like(r)])


def _decompose(pools, remaining, to_bio, to_hum) -> np.ndarray:
    """Decomposition of one month without inputs: pools (4, ..., n) keep `remaining` (4, n) of themselves and the
    decomposed carbon goes to BIO and HUM in the shares `to_bio`, `to_hum` (n), the rest to CO2."""
    remaining = remaining.reshape((N_POOLS,) + (1,) * (pools.ndim - 2) + remaining.shape[-1:])
    kept = pools * remaining
    decomposed = pools.sum(axis=0) - kept.sum(axis=0)
    kept[2] += decomposed * to_bio
    kept[3] += decomposed * to_hum
    return kept


def remaining_fraction(rate) -> np.ndarray:
    """Share (4, n) of each pool left after a month at rate modifier `rate` (n): exp(-rate k / 12)."""
    return np.exp(-RATE_CONSTANTS_PER_YR[:, None] * np.atleast_1d(rate) / MONTHS_PER_YEAR)


def _decompose_in_place(pools, remaining, to_bio, to_hum) -> None:
    """`_decompose` of pools (4, k, n), overwriting them: the same operations on the same values."""
    total = pools.sum(axis=0)
    pools *= remaining[:, None, :]
    decomposed = np.subtract(total, pools.sum(axis=0), out=total)
    pools[2] += decomposed * to_bio
    pools[3] += decomposed * to_hum


def step(pools, rate, to_bio, to_hum, plant_c, dpm_rpm_ratio, fym_c=0.0) -> np.ndarray:
    """One month: pools (4, n) or (4,) t C/ha -> new pools. `rate` = a x b x c; inputs in t C/ha for the month."""
    shape = np.shape(pools)
    pools = np.asarray(pools, dtype="float64").reshape(N_POOLS, -1)
    new = _decompose(pools, remaining_fraction(rate), to_bio, to_hum)
    new += plant_split(dpm_rpm_ratio, pools.shape[1]) * plant_c + FYM_SPLIT[:, None] * fym_c
    return new.reshape(shape)


def monthly_rates(
    tmp, rain, evaporation, clay, depth_cm, vegetated, conventions: Conventions, deficit=None, rate_factor=1.0
):
    """Combined rate modifier a x b x c (x `rate_factor`) for each month (axis 0) and the deficit after the last
    month. `vegetated` is each month's vegetated share (or True / False), broadcast to the months.

    Months are consecutive; with `reset_deficit_yearly` the deficit starts from 0 at every 12th month (January when
    month 0 is January). `deficit` is the deficit before the first month (default 0)."""
    moisture, deficit = monthly_moisture(rain, evaporation, clay, depth_cm, vegetated, conventions, deficit)
    return combined_rates(tmp, moisture, vegetated, rate_factor), deficit


def monthly_moisture(rain, evaporation, clay, depth_cm, vegetated, conventions: Conventions, deficit=None):
    """Moisture rate modifier b for each month (axis 0) and the deficit after the last month (as `monthly_rates`).
    It does not depend on temperature."""
    max_def = max_deficit_mm(clay, depth_cm)
    bare = conventions.bare_deficit_scaled
    deficit = np.zeros(np.shape(rain)[1:]) if deficit is None else deficit
    # Everything but the deficit's month-to-month recursion is computed for all months at once (same values).
    covered = is_covered(np.broadcast_to(vegetated, np.shape(rain)))
    balance = rain - conventions.evaporation_factor * evaporation
    max_defs = _bare_scaled_max(covered, max_def) if bare else np.broadcast_to(max_def, np.shape(rain))
    moisture = np.empty(np.shape(rain))
    for m in range(np.shape(rain)[0]):
        if conventions.reset_deficit_yearly and m % MONTHS_PER_YEAR == 0:
            deficit = np.zeros_like(deficit)
        deficit = _next_deficit(balance[m], covered[m], deficit, max_defs[m], bare)
        moisture[m] = moisture_modifier(deficit, max_defs[m])
    return moisture, deficit


def combined_rates(tmp, moisture, vegetated, rate_factor=1.0) -> np.ndarray:
    """a x b x c (x `rate_factor`) for each month (axis 0): a from the temperatures `tmp`, b = `moisture` (from
    `monthly_moisture`), c from the vegetated shares."""
    rates = temperature_modifier(tmp)
    rates *= moisture
    rates *= cover_modifier(vegetated)
    rates *= rate_factor
    return rates


def periodic_deficit(tmp, rain, evaporation, clay, depth_cm, vegetated, conventions: Conventions, max_years=50):
    """Deficit at the end of a climatological year (12, n) repeated until it repeats itself: the deficit a run
    that follows the climatology starts from (0 when the deficit is reset every January)."""
    deficit = np.zeros(np.shape(tmp)[1:])
    if conventions.reset_deficit_yearly:
        return deficit
    for _ in range(max_years):
        _, next_deficit = monthly_moisture(rain, evaporation, clay, depth_cm, vegetated, conventions, deficit)
        if np.array_equal(next_deficit, deficit):
            return deficit
        deficit = next_deficit
    raise RuntimeError(f"moisture deficit not periodic after {max_years} years")


def climatology_moisture(tmp, rain, evaporation, clay, depth_cm, vegetated, conventions: Conventions):
    """Moisture rate modifiers b (12, n) of a climatological year repeated: with carried-over deficit, from the
    periodic one."""
    deficit = periodic_deficit(tmp, rain, evaporation, clay, depth_cm, vegetated, conventions)
    return monthly_moisture(rain, evaporation, clay, depth_cm, vegetated, conventions, deficit)[0]


def climatology_rates(tmp, rain, evaporation, clay, depth_cm, vegetated, conventions: Conventions, rate_factor=1.0):
    """Rate modifiers (12, n) of a climatological year repeated: with carried-over deficit, the periodic one."""
    moisture = climatology_moisture(tmp, rain, evaporation, clay, depth_cm, vegetated, conventions)
    return combined_rates(tmp, moisture, vegetated, rate_factor)


def annual_map(rates, clay, dpm_rpm_ratio, input_shares=None) -> tuple[np.ndarray, np.ndarray]:
    """The year as an affine map of the pools, per cell: end[i] = sum_j A[i, j] start[j] + u[i] x annual input,
    with A (4, 4, n) and u (4, n) the year-end pools from 1 t C/ha of plant input on empty pools. `rates` (12, n)
    are the months' rate modifiers; `input_shares` (12,) the share of the input added each month, evenly spread
    by default. It composes the twelve monthly steps (`step`), so a run of whole years is one product per year."""
    to_bio, to_hum = humification_shares(clay)
    n = rates.shape[1]
    shares = np.full(MONTHS_PER_YEAR, 1.0 / MONTHS_PER_YEAR) if input_shares is None else input_shares
    split = plant_split(dpm_rpm_ratio, n)
    # Columns 0-3: the year's map of the pools (from the identity); column 4: the pools from the inputs. One
    # `_decompose` of all five columns, in place, computes each column as its own would.
    state = np.zeros((N_POOLS, N_POOLS + 1, n))
    state[:, :N_POOLS] = np.eye(N_POOLS)[:, :, None]
    for m in range(MONTHS_PER_YEAR):
        _decompose_in_place(state, remaining_fraction(rates[m]), to_bio, to_hum)
        state[:, N_POOLS] += split * shares[m]
    return state[:, :N_POOLS], state[:, N_POOLS]


def unit_equilibrium(rates, clay, dpm_rpm_ratio, input_shares=None) -> np.ndarray:
    """Pools (4, n) at the end of the 12th month in the periodic steady state for 1 t C/ha/yr of plant input
    (arguments as `annual_map`). Scale the result by the annual input: the model is linear in it."""
    return steady_state(annual_map(rates, clay, dpm_rpm_ratio, input_shares))


def steady_state(year_map: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Year-end pools (4, n) that `year_map` (from `annual_map`) with 1 t C/ha/yr maps onto themselves."""
    year, from_inputs = year_map
    system = np.eye(N_POOLS) - year.transpose(2, 0, 1)
    return np.linalg.solve(system, from_inputs.T[..., None])[..., 0].T


def run_years(pools, year_map: tuple[np.ndarray, np.ndarray], annual_input, years: int, maps=None) -> np.ndarray:
    """Pools (..., 4, n) after `years` repetitions of the year `year_map` (from `annual_map`) from `pools`, with
    `annual_input` t C/ha/yr (broadcastable to (..., n)). With `maps` (n), cell c follows the year map maps[c] of
    `year_map`'s (cells sharing a year share its map)."""
    year, from_inputs = year_map
    # Each pool's sum in the order added + j = 0..3, as the full sum, but without the terms of a zero coefficient
    # off the diagonal: DPM and RPM receive nothing from the other pools. Adding 0 x a finite pool (+-0.0) leaves a
    # sum unchanged unless that sum is -0.0; pools and inputs are >= +0 here, so the values are the full sum's.
    terms = year.reshape(N_POOLS * N_POOLS, -1).any(axis=1).reshape(N_POOLS, N_POOLS) | np.eye(N_POOLS, dtype=bool)
    if years and (terms == CANONICAL_TERMS).all():  # the compiled loop: the same sums, in registers
        maps = np.arange(year.shape[-1]) if maps is None else maps
        annual = np.asarray(annual_input, dtype="float64")
        shape = np.broadcast_shapes(annual.shape[:-1] + (1, annual.shape[-1]), (N_POOLS, maps.size))
        annual = np.broadcast_to(annual[..., None, :], shape)[..., 0, :].reshape(-1, maps.size)
        start = np.broadcast_to(pools, shape).reshape(-1, N_POOLS, maps.size)
        # C-contiguous, writable float64 (int64 maps) whatever the caller's views: the loop compiles for one signature
        args = [_c_writable(v, "float64") for v in (start, year, from_inputs, annual)] + [_c_writable(maps, "int64")]
        out = np.empty(start.shape)
        rothc_loops.year_runs(*args, int(years), out)
        return out.reshape(shape)
    if maps is not None:
        year, from_inputs = year[..., maps], from_inputs[..., maps]
    added = from_inputs * np.asarray(annual_input)[..., None, :]
    pools = np.asarray(pools, dtype="float64")
    sources = [[j for j in range(N_POOLS) if terms[i, j]] for i in range(N_POOLS)]
    buffers, term = (np.empty(added.shape), np.empty(added.shape)), np.empty(added.shape[:-2] + added.shape[-1:])
    for y in range(years):
        new = buffers[y % 2]
        for i, pools_in in enumerate(sources):
            total = added[..., i, :]
            for j in pools_in:
                total = np.add(total, np.multiply(year[i, j], pools[..., j, :], out=term), out=new[..., i, :])
        pools = new
    return pools


def _c_writable(values, dtype) -> np.ndarray:
    return np.require(values, dtype, ["C_CONTIGUOUS", "WRITEABLE"])


def falloon_iom(soc_t_c_per_ha):
    """Inert organic matter (t C/ha) from total SOC: IOM = 0.049 SOC^1.139 (Falloon et al. 1998)."""
    return 0.049 * np.power(soc_t_c_per_ha, 1.139)
