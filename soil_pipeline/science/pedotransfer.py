"""Bulk-density pedotransfer functions, each with its exact citation and domain of validity."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PedotransferFunction:
    name: str
    citation: str
    equation: str
    soc_domain_g_per_kg: tuple[float, float]
    predict: Callable[[np.ndarray], np.ndarray]

    def in_domain(self, soc_g_per_kg) -> np.ndarray:
        low, high = self.soc_domain_g_per_kg
        soc = np.asarray(soc_g_per_kg, dtype=float)
        return (soc >= low) & (soc <= high)

    def fill(self, soc_g_per_kg) -> np.ndarray:
        """Predicted BD (g/cm3) where SOC lies in the domain, NaN elsewhere."""
        soc = np.asarray(soc_g_per_kg, dtype=float)
        return np.where(self.in_domain(soc), self.predict(soc), np.nan)


def _manrique_jones_1991(soc_g_per_kg: np.ndarray) -> np.ndarray:
    organic_carbon_pct = np.clip(soc_g_per_kg, 0.0, None) / 10.0
    return 1.660 - 0.318 * np.sqrt(organic_carbon_pct)


MANRIQUE_JONES_1991 = PedotransferFunction(
    name="manrique_jones_1991",
    citation=(
        "Manrique, L.A. & Jones, C.A. (1991) Bulk density of soils in relation to soil physical and chemical "
        "properties. Soil Sci. Soc. Am. J. 55:476-481 (all-soils regression on organic carbon)."
    ),
    equation="BD [g/cm3] = 1.660 - 0.318 * sqrt(OC [%])",
    # Mineral soils only: above 120 g/kg (12 % OC) the fitted line falls below 0.56 g/cm3 and soon turns
    # negative, so organic (peat) horizons keep a missing BD rather than an invented one.
    soc_domain_g_per_kg=(0.0, 120.0),
    predict=_manrique_jones_1991,
)
