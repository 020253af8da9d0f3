"""GSOCseq-style procedure on real cells of the common grid, and the published rothc_sequestration_potential."""

import dataclasses

import dagster as dg
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling

from soil_pipeline.assets.rothc import OVERVIEWS_ABOVE, RateMaps, RothCInputs, cell_inputs, load_scenarios, read_sampled
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science import gsocseq
from soil_pipeline.science.grid import GridSpec
from soil_pipeline_tests.whole_array import align

FIVE_MINUTES = GridSpec(4320, 2160, Affine(1 / 12, 0, -180, 0, -1 / 12, 90))


@pytest.fixture(scope="module")
def real_cells():
    """Every 97th cell of the WHRC grid with a 2010 stock (about 21,000 cells on every continent)."""
    with rasterio.open(InputDatasets().soc_stock_2010_raster) as src:
        soc = src.read(1).astype("float64")
        soc[soc == src.nodata] = np.nan
    flat = np.flatnonzero(np.isfinite(soc.ravel()))[::97]
    cells, _ = cell_inputs(RothCInputs(), FIVE_MINUTES, flat, soc.ravel()[flat])
    return cells


def test_nearest_sampling_equals_gdal_nearest_for_north_up_and_south_up_sources():
    with rasterio.open(RothCInputs().clay_coarse_raster) as src:
        clay, transform = src.read(1), src.transform
    gdal = align(clay, transform, "EPSG:4326", -9999.0, FIVE_MINUTES, Resampling.nearest, -9999.0)
    flat = np.arange(0, FIVE_MINUTES.width * FIVE_MINUTES.height, 101)
    north_up = gsocseq.sample(clay, gsocseq.nearest_source_index(FIVE_MINUTES, flat, transform, clay.shape))
    np.testing.assert_array_equal(north_up, gdal.ravel()[flat])
    south_up_transform = Affine(transform.a, 0, transform.c, 0, -transform.e, transform.f + transform.e * 360)
    south_up = clay[::-1]
    index = gsocseq.nearest_source_index(FIVE_MINUTES, flat, south_up_transform, south_up.shape)
    np.testing.assert_array_equal(gsocseq.sample(south_up, index), north_up)


def test_equilibrium_input_holds_the_whrc_stock_and_ssm_gains_scale_with_inputs(real_cells):
    scenarios = dataclasses.replace(load_scenarios(), forward_warming_degc=0.0)
    assert scenarios.bau_input_follows_npp  # and unchanged climate leaves NPP, hence inputs, unchanged
    results = gsocseq.run_cells(real_cells, scenarios)
    ok = results.status == gsocseq.MODELLED
    assert ok.sum() > 15_000
    soc = real_cells.soc_t_c_per_ha[ok]
    bau, ssm1, ssm2, ssm3 = results.soc_final_t_c_per_ha[:, ok]
    # same climate as the spin-up: business as usual stays at the WHRC stock it was calibrated on
    np.testing.assert_allclose(bau, soc, rtol=1e-9)
    # RothC is linear in inputs: +10 % gains twice what +5 % gains, +20 % four times
    np.testing.assert_allclose(ssm2 - bau, 2 * (ssm1 - bau), rtol=1e-6)
    np.testing.assert_allclose(ssm3 - bau, 4 * (ssm1 - bau), rtol=1e-6)
    assert np.all(ssm1 > bau)
    inputs = results.carbon_input_t_c_per_ha_per_yr[ok]
    assert np.all(inputs > 0) and 1.0 < np.median(inputs) < 10.0


def test_warmer_forward_climate_loses_carbon_under_bau(real_cells):
    scenarios = load_scenarios()
    assert scenarios.forward_warming_degc > 0
    results = gsocseq.run_cells(real_cells, scenarios)
    ok = results.status == gsocseq.MODELLED
    change = results.soc_final_t_c_per_ha[0, ok] - real_cells.soc_t_c_per_ha[ok]
    assert np.mean(change < 0) > 0.9


def test_miami_npp():
    # Lieth (1975): 10 degC, 1000 mm -> temperature-limited, 3000 / (1 + e^0.125) = 1406 g DM/m2/yr
    assert gsocseq.miami_npp(10.0, 1000.0) == pytest.approx(1406.4, abs=0.1)
    assert gsocseq.miami_npp(25.0, 300.0) == pytest.approx(3000 * (1 - np.exp(-0.000664 * 300)))


def test_every_cell_gets_a_result_or_the_first_reason_it_is_excluded():
    nan12 = np.full(12, np.nan)
    warm, cold = np.full(12, 15.0), np.full(12, -20.0)
    rain = np.full(12, 60.0)
    cases = {  # soc, clay, sand, tmp, pre
        gsocseq.MODELLED: (50.0, 20.0, 40.0, warm, rain),
        "no_soc_stock": (np.nan, np.nan, 95.0, nan12, rain),
        "soc_above_max": (250.0, 20.0, 40.0, warm, rain),
        "no_climate": (50.0, np.nan, 40.0, nan12, rain),
        "no_clay": (50.0, np.nan, 95.0, warm, rain),
        "sand_above_max": (50.0, 3.0, 95.0, warm, rain),
        "no_decomposition": (50.0, 20.0, 40.0, cold, rain),
    }
    columns = list(zip(*cases.values(), strict=True))
    cells = gsocseq.CellInputs(
        soc_t_c_per_ha=np.array(columns[0]),
        clay_pct=np.array(columns[1]),
        sand_pct=np.array(columns[2]),
        tmp_degc=np.array(columns[3]).T,
        pre_mm=np.array(columns[4]).T,
        pet_mm=np.full((12, len(cases)), 50.0),
    )
    results = gsocseq.run_cells(cells, load_scenarios())
    assert list(results.status) == list(cases)
    assert np.isfinite(results.soc_final_t_c_per_ha[:, 0]).all()
    assert np.isnan(results.soc_final_t_c_per_ha[:, 1:]).all()
    assert set(gsocseq.EXCLUSIONS) == set(cases) - {gsocseq.MODELLED}


@pytest.fixture(scope="module")
def published(embedded_run):
    _, root = embedded_run
    return VersionedParquetStore(root).read("rothc_sequestration_potential")


def test_published_table_accounts_for_all_cropland(published):
    excluded = published[[f"excluded_{reason}_mha" for reason in gsocseq.EXCLUSIONS]].sum(axis=1)
    np.testing.assert_allclose(published["modelled_cropland_area_mha"] + excluded, published["cropland_area_mha"])
    world = published[published["region_type"] == "global"].iloc[0]
    assert world["cropland_area_mha"] == pytest.approx(1591.3, abs=0.1)
    assert world["modelled_cropland_area_mha"] > 0.97 * world["cropland_area_mha"]
    countries = published[published["region_type"] == "country"]
    assert countries["cropland_area_mha"].sum() == pytest.approx(world["cropland_area_mha"])


def test_published_global_rates_are_ordered_by_input(published):
    world = published[published["region_type"] == "global"].iloc[0]
    rates = [world[f"{name}_rate_pg_c_per_yr"] for name in ("bau", "ssm1", "ssm2", "ssm3")]
    assert rates == sorted(rates) and rates[0] < 0 < rates[3]
    gains = [world[f"ssm{i}_minus_bau_rate_pg_c_per_yr"] for i in (1, 2, 3)]
    np.testing.assert_allclose(gains, np.array([1, 2, 4]) * gains[0], rtol=1e-6)
    share = 100 * gains[2] * 1000 / world["target_4p1000_tg_c_per_yr"]
    assert world["ssm3_minus_bau_share_of_4p1000_pct"] == pytest.approx(share)


def test_rate_maps_are_a_cog_with_one_band_per_scenario(embedded_run, published):
    outcome, _ = embedded_run
    [materialization] = outcome.result.asset_materializations_for_node("rothc_sequestration_potential")
    metadata = materialization.metadata
    with rasterio.open(metadata["rate_maps_cog"].value) as cog:
        assert cog.count == 4 and cog.is_tiled and cog.overviews(1) == []  # a 5' map is read whole
        assert cog.transform.almost_equals(FIVE_MINUTES.transform)
        ssm3, bau = cog.read(4), cog.read(1)
    assert np.isfinite(ssm3).sum() == metadata["modelled_cells"].value
    world = published[published["region_type"] == "global"].iloc[0]
    assert np.nanmean(ssm3 - bau) == pytest.approx(world["ssm3_minus_bau_rate_t_c_per_ha_per_yr"], rel=0.5)


def test_a_texture_raster_out_of_range_or_with_wrong_bands_fails_naming_file_and_rule(tmp_path):
    with rasterio.open(RothCInputs().clay_coarse_raster) as src:
        clay, profile = src.read(), src.profile
    clay[0, 101, 301] = 140.0
    bad = tmp_path / "clay_pct_times_10.tif"
    with rasterio.open(bad, "w", **profile) as dst:
        dst.write(clay)
    flat = np.arange(0, FIVE_MINUTES.width * FIVE_MINUTES.height, 1001)
    with pytest.raises(dg.Failure, match=r"clay_pct_times_10\.tif: clay_coarse_pct values outside \[0\.0, 100\.0\]"):
        read_sampled(str(bad), "clay_coarse_pct", FIVE_MINUTES, flat)
    with pytest.raises(dg.Failure, match=r"tmp_degc raster must be EPSG:4326 with 12 band\(s\)"):
        read_sampled(RothCInputs().clay_coarse_raster, "tmp_degc", FIVE_MINUTES, flat)


def test_rate_maps_wider_than_a_viewer_reads_whole_get_average_overviews(tmp_path):
    width = 2 * (OVERVIEWS_ABOVE + 512)
    grid = GridSpec(width, 1024, Affine(360 / width, 0, -180, 0, -360 / width, 90))
    scenarios = load_scenarios()
    rates = np.full((len(scenarios.names), 1024, width), np.nan, dtype="float32")
    rates[:, :512, :1024] = 1.0  # one overview cell of the first level: half of its 2 x 2 cells are NaN
    rates[:, :1, :1] = 3.0
    with RateMaps(tmp_path / "rates.tif", grid, scenarios) as maps:
        maps.consume(rasterio.windows.Window(0, 0, width, 1024), {"rate_map": rates})
    (tmp_path / "cog.tif").write_bytes(maps.cog().read_bytes())
    with rasterio.open(tmp_path / "cog.tif") as cog:
        assert cog.overviews(1)[0] == 2
        first = cog.read(1, out_shape=(512, width // 2))
    assert first[0, 0] == pytest.approx(1.5) and np.isnan(first[0, 600])
