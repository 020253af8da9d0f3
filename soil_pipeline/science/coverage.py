"""Coverage and consistency of the two stock layers (2010 and no land use) on one grid: which cells only one of
them covers, and where the 2010 stock exceeds the no-land-use stock (a carbon gain under land use, or an error)."""

import numpy as np

from soil_pipeline.science.units import HA_PER_MHA, T_PER_PG


def stock_layers_report(current: np.ndarray, natural: np.ndarray, cell_area_ha: np.ndarray) -> dict:
    """Cells and area (Mha) covered by both, by one only, and where 2010 > no land use (with the excess, Pg C).

    `cell_area_ha` is per row (broadcast over columns); stocks in t C/ha with NaN for no data."""
    area = np.broadcast_to(np.asarray(cell_area_ha, dtype="float64")[:, None], current.shape)
    has_current, has_natural = np.isfinite(current), np.isfinite(natural)
    both = has_current & has_natural
    higher = both & (current > natural)
    # only the cells above: whole-grid float64 temporaries would triple the step's memory
    excess = (current[higher].astype("float64") - natural[higher]) * area[higher]

    def cells(mask):
        return {"cells": int(mask.sum()), "area_mha": float(area[mask].sum() / HA_PER_MHA)}

    return {
        "both": cells(both),
        "only_2010": cells(has_current & ~has_natural),
        "only_no_land_use": cells(has_natural & ~has_current),
        "2010_above_no_land_use": {**cells(higher), "excess_pg_c": float(excess.sum() / T_PER_PG)},
    }


def coverage_share(report: dict) -> float:
    """Cells covered by both layers over the cells covered by either (1.0 for identical coverage)."""
    either = report["both"]["cells"] + report["only_2010"]["cells"] + report["only_no_land_use"]["cells"]
    return report["both"]["cells"] / either if either else 1.0
