"""Regional sequestration potential: 4-per-1000 targets for all land and cropland, and Zomer et al. (2017)-style
cropland rates, per country, IPCC climate zone, 4p1000 priority region and globally, with Monte Carlo intervals.

Bulk density for the Zomer rates: per cell, the Manrique & Jones (1991) BD that makes SOC content x BD x 30 cm
equal the WHRC 2010 stock; Zomer et al. used SoilGrids BD per pixel, which is not embedded. The central figures
blend it half-and-half with the BD implied by Zomer et al.'s own medium figures, and the interval spans the two.
"""

import dagster as dg
import numpy as np
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.cells import land_cells
from soil_pipeline.assets.global_grids import SOC_STOCK_DEPTH_CM
from soil_pipeline.assets.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, global_metadata, zonings
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.reference_data import (
    PRIORITY_REGIONS_FILE,
    citation,
    file_inputs,
    monte_carlo_parameters,
    potential_parameters,
    uncertainty_spec,
)
from soil_pipeline.science import potential, uncertainty
from soil_pipeline.science.aggregation import zone_sums
from soil_pipeline.science.grid import Layer
from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991

GLOBAL_METADATA_COLUMNS = (
    "target_4p1000_tg_c_per_yr",
    "cropland_target_4p1000_tg_c_per_yr",
    "cropland_bd_ptf_g_per_cm3",
    "zomer_medium_t_c_per_ha_per_yr",
    "zomer_high_t_c_per_ha_per_yr",
    "zomer_medium_tg_c_per_yr",
    "zomer_high_tg_c_per_yr",
    "zomer_medium_share_of_4p1000_pct",
    "zomer_high_share_of_4p1000_pct",
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
    code_version="1",
    check_specs=contract_specs("regional_sequestration_potential"),
    deps=["climate_zone_legend"],
)
def regional_sequestration_potential(
    config: MonteCarloConfig,
    soc_stock_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
):
    """Per region: SOC stock (Pg C), cropland area (Mha), 4p1000 targets (Tg C/yr), Zomer medium/high cropland
    rates (Tg C/yr, t C/ha/yr, % of the 4p1000 target) and cropland BD (g/cm3); `_p05/_p50/_p95` intervals."""
    params = potential_parameters()
    cells = land_cells(soc_stock_grid, cropland_grid)
    bd = np.full(cells.index.shape, np.nan)
    cropped = cells.land_ha > 0
    bd[cropped] = potential.bulk_density_from_stock(cells.soc_2010[cropped], SOC_STOCK_DEPTH_CM, MANRIQUE_JONES_1991)
    quantities = potential.cell_quantities(cells.soc_2010, cells.land_ha, cells.area_ha, bd)
    zoning = zonings(countries, cells.take(country_grid), cells.take(climate_zone_grid))
    draws, central, mc_parameters = monte_carlo(config)
    table = pd.concat(
        [
            potential.regional_potential(zone_sums(quantities, *zoning[kind]), params, draws, central)
            for kind in REGION_TYPES
        ],
        ignore_index=True,
    )
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        cropland_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        file_inputs(("priority_regions", PRIORITY_REGIONS_FILE), ("climate_zone_legend", CLIMATE_ZONE_LEGEND)),
        {"parameters": {**_parameters(params), **mc_parameters}},
    )
    metadata = global_metadata(table, GLOBAL_METADATA_COLUMNS)
    yield from publish_if_valid("regional_sequestration_potential", table, metadata=metadata)


def _parameters(params: potential.PotentialParameters) -> dict:
    return {
        "four_per_1000_rate_per_yr": params.four_per_1000_rate,
        "zomer_content_increase_pct": params.content_increase_pct,
        "zomer_depth_cm": params.depth_cm,
        "bulk_density_from_stock_depth_cm": SOC_STOCK_DEPTH_CM,
        "zomer_duration_yr": params.duration_yr,
        "bulk_density_zomer_implied_g_per_cm3": params.bulk_density_zomer_g_per_cm3,
        "bulk_density_pedotransfer": MANRIQUE_JONES_1991.citation,
        "citations": {name: citation(name) for name in ("four_per_1000", "zomer_2017")},
    }
