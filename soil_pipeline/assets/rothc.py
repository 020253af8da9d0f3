"""Sequestration potential of cropland the GSOCseq way: RothC-26.3 run on every cropland cell of the common grid,
20 years of business as usual (BAU) against sustainable soil management with +5 / +10 / +20 % carbon inputs
(SSM1-3), per country, IPCC climate zone, 4p1000 priority region and the world.

Inputs: the WHRC 2010 stock (the stock the spin-up holds), HYDE cropland, CRU CL 1.0 1961-1990 monthly climate
(0.5 deg, the spin-up climate) and HWSD v1.2 topsoil clay and sand (5'), each sampled at the cell centre through its
own transform; optional rasters: monthly vegetated shares from NDVI, a paddy-rice share, and a year-by-year climate
series for the warm-up (all declared in `RothCInputs` and `RASTER_RULES`, the one place their wiring lives).
Scenario parameters and model conventions live in `data/rothc/gsocseq_scenarios.yaml`. Cells that are not modelled
(no stock, no climate, no clay, sand > 90 %, organic soils, frozen all year) are counted per region by reason.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from soil_pipeline import provenance
from soil_pipeline.assets.regional import grid_sources
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.contracts.bounded_yaml import read_bounded_yaml
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
from soil_pipeline.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, extent_name, global_metadata, zoner

SCENARIO_FILE = DATA_DIR / "rothc" / "gsocseq_scenarios.yaml"
CRU_DIR = DATA_DIR / "cru_cl1_1961_1990_0p5deg"
HWSD_DIR = DATA_DIR / "hwsd_v12_topsoil_texture"
SERIES = "12 x years"  # band rule of a year-by-year monthly series: January of the first year first
# (bands, plausible range) of each input raster; a file outside them fails the run naming the file and the rule.
RASTER_RULES = {
    "tmp_degc": (12, (-70.0, 50.0)),
    "pre_mm": (12, (0.0, 3000.0)),
    "pet_mm": (12, (0.0, 1000.0)),
    "clay_pct": (1, (0.0, 100.0)),
    "clay_coarse_pct": (1, (0.0, 100.0)),
    "sand_pct": (1, (0.0, 100.0)),
    "vegetated_share": (12, (0.0, 1.0)),
    "paddy_share": (1, (0.0, 1.0)),
    "series_tmp_degc": (SERIES, (-70.0, 50.0)),
    "series_pre_mm": (SERIES, (0.0, 3000.0)),
    "series_pet_mm": (SERIES, (0.0, 1000.0)),
}
SERIES_ROLES = ("series_tmp_degc", "series_pre_mm", "series_pet_mm")


class RothCInputs(dg.Config):
    """Climate and texture rasters (EPSG:4326, nodata tagged); defaults are the embedded copies. Optional, none
    embedded: `vegetated_share_raster`, 12 bands (January first), each month's share of NDVI observations above
    0.6 (GSOCseq manual eq. 6.3; without it, the crop-calendar rule); `paddy_rice_raster`, 1 band, the share of the
    cell under paddy rice (without it no paddy factor); `*_series_raster`, all three or none, 12 x years bands of
    monthly temperature (degC), precipitation and PET (mm) for the warm-up (without them no warm-up)."""

    tmp_raster: str = str(CRU_DIR / "cru_cl1_6190_tmp_0p5deg.tif")
    pre_raster: str = str(CRU_DIR / "cru_cl1_6190_pre_0p5deg.tif")
    pet_raster: str = str(CRU_DIR / "cru_cl1_6190_pet_pm_0p5deg.tif")
    clay_raster: str = str(HWSD_DIR / "hwsd_t_clay_pct_5arcmin.tif")
    clay_coarse_raster: str = str(HWSD_DIR / "hwsd_t_clay_pct_0p5deg.tif")
    sand_raster: str = str(HWSD_DIR / "hwsd_t_sand_pct_5arcmin.tif")
    vegetated_share_raster: str | None = None
    paddy_rice_raster: str | None = None
    tmp_series_raster: str | None = None
    pre_series_raster: str | None = None
    pet_series_raster: str | None = None

    def paths(self) -> dict[str, str]:
        """Role -> path of every raster given."""
        paths = {
            "tmp_degc": self.tmp_raster,
            "pre_mm": self.pre_raster,
            "pet_mm": self.pet_raster,
            "clay_pct": self.clay_raster,
            "clay_coarse_pct": self.clay_coarse_raster,
            "sand_pct": self.sand_raster,
            "vegetated_share": self.vegetated_share_raster,
            "paddy_share": self.paddy_rice_raster,
            "series_tmp_degc": self.tmp_series_raster,
            "series_pre_mm": self.pre_series_raster,
            "series_pet_mm": self.pet_series_raster,
        }
        return {role: path for role, path in paths.items() if path is not None}


def load_scenarios(path: Path = SCENARIO_FILE) -> gsocseq.RothCScenarios:
    return gsocseq.RothCScenarios.from_dict(read_bounded_yaml(Path(path)))


def series_years(config: RothCInputs) -> int:
    """Years of the warm-up series (0 without one), after checking the three rasters agree: all or none given,
    the same number of bands, a multiple of 12."""
    paths = {role: path for role, path in config.paths().items() if role in SERIES_ROLES}
    if not paths:
        return 0
    if len(paths) < len(SERIES_ROLES):
        missing = sorted(set(SERIES_ROLES) - set(paths))
        raise dg.Failure(f"warm-up series: give all three of {', '.join(SERIES_ROLES)} rasters; missing {missing}")
    counts = {}
    for path in paths.values():
        with engine.opened(engine.RasterSource(path)) as src:
            counts[path] = src.count
    if len(set(counts.values())) > 1 or next(iter(counts.values())) % 12:
        raise dg.Failure(f"warm-up series rasters must have the same number of bands, 12 x years: {counts}")
    return next(iter(counts.values())) // 12


def _bands_ok(rule, count: int) -> bool:
    return count > 0 and count % 12 == 0 if rule == SERIES else count == rule


def read_sampled(path: str, role: str, grid: GridSpec, flat_index: np.ndarray, indexes: dict | None = None):
    """The raster's bands at the cells' centres ((bands, n), NaN = nodata), after checking CRS, bands and the
    values of the source window under the cells (only that window is read). The dataset stays open in the thread
    (`engine.opened`): a striped source's rows, decoded once into GDAL's block cache, serve the windows beside.
    `indexes` keeps the cells' source indices per source grid for the next raster on the same grid."""
    bands, (low, high) = RASTER_RULES[role]
    with engine.opened(engine.RasterSource(path)) as src:
        if src.crs is None or src.crs.to_epsg() != 4326 or not _bands_ok(bands, src.count) or src.nodata is None:
            rule = (
                f"{role} raster must be EPSG:4326 with {bands} band(s) and a nodata value, found {src.crs}, "
                f"{src.count} band(s), nodata {src.nodata}"
            )
            raise as_failure(InputError(path, rule, Remedy.RASTER_LAYOUT))
        indexes = {} if indexes is None else indexes
        source_grid = (src.transform, (src.height, src.width))
        if source_grid not in indexes:
            indexes[source_grid] = gsocseq.nearest_source_index(grid, flat_index, *source_grid)
        index = indexes[source_grid]
        rows, cols = np.divmod(index[index >= 0], src.width)
        if not len(rows):
            return np.full((src.count, len(flat_index)), np.nan)
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
    indexes = {}  # the climate rasters share one grid, the texture rasters another
    values = {role: read_sampled(path, role, grid, flat_index, indexes) for role, path in config.paths().items()}
    clay = values["clay_pct"][0]
    filled = ~np.isfinite(clay) & np.isfinite(values["clay_coarse_pct"][0])
    clay = np.where(filled, values["clay_coarse_pct"][0], clay)
    series = [values.get(role) for role in SERIES_ROLES]
    cells = gsocseq.CellInputs(
        soc_t_c_per_ha=soc,
        clay_pct=clay,
        sand_pct=values["sand_pct"][0],
        climate=gsocseq.MonthlyClimate(values["tmp_degc"], values["pre_mm"], values["pet_mm"]),
        vegetated_share=values.get("vegetated_share"),
        paddy_share=values["paddy_share"][0] if "paddy_share" in values else None,
        warm_up_climate=None if series[0] is None else gsocseq.MonthlyClimate(*series),
    )
    return cells, filled


@dg.asset(
    io_manager_key="published_io_manager",
    group_name="potential",
    code_version="2",
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
    """Per region: cropland area (Mha, modelled and excluded by reason), RothC equilibrium input against climatic
    NPP, stock change and rate for BAU and SSM1-3 per modelled hectare and in Pg C/yr, SSM minus BAU and its share
    of the 4p1000 targets, the warming response, and the cropland and gain whose input the NPP check capped."""
    scenarios = load_scenarios()
    warm_up_years = series_years(config)
    zone_of, tables, sizes = zoner(countries, extent_name(soc_stock_grid))
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
        cropland_target = four_per_1000_target(region_sums["cropland_soc_stock_2010_t_c"], rate_4p1000) / T_PER_TG
        table_parts.append(gsocseq.regional_table(region_sums, scenarios, target, cropland_target))
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
    metadata.update(_phase_metadata(config, scenarios, sums, warm_up_years))
    metadata["streaming_pass"] = dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()})
    yield from publish_if_valid("rothc_sequestration_potential", table, metadata=metadata)


COUNT = "cells/"
INPUT_ABOVE_NPP = "input_above_npp"
CROP_CALENDAR = "crop_calendar_cover"
PADDY = "paddy_rice"
# Cells per RothC chunk, inputs read per chunk: ~1.5 kB of working arrays per cell, so ~40 MB per thread; a warm-up
# series adds 3 variables x 8 bytes per cell and month, held twice (read, then the modelled cells): ~300 MB per thread
# with 20 years.
RUN_CHUNK = 25_000
# Modelled cells per model run within a chunk: the model is elementwise passes over arrays of (up to 4 x 4 x) this
# many cells, and smaller arrays stay in cache (the embedded run's model: 3.2 s CPU against 3.9 s with 25,000, best
# of 4). Every cell is modelled on its own, so the results do not depend on it.
MODEL_CHUNK = 8192
MAP = "rate_map"
# Rate maps wider than this many cells get overviews (a 5' global map, 4320 cells, is read whole by any viewer)...
OVERVIEWS_ABOVE = 8192
# ...unless larger than this (bytes of all bands): GDAL's overview generation holds about 40 % of the image in memory
# (measured: 1.2 GB for 43200 x 4320 x 4 float32 bands), so a global 1 km map (15 GB) gets none; `gdaladdo` can add
# them outside the run.
OVERVIEWS_MAX_BYTES = 2 << 30


def _phase_metadata(config: RothCInputs, scenarios: gsocseq.RothCScenarios, sums: dict, warm_up_years: int) -> dict:
    """Counts of modelled cells whose input the NPP check capped, whose cover came from the crop-calendar rule and
    that were run as paddy rice, and what each optional input did in this run."""
    modelled = int(sums[f"{COUNT}{gsocseq.MODELLED}"][0])
    counts = {name: int(sums[f"{COUNT}{name}"][0]) for name in (INPUT_ABOVE_NPP, CROP_CALENDAR, PADDY)}
    paths = config.paths()
    series = ", ".join(paths[role] for role in SERIES_ROLES if role in paths)
    rule = {
        "fao_growing_period": "FAO growing period (T >= 5 degC and P >= 0.5 PET, or stored water), bare outside it",
        "covered_all_year": "covered all year",
    }[scenarios.cover_without_ndvi]
    return {
        "input_above_npp_cells": counts[INPUT_ABOVE_NPP],
        "input_above_npp_share_of_modelled_cells_pct": 100.0 * counts[INPUT_ABOVE_NPP] / max(modelled, 1),
        "crop_calendar_cover_cells": counts[CROP_CALENDAR],
        "paddy_rice_cells": counts[PADDY],
        "vegetation_cover": paths.get("vegetated_share", f"none given: {rule}"),
        "paddy_rice_mask": paths.get("paddy_share", "none given: absent, no paddy-rice decomposition factor applied"),
        "warm_up": f"{warm_up_years} years from {series}; the WHRC stock is taken as the stock at its start"
        if warm_up_years
        else "none: no year-by-year series given; stocks start the forward runs as the spin-up left them and BAU "
        "runs on the spin-up climate (the warming response is published beside it)",
    }


@dataclass(frozen=True)
class RothCWindow:
    """RothC on the cropland cells of one window: zone sums of `gsocseq.cell_quantities` (plus the all-land 2010
    stock), cells per status and per phase flag, and the window of the rate maps. Inputs are read and run in
    chunks of `RUN_CHUNK` cells, modelled in chunks of `MODEL_CHUNK`. Picklable, for Dask workers."""

    layers: zonal.ZonalTask
    config: RothCInputs
    scenarios: gsocseq.RothCScenarios

    def quantity_names(self) -> list[str]:
        return gsocseq.quantity_names(self.scenarios) + ["soc_stock_2010_t_c"]

    def __call__(self, window) -> dict[str, np.ndarray]:
        grid, layers = self.layers.grid, self.layers.layers(window)
        soc = layers["soc_stock"][0].astype("float64")
        area = np.broadcast_to(row_areas_ha(grid, window), soc.shape)
        cropland_ha = capped_land_ha(layers["cropland"].astype("float64"), area)
        cropped = np.flatnonzero(cropland_ha > 0)
        zones = self.layers.zonings(layers)
        crop_zones = {k: z.ravel()[cropped] for k, z in zones.items()}
        part = {}
        rates = np.full((len(self.scenarios.names), cropped.size), np.nan)
        for start in range(0, max(cropped.size, 1), RUN_CHUNK):  # an empty window still gives every sum (zeros)
            chunk = slice(start, start + RUN_CHUNK)
            rates[:, chunk] = self._run(part, window, cropped[chunk], soc, cropland_ha, crop_zones, chunk)
        # Sums over the cropland cells only (the RothC quantities are zero elsewhere), then the all-land stock.
        part.update(zonal.window_sums({"soc_stock_2010_t_c": soc * area}, zones, self.layers.sizes))
        part[MAP] = np.full((len(rates),) + soc.shape, np.nan, dtype="float32")
        part[MAP].reshape(len(rates), -1)[:, cropped] = rates  # cast to float32 as astype does
        return part

    def _run(self, part: dict, window, cells, soc, cropland_ha, crop_zones, chunk) -> np.ndarray:
        """One chunk of cropland cells: adds its zone sums and counts to `part`, returns its rates (t C/ha/yr)."""
        rows, cols = np.divmod(cells, soc.shape[1])
        flat = (rows + int(window.row_off)) * self.layers.grid.width + cols + int(window.col_off)
        inputs, clay_filled = cell_inputs(self.config, self.layers.grid, flat, soc.ravel()[cells])
        results = gsocseq.run_cells(inputs, self.scenarios, chunk=MODEL_CHUNK)
        per_cell = gsocseq.cell_quantities(
            results, self.scenarios, inputs.soc_t_c_per_ha, cropland_ha.ravel()[cells], clay_filled
        )
        zones = {k: z[chunk] for k, z in crop_zones.items()}
        ok = results.status == gsocseq.MODELLED
        counts = {status: results.status == status for status in (gsocseq.MODELLED, *gsocseq.EXCLUSIONS)}
        counts.update({INPUT_ABOVE_NPP: ok & results.input_above_npp, PADDY: results.paddy})
        counts[CROP_CALENDAR] = ok & results.crop_calendar_cover
        _add(part, zonal.window_sums(per_cell, zones, self.layers.sizes))
        _add(part, {f"{COUNT}{name}": np.array([int(flags.sum())]) for name, flags in counts.items()})
        return (results.soc_final_t_c_per_ha - results.soc_t0_t_c_per_ha) / self.scenarios.horizon_yr


def _add(total: dict, part: dict) -> None:
    for key, values in part.items():
        total[key] = total[key] + values if key in total else values


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
    ssm = list(scenarios.ssm_input_increase)[-1]
    npp_check = [
        "input_above_npp_share_of_modelled_cropland_pct",
        "input_above_npp_share_of_ssm_gain_pct",
        "input_above_npp_share_of_ssm_gain_uncapped_pct",
        f"{ssm}_minus_bau_uncapped_rate_pg_c_per_yr",
        "input_above_npp_bau_rate_pg_c_per_yr",
    ]
    warming = ["bau_warming_response_rate_pg_c_per_yr"]
    return ["cropland_area_mha", "modelled_cropland_area_mha", *rates, *gains, *npp_check, *warming]


def _parameters(scenarios: gsocseq.RothCScenarios) -> dict:
    return {
        "rothc_scenarios_version": scenarios.version,
        "horizon_yr": scenarios.horizon_yr,
        "depth_cm": scenarios.depth_cm,
        "dpm_rpm_ratio": scenarios.dpm_rpm_ratio,
        "evaporation_factor": scenarios.conventions.evaporation_factor,
        "reset_deficit_yearly": scenarios.conventions.reset_deficit_yearly,
        "bau_input_follows_npp": scenarios.bau_input_follows_npp,
        "npp_carbon_fraction": scenarios.npp_carbon_fraction,
        "max_input_share_of_npp": scenarios.max_input_share_of_npp,
        "warming_response_degc": scenarios.warming_response_degc,
        "crop_calendar_min_temperature_degc": scenarios.growing_month_min_tmp_degc,
        "crop_calendar_min_precipitation_to_pet": scenarios.growing_month_min_pre_to_pet,
        "paddy_rate_factor": scenarios.paddy_rate_factor,
        "paddy_min_share": scenarios.paddy_min_share,
        "max_sand_pct": scenarios.max_sand_pct,
        "max_soc_t_c_per_ha": scenarios.max_soc_t_c_per_ha,
        "ssm_input_increase": scenarios.ssm_input_increase,
        "four_per_1000_rate_per_yr": factor("four_per_1000", "annual_rate"),
        "citations": {"four_per_1000": citation("four_per_1000")},
    }
