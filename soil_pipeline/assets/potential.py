"""Regional sequestration potential: 4-per-1000 targets for all land and cropland, and Zomer et al. (2017)-style
cropland rates, per country, IPCC climate zone, 4p1000 priority region and globally, with Monte Carlo intervals.

Bulk density for the Zomer rates (Zomer et al. used SoilGrids BD per pixel, which is not embedded), two published
variants, never blended: "reproduction", the BD implied by Zomer et al.'s own medium figures (0.56 t C/ha/yr from
+0.27 % over 30 cm and 20 yr: 1.3827 g/cm3) on all cropland; "independent", per cell the Manrique & Jones (1991) BD
that makes SOC content x BD x 30 cm equal the WHRC 2010 stock, on the cropland where that BD exists (not on organic
or unmapped soils). Each variant publishes its BD and the cropland area its per-hectare rate is per.
"""

import functools

import dagster as dg
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.global_grids import SOC_STOCK_DEPTH_CM
from soil_pipeline.assets.regional import grid_sources
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.engine.zonal import sums_table, zonal_statistics
from soil_pipeline.reference_data import (
    PRIORITY_REGIONS_FILE,
    citation,
    file_inputs,
    monte_carlo_parameters,
    potential_parameters,
    stock_error_fallback,
    uncertainty_spec,
)
from soil_pipeline.resources import RasterEngine
from soil_pipeline.science import potential, uncertainty
from soil_pipeline.science.grid import Layer, common_grid
from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991
from soil_pipeline.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, extent_name, global_metadata, zoner

CELL_QUANTITIES = (
    "soc_stock_2010_t_c",
    "cropland_area_ha",
    "cropland_soc_stock_2010_t_c",
    "cropland_area_with_bd_ha",
    "cropland_bd_x_area",
    "soc_stock_error_t_c",
    "soc_stock_2010_without_error_t_c",
    "cropland_soc_stock_error_t_c",
    "cropland_soc_stock_2010_without_error_t_c",
)
ZOMER_BD_COLUMNS = ("bd_g_per_cm3", "cropland_area_mha")
GLOBAL_METADATA_COLUMNS = (
    "soc_stock_2010_relative_sd_pct",
    "target_4p1000_tg_c_per_yr",
    "cropland_target_4p1000_tg_c_per_yr",
    *(f"zomer_{variant}_{name}" for variant in potential.ZOMER_VARIANTS for name in ZOMER_BD_COLUMNS),
    *(
        f"zomer_{level}_{variant}_{name}"
        for level in ("medium", "high")
        for variant in potential.ZOMER_VARIANTS
        for name in ("tg_c_per_yr", "t_c_per_ha_per_yr", "share_of_4p1000_all_land_pct")
    ),
)


class MonteCarloConfig(dg.Config):
    """Seed and number of draws of the Monte Carlo; the same seed gives the same intervals."""

    seed: int = uncertainty_spec()["seed"]
    n_draws: int = uncertainty_spec()["n_draws"]


def monte_carlo(config: MonteCarloConfig) -> tuple[dict, dict, dict]:
    """(draws, central values, provenance parameters) for the configured seed."""
    spec = monte_carlo_parameters()
    draws = uncertainty.draw(spec, config.n_draws, config.seed)
    parameters = {"monte_carlo_seed": config.seed, "monte_carlo_draws": config.n_draws, "monte_carlo_spec": spec}
    return draws, uncertainty.central(spec), parameters


@dg.asset(
    io_manager_key="published_io_manager",
    group_name="potential",
    code_version="3",
    check_specs=contract_specs("regional_sequestration_potential"),
    deps=["climate_zone_legend"],
)
def regional_sequestration_potential(
    config: MonteCarloConfig,
    raster_engine: RasterEngine,
    soc_stock_grid: Layer,
    soc_stock_error_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
):
    """Per region: SOC stock (Pg C) and its relative error (%), cropland area (Mha), 4p1000 targets (Tg C/yr), and
    per Zomer variant its BD (g/cm3), cropland area (Mha) and medium/high rates (Tg C/yr, t C/ha/yr, % of the
    all-land and cropland 4p1000 targets); `_p05/_p50/_p95` intervals where a sampled parameter enters."""
    params = potential_parameters()
    zone_of, tables, sizes = zoner(countries, extent_name(soc_stock_grid))
    quantities = functools.partial(potential.window_quantities, depth_cm=SOC_STOCK_DEPTH_CM, ptf=MANRIQUE_JONES_1991)
    grid = common_grid(soc_stock_grid, soc_stock_error_grid, cropland_grid, climate_zone_grid, country_grid)
    sources = grid_sources(soc_stock_grid, cropland_grid, climate_zone_grid, country_grid)
    sources["soc_stock_error"] = soc_stock_error_grid.source("soc_stock_error")
    with raster_engine.executor() as executor:
        sums, report, _ = zonal_statistics(
            sources,
            grid,
            quantities,
            zone_of,
            sizes,
            executor,
            raster_engine.threads,
            raster_engine.window_cells,
        )
    draws, _, mc_parameters = monte_carlo(config)
    z, fallback = draws["soc_stock_error_z"], stock_error_fallback()
    table = pd.concat(
        [
            potential.regional_potential(sums_table(sums, kind, tables[kind], CELL_QUANTITIES), params, z, fallback)
            for kind in REGION_TYPES
        ],
        ignore_index=True,
    )
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        soc_stock_error_grid.provenance,
        cropland_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        file_inputs(("priority_regions", PRIORITY_REGIONS_FILE), ("climate_zone_legend", CLIMATE_ZONE_LEGEND)),
        {"parameters": {**_parameters(params), **mc_parameters}},
    )
    metadata = global_metadata(table, GLOBAL_METADATA_COLUMNS)
    metadata["streaming_pass"] = dg.MetadataValue.json({**report.metadata(), **raster_engine.describe()})
    yield from publish_if_valid("regional_sequestration_potential", table, metadata=metadata)


def _parameters(params: potential.PotentialParameters) -> dict:
    return {
        "four_per_1000_rate_per_yr": params.four_per_1000_rate,
        "zomer_content_increase_pct": params.content_increase_pct,
        "zomer_depth_cm": params.depth_cm,
        "bulk_density_from_stock_depth_cm": SOC_STOCK_DEPTH_CM,
        "zomer_duration_yr": params.duration_yr,
        "zomer_reproduction_bulk_density_g_per_cm3": params.bulk_density_zomer_g_per_cm3,
        "zomer_independent_bulk_density": f"per cell from the WHRC 2010 stock: {MANRIQUE_JONES_1991.citation}",
        "citations": {name: citation(name) for name in ("four_per_1000", "zomer_2017")},
    }
