"""Point lookups (land near field sites, climate zone of a site) read only the blocks of a tiled grid that hold the
points and their neighbourhood, and give what a lookup in the whole decoded array gives, longitude wrap included."""

from contextlib import contextmanager

import numpy as np
import pytest
import rasterio
from affine import Affine

from soil_pipeline.contracts.validate import LandMask
from soil_pipeline.engine import points
from soil_pipeline.engine.points import HasValue, sample_points
from soil_pipeline.engine.raster import RasterSource, opened
from soil_pipeline.publishing.grids import stored
from soil_pipeline.science.grid import GridSpec, Layer

WIDTH, HEIGHT, TILE = 2048, 1024, 512  # 4 x 2 tiles of 512 x 512 (the pipeline's grid tile)
CELL = 360 / WIDTH
GRID = GridSpec(WIDTH, HEIGHT, Affine(CELL, 0.0, -180.0, 0.0, -CELL, 90.0))


def whole_array_near(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius: int) -> np.ndarray:
    """The lookup in the whole decoded mask (what the pipeline did before)."""
    found = np.zeros(len(rows), dtype=bool)
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            r, c = rows + dr, (cols + dc) % WIDTH
            inside = (r >= 0) & (r < HEIGHT)
            found[inside] |= mask[r[inside], c[inside]]
    return found


def centres(rows, cols):
    return -180.0 + (np.asarray(cols) + 0.5) * CELL, 90.0 - (np.asarray(rows) + 0.5) * CELL


@pytest.fixture
def blocks_read(monkeypatch):
    """(row offset, col offset, (rows, cols)) of every window the point lookups read."""
    windows = []

    class Counting:
        def __init__(self, dataset):
            self._dataset = dataset

        def __getattr__(self, name):
            return getattr(self._dataset, name)

        def read(self, *args, window=None, **kwargs):
            windows.append((int(window.row_off), int(window.col_off), (int(window.height), int(window.width))))
            return self._dataset.read(*args, window=window, **kwargs)

    @contextmanager
    def counting(source):
        with opened(source) as dataset:
            yield Counting(dataset)

    monkeypatch.setattr(points, "opened", counting)
    return windows


def test_near_land_reads_only_the_blocks_around_the_points_and_wraps_longitude(blocks_read):
    rng = np.random.default_rng(7)
    values = np.where(rng.random((HEIGHT, WIDTH)) < 0.02, rng.random((HEIGHT, WIDTH)), np.nan).astype("float32")
    # Land just across the antimeridian and just across a block corner: found only through the wrap or the next block.
    values[98:103, :3] = values[98:103, -3:] = values[509:514, 509:514] = np.nan
    values[100, WIDTH - 1] = values[511, 512] = 1.0
    layer = stored(Layer(values, GRID, "t C/ha"))
    rows = np.array([100, 100, 512, 511, 512, 0, 300, 100, 40, 1023])
    cols = np.array([0, 1, 511, 511, 512, WIDTH - 1, 700, WIDTH - 2, 1000, 5])
    lon, lat = centres(rows, cols)
    land = LandMask(layer.source("soc"), "synthetic", HasValue())
    for radius in (0, 1, 2):
        blocks_read.clear()
        found = land.near(lon, lat, radius)
        np.testing.assert_array_equal(found, whole_array_near(np.isfinite(values), rows, cols, radius))
        assert found[0] == found[2] == (radius > 0)  # the wrap, the corner
        needed = {
            ((r + dr) // TILE, ((c + dc) % WIDTH) // TILE)
            for r, c in zip(rows, cols, strict=True)
            for dr in range(-radius, radius + 1)
            for dc in range(-radius, radius + 1)
            if 0 <= r + dr < HEIGHT
        }
        assert {size for *_, size in blocks_read} == {(TILE, TILE)}
        assert sorted((r // TILE, c // TILE) for r, c, _ in blocks_read) == sorted(needed)  # each once, no other
        assert len(needed) < (WIDTH // TILE) * (HEIGHT // TILE)


def test_sampled_values_equal_the_whole_array_lookup_for_stored_and_plain_layers(blocks_read):
    rng = np.random.default_rng(3)
    zones = rng.integers(1, 13, (HEIGHT, WIDTH)).astype("int16")
    plain = Layer(zones, GRID, "zone")
    rows, cols = np.array([0, 511, 512, 1023, 700]), np.array([0, 512, 511, WIDTH - 1, 1500])
    lon, lat = centres(rows, cols)
    lon, lat = np.append(lon, [180.5, np.nan]), np.append(lat, [0.0, 0.0])  # off the grid, no coordinates
    expected = np.append(zones[rows, cols], [0, 0])
    for layer in (plain, stored(plain)):
        blocks_read.clear()
        found = sample_points(stored(layer).source("zone", fill=0), lon, lat, 0)
        assert found.dtype == np.int16
        np.testing.assert_array_equal(found, expected)
        assert sorted((r, c) for r, c, _ in blocks_read) == [(0, 0), (0, 512), (512, 0), (512, 1024), (512, 1536)]


def test_a_nodata_rule_on_an_untiled_file_reads_its_strips_not_the_whole_band(tmp_path, blocks_read):
    """The raw WHRC raster is int16 with a nodata tag, stored in one-row strips: land is any other value."""
    values = np.full((HEIGHT, WIDTH), -32767, dtype="int16")
    values[200, 5] = 40
    path = tmp_path / "strips.tif"
    profile = {"driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 1, "dtype": "int16", "nodata": -32767}
    with rasterio.open(path, "w", crs="EPSG:4326", transform=GRID.transform, blockysize=1, **profile) as dataset:
        dataset.write(values, 1)
    land = LandMask(RasterSource(str(path)), "strips", HasValue(-32767))
    lon, lat = centres([201, 203], [6, 6])
    np.testing.assert_array_equal(land.near(lon, lat, 1), [True, False])
    assert [r for r, *_ in blocks_read] == [200, 201, 202, 203, 204]  # the rows around the points, each once
    assert {size for *_, size in blocks_read} == {(1, WIDTH)}
