"""Shared fixtures: one in-process run of the main job on the embedded data, reused by the end-to-end tests."""

from pathlib import Path

import dagster as dg
import pytest

from soil_pipeline.assets.scenarios import scenario_key
from soil_pipeline.cli import QUIET_LOGS
from soil_pipeline.definitions import build_definitions
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.reference_data import scenario_ids

FIXTURES = Path(__file__).parent / "fixtures"


def run_main_job(output_root: Path, partition: str = EMBEDDED_DROP_PARTITION, **definition_kwargs):
    job = build_definitions(str(output_root), **definition_kwargs).resolve_job_def("soil_pipeline_job")
    return job.execute_in_process(
        run_config=QUIET_LOGS, partition_key=partition, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def run_scenario_job(output_root: Path, scenario_id: str, **definition_kwargs):
    job = build_definitions(str(output_root), **definition_kwargs).resolve_job_def("restoration_scenarios_job")
    return job.execute_in_process(
        run_config=QUIET_LOGS,
        asset_selection=[scenario_key(scenario_id)],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory):
    """(result, output_root) of the main job on the embedded default data."""
    output_root = tmp_path_factory.mktemp("published")
    result = run_main_job(output_root)
    assert result.success
    return result, output_root


@pytest.fixture(scope="session")
def scenario_runs(embedded_run):
    """{scenario id: result} of the scenario job for every shipped scenario, after the main job, same output root."""
    _, output_root = embedded_run
    results = {key: run_scenario_job(output_root, key) for key in scenario_ids()}
    assert all(result.success for result in results.values())
    return results
