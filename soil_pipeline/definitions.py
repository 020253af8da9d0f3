"""The one place the Dagster Definitions are assembled: assets, jobs, schedules, sensors and resources.

The code location (`defs`) reads the configuration file named by the environment variable SOIL_PIPELINE_CONFIG
(the format of `soil-pipeline run --config`: inputs, output root, raster engine, the landing-folder sensor's settings)
when it loads, else the defaults.
"""

import os
import warnings
from pathlib import Path

import dagster as dg

from soil_pipeline import asset_conventions, refresh
from soil_pipeline.assets import (
    field_samples,
    field_validation,
    global_grids,
    potential,
    regional,
    regions,
    rothc,
    scenarios,
    sources,
)
from soil_pipeline.io_managers import build_io_managers
from soil_pipeline.publishing.maintenance import ARTIFACTS_DIR, DATA_DOCS_DIR
from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT, OutputRoot
from soil_pipeline.resources import DEFAULT_SITE_URL, ArtifactStore, InputDatasets, QualityReports, RasterEngine
from soil_pipeline.run_commit import Publication, commit_successful_runs, mark_failed_runs
from soil_pipeline.run_config import configured, load_run_config

CONFIG_ENV = "SOIL_PIPELINE_CONFIG"

all_assets = asset_conventions.apply(
    dg.load_assets_from_modules(
        [sources, field_samples, field_validation, global_grids, regions, regional, potential, rothc, scenarios]
    )
)

scenario_selection = dg.AssetSelection.groups("scenarios")
with warnings.catch_warnings():
    # The main job observes the raw inputs first (they are source assets): `include_sources` is the way Dagster 1.13
    # offers, marked beta; its notice is for Dagster's developers (the version is pinned in requirements.lock).
    warnings.simplefilter("ignore", dg.BetaWarning)
    with_sources = dg.AssetSelection.all(include_sources=True)

main_job = dg.define_asset_job(
    "soil_pipeline_job",
    selection=with_sources - scenario_selection,
    description="Observe the raw inputs, then every asset for one monthly field-sample drop, with the global grids, "
    "regional tables and potential.",
)

scenario_job = dg.define_asset_job(
    "restoration_scenarios_job",
    selection=scenario_selection,
    description="Every restoration scenario (one asset each) from the grids the main job materialized.",
)


def build_resources(
    output_root: OutputRoot | str = DEFAULT_OUTPUT_ROOT,
    inputs: InputDatasets | None = None,
    site_url: str | None = DEFAULT_SITE_URL,
    raster_engine: RasterEngine | None = None,
    refresh_settings: refresh.RefreshSettings | None = None,
) -> dict:
    """Resources on one output root (an `OutputRoot`, or what a user wrote: parsed here, once); `site_url` is where
    it is served over HTTP (the Data Docs links and full-size maps in the UI), None for no links."""
    root = OutputRoot.parse(output_root)
    return {
        "inputs": inputs or InputDatasets(),
        "raster_engine": raster_engine or RasterEngine(),
        "refresh": refresh_settings or refresh.RefreshSettings(),
        "quality_reports": QualityReports(
            base=root.child(DATA_DOCS_DIR).url, url=site_url and f"{site_url}/{DATA_DOCS_DIR}"
        ),
        "artifacts": ArtifactStore(root=root.child(ARTIFACTS_DIR).url, url=site_url and f"{site_url}/{ARTIFACTS_DIR}"),
        "publication": Publication(output_root=root.url),
        **build_io_managers(root),
    }


def build_definitions(
    output_root: OutputRoot | str = DEFAULT_OUTPUT_ROOT,
    inputs: InputDatasets | None = None,
    raster_engine: RasterEngine | None = None,
    refresh_settings: refresh.RefreshSettings | None = None,
    docs_url: str | None = DEFAULT_SITE_URL,
) -> dg.Definitions:
    """The definitions on one output root; `docs_url` is where that root is served over HTTP for the Data Docs links
    of the UI (default `soil-pipeline docs` on this machine; a shared deployment sets its own, e.g. a web server
    on the output root), None for no links."""
    refresh_settings = refresh_settings or refresh.RefreshSettings()
    field_drops_sensor = refresh.new_field_drops_sensor(refresh_settings.interval_seconds)
    return dg.Definitions(
        assets=all_assets,
        jobs=[main_job, scenario_job],
        schedules=[refresh.monthly_refresh],
        sensors=[field_drops_sensor, refresh.raw_inputs, commit_successful_runs, mark_failed_runs],
        # One process per run: the multiprocess default spends ~10 s importing per step on 2 cores.
        executor=dg.in_process_executor,
        resources=build_resources(output_root, inputs, docs_url, raster_engine, refresh_settings),
    )


def definitions_from_config(path: str | Path) -> dg.Definitions:
    """The definitions on the inputs, output root and raster engine of a configuration file (its `partition`, if
    any, is for `soil-pipeline run`: in the UI the partition is picked at launch)."""
    fields = (InputDatasets.model_fields, RasterEngine.model_fields, refresh.RefreshSettings.model_fields)
    config = load_run_config(path, *map(set, fields))
    return build_definitions(
        config["output_root"] or DEFAULT_OUTPUT_ROOT,
        configured(InputDatasets, config["inputs"], path, "inputs"),
        configured(RasterEngine, config["raster_engine"], path, "raster_engine"),
        configured(refresh.RefreshSettings, config["refresh"], path, "refresh"),
        config["docs_url"] or DEFAULT_SITE_URL,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location: from the file SOIL_PIPELINE_CONFIG names, else on the embedded data and default root."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return build_definitions()
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such configuration file (named by {CONFIG_ENV})")
    return definitions_from_config(path)
