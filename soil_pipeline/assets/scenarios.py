"""Restoration scenarios, one Dagster partition per scenario definition (`data/scenarios/<id>.yaml`).

Each partition ranks the converted land by the scenario's priority criterion, restores the scenario's share of it
(globally or within each region), and reports per region the area restored, the 0-30 cm soil carbon gain at the
horizon and its annual rate against the 4p1000 target, with Monte Carlo intervals, plus a PNG map of restored cells.
"""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.cells import LandCells, land_cells
from soil_pipeline.assets.potential import MonteCarloConfig, monte_carlo
from soil_pipeline.assets.zones import CLIMATE_ZONE_LEGEND, REGION_TYPES, global_metadata, zonings
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.maps import share_map_png
from soil_pipeline.reference_data import (
    PRIORITY_REGIONS_FILE,
    citation,
    factor,
    file_inputs,
    load_scenario,
    scenario_ids,
    scenario_path,
)
from soil_pipeline.resources import ArtifactStore
from soil_pipeline.science import scenarios
from soil_pipeline.science.aggregation import zone_sums
from soil_pipeline.science.grid import Layer

scenario_partitions = dg.StaticPartitionsDefinition(scenario_ids())
GLOBAL_METADATA_COLUMNS = ("restored_area_mha", "soc_gain_pg_c", "soc_gain_gt_co2", "soc_gain_share_of_4p1000_pct")


def _scope_zones(scenario: scenarios.Scenario, zoning: dict) -> np.ndarray | None:
    """Zone per cell for within_region scenarios; cells outside every region of the type form one more zone."""
    if scenario.scope != "within_region":
        return None
    if scenario.scope_region_type not in zoning:
        raise dg.Failure(f"scenario {scenario.id}: scope_region_type must be one of {list(zoning)}")
    zones = zoning[scenario.scope_region_type][0]
    return np.where(zones < 0, zones.max() + 1, zones)


def _map(scenario: scenarios.Scenario, cells: LandCells, restored_ha: np.ndarray, grid) -> bytes:
    share = np.zeros(grid.shape, dtype="float64")
    share.ravel()[cells.index] = restored_ha / cells.area_ha
    land = np.zeros(grid.shape, dtype=bool)
    land.ravel()[cells.index] = True
    title = f"{scenario.id} (v{scenario.version}): restored share of each cell"
    return share_map_png(share, land, grid, title, "restored converted land / cell area")


@dg.asset(
    partitions_def=scenario_partitions,
    io_manager_key="published_io_manager",
    group_name="scenarios",
    code_version="1",
    check_specs=contract_specs("restoration_scenario"),
    deps=["climate_zone_legend"],
)
def restoration_scenario(
    context: dg.AssetExecutionContext,
    config: MonteCarloConfig,
    artifacts: ArtifactStore,
    soc_stock_grid: Layer,
    converted_land_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
):
    """Per region, for one scenario: converted and restored area (Mha), debt of the restored area (Pg C), SOC gain
    at the horizon (Pg C, Gt CO2), mean annual rate (Tg C/yr) and % of the 4p1000 target, with intervals."""
    scenario = load_scenario(context.partition_key)
    cells = land_cells(soc_stock_grid, converted_land_grid)
    zoning = zonings(countries, cells.take(country_grid), cells.take(climate_zone_grid))
    quantities = scenarios.cell_quantities(
        scenario, cells.soc_2010, cells.soc_no_land_use, cells.land_ha, cells.area_ha, _scope_zones(scenario, zoning)
    )
    draws, central, mc_parameters = monte_carlo(config)
    rate = factor("four_per_1000", "annual_rate")
    table = pd.concat(
        [
            scenarios.regional_scenario(zone_sums(quantities, *zoning[kind]), scenario, rate, draws, central)
            for kind in REGION_TYPES
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
        ),
        {
            "parameters": {
                "scenario": dataclasses.asdict(scenario),
                "four_per_1000_rate_per_yr": rate,
                "citations": {"four_per_1000": citation("four_per_1000")},
                **mc_parameters,
            }
        },
    )
    png = _map(scenario, cells, quantities["restored_ha"], soc_stock_grid.grid)
    map_path = artifacts.write(f"restoration_scenario_map/{scenario.id}", png, ".png")
    metadata = {
        "restored_cells_map": dg.MetadataValue.path(str(map_path)),
        **global_metadata(table, GLOBAL_METADATA_COLUMNS),
    }
    yield from publish_if_valid("restoration_scenario", table, metadata=metadata)
