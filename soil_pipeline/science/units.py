"""Unit conversions used by the stock arithmetic; every factor converts *to* the canonical unit."""

SOC_TO_G_PER_KG = {"g/kg": 1.0, "permille": 1.0, "%": 10.0, "dg/kg": 0.1}
BD_TO_G_PER_CM3 = {"g/cm3": 1.0, "t/m3": 1.0, "Mg/m3": 1.0, "kg/m3": 0.001, "cg/cm3": 0.01}

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
