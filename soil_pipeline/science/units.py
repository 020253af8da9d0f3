"""Unit conversions used by the stock arithmetic and by input declarations; every factor converts *to* the
canonical unit (the unit a contract states)."""

import numpy as np

# Organic matter is 58 % carbon by the conventional van Bemmelen factor (1/1.724; Pribyl 2010, Geoderma 156:75,
# finds 0.50 a better median): SOC given as organic matter is converted with it, and the conversion says so.
ORGANIC_CARBON_PER_ORGANIC_MATTER = 0.58
SOC_TO_G_PER_KG = {
    "g/kg": 1.0,
    "permille": 1.0,
    "mg/g": 1.0,
    "%": 10.0,
    "g/100g": 10.0,
    "dag/kg": 10.0,
    "dg/kg": 0.1,
    "% OM": 10.0 * ORGANIC_CARBON_PER_ORGANIC_MATTER,
    "g/kg OM": ORGANIC_CARBON_PER_ORGANIC_MATTER,
}
BD_TO_G_PER_CM3 = {"g/cm3": 1.0, "kg/dm3": 1.0, "t/m3": 1.0, "Mg/m3": 1.0, "kg/m3": 0.001, "cg/cm3": 0.01}
DEPTH_TO_CM = {"cm": 1.0, "mm": 0.1, "m": 100.0}
MASS_PCT = {"% mass": 1.0, "%": 1.0, "g/100g": 1.0, "g/kg": 0.1}
VOL_PCT = {"% vol": 1.0, "cm3/100cm3": 1.0}
# Canonical unit (as written in the contracts) -> {declared unit: factor}.
TO_CANONICAL = {
    "g/kg": SOC_TO_G_PER_KG,
    "g/cm3": BD_TO_G_PER_CM3,
    "cm": DEPTH_TO_CM,
    "% mass": MASS_PCT,
    "% vol": VOL_PCT,
}
# Coarse fragments by mass become % of volume through the fine-earth BD and the fragments' particle density.
COARSE_FRAGMENT_PARTICLE_DENSITY_G_PER_CM3 = 2.65


def organic_matter_unit(unit: str) -> bool:
    """Whether a declared SOC unit is one of organic matter (converted to organic carbon)."""
    return unit.endswith(" OM")


HA_PER_KM2 = 100.0
T_PER_PG = 1e9
T_PER_TG = 1e6
HA_PER_MHA = 1e6
CO2_PER_C = 44.0 / 12.0


def to_g_per_kg(value, unit: str):
    """SOC content in g/kg (= permille) from `unit`."""
    return value * SOC_TO_G_PER_KG[unit]


def to_g_per_cm3(value, unit: str):
    """Bulk density in g/cm3 (= t/m3) from `unit`."""
    return value * BD_TO_G_PER_CM3[unit]


def coarse_fragments_mass_to_vol_pct(
    mass_pct, fine_earth_bd_g_per_cm3, particle_density_g_per_cm3: float = COARSE_FRAGMENT_PARTICLE_DENSITY_G_PER_CM3
):
    """Coarse fragments as % of the whole soil's volume from % of its mass: each part's volume is its mass over its
    density (fragments: particle density; fine earth: its bulk density). NaN where the BD is unknown."""
    mass = np.asarray(mass_pct, dtype=float)
    bd = np.asarray(fine_earth_bd_g_per_cm3, dtype=float)
    fragments = mass / particle_density_g_per_cm3
    fine_earth = (100.0 - mass) / np.where(bd > 0, bd, np.nan)
    return 100.0 * fragments / (fragments + fine_earth)
