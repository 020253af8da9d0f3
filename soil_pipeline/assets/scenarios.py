"""Restoration scenarios, one asset per scenario definition (`data/scenarios/<id>.yaml`), keyed
`restoration_scenario/<id>` and published as partition `<id>` of the store's `restoration_scenario` table.
Scenarios are unpartitioned assets rather than partitions of one asset so that "Materialize all" in the UI works:
an asset backfill with a month picked needs every partitioned root of the selection (here the monthly field drop)
to share one partitions definition. One multi-asset computes them (any subset, in one step), so the selected
scenarios share the streaming passes over the grids.

Each scenario ranks the converted land by the scenario's priority criterion, restores the scenario's share of it
(globally or within each region), and reports per region the area restored, the 0-30 cm soil carbon gain at the
horizon under the central curve (IPCC Tier 1 set-aside) and the low and eventual-recovery cases, their annual and
per-hectare rates and their share of the all-land 4p1000 target, with Monte Carlo intervals (IPCC factor ranges,
regional stock error: the one a region's field sites measure where regional_soc_stocks has a field-calibrated
stock, else from the WHRC error layers; residual debt error) and the lower and upper bounds of the debt
attribution, plus global sensitivity rows for the structural alternatives (attribution, grazing loss, IPCC
edition, cropland only when pasture is configured) and a PNG map of restored cells.

The central attribution of each cell's debt to its converted land weighs areas by the relative loss per ha of the
cell's climate zone (literature/land_use_loss.yaml): cropland (IPCC F_LU), pasture and, without a pasture raster, the
cell's other land as possibly grazed (a multiple of cropland's loss); with one, land that is neither is taken as
never converted.
"""

import dataclasses

import dagster as dg
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.potential import MonteCarloConfig, monte_carlo
from soil_pipeline.assets.regional import grid_sources, with_field_errors
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import scenario_passes, zonal
from soil_pipeline.engine.zonal import sums_table
from soil_pipeline.failures import reported
from soil_pipeline.maps import block_map_png, inline_markdown, thumbnail_png
from soil_pipeline.reference_data import (
    LAND_USE_LOSS_FILE,
    PRIORITY_REGIONS_FILE,
    citation,
    edition_citation,
    factor,
    file_inputs,
    land_use_factors,
    load_scenario,
    scenario_ids,
    scenario_path,
    stock_error_fallback,
)
from soil_pipeline.resources import ArtifactStore, RasterEngine
from soil_pipeline.science import scenarios
from soil_pipeline.science.grid import Layer, common_grid
from soil_pipeline.zones import (
    CLIMATE_ZONE_LEGEND,
    REGION_TYPES,
    climate_zone_names,
    extent_name,
    global_metadata,
    zoner,
)

STORE_ASSET = "restoration_scenario"
GLOBAL_METADATA_COLUMNS = (
    "restored_area_mha",
    "restored_area_with_soc_mha",
    "soc_gain_pg_c",
    "soc_gain_pg_c_p05",
    "soc_gain_pg_c_p95",
    "implied_rate_t_c_per_ha_per_yr",
    "soc_gain_gt_co2",
    "soc_gain_lower_bound_pg_c",
    "soc_gain_upper_bound_pg_c",
    "soc_gain_share_of_4p1000_all_land_pct",
)


def _stream(raster_engine: RasterEngine, chosen: list, with_pasture: bool, factors, grids, zone_of, sizes) -> dict:
    """{scenario id: what its streaming passes give} of the `chosen` scenarios, which share the passes over the
    common grid (see `scenario_passes`)."""
    soc, error, converted, cropland, climate, country = grids
    grid = common_grid(soc, error, converted, cropland, climate, country)
    sources = {
        **grid_sources(soc, cropland, climate, country),
        "converted_land": converted.source("converted_land"),
        "soc_stock_error": error.source("soc_stock_error"),
    }
    plans, block = zonal.plan(sources, grid)
    land = scenario_passes.LandCells(zonal.ZonalTask(grid, sources, plans, None, zone_of, sizes), factors, with_pasture)
    rankings = tuple(
        scenario_passes.ScenarioRanking(
            scenario, sizes.get(scenario.scope_region_type) if scenario.scope == "within_region" else None
        )
        for scenario in chosen
    )
    window_list = engine.windows(grid, zonal.window_block(block, grid), raster_engine.window_cells)
    with raster_engine.executor() as executor:
        return scenario_passes.run(land, rankings, window_list, executor, raster_engine.threads, REGION_TYPES)


def scenario_key(scenario_id: str) -> dg.AssetKey:
    return dg.AssetKey([STORE_ASSET, scenario_id])


def _out(scenario_id: str) -> dg.AssetOut:
    return dg.AssetOut(
        key=scenario_key(scenario_id),
        io_manager_key="published_io_manager",
        group_name="scenarios",
        code_version="4",
        is_required=False,  # any subset of the scenarios runs (`can_subset`)
        description=f"Restoration scenario `{scenario_id}`: per region, converted and restored area (Mha), SOC gain "
        "at the horizon (Pg C, Gt CO2) of the IPCC set-aside central with its lower and upper bounds, the low "
        "and eventual-recovery cases, mean annual rate (Tg C/yr), implied rate (t C/ha/yr) and % of the all-land "
        "4p1000 target, with intervals; global sensitivity rows (attribution, grazing loss, IPCC edition); a map.",
    )


@dg.multi_asset(
    name="restoration_scenarios",
    outs={scenario_key(scenario_id).to_python_identifier(): _out(scenario_id) for scenario_id in scenario_ids()},
    check_specs=[
        spec for scenario_id in scenario_ids() for spec in contract_specs(STORE_ASSET, scenario_key(scenario_id))
    ],
    deps=["climate_zone_legend"],
    can_subset=True,
)
def restoration_scenarios(
    context: dg.AssetExecutionContext,
    config: MonteCarloConfig,
    raster_engine: RasterEngine,
    artifacts: ArtifactStore,
    soc_stock_grid: Layer,
    soc_stock_error_grid: Layer,
    converted_land_grid: Layer,
    cropland_grid: Layer,
    climate_zone_grid: Layer,
    country_grid: Layer,
    countries: pd.DataFrame,
    regional_soc_stocks: pd.DataFrame,
):
    """The selected scenarios, one asset each, from one set of streaming passes: each window's cells are read and
    derived once for all of them. A scenario that cannot run or breaks its contract fails the step after the
    others are published."""
    grids = (soc_stock_grid, soc_stock_error_grid, converted_land_grid, cropland_grid, climate_zone_grid, country_grid)
    selected = [key for key in scenario_ids() if scenario_key(key) in context.selected_asset_keys]
    zone_of, tables, sizes = zoner(countries, extent_name(soc_stock_grid))
    chosen, failures = _loaded(selected, sizes)
    with_pasture = "pasture" in converted_land_grid.alignment.get("components", {})
    factors = land_use_factors(climate_zone_names())
    streamed = _stream(raster_engine, chosen, with_pasture, factors, grids, zone_of, sizes) if chosen else {}
    shared = _Shared(
        config, raster_engine, artifacts, grids, countries, tables, regional_soc_stocks, with_pasture, factors
    )
    for scenario in chosen:
        try:
            yield from restoration_scenario(scenario, streamed[scenario.id], shared)
        except dg.Failure as failure:
            failures.append(failure)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise dg.Failure("\n".join(failure.description for failure in failures))


def _loaded(scenario_ids: list[str], region_types: dict) -> tuple[list[scenarios.Scenario], list[dg.Failure]]:
    """(the scenarios that can run, the failure of each that cannot: a file that cannot be used, a scope region
    type the regions do not have)."""
    chosen, failures = [], []
    for scenario_id in scenario_ids:
        try:
            with reported():
                scenario = load_scenario(scenario_id)
        except dg.Failure as failure:
            failures.append(failure)
            continue
        if scenario.scope == "within_region" and scenario.scope_region_type not in region_types:
            failures.append(
                dg.Failure(f"scenario {scenario.id}: scope_region_type must be one of {list(region_types)}")
            )
        else:
            chosen.append(scenario)
    return chosen, failures


def scenario_draws(config: MonteCarloConfig, scenario, factors) -> tuple[scenarios.Draws, dict]:
    """The Monte Carlo of one scenario: stock error z and residual debt factor (uncertainty.yaml), the set-aside
    recovered shares of every IPCC edition its curves use (land_use_loss.yaml), all seeded from `config`."""
    draws, _, mc_parameters = monte_carlo(config)
    editions = sorted({curve.factors for curve in scenario.curves().values() if curve.factors})
    shares = {edition: factors.recovered_shares(edition, config.n_draws, config.seed) for edition in editions}
    result = scenarios.Draws(
        stock_z=draws["soc_stock_error_z"],
        debt_residual=draws["soc_debt_residual_factor"],
        shares={edition: drawn for edition, (_, drawn) in shares.items()},
        central_shares={edition: middle for edition, (middle, _) in shares.items()},
        fallback_relative_sd=stock_error_fallback(),
    )
    central_shares = {
        edition: dict(zip((*factors.classes, "no class"), middle.tolist(), strict=True))
        for edition, (middle, _) in shares.items()
    }
    return result, {**mc_parameters, "set_aside_recovered_share_central": central_shares}


@dataclasses.dataclass(frozen=True, eq=False)
class _Shared:
    """What every scenario of a step reads: its configuration and resources, the grids (in `_stream`'s order), the
    regions and their zone tables, the regional stocks, and the land use conventions."""

    config: MonteCarloConfig
    raster_engine: RasterEngine
    artifacts: ArtifactStore
    grids: tuple[Layer, ...]
    countries: pd.DataFrame
    tables: dict[str, pd.DataFrame]  # the zone table of each region type (`zoner`)
    regional_soc_stocks: pd.DataFrame
    with_pasture: bool
    factors: scenarios.LandUseFactors


def restoration_scenario(scenario: scenarios.Scenario, streamed: tuple, shared: _Shared):
    """One scenario's regional table and sensitivity rows from what its passes `streamed`, checked against the
    restoration_scenario contract, then published."""
    config, raster_engine, artifacts = shared.config, shared.raster_engine, shared.artifacts
    countries, regional_soc_stocks = shared.countries, shared.regional_soc_stocks
    with_pasture, factors = shared.with_pasture, shared.factors
    soc_stock_grid, soc_stock_error_grid, converted_land_grid, _, climate_zone_grid, _ = shared.grids
    sums, (share_blocks, land_blocks), reports = streamed
    draws, mc_parameters = scenario_draws(config, scenario, factors)
    rate = factor("four_per_1000", "annual_rate")
    land = "cropland (HYDE 3.2) + pasture" if with_pasture else "cropland (HYDE 3.2; no pasture raster)"
    labels = scenarios.Labels(land, factors.grazing_label)
    tables = shared.tables

    def region_sums(variant, kind):
        prefix = f"{variant}/{kind}/"
        names = [key[len(prefix) :] for key in sums if key.startswith(prefix)]
        variant_sums = {k.split("/", 1)[1]: v for k, v in sums.items() if k.startswith(f"{variant}/")}
        return with_field_errors(sums_table(variant_sums, kind, tables[kind], names), regional_soc_stocks)

    others = {}
    if with_pasture:
        others["cropland only (HYDE 3.2)"] = region_sums(scenario_passes.CROPLAND_ONLY, "global")
    converted = scenario_passes.CONVERTED
    grazing = {f"grazing{j}": label for j, label in enumerate(factors.grazing_alternatives)}
    table = pd.concat(
        [
            *(
                scenarios.regional_scenario(region_sums(converted, kind), scenario, rate, draws, labels)
                for kind in REGION_TYPES
            ),
            scenarios.sensitivity_rows(
                region_sums(converted, "global"), scenario, rate, draws, labels, grazing, others
            ),
        ],
        ignore_index=True,
    )
    curves = scenario.curves().values()
    table.attrs["provenance"] = provenance.combine(
        soc_stock_grid.provenance,
        soc_stock_error_grid.provenance,
        converted_land_grid.provenance,
        climate_zone_grid.provenance,
        countries.attrs.get("provenance", {}),
        regional_soc_stocks.attrs.get("provenance", {}),
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
                    name: citation(name) for name in sorted({"four_per_1000"} | {curve.source for curve in curves})
                },
                "ipcc_editions": {
                    edition: edition_citation(edition) for edition in sorted({c.factors for c in curves if c.factors})
                },
                "grazing_loss_central": factors.grazing_label,
                **mc_parameters,
            }
        },
    )
    title = f"{scenario.id} (v{scenario.version}): restored share of each cell"
    label = "restored converted land / cell area"
    png = block_map_png(share_blocks, land_blocks, soc_stock_grid.grid, title, label)
    map_path, map_url = artifacts.write(f"restoration_scenario_map/{scenario.id}", png, ".png")
    thumbnail = thumbnail_png(png)
    full_size = f"[full size]({map_url})" if map_url else f"full size: `{map_path}`"
    metadata = {
        "restored_cells_map": dg.MetadataValue.md(
            f"{inline_markdown(thumbnail, f'restored cells of {scenario.id}')}\n\n{full_size}"
        ),
        "restored_cells_map_file": dg.MetadataValue.path(str(map_path)),
        **global_metadata(table, GLOBAL_METADATA_COLUMNS),
        **_case_metadata(table),
        "streaming_passes": dg.MetadataValue.json([r.metadata() for r in reports] + [raster_engine.describe()]),
    }
    key = scenario_key(scenario.id)
    yield from publish_if_valid(STORE_ASSET, table, metadata, key, output_name=key.to_python_identifier())


def _case_metadata(table: pd.DataFrame) -> dict[str, float]:
    """The World's gain (Pg C) and implied rate (t C/ha/yr) of each recovery case."""
    world = (table["region_type"] == "global") & table["estimate"].isin(scenarios.CASES)
    columns = ("estimate", "soc_gain_pg_c", "implied_rate_t_c_per_ha_per_yr")
    out = {}
    for estimate, gain, rate in zip(*(table.loc[world, name].to_list() for name in columns), strict=True):
        out[f"global_{estimate}_soc_gain_pg_c"] = float(gain)
        out[f"global_{estimate}_implied_rate_t_c_per_ha_per_yr"] = float(rate)
    return out
