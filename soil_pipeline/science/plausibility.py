"""Whether a field drop is physically plausible as a whole: statistics that tell a unit or coordinate mistake from
the spread of real surveys, each threshold with its grounds. Pure arithmetic; `drop_evidence` gathers the values.

Grounds, measured on the embedded Africa Soil Profiles drop (AfSP: 26,270 sites, 19,104 with a 0-30 cm stock):

- Field stocks against the reference stock map (`map_ratio_verdict`). The median ratio of the map's 0-30 cm stock at
  a site's cell (WHRC 2010) to the site's field stock is 1.22 over AfSP's 19,022 sites with both; over each country
  with at least 30 such sites (33 countries) 0.69-1.82; over each 2-degree block with at least 30 (138 blocks)
  0.57-3.69, none beyond a factor of 4 (with 10 sites, 1-degree blocks reach 4.18: hence 30 sites). A x 10 unit slip
  (SOC in g/kg declared %, or the reverse) moves the country medians to 6.9-18 or 0.07-0.18. A drop whose median
  lies beyond a factor of 4 over at least 30 sites is refused. Organic matter given as organic carbon (x 1.72) is
  within the spread of real surveys: it must be declared (`% OM`, `g/kg OM`). The same statistic, over the field
  sites accumulated from every published drop, judges a stock raster (`field_stock_verdict`): there the raster is
  what a unit slip would have moved (kg C/m2 declared as t C/ha: x 0.1).
- Organic horizons are light (`organic_bd_verdict`): at 120 g/kg SOC, the upper bound of its domain, the
  pedotransfer function (Manrique & Jones 1991) gives 0.56 g/cm3, and BD falls as SOC rises. AfSP's 14 horizons
  above 120 g/kg with a measured BD have a median BD of 0.31 g/cm3; with SOC x 10, 1,431 horizons are above 120 g/kg
  with a median BD of 1.20. A median BD above 1.0 over at least 10 such horizons means SOC is too high for its BD.
- Profile depths (`depth_verdict`): AfSP's median profile bottom is 90 cm (1 % of profiles above 264 cm, 1 % at or
  below 15 cm). A median bottom beyond 500 cm means millimetres read as centimetres (AfSP in mm: 900); below 5 cm,
  metres (AfSP in m: 0.9).
- Geometry (`geometry_verdict`): every AfSP site lies on land within one 5' cell of the WHRC stock map (0 of 26,270;
  126, 0.5 %, outside their own cell); with latitude and longitude exchanged 45 % are. A drop of at least 20 sites
  with more than 5 % off land, or outside the country it names, is refused (one site of 20 is 5 %; a smaller drop
  keeps the per-site rule and the 50 % share gate); one with at least 10 sites whose sites fall on land (or in its
  country) 20 points more often with the two exchanged is refused as swapped; one with at least 10 sites, most
  outside the degree ranges, is refused naming why (swapped, or metres of a projected CRS).
"""

from dataclasses import dataclass

import numpy as np

MAP_RATIO_FACTOR = 4.0
MAP_RATIO_MIN_SITES = 30
ORGANIC_SOC_G_PER_KG = 120.0
ORGANIC_BD_MAX_G_PER_CM3 = 1.0
ORGANIC_MIN_HORIZONS = 10
PROFILE_BOTTOM_CM = (5.0, 500.0)
PROFILE_MIN_SITES = 10
OFF_LAND_MAX_PCT = 5.0
OUTSIDE_COUNTRY_MAX_PCT = 5.0
GEOMETRY_MIN_SITES = 20
SWAP_MIN_SITES = 10
SWAP_GAIN_POINTS = 20.0


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: whether it passed, what it found (numbers, and the likely cause when it did not) and its
    figures for provenance."""

    passed: bool
    text: str
    figures: dict


def median_profile_bottom(bottoms_cm) -> float:
    values = np.asarray(bottoms_cm, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


RATIO_BAND = f"[{1 / MAP_RATIO_FACTOR:g}, {MAP_RATIO_FACTOR:g}]"


def _ratio_figures(n_sites: int, median_ratio: float) -> dict | None:
    """The figures of a median map/field ratio over `n_sites`; None when there are too few sites or no ratio."""
    if n_sites < MAP_RATIO_MIN_SITES or not np.isfinite(median_ratio):
        return None
    return {"sites": n_sites, "median_map_to_field_ratio": round(median_ratio, 4), "factor": MAP_RATIO_FACTOR}


def _within_factor(median_ratio: float) -> bool:
    return 1 / MAP_RATIO_FACTOR <= median_ratio <= MAP_RATIO_FACTOR


def map_ratio_verdict(n_sites: int, median_ratio: float, soc_unit: str) -> Verdict | None:
    """Field stocks against the reference map: the median map/field ratio over `n_sites` (None below
    `MAP_RATIO_MIN_SITES`). `soc_unit` is the SOC unit the drop declares (or the contract's)."""
    if (figures := _ratio_figures(n_sites, median_ratio)) is None:
        return None
    found = f"median map/field stock ratio {median_ratio:.3g} over {n_sites} sites"
    if _within_factor(median_ratio):
        return Verdict(True, f"{found}, within {RATIO_BAND}", figures)
    if median_ratio < 1 / MAP_RATIO_FACTOR:
        direction = f"field stocks are {1 / median_ratio:.3g} x the map's"
        cause = (
            f"SOC declared in {soc_unit}: if the values are 10 x smaller units (g/kg or permille, not %), the ratio "
            f"would be {median_ratio * 10:.3g}"
        )
    else:
        direction = f"the map's stocks are {median_ratio:.3g} x the field's"
        cause = (
            f"SOC declared in {soc_unit}: if the values are 10 x larger units (%, not g/kg or permille), the ratio "
            f"would be {median_ratio / 10:.3g}"
        )
    text = (
        f"{found} ({direction}), beyond a factor of {MAP_RATIO_FACTOR:g} (real surveys: 0.57-3.69 by 2-degree block "
        f"of AfSP); likely cause: the SOC unit ({cause}); else the depth unit, or coordinates swapped or in another "
        "CRS than declared, placing sites on other cells"
    )
    return Verdict(False, text, figures)


def field_stock_verdict(n_sites: int, median_ratio: float, raster: str) -> Verdict | None:
    """A stock raster against the accumulated field stocks: the median ratio of `raster`'s 0-30 cm stock at the
    sites' cells to their field stocks, over `n_sites` (None below `MAP_RATIO_MIN_SITES`); the caller names the
    unit a failing factor points to."""
    if (figures := _ratio_figures(n_sites, median_ratio)) is None:
        return None
    found = f"median ratio {median_ratio:.3g} of {raster}'s stock at the cells of {n_sites} accumulated field sites"
    if _within_factor(median_ratio):
        return Verdict(True, f"{found} to their field stocks, within {RATIO_BAND}", figures)
    text = (
        f"{found} (every published drop) to their field stocks, beyond a factor of {MAP_RATIO_FACTOR:g} (real "
        "surveys: 0.57-3.69 by 2-degree block of AfSP against WHRC)"
    )
    return Verdict(False, text, figures)


def organic_bd_verdict(n_horizons: int, median_bd: float) -> Verdict | None:
    """Horizons above `ORGANIC_SOC_G_PER_KG` with a measured BD: light, as organic horizons are (None below
    `ORGANIC_MIN_HORIZONS`)."""
    if n_horizons < ORGANIC_MIN_HORIZONS:
        return None
    figures = {"organic_horizons_with_bd": n_horizons, "median_bd_g_per_cm3": round(median_bd, 4)}
    found = (
        f"{n_horizons} horizons above {ORGANIC_SOC_G_PER_KG:g} g/kg SOC with a measured BD, median BD "
        f"{median_bd:.3g} g/cm3"
    )
    if median_bd <= ORGANIC_BD_MAX_G_PER_CM3:
        return Verdict(True, found, figures)
    text = (
        f"{found}: organic horizons are lighter than {ORGANIC_BD_MAX_G_PER_CM3:g} g/cm3 (the pedotransfer function "
        "gives 0.56 at 120 g/kg; AfSP's have 0.31); likely cause: SOC is too high for its BD, the SOC unit (% "
        "declared for g/kg or permille values?)"
    )
    return Verdict(False, text, figures)


def depth_verdict(n_sites: int, median_bottom_cm: float, depth_unit: str) -> Verdict | None:
    """The median profile bottom (deepest lower depth of each site) in cm after conversion (None below
    `PROFILE_MIN_SITES`); `depth_unit` is the declared unit."""
    if n_sites < PROFILE_MIN_SITES or not np.isfinite(median_bottom_cm):
        return None
    low, high = PROFILE_BOTTOM_CM
    figures = {"sites": n_sites, "median_profile_bottom_cm": round(median_bottom_cm, 4), "plausible_cm": [low, high]}
    found = f"median profile bottom {median_bottom_cm:.4g} cm over {n_sites} sites (depths declared in {depth_unit})"
    if low <= median_bottom_cm <= high:
        return Verdict(True, found, figures)
    if median_bottom_cm > high:
        cause = f"the depths look like millimetres ({median_bottom_cm / 10:.4g} cm if they were)"
    else:
        cause = f"the depths look like metres ({median_bottom_cm * 100:.4g} cm if they were)"
    text = (
        f"{found}, outside [{low:g}, {high:g}] cm (AfSP: 90 cm, 99 % of profiles within 264 cm); likely cause: "
        f"the depth unit: {cause}"
    )
    return Verdict(False, text, figures)


@dataclass(frozen=True)
class SiteGeometry:
    """What the geometry check needs: sites with coordinates within the degree ranges (`n`), those off land by the
    per-site rule, and over a sample of them, the shares on land and in the named country as given and with latitude
    and longitude exchanged (NaN where not computed); of the sites with numbers for both coordinates (`numeric`),
    those outside the degree ranges, those the exchange would bring within them, and those beyond 1,000 (metres).
    """

    n: int
    off_land: int
    sample: int
    on_land_pct: float
    on_land_swapped_pct: float
    country: str = ""
    in_country_pct: float = float("nan")
    in_country_swapped_pct: float = float("nan")
    numeric: int = 0
    out_of_range: int = 0
    in_range_swapped: int = 0
    metre_like: int = 0


def geometry_verdict(g: SiteGeometry, crs: str) -> Verdict:
    """Off land, outside the named country, or swapped: see the module's grounds. `crs` is the declared CRS. When
    most sites are outside the degree ranges (which the per-site range rule quarantines), the cause is named: swapped
    when exchanging the two brings them within, projected metres when they are beyond 1,000."""
    if (ranges := _range_verdict(g, crs)) is not None:
        return ranges
    figures = {
        "sites_with_coordinates": g.n,
        "off_land": g.off_land,
        "sample": g.sample,
        "on_land_pct": _round(g.on_land_pct),
        "on_land_swapped_pct": _round(g.on_land_swapped_pct),
    }
    off_pct = 100.0 * g.off_land / g.n if g.n else 0.0
    found = f"{g.off_land} of {g.n} sites off land ({off_pct:.1f} %)"
    if g.country:
        figures |= {
            "country": g.country,
            "in_country_pct": _round(g.in_country_pct),
            "in_country_swapped_pct": _round(g.in_country_swapped_pct),
        }
        found += f", {g.in_country_pct:.1f} % in {g.country}"
    land_gain = g.on_land_swapped_pct - g.on_land_pct
    country_gain = g.in_country_swapped_pct - g.in_country_pct
    if g.n >= SWAP_MIN_SITES and (land_gain >= SWAP_GAIN_POINTS or country_gain >= SWAP_GAIN_POINTS):
        swapped = f"{g.on_land_swapped_pct:.1f} % on land"
        if g.country:
            swapped += f", {g.in_country_swapped_pct:.1f} % in {g.country}"
        text = (
            f"{found} as given; with latitude and longitude exchanged {swapped} (of a sample of {g.sample}); likely "
            "cause: latitude and longitude swapped (exchange the two columns in the declaration)"
        )
        return Verdict(False, text, figures)
    if g.n >= GEOMETRY_MIN_SITES and off_pct > OFF_LAND_MAX_PCT:
        text = (
            f"{found}, more than {OFF_LAND_MAX_PCT:g} % (AfSP: 0 %); likely cause: the coordinates are not in the "
            f"declared CRS ({crs}), or are swapped or shifted"
        )
        return Verdict(False, text, figures)
    outside = 100.0 - g.in_country_pct
    if g.country and g.n >= GEOMETRY_MIN_SITES and outside > OUTSIDE_COUNTRY_MAX_PCT:
        text = (
            f"{found}: {outside:.1f} % outside it (within 0.5 deg), more than {OUTSIDE_COUNTRY_MAX_PCT:g} %; "
            f"likely cause: the coordinates are not in the declared CRS ({crs}), or the survey's country is not "
            f"{g.country}"
        )
        return Verdict(False, text, figures)
    return Verdict(True, found, figures)


def _range_verdict(g: SiteGeometry, crs: str) -> Verdict | None:
    if g.numeric < SWAP_MIN_SITES or 2 * g.out_of_range <= g.numeric:
        return None
    figures = {
        "sites_with_numbers": g.numeric,
        "outside_degree_ranges": g.out_of_range,
        "within_if_swapped": g.in_range_swapped,
        "beyond_1000": g.metre_like,
    }
    found = f"{g.out_of_range} of {g.numeric} sites outside longitude [-180, 180] / latitude [-90, 90]"
    if 2 * g.in_range_swapped > g.out_of_range:
        cause = f"latitude and longitude swapped ({g.in_range_swapped} would be within with the two exchanged)"
    elif 2 * g.metre_like > g.out_of_range:
        cause = f"projected coordinates (metres) read as degrees ({g.metre_like} beyond 1000): declare coordinates_crs"
    else:
        cause = f"the coordinates are not in the declared CRS ({crs})"
    return Verdict(False, f"{found}; likely cause: {cause}", figures)


def _round(value: float) -> float | None:
    return round(float(value), 2) if np.isfinite(value) else None
