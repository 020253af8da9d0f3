"""The streaming raster engine on the embedded rasters: windowed alignment and zonal sums equal the whole-array
methods cell for cell, whatever the window size."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling

from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import zonal
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science.aggregation import zonal_sum
from soil_pipeline.science.grid import GridSpec, cell_area_ha
from soil_pipeline_tests.conftest import FIXTURES
from soil_pipeline_tests.whole_array import align, read_raster

GRID = engine.GridConfig().spec()
SMALL_WINDOWS = 300_000  # many windows, several per row of blocks


def _assemble(source: engine.RasterSource, grid: GridSpec, cells: int) -> tuple[np.ndarray, engine.Alignment]:
    with engine.open_source(source) as dataset:
        plan = engine.plan_alignment(engine.grid_of(dataset), grid, source.resampling)
        out = np.full((len(source.bands), *grid.shape), source.fill, dtype=source.dtype)
        for window in engine.windows(grid, (256, 256), cells):
            rows, cols = window.toslices()
            out[:, rows, cols] = engine.read_aligned(dataset, source, plan, grid, window)
    return out[0], plan


def test_default_grid_is_the_whrc_grid_as_stored():
    with rasterio.open(InputDatasets().soc_stock_2010_raster) as src:
        assert GRID.transform == src.transform and GRID.shape == src.shape


def test_grid_from_extent():
    one_km = engine.GridConfig.covering(1 / 120, -180, -90, 180, 90).spec()
    assert one_km.shape == (21600, 43200)


def test_windows_tile_the_grid_in_whole_blocks():
    window_list = engine.windows(GRID, (512, 512), 1_000_000)
    assert sum(w.width * w.height for w in window_list) == GRID.width * GRID.height
    assert all(w.row_off % 512 == 0 and w.col_off % 512 == 0 for w in window_list)


def test_hyde_windows_shift_onto_the_oracle():
    source = engine.RasterSource(InputDatasets().cropland_raster, resampling="sum")
    aligned, plan = _assemble(source, GRID, SMALL_WINDOWS)
    assert plan.method == "shift" and plan.record["shift_cells"] == {"columns": 0, "rows": 32}
    with rasterio.open(FIXTURES / "hyde32_cropland_km2_2016_5arcmin_aligned.tif") as src:
        oracle = src.read(1).astype("float32")
        oracle[src.read(1) == src.nodata] = np.nan
    np.testing.assert_array_equal(aligned, oracle)


def test_climate_zone_windows_equal_the_whole_array_reprojection():
    path = InputDatasets().climate_zones_raster
    source = engine.RasterSource(path, resampling="nearest", dtype="int16", fill=0)
    aligned, plan = _assemble(source, GRID, SMALL_WINDOWS)
    assert plan.method == "resample"
    band = read_raster(path)
    whole = align(band.data, band.transform, band.crs, band.nodata, GRID, Resampling.nearest, 0, "int16")
    np.testing.assert_array_equal(aligned, whole)


def test_sum_resampling_by_window_keeps_the_total():
    source = engine.RasterSource(InputDatasets().cropland_raster, resampling="sum")
    coarse = engine.GridConfig.covering(0.5, -180, -90, 180, 90).spec()
    aligned, plan = _assemble(source, coarse, 20_000)
    band = read_raster(InputDatasets().cropland_raster)
    whole = align(band.data, band.transform, band.crs, band.nodata, coarse, Resampling.sum, np.nan, "float32")
    assert plan.method == "resample"
    # GDAL may give an all-nodata window edge cell 0 in one case and nodata in the other: compare as areas
    np.testing.assert_allclose(np.nan_to_num(aligned), np.nan_to_num(whole), rtol=1e-6, atol=1e-9)
    assert np.nansum(aligned, dtype="float64") == pytest.approx(band.data[band.data != 255].sum(), rel=1e-5)


def _area_and_stock(layers, row_area_ha):
    soc = layers["soc"]
    area = np.broadcast_to(row_area_ha[:, None], soc.shape)
    return {"area_ha": np.where(np.isnan(soc), np.nan, area), "stock_t_c": soc * area}


def _zones(layers):
    zone = layers["zone"].astype("int64")
    return {"climate_zone": zone, "band": cross(zone)}


def cross(zone):
    rows = np.arange(zone.shape[0])[:, None] % 3
    return zonal.cross(np.broadcast_to(rows, zone.shape), zone, 13)


def test_one_pass_zonal_sums_equal_whole_array_sums():
    inputs = InputDatasets()
    sources = {
        "soc": engine.RasterSource(inputs.soc_stock_2010_raster),
        "zone": engine.RasterSource(inputs.climate_zones_raster, resampling="nearest", dtype="int16", fill=0),
    }
    sizes = {"climate_zone": 13, "band": 3 * 13}
    sums, report, records = zonal.zonal_statistics(
        sources, GRID, _area_and_stock, _zones, sizes, window_cells=SMALL_WINDOWS
    )
    assert report.windows > 10 and report.cells == GRID.width * GRID.height
    assert records["soc"]["method"].startswith("none") and records["zone"]["method"].startswith("rasterio.warp")
    soc = read_raster(inputs.soc_stock_2010_raster)
    values = np.where(soc.data == soc.nodata, np.nan, soc.data.astype("float32"))
    band = read_raster(inputs.climate_zones_raster)
    zone = align(band.data, band.transform, band.crs, None, GRID, Resampling.nearest, 0, "int16").astype("int64")
    whole = _area_and_stock({"soc": values}, cell_area_ha(GRID))
    for name, cells in whole.items():
        expected = zonal_sum(cells.ravel(), zone.ravel(), 13)
        np.testing.assert_allclose(sums[f"climate_zone/{name}"], expected, rtol=1e-12)
        expected_cross = zonal_sum(cells.ravel(), cross(zone).ravel(), 39)
        np.testing.assert_allclose(sums[f"band/{name}"], expected_cross, rtol=1e-12)
    assert sums["climate_zone/stock_t_c"].sum() / 1e9 == pytest.approx(867.1, abs=0.05)


@pytest.mark.parametrize("zone_dtype", ["int16", "int32", "int64"])
def test_window_sums_are_bit_identical_to_zonal_sum(zone_dtype):
    soc = read_raster(InputDatasets().soc_stock_2010_raster)
    values = np.where(soc.data == soc.nodata, np.nan, soc.data.astype("float32"))
    rows = np.arange(values.shape[0])[:, None] % 7
    zone = np.where(np.arange(values.shape[1])[None, :] % 11 == 0, -1, rows).astype(zone_dtype)
    stock = values * cell_area_ha(GRID)[:, None]
    sums = zonal.window_sums(
        {"soc": values, "stock": stock}, {"z": zone, "x": cross(zone)}, {"z": 7, "x": 39}, {"x": ["stock"]}
    )
    assert sorted(sums) == ["x/stock", "z/soc", "z/stock"]
    np.testing.assert_array_equal(sums["z/soc"], zonal_sum(values.ravel().astype("float64"), zone.ravel(), 7))
    np.testing.assert_array_equal(sums["z/stock"], zonal_sum(stock.ravel(), zone.ravel().astype("int64"), 7))
    np.testing.assert_array_equal(sums["x/stock"], zonal_sum(stock.ravel(), cross(zone).ravel(), 39))


def _write(path, value: float) -> None:
    profile = dict(driver="GTiff", width=8, height=4, count=1, dtype="float32", crs="EPSG:4326")
    with rasterio.open(path, "w", transform=rasterio.transform.from_origin(0, 4, 1, 1), **profile) as dst:
        dst.write(np.full((4, 8), value, dtype="float32"), 1)


def test_a_dataset_kept_open_is_not_reused_once_its_file_is_replaced(tmp_path):
    path = tmp_path / "layer.tif"
    _write(path, 1.0)
    source = engine.RasterSource(str(path))
    with engine.opened(source) as first:
        assert first.read(1).sum() == 32
    with engine.opened(source) as again:
        assert again is first
    _write(tmp_path / "new.tif", 2.0)
    (tmp_path / "new.tif").replace(path)
    with engine.opened(source) as replaced:
        assert replaced is not first and replaced.read(1).sum() == 64


def test_in_memory_sources_read_right_from_many_threads_with_more_sources_than_kept(tmp_path):
    sources = []
    for value in range(engine.IN_MEMORY_FILES + 3):
        _write(tmp_path / f"{value}.tif", float(value))
        sources.append(engine.RasterSource((tmp_path / f"{value}.tif").read_bytes()))

    def read(i):
        source = sources[i % len(sources)]
        with (engine.opened if i % 2 else engine.open_source)(source) as dataset:
            return i % len(sources), dataset.read(1)

    with ThreadPoolExecutor(4) as pool:
        for value, data in pool.map(read, range(200)):
            assert (data == value).all()
    engine.release_in_memory_files()
    assert not engine._in_memory


def test_a_dataset_kept_open_on_bytes_keeps_reading_them_after_the_source_is_gone(tmp_path):
    _write(tmp_path / "layer.tif", 3.0)
    source = engine.RasterSource((tmp_path / "layer.tif").read_bytes())
    with engine.opened(source) as first:
        pass
    with engine.opened(engine.RasterSource(source.location)) as again:
        assert again is first  # the same bytes object: the same dataset
    with engine.opened(engine.RasterSource(bytes(bytearray(source.location)))) as other:
        assert other is not first  # equal bytes, another object: opened on its own
    engine.release_in_memory_files()
    del source, again, other
    _ = [bytes([i]) * 4096 for i in range(200)]  # reuse freed memory, were the bytes freed
    assert (first.read(1) == 3.0).all()


@pytest.mark.parametrize("zone_type", ["uint8", "int16", "int32", "int64"])
def test_window_sums_take_zones_and_values_of_any_numeric_type_with_bincount_sums(zone_type):
    rng = np.random.default_rng(3)
    shape = (64, 96)
    zones = rng.integers(-1, 9, shape)
    zones = np.where(zones < 0, 255 if zone_type == "uint8" else -1, zones).astype(zone_type)  # 255: outside
    soc = rng.gamma(2.0, 30.0, shape).astype("float32")
    soc[rng.random(shape) < 0.1] = np.nan
    values = {"soc": soc, "area": rng.random(shape), "count": ~np.isnan(soc), "class": rng.integers(0, 5, shape)}
    sums = zonal.window_sums(values, {"z": zones, "x": zonal.cross(zones, values["class"], 5)}, {"z": 9, "x": 45})
    inside = zones.astype("int64")
    inside = np.where(inside >= 9, -1, inside)
    for name, v in values.items():
        v = v.astype("float64")
        keep = (inside >= 0) & ~np.isnan(v)
        expected = np.bincount(inside[keep], weights=v[keep], minlength=9)
        np.testing.assert_array_equal(sums[f"z/{name}"], expected)  # bit-identical, whatever the types
        crossed = inside * 5 + values["class"]
        expected_x = np.bincount(crossed[keep], weights=v[keep], minlength=45)
        np.testing.assert_array_equal(sums[f"x/{name}"], expected_x)


def test_an_array_given_under_two_names_is_summed_once_into_sums_of_its_own_for_each():
    values = np.array([1.0, 2.0, np.nan, 4.0, 8.0])
    zones = np.array([0, 1, 1, 0, -1])
    sums = zonal.window_sums({"a": values, "b": values, "c": 2 * values}, {"z": zones}, {"z": 2})
    assert list(sums) == ["z/a", "z/b", "z/c"]
    for name, expected in (("a", [5.0, 2.0]), ("b", [5.0, 2.0]), ("c", [10.0, 4.0])):
        np.testing.assert_array_equal(sums[f"z/{name}"], expected)
    sums["z/a"] += 1.0  # the engine adds windows' sums in place: each name has an array of its own
    np.testing.assert_array_equal(sums["z/b"], [5.0, 2.0])


@pytest.mark.parametrize("zone_type", ["uint8", "int16", "int64"])
def test_quantity_and_cross_zone_terms_sum_bit_for_bit_as_the_arrays_they_stand_for(zone_type):
    rng = np.random.default_rng(5)
    shape = (48, 80)
    zones = rng.integers(-1, 9, shape)
    zones = np.where(zones < 0, 255 if zone_type == "uint8" else -1, zones).astype(zone_type)  # 255: outside
    classes = rng.integers(0, 6, shape).astype("uint8")
    soc = rng.gamma(2.0, 30.0, shape).astype("float32")
    soc[rng.random(shape) < 0.1] = np.nan
    area = rng.uniform(500.0, 900.0, shape[0])  # ha, one per row
    missing = np.isnan(soc)
    arrays = {"area": np.where(missing, np.nan, area[:, None]), "stock": soc * area[:, None], "n": ~missing}
    terms = {
        "area": zonal.Quantity(soc, area, count=True),
        "stock": zonal.Quantity(soc, area),
        "n": zonal.Quantity(soc, count=True),
    }
    sizes, names = {"z": 9, "x": 54, "y": 54}, {"x": ["area"], "y": ["stock", "n"]}
    as_arrays = {"z": zones, "x": zonal.cross(zones, classes, 6), "y": zonal.cross(classes, zones, 9)}
    expected = zonal.window_sums({**arrays, "soc": soc}, as_arrays, sizes, names)
    crossed = {"z": zones, "x": zonal.CrossZones(zones, classes, 6), "y": zonal.CrossZones(classes, zones, 9)}
    sums = zonal.window_sums({**terms, "soc": soc}, crossed, sizes, names)
    assert sorted(sums) == sorted(expected) == ["x/area", "y/n", "y/stock", "z/area", "z/n", "z/soc", "z/stock"]
    for name, values in expected.items():
        np.testing.assert_array_equal(sums[name], values)
    inside = (zones >= 0) & (zones < 9) & ~missing
    np.testing.assert_array_equal(sums["z/n"], np.bincount(zones[inside].astype("int64"), minlength=9))
    assert sums["x/area"].sum() == pytest.approx(area[:, None].repeat(80, 1)[inside].sum(), rel=1e-12)


def _minus_9999_is_no_data(values, nodata):
    """A declaration's conversion: -9999 is no data (whatever the file tags), values as float32 with NaN."""
    return np.where(values == -9999, np.nan, values).astype("float32")


@pytest.mark.parametrize(
    ("dtype", "fill", "expected"), [("float32", np.nan, [0.0, 5.0, np.nan]), ("int16", 0, [0, 5, 0])]
)
def test_declared_values_are_not_masked_by_the_files_own_nodata_tag(tmp_path, dtype, fill, expected):
    """A file tagged nodata 0 whose declaration names -9999: its zeros are values, -9999 is no data, also on an
    integer grid (NaN becomes the fill)."""
    path = tmp_path / "declared.tif"
    profile = {
        "driver": "GTiff",
        "width": 3,
        "height": 1,
        "count": 1,
        "dtype": "int16",
        "nodata": 0,
        "crs": "EPSG:4326",
    }
    with rasterio.open(path, "w", transform=rasterio.transform.from_origin(0, 1, 1, 1), **profile) as dst:
        dst.write(np.array([[0, 5, -9999]], dtype="int16"), 1)
    source = engine.RasterSource(str(path), dtype=dtype, fill=fill, declare=_minus_9999_is_no_data)
    with engine.open_source(source) as dataset:
        grid = engine.grid_of(dataset)
        plan = engine.plan_alignment(grid, grid, "nearest")
        values = engine.read_aligned(dataset, source, plan, grid, rasterio.windows.Window(0, 0, 3, 1))
    np.testing.assert_array_equal(values[0, 0], np.array(expected, dtype=dtype))
