"""Sequestration potential of cropland the GSOCseq way: RothC-26.3 run on every cropland cell of the common grid,
20 years of business as usual (BAU) against sustainable soil management with +5 / +10 / +20 % carbon inputs
(SSM1-3), per country, IPCC climate zone, 4p1000 priority region and the world.

Inputs: the WHRC 2010 stock (equilibrium target), HYDE cropland, CRU CL 1.0 1961-1990 monthly climate (0.5 deg)
and HWSD v1.2 topsoil clay and sand (5'), each sampled at the cell centre through its own transform. Scenario
parameters and model conventions live in `data/rothc/gsocseq_scenarios.yaml`. Cells that are not modelled (no
stock, no climate, no clay, sand > 90 %, organic soils, frozen all year) are counted per region by reason.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import rasterio
import yaml
from rasterio.io import MemoryFile

from soil_pipeline import provenance
from soil_pipeline.assets.cells import land_cells
from soil_pipeline.assets.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, global_metadata, zonings
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.reference_data import PRIORITY_REGIONS_FILE, citation, factor, file_inputs
from soil_pipeline.resources import DATA_DIR, ArtifactStore
from soil_pipeline.science import gsocseq
from soil_pipeline.science.aggregation import four_per_1000_target, zone_sums
from soil_pipeline.science.grid import GridSpec, Layer
from soil_pipeline.science.units import T_PER_TG

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
    """The raster's bands at the cells' centres ((bands, n), NaN = nodata), after checking CRS, bands, values."""
    bands, (low, high) = RASTER_RULES[role]
    with rasterio.open(path) as src:
        if src.crs is None or src.crs.to_epsg() != 4326 or src.count != bands or src.nodata is None:
            raise dg.Failure(
                f"{path}: {role} raster must be EPSG:4326 with {bands} band(s) and a nodata value, "
                f"found {src.crs}, {src.count} band(s), nodata {src.nodata}"
            )
        data, transform, nodata = src.read(), src.transform, src.nodata
    valid = data != nodata
    bad = valid & ((data < low) | (data > high))
    if bad.any():
        band, rows, cols = np.nonzero(bad)
        raise dg.Failure(
            f"{path}: {role} values outside [{low}, {high}] in band {band[0] + 1}, "
            f"rows {rows.min()}-{rows.max()}, cols {cols.min()}-{cols.max()} (e.g. {data[band[0], rows[0], cols[0]]})"
        )
    data = np.where(valid, data, np.nan).astype("float32")
    index = gsocseq.nearest_source_index(grid, flat_index, transform, data.shape[1:])
    return gsocseq.sample(data, index)


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
    soc_stock_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
):
    """Per region: cropland area (Mha, modelled and excluded by reason), RothC equilibrium input, stock change and
    rate for BAU and SSM1-3 (t C/ha, t C/ha/yr, Pg C/yr), SSM minus BAU and its share of the 4p1000 target."""
    scenarios = load_scenarios()
    cells = land_cells(soc_stock_grid, cropland_grid)
    cropped = cells.land_ha > 0
    inputs, clay_filled = cell_inputs(config, soc_stock_grid.grid, cells.index[cropped], cells.soc_2010[cropped])
    results = gsocseq.run_cells(inputs, scenarios)
    quantities = _on_land_cells(
        gsocseq.cell_quantities(results, scenarios, inputs.soc_t_c_per_ha, cells.land_ha[cropped], clay_filled),
        cropped,
    )
    quantities["soc_stock_2010_t_c"] = np.nan_to_num(cells.soc_2010 * cells.area_ha)
    zoning = zonings(countries, cells.take(country_grid), cells.take(climate_zone_grid))
    rate_4p1000 = factor("four_per_1000", "annual_rate")
    tables = []
    for kind in REGION_TYPES:
        sums = zone_sums(quantities, *zoning[kind])
        target = four_per_1000_target(sums["soc_stock_2010_t_c"], rate_4p1000) / T_PER_TG
        tables.append(gsocseq.regional_table(sums, scenarios, target))
    table = pd.concat(tables, ignore_index=True)
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        cropland_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        _input_files(config),
        {"parameters": _parameters(scenarios)},
    )
    metadata = global_metadata(table, _global_columns(scenarios))
    cog = rate_maps_cog(results, inputs.soc_t_c_per_ha, cells.index[cropped], soc_stock_grid.grid, scenarios)
    cog_path, _ = artifacts.write("rothc_rate_maps", cog, ".tif")
    metadata["rate_maps_cog"] = dg.MetadataValue.path(str(cog_path))
    metadata["modelled_cells"] = int((results.status == gsocseq.MODELLED).sum())
    metadata["excluded_cells"] = dg.MetadataValue.json(
        {reason: int((results.status == reason).sum()) for reason in gsocseq.EXCLUSIONS}
    )
    yield from publish_if_valid("rothc_sequestration_potential", table, metadata=metadata)


def rate_maps_cog(results, soc, flat_index, grid: GridSpec, scenarios: gsocseq.RothCScenarios) -> bytes:
    """Cloud-Optimized GeoTIFF of the common grid, one float32 band per scenario: SOC change rate over the horizon
    (t C/ha/yr) on the modelled cropland cells, NaN elsewhere."""
    rates = (results.soc_final_t_c_per_ha - soc) / scenarios.horizon_yr
    bands = np.full((len(scenarios.names), grid.height * grid.width), np.nan, dtype="float32")
    bands[:, flat_index] = rates
    profile = {"count": len(bands), "dtype": "float32", "crs": grid.crs, "transform": grid.transform}
    with MemoryFile() as memory:
        with memory.open(driver="GTiff", width=grid.width, height=grid.height, nodata=np.nan, **profile) as tif:
            tif.write(bands.reshape(len(bands), grid.height, grid.width))
            for i, name in enumerate(scenarios.names, start=1):
                tif.set_band_description(i, f"{name} SOC change rate, t C/ha/yr, {scenarios.horizon_yr} yr")
        with memory.open() as tif, MemoryFile() as cog:
            with cog.open(driver="COG", compress="DEFLATE", predictor=3, **_cog_profile(tif)) as out:
                out.write(tif.read())
                out.descriptions = tif.descriptions
            return cog.read()


def _cog_profile(tif) -> dict:
    keys = ("width", "height", "count", "dtype", "crs", "transform", "nodata")
    return {key: tif.profile[key] for key in keys}


def _on_land_cells(quantities: dict[str, np.ndarray], cropped: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, values in quantities.items():
        full = np.zeros(cropped.shape)
        full[cropped] = values
        out[name] = full
    return out


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
