"""Field sites across monthly drops: what a site is, which delivery of it is current, and the one observation of
each site that every site-level figure uses. Pure pandas; the assets gather the deliveries.

- A **site** is (source_db, site_id): the id a source database gives a profile location. Ids are unique within a
  drop (the field_sites contract) but two databases may reuse an id, hence the source in the key (a missing
  source_db is the empty source). Coordinates are checked, not part of the key: a delivery that moves a site by
  more than `RELOCATED_KM` from its previous delivery is recorded (`moved_km`) and reported, and the later
  coordinates hold, as any later value does.
- An **observation** is (site, sampling_date): a delivery of a site at another sampling date is a repeated
  observation of the same site, never a new site (a missing date is one observation of its own).
- A **delivery** is one row of one drop. Drops are ordered by their partition key (YYYY-MM); the latest delivery of
  an observation is current and supersedes the earlier ones, which stay in the history with `superseded_by`, the
  drop that replaced them. Each delivery says what it brought: a new site, a repeated observation, the same values
  again (re-delivered) or changed ones (corrected).
- Site-level figures (site counts, medians, the map validation, the calibrated regional stocks) take one
  **representative** observation per site: of its current observations, the one with a 0-30 cm stock sampled
  closest to the map's year (2010 for the WHRC stock layer, to keep the time mismatch small; a missing date comes
  last), then the latest drop. So every figure counts distinct sites, whatever the number of drops or observations.
"""

import numpy as np
import pandas as pd

from soil_pipeline.science.grid import AUTHALIC_EARTH_RADIUS_KM

SITE_KEY = ["source_db", "site_id"]
OBSERVATION_KEY = [*SITE_KEY, "sampling_date"]
DROP = "field_drop"
STOCK = "topsoil_soc_stock_t_c_per_ha"
# Values whose change between two deliveries of one observation makes the later one a correction.
COMPARED = ["longitude_deg", "latitude_deg", STOCK, "exclusion_reason", "country_adm0_a3", "climate_zone_code"]
# A site delivered more than this far from its previous delivery is reported as moved: GPS and rounding of legacy
# coordinates to 0.01 deg (1.1 km) stay below it; a wrong sign or a swapped pair is far above.
RELOCATED_KM = 1.5
DELIVERIES = ("new site", "repeated observation", "re-delivered", "corrected")


def great_circle_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Haversine distance (km) on the authalic sphere."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * AUTHALIC_EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Equal, missing on both sides counting as equal; numbers to within float round-off."""
    both_missing = a.isna().to_numpy() & b.isna().to_numpy()
    if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
        x, y = a.to_numpy(dtype=float, na_value=np.nan), b.to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return both_missing | np.isclose(x, y, rtol=1e-12, atol=0.0)
    return both_missing | (a == b).fillna(False).to_numpy(dtype=bool)


def site_history(deliveries: pd.DataFrame, map_year: int) -> pd.DataFrame:
    """Every delivery (columns `DROP`, `OBSERVATION_KEY`, `COMPARED`, any others kept), ordered by site and drop,
    with: `delivery` (one of `DELIVERIES`), `moved_km` (from the site's previous delivery),
    `superseded_by` (the drop of the next delivery of the same observation, null while current), `current`,
    `site_observations` (current observations of the site) and `representative` (see the module)."""
    frame = deliveries.assign(source_db=deliveries["source_db"].fillna("").astype("str"))
    frame = frame.sort_values([*SITE_KEY, DROP], kind="stable").reset_index(drop=True)
    new_site = ~frame.duplicated(SITE_KEY)
    new_observation = ~frame.duplicated(OBSERVATION_KEY)
    by_site = frame.groupby(SITE_KEY, sort=False)
    by_observation = frame.groupby(OBSERVATION_KEY, sort=False, dropna=False)
    previous = by_observation[COMPARED].shift(1)
    unchanged = np.logical_and.reduce([_same(frame[c], previous[c]) for c in COMPARED])
    frame["delivery"] = np.select(
        [new_site, new_observation, unchanged], list(DELIVERIES[:3]), default=DELIVERIES[3]
    ).astype("str")
    before = by_site[["longitude_deg", "latitude_deg"]].shift(1)
    frame["moved_km"] = great_circle_km(
        before["longitude_deg"], before["latitude_deg"], frame["longitude_deg"], frame["latitude_deg"]
    )
    frame["superseded_by"] = by_observation[DROP].shift(-1).astype("str")
    frame["current"] = frame["superseded_by"].isna()
    frame["site_observations"] = frame.groupby(SITE_KEY, sort=False)["current"].transform("sum").astype("int64")
    frame["representative"] = _representative(frame, map_year)
    return frame


def _representative(frame: pd.DataFrame, map_year: int) -> np.ndarray:
    """One current delivery per site: with a stock first, then sampled closest to `map_year` (no date last), then
    the latest drop and the latest date."""
    current = frame[frame["current"]]
    years = current["sampling_date"].dt.year.astype("float64")
    ranked = current.assign(
        _no_stock=current[STOCK].isna(),
        _gap=(years - map_year).abs().fillna(np.inf),
        _drop=current[DROP],
        _date=current["sampling_date"],
    ).sort_values(
        ["_no_stock", "_gap", "_drop", "_date"], ascending=[True, True, False, False], kind="stable", na_position="last"
    )
    chosen = ranked.drop_duplicates(SITE_KEY).index
    flags = np.zeros(len(frame), dtype=bool)
    flags[chosen] = True
    return flags


def site_stocks(history: pd.DataFrame) -> pd.DataFrame:
    """The representative observation of each site that has a 0-30 cm stock: one row per distinct site."""
    return history[history["representative"] & history[STOCK].notna()].reset_index(drop=True)


def sampling_decade(dates: pd.Series) -> pd.Series:
    """ "1980s" for a date in 1980-1989; "unknown" without a date."""
    decade = (dates.dt.year // 10 * 10).astype("Int64")
    return decade.astype("str").str.cat(pd.Series("s", index=dates.index)).where(decade.notna(), "unknown")
