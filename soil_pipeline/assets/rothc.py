"""Sequestration potential of cropland the GSOCseq way: RothC-26.3 run on every cropland cell of the common grid,
20 years of business as usual (BAU) against sustainable soil management with +5 / +10 / +20 % carbon inputs
(SSM1-3), per country, IPCC climate zone, 4p1000 priority region and the world.

Inputs: the WHRC 2010 stock (equilibrium target), HYDE cropland, CRU CL 1.0 1961-1990 monthly climate (0.5 deg)
and HWSD v1.2 topsoil clay and sand (5'), each sampled at the cell centre through its own transform. Scenario
parameters and model conventions live in `data/rothc/gsocseq_scenarios.yaml`. Cells that are not modelled (no
stock, no climate, no clay, sand > 90 %, organic soils, frozen all year) are counted per region by reason.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
import yaml
from rasterio.windows import Window

from soil_pipeline import provenance
from soil_pipeline.assets.regional import grid_sources
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import zonal
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.failures import as_failure
from soil_pipeline.reference_data import PRIORITY_REGIONS_FILE, citation, factor, file_inputs
from soil_pipeline.resources import ArtifactStore, RasterEngine
from soil_pipeline.science import gsocseq
from soil_pipeline.science.aggregation import capped_land_ha, four_per_1000_target
from soil_pipeline.science.grid import GridSpec, Layer, common_grid, row_areas_ha
from soil_pipeline.science.units import T_PER_TG
from soil_pipeline.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, global_metadata, zoner

SCENARIO_FILE = DATA_DIR / "rothc" / "gsocseq_scenarios.yaml"
CRU_DIR = DATA_DIR / "cru_cl1_1961_1990_0p5deg"
HWSD_DIR = DATA_DIR / "hwsd_v12_topsoil_texture"
# (bands, plausible range) of each input raster; a file outside them fails the run naming the file and the rule.
RASTER_RULES = {
    "tmp_degc": (12, (-70.0, 50.0)),
    "pre_mm": (12, (0.0, 3000.0)),
    "pet_mm": (12, (0.0, 1000.0)),
    "clay_pct": (1, (0.0, 100.0)),
    "clay_coarse_pct": (1, (0.0, 100.0)),
    "sand_pct": (1, (0.0, 100.0)),
}


class RothCInputs(dg.Config):
    """Climate and texture rasters (EPSG:4326, nodata tagged); defaults are the embedded copies."""

    tmp_raster: str = str(CRU_DIR / "cru_cl1_6190_tmp_0p5deg.tif")
    pre_raster: str = str(CRU_DIR / "cru_cl1_6190_pre_0p5deg.tif")
    pet_raster: str = str(CRU_DIR / "cru_cl1_6190_pet_pm_0p5deg.tif")
    clay_raster: str = str(HWSD_DIR / "hwsd_t_clay_pct_5arcmin.tif")
    clay_coarse_raster: str = str(HWSD_DIR / "hwsd_t_clay_pct_0p5deg.tif")
    sand_raster: str = str(HWSD_DIR / "hwsd_t_sand_pct_5arcmin.tif")

    def paths(self) -> dict[str, str]:
        return {
            "tmp_degc": self.tmp_raster,
            "pre_mm": self.pre_raster,
            "pet_mm": self.pet_raster,
            "clay_pct": self.clay_raster,
            "clay_coarse_pct": self.clay_coarse_raster,
            "sand_pct": self.sand_raster,
        }


def load_scenarios(path: Path = SCENARIO_FILE) -> gsocseq.RothCScenarios:
    with open(path) as handle:
        return gsocseq.RothCScenarios.from_dict(yaml.safe_load(handle))


def read_sampled(path: str, role: str, grid: GridSpec, flat_index: np.ndarray) -> np.ndarray:
    """The raster's bands at the cells' centres ((bands, n), NaN = nodata), after checking CRS, bands and the
    values of the source window under the cells (only that window is read). The dataset stays open in the thread
    (`engine.opened`): a striped source's rows, decoded once into GDAL's block cache, serve the windows beside."""
    bands, (low, high) = RASTER_RULES[role]
    with engine.opened(engine.RasterSource(path)) as src:
        if src.crs is None or src.crs.to_epsg() != 4326 or src.count != bands or src.nodata is None:
            rule = (
                f"{role} raster must be EPSG:4326 with {bands} band(s) and a nodata value, found {src.crs}, "
                f"{src.count} band(s), nodata {src.nodata}"
            )
            raise as_failure(InputError(path, rule, Remedy.RASTER_LAYOUT))
        index = gsocseq.nearest_source_index(grid, flat_index, src.transform, (src.height, src.width))
        rows, cols = np.divmod(index[index >= 0], src.width)
        if not len(rows):
            return np.full((bands, len(flat_index)), np.nan)
        r0, c0 = int(rows.min()), int(cols.min())
        window = Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1)
        data, nodata = src.read(window=window), src.nodata
    valid = data != nodata
    bad = valid & ((data < low) | (data > high))
    if bad.any():
        band, rows, cols = np.nonzero(bad)
        where = (
            f"band {band[0] + 1}, rows {rows.min() + r0}-{rows.max() + r0}, cols {cols.min() + c0}-{cols.max() + c0}"
        )
        rule = f"{role} values outside [{low}, {high}] in {where} (e.g. {data[band[0], rows[0], cols[0]]})"
        raise as_failure(InputError(path, rule, Remedy.RASTER_VALUES, window=where))
    data = np.where(valid, data, np.nan).astype("float32")
    local = np.where(index >= 0, (index // src.width - r0) * window.width + index % src.width - c0, -1)
    return gsocseq.sample(data, local)


def cell_inputs(config: RothCInputs, grid: GridSpec, flat_index: np.ndarray, soc: np.ndarray):
    """(CellInputs, clay filled from the 0.5-deg layer per cell) for the cells `flat_index` of `grid`."""
    values = {role: read_sampled(path, role, grid, flat_index) for role, path in config.paths().items()}
    clay = values["clay_pct"][0]
    filled = ~np.isfinite(clay) & np.isfinite(values["clay_coarse_pct"][0])
    clay = np.where(filled, values["clay_coarse_pct"][0], clay)
    cells = gsocseq.CellInputs(
        soc_t_c_per_ha=soc,
        clay_pct=clay,
        sand_pct=values["sand_pct"][0],
        tmp_degc=values["tmp_degc"],
        pre_mm=values["pre_mm"],
        pet_mm=values["pet_mm"],
    )
    return cells, filled


@dg.asset(
    io_manager_key="published_io_manager",
    group_name="potential",
    code_version="1",
    check_specs=contract_specs("rothc_sequestration_potential"),
    deps=["climate_zone_legend"],
)
def rothc_sequestration_potential(
    config: RothCInputs,
    artifacts: ArtifactStore,
    raster_engine: RasterEngine,
    soc_stock_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
):
    """Per region: cropland area (Mha, modelled and excluded by reason), RothC equilibrium input, stock change and
    rate for BAU and SSM1-3 (t C/ha, t C/ha/yr, Pg C/yr), SSM minus BAU and its share of the 4p1000 target."""
    scenarios = load_scenarios()
    zone_of, tables, sizes = zoner(countries)
    grid = common_grid(soc_stock_grid, cropland_grid, climate_zone_grid, country_grid)
    sources = grid_sources(soc_stock_grid, cropland_grid, climate_zone_grid, country_grid)
    plans, block = zonal.plan(sources, grid)
    layers = zonal.ZonalTask(grid, sources, plans, None, zone_of, sizes)
    task = RothCWindow(layers, config, scenarios)
    window_list = engine.windows(grid, zonal.window_block(block, grid), raster_engine.window_cells)
    with tempfile.TemporaryDirectory() as scratch, raster_engine.executor() as executor:
        rate_maps = RateMaps(Path(scratch) / "rates.tif", grid, scenarios)
        with rate_maps:
            sums, report = engine.run_pass(
                task, window_list, executor, raster_engine.threads, "RothC", consume=rate_maps.consume
            )
        cog_path, _ = artifacts.write("rothc_rate_maps", rate_maps.cog(), ".tif")
    rate_4p1000 = factor("four_per_1000", "annual_rate")
    table_parts = []
    for kind in REGION_TYPES:
        region_sums = zonal.sums_table(sums, kind, tables[kind], task.quantity_names())
        target = four_per_1000_target(region_sums["soc_stock_2010_t_c"], rate_4p1000) / T_PER_TG
        table_parts.append(gsocseq.regional_table(region_sums, scenarios, target))
    table = pd.concat(table_parts, ignore_index=True)
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        cropland_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        _input_files(config),
        {"parameters": _parameters(scenarios)},
    )
    metadata = global_metadata(table, _global_columns(scenarios))
    metadata["rate_maps_cog"] = dg.MetadataValue.path(str(cog_path))
    metadata["rate_maps_overviews"] = "AVERAGE" if rate_maps.overviews() else "none (see OVERVIEWS_ABOVE, _MAX_BYTES)"
    metadata["modelled_cells"] = int(sums[f"{COUNT}{gsocseq.MODELLED}"][0])
    metadata["excluded_cells"] = dg.MetadataValue.json(
        {reason: int(sums[f"{COUNT}{reason}"][0]) for reason in gsocseq.EXCLUSIONS}
    )
    metadata["streaming_pass"] = dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()})
    yield from publish_if_valid("rothc_sequestration_potential", table, metadata=metadata)


COUNT = "cells/"
# Cells per RothC chunk: ~1.5 kB of working arrays per cell, so ~40 MB per thread.
RUN_CHUNK = 25_000
MAP = "rate_map"
# Rate maps wider than this many cells get overviews (a 5' global map, 4320 cells, is read whole by any viewer)...
OVERVIEWS_ABOVE = 8192
# ...unless larger than this (bytes of all bands): GDAL's overview generation holds about 40 % of the image in memory
# (measured: 1.2 GB for 43200 x 4320 x 4 float32 bands), so a global 1 km map (15 GB) gets none; `gdaladdo` can add
# them outside the run.
OVERVIEWS_MAX_BYTES = 2 << 30


@dataclass(frozen=True)
class RothCWindow:
    """RothC on the cropland cells of one window: zone sums of `gsocseq.cell_quantities` (plus the all-land 2010
    stock), cells per status, and the window of the rate maps. Picklable, for Dask workers."""

    layers: zonal.ZonalTask
    config: RothCInputs
    scenarios: gsocseq.RothCScenarios

    def quantity_names(self) -> list[str]:
        names = ["cropland_area_ha", "modelled_cropland_area_ha", "clay_filled_cropland_area_ha"]
        names += [f"excluded_{reason}_ha" for reason in gsocseq.EXCLUSIONS]
        names += ["modelled_cropland_soc_stock_t_c", "carbon_input_t_c_per_yr"]
        return names + [f"{name}_stock_change_t_c" for name in self.scenarios.names] + ["soc_stock_2010_t_c"]

    def __call__(self, window) -> dict[str, np.ndarray]:
        grid, layers = self.layers.grid, self.layers.layers(window)
        soc = layers["soc_stock"][0].astype("float64")
        area = np.broadcast_to(row_areas_ha(grid, window), soc.shape)
        cropland_ha = capped_land_ha(layers["cropland"].astype("float64"), area)
        cropped = np.flatnonzero(cropland_ha > 0)
        rows, cols = np.divmod(cropped, soc.shape[1])
        flat = (rows + int(window.row_off)) * grid.width + cols + int(window.col_off)
        inputs, clay_filled = cell_inputs(self.config, grid, flat, soc.ravel()[cropped])
        results = gsocseq.run_cells(inputs, self.scenarios, chunk=RUN_CHUNK)
        per_cell = gsocseq.cell_quantities(
            results, self.scenarios, inputs.soc_t_c_per_ha, cropland_ha.ravel()[cropped], clay_filled
        )
        zones = self.layers.zonings(layers)
        # Sums over the cropland cells only (the RothC quantities are zero elsewhere), then the all-land stock.
        part = zonal.window_sums(per_cell, {k: z.ravel()[cropped] for k, z in zones.items()}, self.layers.sizes)
        part.update(zonal.window_sums({"soc_stock_2010_t_c": soc * area}, zones, self.layers.sizes))
        for status in (gsocseq.MODELLED, *gsocseq.EXCLUSIONS):
            part[f"{COUNT}{status}"] = np.array([int((results.status == status).sum())])
        rates = (results.soc_final_t_c_per_ha - inputs.soc_t_c_per_ha) / self.scenarios.horizon_yr
        part[MAP] = np.stack([_in_window(r, cropped, soc.shape, np.nan).astype("float32") for r in rates])
        return part


def _in_window(values: np.ndarray, cells: np.ndarray, shape, fill: float = 0.0) -> np.ndarray:
    out = np.full(shape, fill)
    out.ravel()[cells] = values
    return out


class RateMaps:
    """The per-scenario SOC change rate (t C/ha/yr over the horizon) on the modelled cropland cells, NaN elsewhere,
    written window by window to a tiled GeoTIFF, then copied to a Cloud-Optimized GeoTIFF."""

    def __init__(self, path: Path, grid: GridSpec, scenarios: gsocseq.RothCScenarios):
        self.path, self.grid, self.scenarios = path, grid, scenarios

    def __enter__(self):
        profile = {"count": len(self.scenarios.names), "dtype": "float32", "crs": self.grid.crs, "nodata": np.nan}
        self.tif = rasterio.open(
            self.path,
            "w",
            driver="GTiff",
            width=self.grid.width,
            height=self.grid.height,
            transform=self.grid.transform,
            tiled=True,
            blockxsize=512,
            blockysize=512,
            compress="zstd",
            zstd_level=1,
            **profile,
        )
        for i, name in enumerate(self.scenarios.names, start=1):
            self.tif.set_band_description(i, f"{name} SOC change rate, t C/ha/yr, {self.scenarios.horizon_yr} yr")
        return self

    def __exit__(self, *exc):
        self.tif.close()

    def consume(self, window, part: dict) -> dict:
        self.tif.write(part.pop(MAP), window=window)
        return part

    def overviews(self) -> bool:
        size = self.grid.width * self.grid.height * len(self.scenarios.names) * 4
        return self.grid.width > OVERVIEWS_ABOVE and size <= OVERVIEWS_MAX_BYTES

    def cog(self) -> Path:
        """The maps as a Cloud-Optimized GeoTIFF beside the tiled one."""
        cog_path = self.path.with_name("rates_cog.tif")
        # Overviews (averages, NaN-aware) only where a viewer needs them; the default cubic ones were all NaN.
        overviews = {"overviews": "AUTO", "resampling": "AVERAGE"} if self.overviews() else {"overviews": "NONE"}
        rasterio.shutil.copy(
            self.path,
            cog_path,
            driver="COG",
            compress="DEFLATE",
            predictor=3,
            num_threads="ALL_CPUS",
            **overviews,
        )
        return cog_path


def _input_files(config: RothCInputs) -> dict:
    lineage = file_inputs(
        ("priority_regions", PRIORITY_REGIONS_FILE),
        ("climate_zone_legend", CLIMATE_ZONE_LEGEND),
        ("rothc_scenarios", SCENARIO_FILE),
    )
    for role, path in config.paths().items():
        lineage["inputs"].update(provenance.file_input(f"rothc_{role}_raster", path))
    return lineage


def _global_columns(scenarios: gsocseq.RothCScenarios) -> list[str]:
    rates = [f"{name}_rate_pg_c_per_yr" for name in scenarios.names]
    gains = [f"{name}_minus_bau_rate_pg_c_per_yr" for name in scenarios.ssm_input_increase]
    return ["cropland_area_mha", "modelled_cropland_area_mha", *rates, *gains]


def _parameters(scenarios: gsocseq.RothCScenarios) -> dict:
    return {
        "rothc_scenarios_version": scenarios.version,
        "horizon_yr": scenarios.horizon_yr,
        "depth_cm": scenarios.depth_cm,
        "dpm_rpm_ratio": scenarios.dpm_rpm_ratio,
        "evaporation_factor": scenarios.conventions.evaporation_factor,
        "reset_deficit_yearly": scenarios.conventions.reset_deficit_yearly,
        "covered_all_year": scenarios.covered_all_year,
        "forward_warming_degc": scenarios.forward_warming_degc,
        "bau_input_follows_npp": scenarios.bau_input_follows_npp,
        "max_sand_pct": scenarios.max_sand_pct,
        "max_soc_t_c_per_ha": scenarios.max_soc_t_c_per_ha,
        "ssm_input_increase": scenarios.ssm_input_increase,
        "four_per_1000_rate_per_yr": factor("four_per_1000", "annual_rate"),
        "citations": {"four_per_1000": citation("four_per_1000")},
    }
