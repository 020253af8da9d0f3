"""Coverage and consistency of the two stock layers (2010 and no land use) on one grid: which cells only one of
them covers, and where the 2010 stock exceeds the no-land-use stock (a carbon gain under land use, or an error)."""

import numpy as np

from soil_pipeline.science.units import HA_PER_MHA, T_PER_PG

COVERAGE_CLASSES = ("both", "only_2010", "only_no_land_use", "2010_above_no_land_use")


def stock_layer_sums(current: np.ndarray, natural: np.ndarray, row_area_ha: np.ndarray) -> dict[str, np.ndarray]:
    """Per-window sums for `stock_layers_report` (they add up over windows): cells and area (ha) covered by both
    layers, by one only, and where 2010 > no land use, with the excess (t C). `row_area_ha` has one value per row;
    stocks in t C/ha with NaN for no data."""
    area = np.broadcast_to(np.asarray(row_area_ha, dtype="float64")[:, None], current.shape)
    has_current, has_natural = np.isfinite(current), np.isfinite(natural)
    both = has_current & has_natural
    higher = both & (current > natural)
    classes = (both, has_current & ~has_natural, has_natural & ~has_current, higher)
    masks = dict(zip(COVERAGE_CLASSES, classes, strict=True))
    sums = {}
    for name, mask in masks.items():
        sums[f"{name}/cells"] = np.array([mask.sum()], dtype="float64")
        sums[f"{name}/area_ha"] = np.array([area[mask].sum()])
    # only the cells above: window-sized float64 temporaries of the whole window are not needed
    excess = (current[higher].astype("float64") - natural[higher]) * area[higher]
    sums["2010_above_no_land_use/excess_t_c"] = np.array([excess.sum()])
    return sums


def stock_layers_report(sums: dict[str, np.ndarray]) -> dict:
    """Cells and area (Mha) covered by both, by one only, and where 2010 > no land use (with the excess, Pg C),
    from `stock_layer_sums` added over the grid."""
    report = {
        name: {"cells": int(sums[f"{name}/cells"][0]), "area_mha": float(sums[f"{name}/area_ha"][0] / HA_PER_MHA)}
        for name in COVERAGE_CLASSES
    }
    report["2010_above_no_land_use"]["excess_pg_c"] = float(sums["2010_above_no_land_use/excess_t_c"][0] / T_PER_PG)
    return report


def coverage_share(report: dict) -> float:
    """Cells covered by both layers over the cells covered by either (1.0 for identical coverage)."""
    either = report["both"]["cells"] + report["only_2010"]["cells"] + report["only_no_land_use"]["cells"]
    return report["both"]["cells"] / either if either else 1.0
