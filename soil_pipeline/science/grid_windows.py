"""What one window of each grid asset holds, computed from its aligned source layers: pure functions of the layers,
the window's row areas (ha), the grid and the window, returning (bands, sums) as `engine.grid_pass` expects."""

from collections.abc import Callable
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


@dataclass(frozen=True)
class LandShare:
    """`compute` on one window, plus the land area (ha: cells where the `land` layer, the 2010 SOC stock, has a
    value) and, for each of the layers `layers`, the part of it where that layer has a value (not NaN, not
    `nodata`), counting only cells whose centre lies within `bounds` (west, south, east, north; None: every cell).
    `compute` sees the layers without `land`. Picklable when `compute` is."""

    compute: Callable
    layers: tuple[str, ...]
    nodata: float | None = None
    bounds: tuple[float, float, float, float] | None = None

    def __call__(self, layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
        layers = dict(layers)
        land = np.isfinite(layers.pop("land"))
        if self.bounds is not None:
            land &= _centres_within(self.bounds, grid, window)
        area = np.broadcast_to(row_area_ha[:, None], land.shape)
        shares = {"land_ha": np.array([area[land].sum()])}
        for name in self.layers:
            values = layers[name][0] if layers[name].ndim == 3 else layers[name]
            has = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, dtype=bool)
            if self.nodata is not None:
                has &= values != self.nodata
            shares[f"land_with_{name}_ha"] = np.array([area[land & has].sum()])
        bands, sums = self.compute(layers, row_area_ha, grid, window)
        return bands, {**sums, **shares}


def _centres_within(bounds, grid: GridSpec, window: Window) -> np.ndarray:
    west, south, east, north = bounds
    t = window_grid(grid, window).transform
    lon = t.c + t.a * (np.arange(int(window.width)) + 0.5)
    lat = t.f + t.e * (np.arange(int(window.height)) + 0.5)
    return ((lat >= south) & (lat <= north))[:, None] & ((lon >= west) & (lon <= east))[None, :]


def land_share(sums: dict, layer: str) -> float | None:
    """The share of the land area where `layer` has values, from `LandShare`'s sums over the grid; None without
    land."""
    land = float(sums["land_ha"][0])
    return float(sums[f"land_with_{layer}_ha"][0]) / land if land else None


@dataclass(frozen=True)
class SecondStockWindow:
    """A second stock source on one window: band 1 its stock density (t C/ha, GDAL's area-weighted average over the
    part of the cell it covers), band 2 the covered fraction of the cell (0-1: its valid cells summed onto the cell,
    layer `cover`, times `cell_ratio`, the area of one of its cells over that of a grid cell; NaN where it has no
    value); and, over the cells it shares with the `reference` stock layer, the covered area (ha) and both stocks
    (t C) on it, for the cross-check (`reference_ratio`)."""

    cell_ratio: float

    def __call__(self, layers: dict, row_area_ha: np.ndarray, grid: GridSpec, window: Window):
        stock, reference = layers["stock"], layers["reference"]
        mapped = np.isfinite(stock)
        fraction = np.clip(np.nan_to_num(layers["cover"], nan=0.0) * self.cell_ratio, 0.0, 1.0)
        fraction = np.where(mapped, fraction, np.nan)
        shared = mapped & np.isfinite(reference)
        covered = (np.broadcast_to(row_area_ha[:, None], stock.shape) * fraction)[shared]
        sums = {
            "shared_ha": np.array([covered.sum()]),
            "shared_second_t_c": np.array([(stock[shared] * covered).sum(dtype="float64")]),
            "shared_reference_t_c": np.array([(reference[shared] * covered).sum(dtype="float64")]),
        }
        return np.stack([stock, fraction]).astype("float32"), sums


def reference_ratio(sums: dict) -> tuple[float, float] | None:
    """(the second source's mean stock over the reference's on the cells both cover, that area in ha) from
    `SecondStockWindow`'s sums; None when they share no cell."""
    reference, area = float(sums["shared_reference_t_c"][0]), float(sums["shared_ha"][0])
    if not area or not reference:
        return None
    return float(sums["shared_second_t_c"][0]) / reference, area
