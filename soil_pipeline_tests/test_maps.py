"""The scenario map renders the restored share where it is, and is the same PNG for the same input."""

import io

import numpy as np
from affine import Affine
from matplotlib.image import imread

from soil_pipeline.maps import share_map_png
from soil_pipeline.science.grid import GridSpec

GRID = GridSpec(width=360, height=180, transform=Affine(1.0, 0.0, -180.0, 0.0, -1.0, 90.0))


def test_share_map_is_a_deterministic_png_that_changes_with_the_data():
    share = np.zeros(GRID.shape)
    land = np.zeros(GRID.shape, dtype=bool)
    land[40:140, 40:320] = True
    share[60:80, 100:140] = 1.0
    png = share_map_png(share, land, GRID, "test", "share")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png == share_map_png(share, land, GRID, "test", "share")
    assert png != share_map_png(np.zeros(GRID.shape), land, GRID, "test", "share")
    assert imread(io.BytesIO(png)).ndim == 3
