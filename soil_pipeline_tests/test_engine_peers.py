"""The streaming engine against peers and layouts users have: per-country sums equal rasterstats' with the same
pixel-centre rule, windowed rasterization equals the whole-grid one, and a SoilGrids-like 250 m COG (Homolosine,
int16, nodata -32768, 512 tiles) is read through /vsicurl/ window by window onto a lon/lat grid over one country."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rasterstats import zonal_stats

from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import zonal
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science.grid import window_grid
from soil_pipeline.science.regions import WindowRasterizer, rasterize_regions
from soil_pipeline_tests.range_server import serve

# Western Europe and North Africa on the WHRC 5' lattice: 600 x 540 cells, many countries and coastlines.
WEST, NORTH, COLS, ROWS = -15.0, 60.0, 600, 540


@pytest.fixture(scope="module")
def countries():
    frame = gpd.read_file(InputDatasets().countries_vector)
    return frame.sort_values("ADM0_A3", kind="mergesort").reset_index(drop=True)


@pytest.fixture(scope="module")
def soc_crop(tmp_path_factory):
    """The WHRC 2010 stock over the region as float64 (rasterstats then sums exactly what the engine sums)."""
    path = tmp_path_factory.mktemp("crop") / "soc.tif"
    with rasterio.open(InputDatasets().soc_stock_2010_raster) as src:
        window = rasterio.windows.from_bounds(WEST, NORTH - ROWS / 12, WEST + COLS / 12, NORTH, src.transform)
        window = window.round_offsets().round_lengths()
        data = src.read(1, window=window).astype("float64")
        data[data == src.nodata] = np.nan
        transform = src.window_transform(window)
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="float64")
    with rasterio.open(path, "w", crs="EPSG:4326", transform=transform, nodata=np.nan, **profile) as dst:
        dst.write(data, 1)
    return path


def _values(layers, row_area_ha):
    return {"soc_sum": layers["soc"], "soc_count": np.where(np.isnan(layers["soc"]), np.nan, 1.0)}


class CountryZones:
    def __init__(self, geometries, grid):
        self.rasterize, self.grid = WindowRasterizer(geometries), grid

    def __call__(self, layers):
        return {"country": self.rasterize(layers["_grid"])}


class WithWindowGrid(zonal.ZonalTask):
    def layers(self, window):
        return {**super().layers(window), "_grid": window_grid(self.grid, window)}


def _country_sums(source: engine.RasterSource, grid, geometries, quantities=_values, window_cells=40_000):
    plans, _ = zonal.plan({"soc": source}, grid)
    task = WithWindowGrid(
        grid, {"soc": source}, plans, quantities, CountryZones(geometries, grid), {"country": len(geometries)}
    )
    sums, report = engine.run_pass(task, engine.windows(grid, (128, 128), window_cells))
    return sums, report, plans["soc"]


def test_window_rasterization_equals_the_whole_grid(countries, soc_crop):
    with rasterio.open(soc_crop) as src:
        grid = engine.grid_of(src)
    whole = rasterize_regions(countries.geometry.values, grid)
    rasterizer = WindowRasterizer(countries.geometry.values)
    for window in engine.windows(grid, (128, 128), 40_000):
        rows, cols = window.toslices()
        np.testing.assert_array_equal(rasterizer(window_grid(grid, window)), whole[rows, cols])


def test_per_country_sums_equal_rasterstats_with_the_pixel_centre_rule(countries, soc_crop):
    with rasterio.open(soc_crop) as src:
        grid, values = engine.grid_of(src), src.read(1)
    geometries = countries.geometry.values
    sums, report, _ = _country_sums(engine.RasterSource(str(soc_crop), dtype="float64"), grid, geometries)
    assert report.windows > 4
    peers = zonal_stats(list(geometries), str(soc_crop), stats=["sum", "count"], all_touched=False)
    peer_sum = np.array([p["sum"] if p["sum"] is not None else 0.0 for p in peers])
    peer_count = np.array([p["count"] for p in peers])
    assert (peer_count > 0).sum() > 30  # France, Spain, Morocco, Algeria, ... down to Andorra and Gibraltar
    # rasterstats burns each polygon alone, so a cell whose centre two polygons claim (on a shared border) counts
    # in both; the engine gives it to one. Add back, per country, its claimed cells the engine gave to another.
    owner = rasterize_regions(geometries, grid)
    valid = ~np.isnan(values)
    lost_sum, lost_count = np.zeros(len(geometries)), np.zeros(len(geometries))
    for i, geometry in enumerate(geometries):
        if peer_count[i]:
            claimed = rasterio.features.rasterize([(geometry, 1)], out_shape=grid.shape, transform=grid.transform)
            lost = (claimed == 1) & (owner != i) & valid
            lost_sum[i], lost_count[i] = values[lost].sum(), lost.sum()
    assert 0 < lost_count.sum() < 0.001 * peer_count.sum()
    np.testing.assert_array_equal(sums["country/soc_count"] + lost_count, peer_count)
    np.testing.assert_allclose(sums["country/soc_sum"] + lost_sum, peer_sum, rtol=1e-9)


def _soilgrids_like_cog(folder):
    """ocs 0-30 cm in SoilGrids' layout (t/ha, int16, nodata -32768, Homolosine 250 m, 512 tiles, COG) over Rwanda:
    40 t/ha plus 1 t/ha per km east of the west edge, nodata over Lake Kivu's bounding quarter."""
    west, south, east, north = transform_bounds("EPSG:4326", "ESRI:54052", 28.7, -3.0, 31.0, -0.9)
    west, north = np.floor(west / 250) * 250, np.ceil(north / 250) * 250
    cols, rows = int(np.ceil((east - west) / 250)), int(np.ceil((north - south) / 250))
    data = (40 + np.arange(cols)[None, :] * 0.25 + np.zeros((rows, 1))).astype("int16")
    data[: rows // 4, : cols // 4] = -32768
    tmp, path = folder / "plain.tif", folder / "ocs_0-30cm_mean.tif"
    profile = dict(driver="GTiff", width=cols, height=rows, count=1, dtype="int16", nodata=-32768)
    with rasterio.open(tmp, "w", crs="ESRI:54052", transform=from_origin(west, north, 250, 250), **profile) as dst:
        dst.write(data, 1)
    rasterio.shutil.copy(tmp, path, driver="COG", blocksize=512, compress="DEFLATE")
    return path


def _stock(layers, row_area_ha):
    soc = layers["soc"]
    area = np.broadcast_to(row_area_ha[:, None], soc.shape)
    return {"area_ha": np.where(np.isnan(soc), np.nan, area), "stock_t_c": soc * area}


def test_a_soilgrids_layout_cog_over_one_country_through_vsicurl(countries, tmp_path):
    cog = _soilgrids_like_cog(tmp_path)
    rwanda = countries.index[countries["ADM0_A3"] == "RWA"][0]
    bounds = countries.geometry[rwanda].bounds
    # The configuration of docs: a lon/lat grid of 1/480 deg (about 250 m) over the country's bounding box.
    grid = engine.GridConfig.covering(1 / 480, *bounds).spec()
    with serve(tmp_path) as base, rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        remote = engine.RasterSource(f"/vsicurl/{base}/{cog.name}", resampling="average")
        sums, report, plan = _country_sums(remote, grid, countries.geometry, _stock, window_cells=250_000)
    local, _, _ = _country_sums(
        engine.RasterSource(str(cog), resampling="average"), grid, countries.geometry, _stock, window_cells=250_000
    )
    assert plan.method == "resample" and "average" in plan.record["method"]
    assert report.windows > 1
    for key in sums:
        np.testing.assert_array_equal(sums[key], local[key])
    area_mha = sums["country/area_ha"][rwanda] / 1e6
    polygon_mha = shapely.area(gpd.GeoSeries([countries.geometry[rwanda]], crs=4326).to_crs("ESRI:54009")[0]) / 1e10
    assert 0.7 * polygon_mha < area_mha <= polygon_mha * 1.01  # all of Rwanda but the nodata quarter
    mean_t_c_per_ha = sums["country/stock_t_c"][rwanda] / sums["country/area_ha"][rwanda]
    assert 40 + 0.25 * 100 < mean_t_c_per_ha < 40 + 0.25 * 900  # the east-west gradient, in t/ha


def _country_zone(layers):
    return {"country": layers["country"]}


def test_a_country_gate_skips_ocean_windows_and_changes_no_sum(countries, soc_crop, tmp_path):
    with rasterio.open(soc_crop) as src:
        grid = engine.grid_of(src)
    country_grid = tmp_path / "countries.tif"
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="int16", nodata=-1)
    with rasterio.open(country_grid, "w", crs=grid.crs, transform=grid.transform, **profile) as dst:
        dst.write(rasterize_regions(countries.geometry.values, grid).astype("int16"), 1)
    sources = {
        "country": engine.RasterSource(str(country_grid), dtype="int16", fill=-1),
        "soc": engine.RasterSource(str(soc_crop), dtype="float64"),
    }
    plans, _ = zonal.plan(sources, grid)
    sizes = {"country": len(countries)}
    plain = zonal.ZonalTask(grid, sources, plans, _values, _country_zone, sizes)
    gated = zonal.ZonalTask(grid, sources, plans, _values, _country_zone, sizes, gate="country")
    window_list = engine.windows(grid, (32, 32), 1024)
    parts = [gated(window) for window in window_list]
    ocean = [window for window, part in zip(window_list, parts, strict=True) if not part]
    assert 0 < len(ocean) < len(window_list) / 2  # the Atlantic west of Iberia and Morocco, the Mediterranean
    assert all(plain(window)["country/soc_count"].sum() == 0 for window in ocean)
    sums, _ = engine.run_pass(gated, window_list)
    expected, _ = engine.run_pass(plain, window_list)
    assert sums.keys() == expected.keys()
    for key, values in expected.items():
        np.testing.assert_array_equal(sums[key], values, err_msg=key)
