"""Rasters by declaration: a SoilGrids-like regional stock raster (1/120 deg, int16, untagged -32768 fill, scaled
kg C/m2) is read by declaration alone and labelled regional; a stock raster in kg C/m2 and a regional raster passed
as global are refused with messages that say what to declare; every broken rule is reported at once."""

import numpy as np
import pytest
import rasterio
from affine import Affine

from soil_pipeline.contracts.model import load_raster_contract
from soil_pipeline.contracts.raster import check_raster
from soil_pipeline.contracts.raster_declaration import load_raster_declarations, to_contract_units
from soil_pipeline.errors import DeclarationError, InputError, Remedy
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.runner import run_job
from soil_pipeline.science.coverage import coverage_share, stock_layer_sums, stock_layers_report
from soil_pipeline_tests.test_bad_inputs import _failure_text, _materialize, published_root  # noqa: F401
from soil_pipeline_tests.whole_array import read_raster

STOCKS = ("soc_stock_2010_raster", "soc_stock_no_land_use_raster")
GHANA = (-3.25, 4.75, 1.25, 11.25)  # west, south, east, north: 540 x 780 cells at 1/120 deg
SOILGRIDS_DECLARATION = """\
declaration: 1
rasters:
  soc_stock_2010_raster:
    label: SoilGrids-like SOC stock 0-30 cm, Ghana
    unit: kg C/m2
    scale: 0.01
    nodata: -32768
    depth_cm: [0, 30]
    extent: regional
  soc_stock_no_land_use_raster:
    label: SoilGrids-like SOC stock 0-30 cm, Ghana
    unit: kg C/m2
    scale: 0.01
    nodata: -32768
    depth_cm: [0, 30]
    extent: regional
"""


def soilgrids_like(seed: int, offset: int = 0) -> np.ndarray:
    """int16 stocks in 0.01 kg C/m2 (300-700 = 30-70 t C/ha), with the -32768 fill along the coast (south rows)."""
    west, south, east, north = GHANA
    rows, cols = round((north - south) * 120), round((east - west) * 120)
    values = np.random.default_rng(seed).integers(300, 700, size=(rows, cols)).astype("int16") + offset
    values[-40:, :] = -32768
    return values.astype("int16")


def write_geotiff(path, data: np.ndarray, transform: Affine, nodata=None) -> str:
    profile = {"driver": "GTiff", "dtype": str(data.dtype), "width": data.shape[1], "height": data.shape[0]}
    with rasterio.open(path, "w", count=1, crs="EPSG:4326", transform=transform, nodata=nodata, **profile) as dst:
        dst.write(data, 1)
    return str(path)


def ghana_transform() -> Affine:
    return Affine(1 / 120, 0, GHANA[0], 0, -1 / 120, GHANA[3])


def declarations(tmp_path, text: str = SOILGRIDS_DECLARATION) -> dict:
    (tmp_path / "rasters.yaml").write_text(text)
    return load_raster_declarations(tmp_path / "rasters.yaml")


def test_declared_values_are_converted_per_window(tmp_path):
    declaration = declarations(tmp_path)["soc_stock_2010_raster"]
    window = np.array([[450, -32768], [0, 1234]], dtype="int16")
    out = to_contract_units(window, declaration, "t C/ha", file_nodata=None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[45.0, np.nan], [0.0, 123.4]], rtol=1e-6)


def test_a_stock_raster_in_kg_c_per_m2_is_refused_naming_the_unit_to_declare(tmp_path):
    whrc = read_raster(InputDatasets().soc_stock_2010_raster)
    kg_per_m2 = np.where(whrc.data == -32767, whrc.data, np.round(whrc.data / 10)).astype("int16")
    path = write_geotiff(tmp_path / "soc_2010_kg_c_per_m2.tif", kg_per_m2, whrc.transform, whrc.nodata)
    with pytest.raises(InputError) as error:
        check_raster(path, load_raster_contract("soc_stock_2010_raster"))
    assert str(error.value) == (
        f"{path}: breaks contract soc_stock_2010_raster v1.0.0 (1 rule(s)): rule medianBetween: "
        "median 7 t C/ha of 2060998 valid cells is outside [15, 300] t C/ha; x 10 it would be 70: the values look "
        "like kg C/m2, declare unit: kg C/m2 (rasters.soc_stock_2010_raster in the raster_declaration file)"
    )


def test_a_regional_raster_passed_as_global_is_refused_with_every_broken_rule(tmp_path):
    path = write_geotiff(tmp_path / "ghana_ocs_0_30.tif", soilgrids_like(1), ghana_transform())
    with pytest.raises(InputError) as error:
        check_raster(path, load_raster_contract("soc_stock_2010_raster"))
    message = str(error.value)
    assert message.startswith(f"{path}: breaks contract soc_stock_2010_raster v1.0.0 (6 rule(s)): ")
    for rule in ("resolutionDeg", "extentDeg", "nodata", "valueRange", "medianBetween"):
        assert f"rule {rule}: " in message
    assert "rule valueRange: 21600 pixel(s) outside [0, 800] t C/ha in window rows 740-779, cols 0-539" in message
    assert (
        "rule extentDeg: covers only 0.1% of the global extent [-180.0, -90.0, 180.0, 90.0]: a regional raster "
        "passed as global. Declare it (extent: regional, rasters.soc_stock_2010_raster in the raster_declaration "
        "file) to have it labelled regional and never summed as global" in message
    )


def test_a_bad_raster_declaration_is_refused_naming_file_and_key(tmp_path):
    path = tmp_path / "rasters.yaml"
    for text, expected in (
        (SOILGRIDS_DECLARATION.replace("kg C/m2", "kg/m3", 1), "rasters.soc_stock_2010_raster.unit: 'kg/m3'"),
        (SOILGRIDS_DECLARATION.replace("extent: regional", "extent: ghana", 1), ".extent: 'ghana'"),
        ("declaration: 1\nrasters:\n  soc_stock_2010_raster: {role: cropland_area}\n", "but this input is the"),
        (
            "declaration: 1\nrasters:\n  soc_raster: {unit: kg C/m2}\n",
            "rasters.soc_raster: not a declarable raster input; use one of soc_stock_2010_raster, "
            "soc_stock_no_land_use_raster, soc_stock_error_0cm_raster, soc_stock_error_30cm_raster, "
            "cropland_raster, climate_zones_raster, pasture_raster, second_soc_stock_raster",
        ),
    ):
        path.write_text(text)
        with pytest.raises(DeclarationError) as error:
            load_raster_declarations(path)
        assert str(error.value).startswith(f"{path}: ") and expected in str(error.value)


def test_a_depth_other_than_0_30_cm_is_refused(tmp_path):
    text = SOILGRIDS_DECLARATION.replace("depth_cm: [0, 30]", "depth_cm: [0, 100]", 1)
    declaration = declarations(tmp_path, text)["soc_stock_2010_raster"]
    path = write_geotiff(tmp_path / "ghana.tif", soilgrids_like(1), ghana_transform())
    with pytest.raises(InputError, match="rule depthCm: declared 0-100 cm, the layer must be 0-30 cm"):
        check_raster(path, load_raster_contract("soc_stock_2010_raster"), declaration)


def _materialize_stock_grid(tmp_path, raster_engine=None, **inputs):
    return run_job(tmp_path / "out", inputs=inputs, raster_engine=raster_engine, asset_selection=["soc_stock_grid"])


def test_a_soilgrids_like_regional_raster_is_read_by_declaration_and_labelled_regional(tmp_path):
    current, natural = soilgrids_like(1), soilgrids_like(2, offset=50)
    paths = {
        "soc_stock_2010_raster": write_geotiff(tmp_path / "ocs_2010.tif", current, ghana_transform()),
        "soc_stock_no_land_use_raster": write_geotiff(tmp_path / "ocs_nolu.tif", natural, ghana_transform()),
    }
    (tmp_path / "rasters.yaml").write_text(SOILGRIDS_DECLARATION)
    west, south, east, north = GHANA
    # The common grid configured on the region at the raster's own 1 km, as a user of a regional raster would.
    on_ghana = RasterEngine(resolution_deg=1 / 120, west=west, north=north, width=540, height=780)
    result = _materialize_stock_grid(
        tmp_path, raster_engine=on_ghana, raster_declaration=str(tmp_path / "rasters.yaml"), **paths
    )
    assert result.success
    layer = result.layer("soc_stock_grid")
    assert layer.units.endswith("; REGIONAL extent (SoilGrids-like SOC stock 0-30 cm, Ghana), not global")
    valid = current != -32768
    np.testing.assert_allclose(layer.data[0][valid], current[valid] / 10, rtol=1e-6)  # 0.01 kg C/m2 -> t C/ha
    assert np.isnan(layer.data[0][~valid]).all()
    higher = valid & (current > natural)
    coverage = layer.alignment["coverage"]
    assert coverage["both"]["cells"] == int(valid.sum())
    assert coverage["2010_above_no_land_use"]["cells"] == int(higher.sum()) > 0
    declared = layer.provenance["parameters"]["raster_declaration:soc_stock_2010_raster"]
    assert (declared["unit"], declared["scale"], declared["extent"]) == ("kg C/m2", 0.01, "regional")


def test_a_regional_raster_is_averaged_onto_the_configured_global_grid_not_made_the_grid(tmp_path):
    current = soilgrids_like(1)
    paths = {
        "soc_stock_2010_raster": write_geotiff(tmp_path / "ocs_2010.tif", current, ghana_transform()),
        "soc_stock_no_land_use_raster": write_geotiff(tmp_path / "ocs_nolu.tif", current, ghana_transform()),
    }
    (tmp_path / "rasters.yaml").write_text(SOILGRIDS_DECLARATION)
    result = _materialize_stock_grid(tmp_path, raster_declaration=str(tmp_path / "rasters.yaml"), **paths)
    assert result.success
    layer = result.layer("soc_stock_grid")
    assert layer.grid == RasterEngine().grid()  # the default 5' global grid, not the raster's 1 km Ghana grid
    ghana = rasterio.windows.from_bounds(*GHANA, transform=layer.grid.transform).round_offsets().round_lengths()
    inside = layer.data[0][ghana.toslices()]
    assert inside.shape == (78, 54)
    # Each 5' cell is the average of its 10 x 10 one-km cells (0.01 kg C/m2 -> t C/ha), to the partial edge
    # cells GDAL weights in (the grid's 0.0833333 deg is not exactly 1/12); the coastal fill is NaN.
    blocks = np.where(current == -32768, np.nan, current / 10).reshape(78, 10, 54, 10)
    np.testing.assert_allclose(inside[:74], np.nanmean(blocks, axis=(1, 3))[:74], rtol=1e-3)
    assert np.isnan(inside[75:]).all()
    # Nothing outside Ghana but cells a sliver of it covers at its edges (0.0833333 deg is not 1/12): GDAL's
    # average gives such a cell a value or not depending on the warped extent (window by window here).
    ring = np.zeros(layer.grid.shape, dtype=bool)
    ring[ghana.row_off - 1 : ghana.row_off + ghana.height + 1, ghana.col_off - 1 : ghana.col_off + ghana.width + 1] = (
        True
    )
    assert not np.isfinite(layer.data[0][~ring]).any() and np.isfinite(inside).sum() >= 74 * 54


def test_a_global_grid_holding_one_region_is_refused_as_regional_passed_as_global(tmp_path):
    whrc = read_raster(InputDatasets().soc_stock_2010_raster)
    rows, cols = rasterio.transform.rowcol(whrc.transform, [GHANA[0], GHANA[2]], [GHANA[3], GHANA[1]])
    ghana_only = np.full_like(whrc.data, -32767)
    ghana_only[rows[0] : rows[1], cols[0] : cols[1]] = whrc.data[rows[0] : rows[1], cols[0] : cols[1]]
    path = tmp_path / "ghana_in_a_global_grid.tif"
    write_geotiff(path, ghana_only, whrc.transform, nodata=-32767)
    result = _materialize_stock_grid(tmp_path, soc_stock_2010_raster=str(path))
    assert not result.success
    [failure] = result.failures()
    assert (failure.file, failure.remedy) == (str(path), Remedy.DECLARE_RASTER)
    assert failure.cause.startswith(f"{path}: rule coverage: the 2010 and no-land-use stock layers share 0.")
    assert failure.cause.endswith(
        "a regional raster passed as global. Declare it (extent: regional, rasters.soc_stock_2010_raster in the "
        "raster_declaration file) to have it labelled regional and never summed as global"
    )


def test_the_stock_layers_report_counts_coverage_and_2010_above_no_land_use():
    current = np.array([[10.0, 20.0, np.nan], [5.0, np.nan, 1.0]])
    natural = np.array([[12.0, 15.0, 3.0], [5.0, np.nan, np.nan]])
    halves = [
        stock_layer_sums(current[:, cols], natural[:, cols], np.array([100.0, 200.0]))
        for cols in (slice(0, 2), slice(2, 3))
    ]
    report = stock_layers_report({name: halves[0][name] + halves[1][name] for name in halves[0]})
    assert (report["both"]["cells"], report["only_2010"]["cells"], report["only_no_land_use"]["cells"]) == (3, 1, 1)
    above = report["2010_above_no_land_use"]
    assert above["cells"] == 1 and np.isclose(above["excess_pg_c"], 5.0 * 100 / 1e9)
    assert coverage_share(report) == 3 / 5


def test_a_second_labelled_stock_source_is_summed_beside_whrc(published_root, tmp_path):  # noqa: F811
    root, _ = published_root
    ghana = soilgrids_like(3)
    (tmp_path / "rasters.yaml").write_text(
        "declaration: 1\nrasters:\n  second_soc_stock_raster:\n    label: SoilGrids-like 0-30 cm (Ghana)\n"
        "    unit: kg C/m2\n    scale: 0.01\n    nodata: -32768\n    depth_cm: [0, 30]\n    extent: regional\n"
    )
    inputs = InputDatasets(
        second_soc_stock_raster=write_geotiff(tmp_path / "ghana_ocs.tif", ghana, ghana_transform()),
        raster_declaration=str(tmp_path / "rasters.yaml"),
    )
    result = _materialize(["second_soc_stock_grid", "regional_soc_stocks"], root, inputs, partition=None)
    assert result.success, _failure_text(result)
    table = VersionedParquetStore(root).read("regional_soc_stocks")
    assert set(table["soc_stock_source"]) == {"WHRC Soil Carbon Debt, Sanderman et al. 2017"}
    assert set(table["second_soc_stock_source"]) == {"SoilGrids-like 0-30 cm (Ghana)"}
    world = table[table["region_type"] == "global"].iloc[0]
    gha = table[(table["region_type"] == "country") & (table["region_id"] == "GHA")].iloc[0]
    # 1/120 deg cells averaged onto the 5' grid: the area is that of the 5' cells the raster touches
    assert 15 < gha["second_soc_mapped_area_mha"] < world["second_soc_mapped_area_mha"] < 40
    mean = world["second_soc_stock_pg_c"] * 1e9 / (world["second_soc_mapped_area_mha"] * 1e6)
    assert abs(mean - ghana[ghana != -32768].mean() / 10) < 0.5  # t C/ha
    assert 0 < world["soc_stock_2010_on_second_cells_pg_c"] < world["soc_stock_2010_pg_c"] / 100
    assert table.loc[table["region_id"] == "FRA", "second_soc_stock_pg_c"].iloc[0] == 0.0
