"""The scenario map renders the restored share where it is, and is the same PNG for the same input."""

import io

import numpy as np
from affine import Affine
from matplotlib.image import imread

from soil_pipeline import maps
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


def _tight_savefig(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def test_every_map_is_the_png_of_a_tight_savefig(monkeypatch):
    """The maps are drawn once, cropped to a box measured without drawing: the bytes are savefig's own (which draws
    each figure twice), at any resolution, title or content."""
    rng = np.random.default_rng(3)
    share, land = rng.random((45, 90)) * (rng.random((45, 90)) < 0.4), rng.random((45, 90)) < 0.6
    field, mapped = rng.lognormal(3.0, 1.0, 2_000), rng.lognormal(3.0, 1.0, 2_000)
    lon, lat, residual = rng.uniform(-170, 170, 500), rng.uniform(-50, 70, 500), rng.normal(0.0, 10.0, 500)
    draws = [
        lambda: maps.block_map_png(share, land, GRID, "scenario (v1): restored share of each cell", "share"),
        lambda: maps.block_map_png(share, land, GRID, "a much longer title " * 6, "share", dpi=maps.INLINE_DPI),
        lambda: maps.field_map_scatter_png(field, mapped, "sites", "map"),
        lambda: maps.field_map_scatter_png([], [], "no sites", "map"),
        lambda: maps.residual_map_png(lon, lat, residual, land, GRID, "residuals", dpi=72),
    ]
    drawn = [draw() for draw in draws]
    monkeypatch.setattr(maps, "_png", _tight_savefig)
    assert [draw() for draw in draws] == drawn


def test_a_thumbnail_is_the_map_at_the_inline_resolution():
    """Scaled from the map file rather than drawn again: the size of the map drawn at INLINE_DPI (within a pixel of
    rounding), and the same picture (restored cells where the map has them)."""
    share = np.zeros((45, 90))
    share[10:20, 30:60] = 1.0
    land = np.ones((45, 90), dtype=bool)
    png = maps.block_map_png(share, land, GRID, "scenario", "share")
    small = imread(io.BytesIO(maps.thumbnail_png(png)))
    drawn = imread(io.BytesIO(maps.block_map_png(share, land, GRID, "scenario", "share", dpi=maps.INLINE_DPI)))
    assert abs(small.shape[0] - drawn.shape[0]) <= 1 and abs(small.shape[1] - drawn.shape[1]) <= 1
    full = imread(io.BytesIO(png))
    # The colour at the middle of the restored block and at a land cell away from it, in both pictures.
    for y, x in ((0.35, 0.5), (0.75, 0.2)):
        here = small[int(y * small.shape[0]), int(x * small.shape[1]), :3]
        there = full[int(y * full.shape[0]), int(x * full.shape[1]), :3]
        assert np.abs(here - there).max() < 0.05
    assert small.shape[0] < full.shape[0] / 2
