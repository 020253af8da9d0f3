"""Cell areas on the sphere and explicit alignment of the real rasters onto the common grid."""

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling

from soil_pipeline.resources import InputDatasets
from soil_pipeline.science.grid import (
    AUTHALIC_EARTH_RADIUS_KM,
    GridSpec,
    Layer,
    cell_area_ha,
    common_grid,
    lattice_offset,
)
from soil_pipeline_tests.conftest import FIXTURES
from soil_pipeline_tests.whole_array import align, read_raster, shift_onto

GLOBAL_5MIN = GridSpec(4320, 2160, Affine(1 / 12, 0, -180, 0, -1 / 12, 90))


def test_cell_areas_sum_to_the_sphere():
    total_ha = cell_area_ha(GLOBAL_5MIN).sum() * GLOBAL_5MIN.width
    assert total_ha == pytest.approx(4 * math.pi * AUTHALIC_EARTH_RADIUS_KM**2 * 100, rel=1e-9)


def test_equatorial_one_degree_cell():
    grid = GridSpec(1, 2, Affine(1, 0, 0, 0, -1, 1))
    expected_km2 = AUTHALIC_EARTH_RADIUS_KM**2 * math.radians(1) * math.sin(math.radians(1))
    assert cell_area_ha(grid)[0] == pytest.approx(expected_km2 * 100)
    assert cell_area_ha(grid)[0] == pytest.approx(cell_area_ha(grid)[1])


def test_south_up_grid_is_refused_for_areas():
    with pytest.raises(ValueError, match="north-up"):
        cell_area_ha(GridSpec(720, 360, Affine(0.5, 0, -180, 0, 0.5, -90)))


def test_layers_share_a_grid_only_when_size_crs_and_transform_agree():
    def layer(grid):
        return Layer(np.zeros(grid.shape), grid, "none")

    same = GridSpec(4320, 2160, Affine(1 / 12, 0, -180, 0, -1 / 12, 90), crs="epsg:4326")
    assert common_grid(layer(GLOBAL_5MIN), layer(GLOBAL_5MIN)) == GLOBAL_5MIN
    with pytest.raises(ValueError, match="layer grids differ"):
        common_grid(layer(GLOBAL_5MIN), layer(GridSpec(4320, 2160, Affine(1 / 12, 0, -179.5, 0, -1 / 12, 90))))
    with pytest.raises(ValueError, match="layer grids differ"):
        common_grid(layer(GLOBAL_5MIN), layer(GridSpec(4320, 2159, GLOBAL_5MIN.transform)))
    assert common_grid(layer(GLOBAL_5MIN), layer(same)) == GLOBAL_5MIN


def test_hyde_cropland_with_sum_resampling_preserves_total_area():
    band = read_raster(InputDatasets().cropland_raster)
    aligned = align(band.data, band.transform, band.crs, band.nodata, GLOBAL_5MIN, Resampling.sum, np.nan, "float32")
    source_total = band.data[band.data != band.nodata].astype("float64").sum()
    assert np.nansum(aligned.astype("float64")) == pytest.approx(source_total, rel=1e-4)


def test_hyde_cropland_is_detected_off_the_lattice_and_shifted_onto_the_oracle():
    band = read_raster(InputDatasets().cropland_raster)
    offset = lattice_offset(GridSpec(4320, 1792, band.transform, band.crs), GLOBAL_5MIN)
    assert offset == pytest.approx((0.0, 31.56), abs=1e-6)  # origin 87.37 N: 2.63 deg = 31.56 rows below 90 N
    aligned, record = shift_onto(band.data, band.nodata, offset, GLOBAL_5MIN, np.nan, "float32")
    assert record["shift_cells"] == {"columns": 0, "rows": 32}
    assert record["source_cells_outside_target"] == 0
    with rasterio.open(FIXTURES / "hyde32_cropland_km2_2016_5arcmin_aligned.tif") as src:
        oracle = src.read(1).astype("float32")
        oracle[src.read(1) == src.nodata] = np.nan
    np.testing.assert_array_equal(aligned, oracle)  # SOURCE.md: source row i is lattice row i + 32
    assert np.nansum(aligned.astype("float64")) / 1e4 == pytest.approx(1591.3, rel=1e-4)  # km2 -> Mha


def test_shift_rounds_the_offset_to_the_nearest_cell_and_keeps_values_whole():
    target = GridSpec(3, 4, Affine(1, 0, 0, 0, -1, 4))
    source_grid = GridSpec(2, 2, Affine(1, 0, 0.7, 0, -1, 2.6))  # 0.7 column right, 1.4 rows down
    offset = lattice_offset(source_grid, target)
    assert offset == pytest.approx((0.7, 1.4))
    source = np.array([[1, 2], [9, 4]], dtype="uint8")
    out, record = shift_onto(source, 9, offset, target, 0, "uint8")
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 1, 2], [0, 0, 4], [0, 0, 0]])
    assert record["shift_cells"] == {"columns": 1, "rows": 1}


def test_shift_drops_what_falls_outside_the_target_and_counts_it():
    target = GridSpec(2, 2, Affine(1, 0, 0, 0, -1, 2))
    out, record = shift_onto(np.ones((2, 2)), None, (1.2, -0.9), target, np.nan, "float64")
    # shift: 1 column right, 1 row up; only source cell (1, 0) lands inside, on target cell (0, 1)
    np.testing.assert_array_equal(out, [[np.nan, 1.0], [np.nan, np.nan]])
    assert record["source_cells_outside_target"] == 3


def test_other_resolutions_or_crs_are_not_shifted():
    assert lattice_offset(GridSpec(720, 360, Affine(0.5, 0, -180, 0, -0.5, 90)), GLOBAL_5MIN) is None
    assert lattice_offset(GridSpec(720, 360, Affine(0.5, 0, -180, 0, 0.5, -90)), GLOBAL_5MIN) is None  # south-up
    other_crs = GridSpec(4320, 2160, GLOBAL_5MIN.transform, crs="EPSG:3857")
    assert lattice_offset(other_crs, GLOBAL_5MIN) is None


def test_south_up_climate_zones_align_onto_the_north_up_oracle():
    band = read_raster(InputDatasets().climate_zones_raster)
    aligned = align(band.data, band.transform, band.crs, 0, GLOBAL_5MIN, Resampling.nearest, 0, "int16")
    with rasterio.open(FIXTURES / "ipcc_climate_zones_northup.tif") as src:
        oracle = np.repeat(np.repeat(src.read(1), 6, axis=0), 6, axis=1)
    np.testing.assert_array_equal(aligned, oracle)


def test_any_gdal_path_reads_like_a_local_file(tmp_path):
    local = Path(InputDatasets().climate_zones_raster)
    archive = tmp_path / "zones.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(local, local.name)
    zipped = read_raster(f"/vsizip/{archive}/{local.name}")
    np.testing.assert_array_equal(zipped.data, read_raster(str(local)).data)
    assert zipped.transform == read_raster(str(local)).transform
