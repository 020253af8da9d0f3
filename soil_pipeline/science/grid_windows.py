"""What one window of each grid asset holds, computed from its aligned source layers: pure functions of the layers,
the window's row areas (ha), the grid and the window, returning (bands, sums) as `engine.grid_pass` expects."""

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from soil_pipeline.science.coverage import stock_layer_sums
from soil_pipeline.science.grid import GridSpec, window_grid
from soil_pipeline.science.regions import WindowRasterizer, fill_nearest_in_window
from soil_pipeline.science.units import HA_PER_KM2


def stock_window(layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
    """Both stock layers on one window, each restricted to the cells both cover, and their coverage sums."""
    data = np.stack([layers["2010"], layers["no_land_use"]]).astype("float32", copy=False)
    sums = stock_layer_sums(data[0], data[1], row_area_ha)
    data[:, ~(np.isfinite(data[0]) & np.isfinite(data[1]))] = np.nan
    return data, sums


# t C/ha of 0-30 cm stock per 0.1 kg C/m3 of density at 0 and at 30 cm: 0.3 m x mean of the two x 0.1 x 10.
TRAPEZOID_T_C_PER_HA = 0.15


def stock_error_window(layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
    """0-30 cm stock error (t C/ha) from the density errors at 0 and 30 cm (0.1 kg C/m3) by the trapezoid, the two
    depths fully correlated: 0.15 x (err0 + err30); NaN where either is missing."""
    error = TRAPEZOID_T_C_PER_HA * (layers["0cm"].astype("float64") + layers["30cm"].astype("float64"))
    return error.astype("float32")[np.newaxis], {}


def missing_window(layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
    """All missing (no second stock source configured)."""
    return np.full((1, int(window.height), int(window.width)), np.nan, dtype="float32"), {}


def as_stored_bands(layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
    """The window's one source as it was aligned (a grid written as read)."""
    (data,) = layers.values()
    return data[np.newaxis], {}


def cropland_window(layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
    """Cropland km2 per cell (0 where HYDE has none) and the window's total."""
    (aligned,) = layers.values()
    data = np.where(np.isnan(aligned), 0.0, aligned).astype("float32")
    return data[np.newaxis], {"aligned_total_km2": np.array([data.sum(dtype="float64")])}


@dataclass(frozen=True)
class CountryWindow:
    """Country index per cell of one window: the polygon containing the cell centre, else (land cells: a SOC stock
    or cropland) the nearest polygon within `max_distance_deg`; sums of the cells and area (ha) assigned by nearest
    and left unassigned. Picklable (polygons as WKB)."""

    rasterizer: WindowRasterizer
    max_distance_deg: float

    def __call__(self, layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
        inside = self.rasterizer(window_grid(grid, window))
        land = ~np.isnan(layers["soc_stock"]) | (layers["cropland"] > 0)
        regions, nearest = fill_nearest_in_window(inside, land, self.rasterizer, grid, window, self.max_distance_deg)
        area = np.broadcast_to(row_area_ha[:, None], regions.shape)
        unassigned = land & (regions < 0)
        sums = {
            "nearest_cells": np.array([nearest.sum()], dtype="float64"),
            "nearest_ha": np.array([area[nearest].sum()]),
            "unassigned_cells": np.array([unassigned.sum()], dtype="float64"),
            "unassigned_ha": np.array([area[unassigned].sum()]),
        }
        return regions[np.newaxis], sums


def converted_window(layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
    """Cropland plus pasture (when configured), km2 per cell, capped at the cell area."""
    total = layers["cropland"].astype("float64")
    if "pasture" in layers:
        total = total + np.nan_to_num(layers["pasture"], nan=0.0)
    cell_km2 = row_area_ha[:, None] / HA_PER_KM2
    return np.minimum(total, cell_km2).astype("float32")[np.newaxis], {}
