"""The land cells of the common grid, flattened: only cells with a SOC stock or converted land are kept, so the
regional sums and the scenario ranking handle about 2 M cells instead of 9.3 M."""

from dataclasses import dataclass

import numpy as np

from soil_pipeline.science.aggregation import capped_land_ha
from soil_pipeline.science.grid import Layer, cell_area_ha, common_grid


@dataclass(frozen=True)
class LandCells:
    index: np.ndarray
    area_ha: np.ndarray
    soc_2010: np.ndarray
    soc_no_land_use: np.ndarray
    land_ha: np.ndarray

    def take(self, layer: Layer) -> np.ndarray:
        """The values of a single-band layer at these cells."""
        return layer.data.ravel()[self.index]


def land_cells(soc_stock_grid: Layer, land_km2: Layer) -> LandCells:
    """Cells with a 2010 SOC stock or land in `land_km2` (km2 per cell, capped at the cell area in ha)."""
    grid = common_grid(soc_stock_grid, land_km2)
    land = land_km2.data.ravel()
    soc_2010 = soc_stock_grid.data[0].ravel()
    index = np.flatnonzero(~np.isnan(soc_2010) | (land > 0))
    area = np.broadcast_to(cell_area_ha(grid)[:, None], grid.shape).ravel()[index]
    return LandCells(
        index=index,
        area_ha=area,
        soc_2010=soc_2010[index].astype("float64"),
        soc_no_land_use=soc_stock_grid.data[1].ravel()[index].astype("float64"),
        land_ha=capped_land_ha(land[index].astype("float64"), area),
    )
