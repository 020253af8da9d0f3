"""The one place the Dagster Definitions are assembled: assets, jobs, schedules, sensors and resources."""

import dagster as dg

from soil_pipeline.assets import field_samples, global_grids, potential, regional, regions, rothc, scenarios, sources
from soil_pipeline.io_managers import build_io_managers
from soil_pipeline.publishing.maintenance import ARTIFACTS_DIR, DATA_DOCS_DIR
from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT, normalise_root
from soil_pipeline.resources import ArtifactStore, InputDatasets, QualityReports, RasterEngine
from soil_pipeline.run_commit import Publication, commit_successful_runs, mark_failed_runs

all_assets = dg.load_assets_from_modules(
    [sources, field_samples, global_grids, regions, regional, potential, rothc, scenarios]
)

# A job runs one partitions definition, so the scenario-partitioned asset has its own job.
scenario_selection = dg.AssetSelection.assets(scenarios.restoration_scenario)

main_job = dg.define_asset_job(
    "soil_pipeline_job",
    selection=dg.AssetSelection.all(include_sources=True) - scenario_selection,
    description="Observe the raw inputs, then every asset for one monthly field-sample drop, with the global grids, "
    "regional tables and potential.",
)

scenario_job = dg.define_asset_job(
    "restoration_scenarios_job",
    selection=scenario_selection,
    description="One restoration scenario (partition = scenario id) from the grids the main job materialized.",
)

monthly_refresh_schedule = dg.build_schedule_from_partitioned_job(
    main_job,
    name="monthly_refresh",
    description="At the start of each month, ingest the previous month's drop and refresh everything downstream.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


def build_resources(
    output_root: str = DEFAULT_OUTPUT_ROOT,
    inputs: InputDatasets | None = None,
    raster_engine: RasterEngine | None = None,
) -> dict:
    output_root = normalise_root(output_root)
    return {
        "inputs": inputs or InputDatasets(),
        "raster_engine": raster_engine or RasterEngine(),
        "quality_reports": QualityReports(base=f"{output_root}/{DATA_DOCS_DIR}"),
        "artifacts": ArtifactStore(root=f"{output_root}/{ARTIFACTS_DIR}"),
        "publication": Publication(output_root=output_root),
        **build_io_managers(output_root),
    }


def build_definitions(
    output_root: str = DEFAULT_OUTPUT_ROOT,
    inputs: InputDatasets | None = None,
    raster_engine: RasterEngine | None = None,
) -> dg.Definitions:
    return dg.Definitions(
        assets=all_assets,
        jobs=[main_job, scenario_job],
        schedules=[monthly_refresh_schedule],
        sensors=[commit_successful_runs, mark_failed_runs],
        resources=build_resources(output_root, inputs, raster_engine),
    )


defs = build_definitions()
