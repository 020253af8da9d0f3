"""The raster half of the issue-21 corpus: units checked whatever was declared, empty and degenerate rasters, header
limits, secrets and hashes, partial coverage and regional labels, and the diagnoses of rotated rasters, the file size
limit and `gc`. Each case asserts its exact outcome, through `check_raster` and the store where that is the gate, and
through `runner.run_job` for the few that only a run shows."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio._err import CPLE_OpenFailedError

from soil_pipeline.cli import _stock_lines, failure_text
from soil_pipeline.contracts.bounded_yaml import DeclarationError
from soil_pipeline.contracts.model import ContractError, load_raster_contract
from soil_pipeline.contracts.raster import RasterLimits, check_raster
from soil_pipeline.contracts.raster_declaration import load_raster_declarations
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.failures import as_failure
from soil_pipeline.provenance import snapshot
from soil_pipeline.publishing.maintenance import gc
from soil_pipeline.publishing.store import RUNS_DIR, RunFolderRemoved, VersionedParquetStore
from soil_pipeline.redaction import redact
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.runner import run_job
from soil_pipeline.science.aggregation import global_row, second_source_quantities
from soil_pipeline.science.grid import GridSpec, band_areas_ha
from soil_pipeline.science.grid_windows import LandShare, SecondStockWindow, land_share, reference_ratio
from soil_pipeline.zones import extent_name
from soil_pipeline_tests.range_server import serve
from soil_pipeline_tests.test_bad_inputs import CORPUS, published_root  # noqa: F401
from soil_pipeline_tests.test_raster_declarations import GHANA, ghana_transform, soilgrids_like, write_geotiff
from soil_pipeline_tests.whole_array import read_raster

REPO = Path(__file__).resolve().parent.parent
WHRC = read_raster(InputDatasets().soc_stock_2010_raster)
SOC = load_raster_contract("soc_stock_2010_raster")
CLIMATE = load_raster_contract("climate_zones_raster")
CROPLAND = load_raster_contract("cropland_raster")
ZONES_TRANSFORM = Affine(0.5, 0, -180, 0, -0.5, 90)


def declared(tmp_path, name: str, **fields) -> dict:
    """A raster declaration file with one entry, loaded."""
    lines = ["declaration: 1", "rasters:", f"  {name}:"]
    for key, value in fields.items():
        if isinstance(value, dict):
            lines.append(f"    {key}:")
            lines += [f"      {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"    {key}: {value}")
    (tmp_path / "rasters.yaml").write_text("\n".join(lines) + "\n")
    return load_raster_declarations(tmp_path / "rasters.yaml")


def refusal(path, contract, declaration=None, limits: RasterLimits | None = None) -> InputError:
    with pytest.raises(InputError) as error:
        check_raster(str(path), contract, declaration, limits=limits or RasterLimits())
    return error.value


def whrc_as(tmp_path, name: str, values: np.ndarray) -> str:
    return write_geotiff(tmp_path / name, values.astype("int16"), WHRC.transform, WHRC.nodata)


# ------------------------------------------------------------------------------------------------ class 1: units


def test_whrc_in_kg_c_per_m2_declared_as_t_c_per_ha_is_refused_naming_the_unit(tmp_path):
    """Declaring a unit no longer switches the median guard off (86.7 Pg C were published this way)."""
    kg_per_m2 = np.where(WHRC.data == -32767, WHRC.data, np.round(WHRC.data / 10))
    path = whrc_as(tmp_path, "whrc_kg_c_per_m2.tif", kg_per_m2)
    declaration = declared(tmp_path, "soc_stock_2010_raster", label="WHRC", unit="t C/ha")["soc_stock_2010_raster"]
    error = refusal(path, SOC, declaration)
    assert str(error) == (
        f"{path}: breaks contract soc_stock_2010_raster v1.0.0 (1 rule(s)): rule medianBetween: median 7 t C/ha of "
        "2060998 valid cells is outside [15, 300] t C/ha; x 10 it would be 70: the values look like kg C/m2, not "
        "t C/ha as declared, declare unit: kg C/m2 (rasters.soc_stock_2010_raster in the raster_declaration file)"
    )
    assert error.remedy == Remedy.RASTER_PLAUSIBILITY


def test_whrc_in_t_c_per_ha_declared_as_kg_c_per_m2_is_refused_naming_the_unit(tmp_path):
    low = np.where(WHRC.data == -32767, WHRC.data, np.minimum(WHRC.data, 79))  # x 10 stays within 0-800
    path = whrc_as(tmp_path, "whrc_t_c_per_ha.tif", low)
    declaration = declared(tmp_path, "soc_stock_2010_raster", unit="kg C/m2")["soc_stock_2010_raster"]
    median = float(np.median(low[low != -32767]))
    assert str(refusal(path, SOC, declaration)).endswith(
        f"rule medianBetween: median {median * 10:g} t C/ha of 2060998 valid cells is outside [15, 300] t C/ha; x 0.1 "
        f"it would be {median:g}: the values look like t C/ha, not kg C/m2 as declared, declare unit: t C/ha "
        "(rasters.soc_stock_2010_raster in the raster_declaration file)"
    )


def peat_like(tmp_path) -> str:
    """A regional stock raster (Ghana grid, t C/ha) whose median, 350, lies above the plausible 15-300."""
    values = np.random.default_rng(7).integers(300, 400, size=(780, 540)).astype("int16")
    return write_geotiff(tmp_path / "peat.tif", values, ghana_transform(), nodata=-1)


def test_an_unusual_median_is_refused_then_published_when_confirmed_and_the_confirmation_recorded(tmp_path):
    path = peat_like(tmp_path)
    plain = declared(tmp_path, "soc_stock_2010_raster", unit="t C/ha", extent="regional")["soc_stock_2010_raster"]
    error = refusal(path, SOC, plain)
    assert "rule medianBetween: median 350 t C/ha of 421200 valid cells is outside [15, 300] t C/ha" in str(error)
    reason = "peat survey, checked against 40 profiles"
    sure = declared(
        tmp_path, "soc_stock_2010_raster", unit="t C/ha", extent="regional", confirm={"medianBetween": reason}
    )["soc_stock_2010_raster"]
    checked = check_raster(path, SOC, sure)
    finding = str(error).split("rule medianBetween: ", 1)[1]
    assert checked.confirmed == {"medianBetween": {"finding": finding, "reason": reason, "declaration": "rasters.yaml"}}
    assert sure.describe()["confirm"] == {"medianBetween": reason}


def test_a_confirmation_must_name_a_plausibility_rule_and_give_a_reason(tmp_path):
    for confirm, expected in (
        ({"valueRange": "sure"}, "confirm.valueRange: not a rule a declaration can confirm; use medianBetween, "),
        ({"medianBetween": "''"}, "confirm.medianBetween: give the reason the values are right, as text"),
    ):
        with pytest.raises(DeclarationError, match=expected):
            declared(tmp_path, "soc_stock_2010_raster", confirm=confirm)


NIGER = (0.0, 12.0, 16.0, 23.0)  # west, south, east, north: WHRC's median there is 15 t C/ha, its maximum 66


def whrc_box(bounds) -> tuple[np.ndarray, rasterio.windows.Window]:
    """The WHRC 2010 stock (t C/ha, int16) over a box, on its own 5' cells, and that window of its grid."""
    window = rasterio.windows.from_bounds(*bounds, transform=WHRC.transform).round_offsets().round_lengths()
    return WHRC.data[window.toslices()], window


def second_source(tmp_path, bounds, **fields) -> InputDatasets:
    """The WHRC stock over `bounds` as a second source, declared with `fields`."""
    values, window = whrc_box(bounds)
    path = write_geotiff(tmp_path / "second.tif", values, rasterio.windows.transform(window, WHRC.transform), -32767)
    declared(tmp_path, "second_soc_stock_raster", label="'Second map'", extent="regional", **fields)
    return InputDatasets(second_soc_stock_raster=path, raster_declaration=str(tmp_path / "rasters.yaml"))


def test_a_second_source_5_times_the_reference_stock_is_refused_by_the_cross_check(published_root, tmp_path):  # noqa: F811
    """Ghana's WHRC stock read x 5 (a wrong scale): median 175 t C/ha, plausible on its own, but 5 x the 2010
    layer on the same cells."""
    root, _ = published_root
    inputs = second_source(tmp_path, GHANA, unit="kg C/m2", scale=0.5)
    result = run_job(root, inputs=inputs, asset_selection=["second_soc_stock_grid"])
    [failure] = result.failures()
    assert (failure.file, failure.remedy) == (inputs.second_soc_stock_raster, Remedy.RASTER_PLAUSIBILITY)
    assert failure.rule.startswith("rule referenceRatio: on the ")
    assert failure.rule.endswith(
        " Mha it shares with the 2010 stock layer, its mean stock is 5 x the 2010 layer's, outside [0.33, 3]"
    )


def test_a_second_source_in_t_c_per_ha_declared_kg_c_per_m2_is_refused_naming_the_unit(published_root, tmp_path):  # noqa: F811
    """Niger's WHRC stock (t C/ha) declared kg C/m2: median 150 t C/ha passes the median guard, the cross-check
    finds it 10 x the 2010 layer and names the unit; confirmed, it is published with the confirmation recorded."""
    root, _ = published_root
    result = run_job(
        root, inputs=second_source(tmp_path, NIGER, unit="kg C/m2"), asset_selection=["second_soc_stock_grid"]
    )
    [failure] = result.failures()
    assert failure.rule.startswith("rule referenceRatio: on the ") and failure.rule.endswith(
        " Mha it shares with the 2010 stock layer, its mean stock is 10 x the 2010 layer's, outside [0.33, 3]: x 0.1 "
        "is the factor from kg C/m2 to t C/ha, the values look like t C/ha"
    )
    reason = "SOC given in dg C/m2, checked"
    sure = second_source(tmp_path, NIGER, unit="kg C/m2", confirm={"referenceRatio": f"'{reason}'"})
    result = run_job(root, inputs=sure, asset_selection=["second_soc_stock_grid"])
    assert result.success, failure_text(result)
    [materialization] = result.result.asset_materializations_for_node("second_soc_stock_grid")
    confirmed = materialization.metadata["confirmed_rules"].value["second_soc_stock_raster"]["referenceRatio"]
    finding = failure.rule.removeprefix("rule referenceRatio: ")
    assert confirmed == {"finding": finding, "reason": reason, "declaration": "rasters.yaml"}
    layer = result.layer("second_soc_stock_grid")
    assert layer.provenance["parameters"]["raster_confirmations:second_soc_stock_raster"] == {
        "referenceRatio": confirmed
    }


# ------------------------------------------------------------------------------------- class 3: empty, degenerate


def test_an_all_nodata_cropland_raster_is_refused_as_empty(tmp_path):
    hyde = read_raster(InputDatasets().cropland_raster)
    path = write_geotiff(tmp_path / "no_cropland.tif", np.full_like(hyde.data, 255), hyde.transform, nodata=255)
    assert str(refusal(path, CROPLAND)) == (
        f"{path}: breaks contract cropland_raster v1.0.0 (1 rule(s)): rule validCells: no valid cell: all "
        "7,741,440 cells are no data"
    )


def test_an_all_nodata_soc_raster_is_diagnosed_empty_not_regional(tmp_path):
    path = whrc_as(tmp_path, "no_soc.tif", np.full_like(WHRC.data, -32767))
    error = refusal(path, SOC)
    assert str(error) == (
        f"{path}: breaks contract soc_stock_2010_raster v1.0.0 (1 rule(s)): rule validCells: no valid cell: all "
        "9,331,200 cells are no data"
    )
    assert "regional" not in str(error)


def test_an_all_zero_climate_zone_raster_is_refused_as_empty(tmp_path):
    path = write_geotiff(tmp_path / "zones_zero.tif", np.zeros((360, 720), dtype="int16"), ZONES_TRANSFORM)
    assert str(refusal(path, CLIMATE)).endswith("rule validCells: no valid cell: all 259,200 cells are no data")


def test_a_constant_climate_zone_raster_is_refused_unless_confirmed(tmp_path):
    zones = np.zeros((360, 720), dtype="int16")
    zones[100:200, 300:500] = 5
    path = write_geotiff(tmp_path / "zones_constant.tif", zones, ZONES_TRANSFORM)
    error = refusal(path, CLIMATE)
    assert str(error) == (
        f"{path}: breaks contract climate_zones_raster v1.0.0 (1 rule(s)): rule valueVariety: all 20,000 valid "
        "cells hold the same value, 5 IPCC 2019 zone code: a blank or constant raster (a fill value not declared "
        "as nodata?)"
    )
    assert error.remedy == Remedy.RASTER_PLAUSIBILITY
    sure = declared(tmp_path, "climate_zones_raster", nodata=0, confirm={"valueVariety": "'one zone: a small island'"})
    assert check_raster(path, CLIMATE, sure["climate_zones_raster"]).confirmed["valueVariety"]["reason"] == (
        "one zone: a small island"
    )


def test_a_header_claiming_a_20_gb_block_is_refused_from_the_header_at_once(tmp_path):
    """307 KB claiming 100,000 x 100,000 cells in one block took 20 GB before it was refused."""
    path = tmp_path / "huge.tif"
    profile = {"driver": "GTiff", "width": 100_000, "height": 100_000, "count": 1, "dtype": "int16"}
    transform = Affine(0.0036, 0, -180, 0, -0.0018, 90)
    with rasterio.open(
        path,
        "w",
        crs="EPSG:4326",
        transform=transform,
        compress="deflate",
        blockysize=100_000,
        SPARSE_OK=True,
        **profile,
    ):
        pass
    assert path.stat().st_size < 10_000
    error = refusal(path, SOC)
    assert str(error) == (
        f"{path}: breaks contract soc_stock_2010_raster v1.0.0 (1 rule(s)): rule maxBlockBytes: the header claims "
        "blocks of 100000 x 100000 cells, 18.6 GiB each decoded at once, more than the limit of 128.0 MiB"
    )
    assert error.remedy == Remedy.RASTER_LIMITS


def test_the_header_limits_are_configurable_and_admit_a_global_250_m_grid(tmp_path):
    path = whrc_as(tmp_path, "whrc.tif", WHRC.data)
    assert str(refusal(path, SOC, limits=RasterLimits(max_cells=1_000_000))).endswith(
        "rule maxCells: the header claims 4320 x 2160 = 9,331,200 cells, more than the limit of 1000000"
    )
    assert RasterEngine(max_raster_cells=1_000_000).limits() == RasterLimits(max_cells=1_000_000)
    global_250m = 172_800 * 86_400
    defaults = RasterLimits()
    assert global_250m <= defaults.max_cells and global_250m * 8 <= defaults.max_bytes
    assert defaults.max_block_bytes >= 512 * 512 * 8


def test_a_cropland_raster_of_half_the_world_is_refused_by_its_share_of_the_land(published_root, tmp_path):  # noqa: F811
    root, _ = published_root
    hyde = read_raster(InputDatasets().cropland_raster)
    west = hyde.data.copy()
    west[:, hyde.data.shape[1] // 2 :] = 255
    path = write_geotiff(tmp_path / "cropland_west.tif", west, hyde.transform, nodata=255)
    result = run_job(root, inputs=InputDatasets(cropland_raster=path), asset_selection=["cropland_grid"])
    [failure] = result.failures()
    assert (failure.file, failure.remedy) == (path, Remedy.RASTER_PLAUSIBILITY)
    share = float(failure.rule.removeprefix("rule landShare: its values cover ").split("%", 1)[0])
    assert 30 < share < 50  # the western hemisphere holds about 40 % of the land
    assert failure.rule.endswith(
        "% of the land (common-grid cells with a 2010 SOC stock), less than the 90% cropland_raster v1.0.0 requires: "
        "a raster of part of the world only (declare it extent: regional), or mostly no data (a nodata value "
        "declared wrong?)"
    )


# --------------------------------------------------------------------------------- class 6: secrets, provenance

PLANTED = "PLANTEDSECRET"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/vsicurl/https://reader:pw@host:8080/a.tif", "/vsicurl/https://<redacted>@host:8080/a.tif"),
        ("open 'https://h/a.tif?X-Amz-Signature=abc&x=1' failed", "open 'https://h/a.tif?<redacted>' failed"),
        ("GDAL: X-Amz-Security-Token=zzz in header", "GDAL: X-Amz-Security-Token=<redacted> in header"),
        ("curl said Authorization: Bearer eyJhbGc", "curl said Authorization: <redacted>"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "key <redacted> leaked"),
        ("password: hunter2, access_token=t0k", "password: <redacted>, access_token=<redacted>"),
        ("rule medianBetween: median 7 t C/ha", "rule medianBetween: median 7 t C/ha"),
    ],
)
def test_credentials_are_redacted_from_any_text(text, expected):
    assert redact(text) == expected


def test_a_failure_carries_no_credential_anywhere_in_its_chain():
    url = f"/vsicurl/http://reader:{PLANTED}@127.0.0.1:9/a.tif?X-Amz-Signature={PLANTED}"
    try:
        try:
            raise rasterio.errors.RasterioIOError(f"'{url}' not recognized as being in a supported file format.")
        except rasterio.errors.RasterioIOError as cause:
            raise InputError(url, f"unreadable raster ({cause})", Remedy.UNREADABLE) from cause
    except InputError as error:
        failure = as_failure(error)
        chain = [failure.description, *map(str, failure.metadata.values()), str(error), str(error.__cause__)]
        message = str(error)
    assert not [text for text in chain if PLANTED in text]
    assert message.startswith("/vsicurl/http://<redacted>@127.0.0.1:9/a.tif?<redacted>: unreadable raster ('")
    gdal = CPLE_OpenFailedError(4, 4, f"{url} not recognized")  # GDAL's own errors: args cannot be set
    try:
        raise InputError("a.tif", "unreadable raster") from gdal
    except InputError as error:
        as_failure(error)
        assert PLANTED not in str(error.__cause__ or "")


def test_a_password_in_a_raster_url_reaches_neither_the_output_nor_the_run_storage(tmp_path):
    """A signed URL with a password to a raster that breaks its contract: the error names the file redacted, and no
    file of the Dagster instance (run records, event logs, compute logs) holds the secret."""
    (tmp_path / "home").mkdir()
    with (
        serve(CORPUS / "rasters") as base,
        dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
    ):
        host = base.removeprefix("http://")
        url = f"/vsicurl/http://reader:{PLANTED}pw@{host}/web_mercator.tif?X-Amz-Signature={PLANTED}"
        inputs = InputDatasets(soc_stock_2010_raster=url)
        result = run_job(tmp_path / "root", inputs=inputs, instance=instance, asset_selection=["soc_stock_grid"])
    assert not result.success
    text = failure_text(result)
    assert f"  file:   /vsicurl/http://<redacted>@{host}/web_mercator.tif?<redacted>" in text
    assert "rule crs: expected EPSG:4326, found EPSG:3857" in text and PLANTED not in text
    stored = [p for p in (tmp_path / "home").rglob("*") if p.is_file() and PLANTED.encode() in p.read_bytes()]
    assert stored == []


def test_yaml_errors_name_the_position_never_the_text(tmp_path):
    broken = f'label: "https://user:{PLANTED}@host/x\n  - unit: [\n'
    (tmp_path / "rasters.yaml").write_text(f"declaration: 1\nrasters:\n  soc_stock_2010_raster:\n    {broken}")
    with pytest.raises(DeclarationError) as error:
        load_raster_declarations(tmp_path / "rasters.yaml")
    assert str(error.value).startswith(f"{tmp_path / 'rasters.yaml'}: not valid YAML at line ")
    (tmp_path / "soc_stock_2010_raster.yaml").write_text(f"id: x\npurpose: '{PLANTED}\n")
    with pytest.raises(ContractError) as contract_error:
        load_raster_contract("soc_stock_2010_raster", tmp_path)
    assert "not valid YAML at line 3, column 1" in str(contract_error.value)
    assert PLANTED not in str(error.value) + str(contract_error.value)


def test_a_file_that_changes_while_it_is_read_is_refused_and_an_unchanged_one_records_what_was_read(tmp_path):
    path = tmp_path / "horizons.csv"
    path.write_text("site_id,soc\nA,12\n")
    kept = snapshot("field_horizons[2024-01]", path)
    assert kept.unchanged().inputs() == {
        "field_horizons[2024-01]": {"file": "horizons.csv", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    }
    changing = snapshot("field_horizons[2024-01]", path)
    with open(path, "a") as handle:
        handle.write("B,15\n")
    with pytest.raises(InputError) as error:
        changing.unchanged()
    assert error.value.remedy == Remedy.INPUT_CHANGED
    assert str(error.value).startswith(f"{path}: changed while this run was reading it (size 17 -> 22 bytes, modified ")
    assert str(error.value).endswith(
        "): the run would record a sha256 that is not that of the bytes it read, so nothing of it is published"
    )
    replaced = snapshot("field_horizons[2024-01]", path)
    (tmp_path / "new.csv").write_text(path.read_text())
    os.replace(tmp_path / "new.csv", path)
    with pytest.raises(InputError, match=r"changed while this run was reading it \(replaced by another file"):
        replaced.unchanged()


# ---------------------------------------------------------------------------- class 7: partial coverage, labels


def test_a_finer_second_source_counts_partly_covered_cells_by_their_covered_area(published_root, tmp_path):  # noqa: F811
    """1/120 deg cells averaged onto 5' cells: area and stock are those of the fine cells, not of every 5' cell
    they touch (+6 % area, +8 % stock before)."""
    root, _ = published_root
    fine = soilgrids_like(3)
    path = write_geotiff(tmp_path / "ghana_ocs.tif", fine, ghana_transform())
    declared(
        tmp_path, "second_soc_stock_raster", label="Fine", unit="kg C/m2", scale=0.01, nodata=-32768, extent="regional"
    )
    inputs = InputDatasets(second_soc_stock_raster=path, raster_declaration=str(tmp_path / "rasters.yaml"))
    result = run_job(root, inputs=inputs, asset_selection=["second_soc_stock_grid", "regional_soc_stocks"])
    assert result.success
    world = global_row(VersionedParquetStore(root).read("regional_soc_stocks"))
    lat_edges = np.radians(GHANA[3] - np.arange(fine.shape[0] + 1) / 120)
    cell_ha = band_areas_ha(lat_edges, 1 / 120)[:, None]
    valid = fine != -32768
    area_mha = float((cell_ha * valid).sum() / 1e6)
    stock_pg = float((np.where(valid, fine / 10, 0) * cell_ha).sum() / 1e9)  # 0.01 kg C/m2 = 0.1 t C/ha
    assert world["second_soc_mapped_area_mha"] == pytest.approx(area_mha, rel=0.005)
    assert world["second_soc_stock_pg_c"] == pytest.approx(stock_pg, rel=0.005)


def test_covered_fraction_land_share_and_reference_ratio_by_hand():
    nan = np.nan
    layers = {
        "stock": np.array([[10.0, nan], [20.0, 30.0]], dtype="float32"),  # t C/ha over the covered part
        "cover": np.array([[4.0, nan], [2.0, 8.0]], dtype="float32"),  # source cells summed onto each cell
        "reference": np.array([[5.0, 5.0], [nan, 10.0]], dtype="float32"),
        "land": np.array([[1.0, nan], [1.0, 1.0]], dtype="float32"),
    }
    compute = LandShare(SecondStockWindow(cell_ratio=0.25), ("stock",))
    grid = GridSpec(2, 2, Affine(1, 0, 0, 0, -1, 2))
    bands, sums = compute(layers, np.array([100.0, 200.0]), grid, rasterio.windows.Window(0, 0, 2, 2))
    np.testing.assert_array_equal(bands[1], [[1.0, nan], [0.5, 1.0]])  # 4 x 0.25, 2 x 0.25, 8 x 0.25 capped
    # shared with the reference: (0, 0) on 100 ha x 1 and (1, 1) on 200 ha x 1
    assert (sums["shared_ha"][0], sums["shared_second_t_c"][0], sums["shared_reference_t_c"][0]) == (300, 7000, 2500)
    assert reference_ratio(sums) == (2.8, 300.0)
    assert land_share(sums, "stock") == 1.0 and sums["land_ha"][0] == 500
    quantities = second_source_quantities(bands[0], bands[1], np.full((2, 2), 40.0), np.array([100.0, 200.0]))
    np.testing.assert_allclose(quantities["second_soc_mapped_area_ha"], [[100, nan], [100, 200]])
    np.testing.assert_allclose(quantities["second_soc_stock_t_c"], [[1000, nan], [2000, 6000]])
    np.testing.assert_allclose(quantities["soc_stock_2010_on_second_cells_t_c"], [[4000, nan], [4000, 8000]])


def test_the_all_region_row_is_named_by_the_run_extent():
    whrc = GridSpec(4320, 2160, Affine(0.0833333, 0, -180, 0, -0.0833333, 89.99999999999999))
    ghana = GridSpec(54, 78, Affine(0.0833333, 0, -3.25, 0, -0.0833333, 11.25))
    assert extent_name(_layer(whrc)) == "World"
    assert extent_name(_layer(ghana)) == "Common grid -3.25 to 1.25 E, 4.75 to 11.25 N (regional extent, not global)"
    declared_regional = _layer(whrc, {"soc_stock_extent": {"extent": "regional", "label": "SoilGrids Ghana"}})
    assert extent_name(declared_regional) == "SoilGrids Ghana (regional extent, not global)"


def _layer(grid, parameters=None):
    from soil_pipeline.science.grid import Layer

    return Layer(np.zeros((1, 1)), grid, "", provenance={"parameters": parameters or {}})


def test_a_run_on_a_regional_grid_labels_its_tables_and_lines_regional(published_root):  # noqa: F811
    root, _ = published_root
    on_ghana = RasterEngine(west=-3.25, north=11.25, width=54, height=78)
    selection = ["soc_stock_grid", "cropland_grid", "climate_zone_grid", "country_grid", "second_soc_stock_grid"]
    result = run_job(root, raster_engine=on_ghana, asset_selection=[*selection, "regional_soc_stocks"])
    assert result.success, failure_text(result)
    world = global_row(VersionedParquetStore(root).read("regional_soc_stocks"))
    name = "Common grid -3.25 to 1.25 E, 4.75 to 11.25 N (regional extent, not global)"
    assert world["region_name"] == name
    lines = _stock_lines(world)
    assert lines[0] == f"REGIONAL extent: {name}"
    assert [line.split(" ", 1)[0] for line in lines[1:5]] == ["Region"] * 4
    assert not any("Global" in line or "World" in line for line in lines)


# ------------------------------------------------------------------------------- class 8: misleading diagnoses


def test_a_rotated_raster_is_told_it_is_rotated(tmp_path):
    rotated = Affine(0.5, 0.01, -180, 0.01, -0.5, 90)
    path = tmp_path / "rotated.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=720, height=360, count=1, dtype="int16", crs="EPSG:4326", transform=rotated
    ) as dataset:
        dataset.write(np.arange(720 * 360).reshape(1, 360, 720).astype("int16") % 12 + 1)
    error = refusal(path, CLIMATE)
    assert str(error) == (
        f"{path}: breaks contract climate_zones_raster v1.0.0 (1 rule(s)): rule northUp: the grid is rotated or "
        "sheared (geotransform rotation terms 0.01 and 0.01, not 0): warp it onto a north-up lon/lat grid first "
        "(e.g. gdalwarp -t_srs EPSG:4326)"
    )
    assert "found 0.5 x 0.5" not in str(error)


def test_a_grid_cut_short_by_the_file_size_limit_says_so():
    """GDAL does not report a write cut by RLIMIT_FSIZE (`ulimit -f`): the grid it leaves was then read back as
    "not recognized as being in a supported file format"."""
    script = "\n".join(
        [
            "import resource",
            "import numpy as np",
            "from affine import Affine",
            "from rasterio.windows import Window",
            "from soil_pipeline.engine.grid_pass import BANDS",
            "from soil_pipeline.publishing.grids import GridFile",
            "from soil_pipeline.science.grid import GridSpec",
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))",
            "out = GridFile(GridSpec(2048, 1024, Affine(0.1, 0, -180, 0, -0.1, 90)), 1, 'float32')",
            "values = np.random.default_rng(0).random((1, 1024, 2048)).astype('float32')",
            "out.consume(Window(0, 0, 2048, 1024), {BANDS: values})",
            "try:",
            "    out.layer('', {}, {})",
            "except OSError as error:",
            "    print(error)",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip().startswith(
        "[Errno 27] File too large: writing stopped at the process's file size limit of 100000 bytes (ulimit -f); "
        "raise or lift the limit and run again: "
    ), done.stderr[-2000:]


def test_gc_with_no_grace_leaves_a_live_run_alone_and_collects_it_once_its_process_is_gone(tmp_path):
    store = VersionedParquetStore(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pandas as pd\n"
            "from soil_pipeline.publishing.store import VersionedParquetStore\n"
            f"store = VersionedParquetStore({str(tmp_path)!r})\n"
            "store.claim_run('run-live')\n"
            "store.stage('run-live', 'stocks', pd.DataFrame({'v': [1.0]}), {'inputs': {}, 'parameters': {}})\n"
            "print('staged', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "staged"
        [version] = [p.name for p in (tmp_path / "stocks").iterdir() if not p.name.startswith(".")]
        assert gc(store, grace_hours=0)[0] == []
        assert (tmp_path / "stocks" / version).is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert sorted(gc(store, grace_hours=0)[0]) == [f"{RUNS_DIR}/run-live", f"stocks/{version}"]


def test_gc_with_no_grace_during_a_real_run_removes_nothing_of_it(tmp_path):
    """`gc --grace-hours 0` while a run is between two steps (its first grid written, the next being computed)."""
    root = tmp_path / "root"
    script = (
        "from soil_pipeline.runner import run_job\n"
        f"outcome = run_job({str(root)!r}, asset_selection=['soc_stock_grid', 'cropland_grid'])\n"
        "print(outcome.success, len(outcome.committed))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    run = subprocess.Popen([sys.executable, "-c", script], env=env, **pipes)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and run.poll() is None:
            written = list(root.glob(f"{RUNS_DIR}/*/intermediate/soc_stock_grid.tif"))
            if written:
                break
            time.sleep(0.05)
        assert written and run.poll() is None, run.communicate()
        assert list(root.glob(f"{RUNS_DIR}/*/live/*.lock"))
        assert gc(VersionedParquetStore(root), grace_hours=0)[0] == []
        assert written[0].is_file()
        out, err = run.communicate(timeout=600)
    finally:
        run.kill()
    assert out.split() == ["True", "0"], err[-2000:]  # grids are intermediates: committed, no table rows
    assert set(VersionedParquetStore(root).document()["intermediates"]) == {"soc_stock_grid", "cropland_grid"}
    assert not list(root.glob(f"{RUNS_DIR}/*/live"))  # released once committed


def test_a_run_whose_folder_was_removed_is_told_so_not_to_correct_its_input(tmp_path):
    import shutil

    store = VersionedParquetStore(tmp_path)
    store.claim_run("run-1")
    store.write_intermediate("run-1", "grid", None, ".parquet", b"x")
    assert gc(store, grace_hours=0)[0] == []  # live: kept
    shutil.rmtree(tmp_path / RUNS_DIR / "run-1")  # removed by hand (or by a gc that could not see the claim)
    with pytest.raises(RunFolderRemoved) as error:
        store.commit_run("run-1")
    assert str(error.value) == (
        f"the folder of run run-1 ({tmp_path / RUNS_DIR / 'run-1'}) was removed while the run was in progress (by "
        "hand, or by a gc that could not see the run was live): what it staged is gone, so nothing of this run is "
        "listed; run it again. Your inputs are not the cause."
    )
    store.release_run("run-1")
