"""Cell areas on the sphere and explicit alignment of the real rasters onto the common grid."""

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling

from soil_pipeline.readers import read_raster
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science.grid import AUTHALIC_EARTH_RADIUS_KM, GridSpec, Layer, align, cell_area_ha, common_grid
from soil_pipeline_tests.conftest import FIXTURES

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


def _aligned_cropland() -> tuple[np.ndarray, np.ndarray]:
    band = read_raster(InputDatasets().cropland_raster)
    aligned = align(band.data, band.transform, band.crs, band.nodata, GLOBAL_5MIN, Resampling.sum, np.nan, "float32")
    return aligned.astype("float64"), band.data[band.data != band.nodata].astype("float64")


def test_hyde_cropland_alignment_preserves_total_area():
    aligned, source_values = _aligned_cropland()
    assert np.nansum(aligned) == pytest.approx(source_values.sum(), rel=1e-4)
    assert np.nansum(aligned) / 1e4 == pytest.approx(1591.3, rel=1e-3)  # km2 -> Mha


def test_hyde_alignment_is_the_oracle_shifted_by_less_than_one_row():
    aligned, _ = _aligned_cropland()
    with rasterio.open(FIXTURES / "hyde32_cropland_km2_2016_5arcmin_aligned.tif") as src:
        oracle = src.read(1).astype("float64")
        oracle[oracle == src.nodata] = np.nan
    ours_rows, oracle_rows = np.nansum(aligned, axis=1), np.nansum(oracle, axis=1)
    # The source grid sits 0.44 row off the 5' lattice and the oracle snaps it to whole rows, so cumulative totals
    # from the north may differ by at most one row's cropland.
    drift = np.abs(np.cumsum(ours_rows) - np.cumsum(oracle_rows))
    assert drift.max() <= oracle_rows.max()
    assert drift.max() > 0


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
