"""The one place the Dagster Definitions are assembled: assets, jobs, schedules and resources."""

import dagster as dg

from soil_pipeline.assets import field_samples, global_grids, regional, regions
from soil_pipeline.io_managers import build_io_managers
from soil_pipeline.resources import InputDatasets, QualityReports

DEFAULT_OUTPUT_ROOT = "soil_pipeline_output"
DATA_DOCS_DIR = "_data_docs"

all_assets = dg.load_assets_from_modules([field_samples, global_grids, regions, regional])

main_job = dg.define_asset_job(
    "soil_pipeline_job",
    selection=dg.AssetSelection.all(),
    description="Every asset for one monthly field-sample drop, with the global grids and regional tables.",
)

monthly_refresh_schedule = dg.build_schedule_from_partitioned_job(
    main_job,
    name="monthly_refresh",
    description="At the start of each month, ingest the previous month's drop and refresh everything downstream.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


def build_resources(output_root: str = DEFAULT_OUTPUT_ROOT, inputs: InputDatasets | None = None) -> dict:
    return {
        "inputs": inputs or InputDatasets(),
        "quality_reports": QualityReports(base_dir=f"{output_root}/{DATA_DOCS_DIR}"),
        **build_io_managers(output_root),
    }


def build_definitions(output_root: str = DEFAULT_OUTPUT_ROOT, inputs: InputDatasets | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=all_assets,
        jobs=[main_job],
        schedules=[monthly_refresh_schedule],
        resources=build_resources(output_root, inputs),
    )


defs = build_definitions()
