"""Restoration scenarios, one asset per scenario definition (`data/scenarios/<id>.yaml`), keyed
`restoration_scenario/<id>` and published as partition `<id>` of the store's `restoration_scenario` table.
Scenarios are unpartitioned assets rather than partitions of one asset so that "Materialize all" in the UI works:
an asset backfill with a month picked needs every partitioned root of the selection (here the monthly field drop)
to share one partitions definition.

Each scenario ranks the converted land by the scenario's priority criterion, restores the scenario's share of it
(globally or within each region), and reports per region the area restored, the 0-30 cm soil carbon gain at the
horizon and its annual rate against the all-land 4p1000 target, with Monte Carlo intervals and the lower and upper
bounds of the debt attribution, plus global sensitivity rows for the structural alternatives (attribution,
recovery curve, cropland only when pasture is configured) and a PNG map of restored cells.

The central attribution of each cell's debt to its converted land weighs areas by the IPCC Tier 1 relative loss
per ha of the cell's climate zone (literature/land_use_loss.yaml): cropland, pasture, and, without a pasture
raster, the cell's other land as possibly grazed; with one, land that is neither is taken as never converted.
"""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.cells import LandCells, land_cells
from soil_pipeline.assets.potential import MonteCarloConfig, monte_carlo
from soil_pipeline.assets.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, climate_zone_names, global_metadata, zonings
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.maps import share_map_png
from soil_pipeline.reference_data import (
    LAND_USE_LOSS_FILE,
    PRIORITY_REGIONS_FILE,
    citation,
    factor,
    file_inputs,
    land_use_losses,
    load_scenario,
    scenario_ids,
    scenario_path,
)
from soil_pipeline.resources import ArtifactStore
from soil_pipeline.science import scenarios
from soil_pipeline.science.aggregation import capped_land_ha, ratio, zone_sums
from soil_pipeline.science.grid import Layer

STORE_ASSET = "restoration_scenario"
GLOBAL_METADATA_COLUMNS = (
    "restored_area_mha",
    "soc_gain_pg_c",
    "soc_gain_gt_co2",
    "soc_gain_lower_bound_pg_c",
    "soc_gain_upper_bound_pg_c",
    "soc_gain_share_of_4p1000_all_land_pct",
)


def _scope_zones(scenario: scenarios.Scenario, zoning: dict) -> np.ndarray | None:
    """Zone per cell for within_region scenarios; cells outside every region of the type form one more zone."""
    if scenario.scope != "within_region":
        return None
    if scenario.scope_region_type not in zoning:
        raise dg.Failure(f"scenario {scenario.id}: scope_region_type must be one of {list(zoning)}")
    zones = zoning[scenario.scope_region_type][0]
    return np.where(zones < 0, zones.max() + 1, zones)


def _land_use(cells: LandCells, cropland_grid: Layer, climate_zone_grid: Layer, with_pasture: bool):
    """(land use of the converted land, land use with only the cropland restorable) of each cell."""
    cropland = np.minimum(capped_land_ha(cells.take(cropland_grid).astype("float64"), cells.area_ha), cells.land_ha)
    pasture = cells.land_ha - cropland
    losses = land_use_losses(climate_zone_names())
    zones = cells.take(climate_zone_grid).astype("int64")
    crop_loss, grazing_loss = losses["cropland"][zones], losses["grazing"][zones]
    other_loss = np.zeros(zones.shape) if with_pasture else grazing_loss
    converted = scenarios.LandUse(cells.area_ha, cropland, pasture, crop_loss, grazing_loss, other_loss)
    # Cropland only: pasture joins the land not restored, keeping its own loss in the attribution.
    rest = cells.area_ha - cropland
    rest_loss = ratio(pasture * grazing_loss + (rest - pasture) * other_loss, rest)
    crop_only = dataclasses.replace(converted, pasture_ha=np.zeros_like(pasture), other_loss=np.nan_to_num(rest_loss))
    return converted, crop_only


def _map(scenario: scenarios.Scenario, cells: LandCells, restored_ha: np.ndarray, grid) -> bytes:
    share = np.zeros(grid.shape, dtype="float64")
    share.ravel()[cells.index] = restored_ha / cells.area_ha
    land = np.zeros(grid.shape, dtype=bool)
    land.ravel()[cells.index] = True
    title = f"{scenario.id} (v{scenario.version}): restored share of each cell"
    return share_map_png(share, land, grid, title, "restored converted land / cell area")


def scenario_key(scenario_id: str) -> dg.AssetKey:
    return dg.AssetKey([STORE_ASSET, scenario_id])


def _scenario_asset(scenario_id: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=scenario_key(scenario_id),
        io_manager_key="published_io_manager",
        group_name="scenarios",
        code_version="2",
        check_specs=contract_specs(STORE_ASSET, key=scenario_key(scenario_id)),
        deps=["climate_zone_legend"],
        description=f"Restoration scenario `{scenario_id}`: per region, converted and restored area (Mha), SOC gain "
        "at the horizon (Pg C, Gt CO2) with its lower and upper bounds, mean annual rate (Tg C/yr) and % of the "
        "all-land 4p1000 target, with intervals; global sensitivity rows; a map of the restored cells.",
    )
    def _scenario(
        config: MonteCarloConfig,
        artifacts: ArtifactStore,
        soc_stock_grid: Layer,
        converted_land_grid: Layer,
        cropland_grid: Layer,
        climate_zone_grid: Layer,
        country_grid: Layer,
        countries: pd.DataFrame,
    ):
        grids = (soc_stock_grid, converted_land_grid, cropland_grid, climate_zone_grid, country_grid)
        yield from restoration_scenario(scenario_id, config, artifacts, *grids, countries)

    return _scenario


def restoration_scenario(
    scenario_id: str,
    config: MonteCarloConfig,
    artifacts: ArtifactStore,
    soc_stock_grid: Layer,
    converted_land_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
):
    """One scenario's regional table and sensitivity rows, checked against the restoration_scenario contract, then
    published."""
    scenario = load_scenario(scenario_id)
    cells = land_cells(soc_stock_grid, converted_land_grid)
    zoning = zonings(countries, cells.take(country_grid), cells.take(climate_zone_grid))
    with_pasture = "pasture" in converted_land_grid.alignment.get("components", {})
    land, cropland_only = _land_use(cells, cropland_grid, climate_zone_grid, with_pasture)
    scope = _scope_zones(scenario, zoning)
    quantities = scenarios.cell_quantities(scenario, cells.soc_2010, cells.soc_no_land_use, land, scope)
    draws, central, mc_parameters = monte_carlo(config)
    rate = factor("four_per_1000", "annual_rate")
    label = "cropland (HYDE 3.2) + pasture" if with_pasture else "cropland (HYDE 3.2; no pasture raster)"
    others = {}
    if with_pasture:
        crop_q = scenarios.cell_quantities(scenario, cells.soc_2010, cells.soc_no_land_use, cropland_only, scope)
        others["cropland only (HYDE 3.2)"] = zone_sums(crop_q, *zoning["global"])
    table = pd.concat(
        [
            *(
                scenarios.regional_scenario(zone_sums(quantities, *zoning[kind]), scenario, rate, draws, central, label)
                for kind in REGION_TYPES
            ),
            scenarios.sensitivity_rows(
                zone_sums(quantities, *zoning["global"]), scenario, rate, draws, central, label, others
            ),
        ],
        ignore_index=True,
    )
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        converted_land_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        file_inputs(
            ("priority_regions", PRIORITY_REGIONS_FILE),
            ("climate_zone_legend", CLIMATE_ZONE_LEGEND),
            (f"scenario[{scenario.id}]", scenario_path(scenario.id)),
            ("land_use_loss", LAND_USE_LOSS_FILE),
        ),
        {
            "parameters": {
                "scenario": dataclasses.asdict(scenario),
                "four_per_1000_rate_per_yr": rate,
                "citations": {
                    name: citation(name)
                    for name in sorted(
                        {"four_per_1000", scenario.recovery.source}
                        | {curve.source for curve in scenario.alternative_recovery}
                    )
                },
                **mc_parameters,
            }
        },
    )
    png = _map(scenario, cells, quantities["restored_ha"], soc_stock_grid.grid)
    map_path, map_url = artifacts.write(f"restoration_scenario_map/{scenario.id}", png, ".png")
    shown = f"![restored cells of {scenario.id}]({map_url})\n\n" if map_url else ""
    metadata = {
        "restored_cells_map": dg.MetadataValue.md(f"{shown}PNG: `{map_path}` (served by `soil-pipeline docs`)"),
        "restored_cells_map_file": dg.MetadataValue.path(str(map_path)),
        **global_metadata(table, GLOBAL_METADATA_COLUMNS),
    }
    yield from publish_if_valid(STORE_ASSET, table, metadata=metadata, key=scenario_key(scenario_id))


scenario_assets = [_scenario_asset(scenario_id) for scenario_id in scenario_ids()]
