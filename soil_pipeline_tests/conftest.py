"""Shared fixtures: one in-process run of the main job on the embedded data, reused by the end-to-end tests.

That run is recorded in PostgreSQL through `deploy/dagster.yaml` when the `DAGSTER_PG_*` variables name a reachable
server (always in CI, where `.ci/run` starts one), else in an ephemeral instance.
"""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from soil_pipeline.assets.scenarios import scenario_key
from soil_pipeline.cli import QUIET_LOGS
from soil_pipeline.definitions import build_definitions
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.reference_data import scenario_ids
from soil_pipeline.run_commit import Publication, commit_run

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ENV = ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT")


def run_job(job_name: str, output_root, partition: str | None = None, instance=None, inputs=None, **execute_kwargs):
    """Run a job in-process and, when it succeeds, commit its outputs as `soil-pipeline run` does."""
    job = build_definitions(str(output_root), inputs).resolve_job_def(job_name)
    result = job.execute_in_process(
        run_config=QUIET_LOGS,
        partition_key=partition,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **execute_kwargs,
    )
    if result.success:
        commit_run(str(output_root), result.run_id)
    return result


def commit_sensor_context(instance, result, output_root) -> dg.RunStatusSensorContext:
    """What the daemon hands `commit_successful_runs` when the run of `result` has succeeded."""
    return dg.build_run_status_sensor_context(
        sensor_name="commit_successful_runs",
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"publication": Publication(output_root=str(output_root))},
    )


def run_main_job(output_root, partition: str = EMBEDDED_DROP_PARTITION, instance=None, inputs=None):
    return run_job("soil_pipeline_job", output_root, partition, instance, inputs)


def postgres_connection(database: str | None = None):
    """A psycopg2 connection from the DAGSTER_PG_* variables (to `database` instead of DAGSTER_PG_DB when given),
    or None when they are unset or nothing answers."""
    import psycopg2

    if not all(os.environ.get(name) for name in POSTGRES_ENV):
        return None
    try:
        return psycopg2.connect(
            user=os.environ["DAGSTER_PG_USERNAME"],
            password=os.environ["DAGSTER_PG_PASSWORD"],
            host=os.environ["DAGSTER_PG_HOST"],
            port=int(os.environ["DAGSTER_PG_PORT"]),
            dbname=database or os.environ["DAGSTER_PG_DB"],
            connect_timeout=3,
        )
    except psycopg2.OperationalError:
        return None


@pytest.fixture(scope="session")
def postgres_home(tmp_path_factory):
    """A DAGSTER_HOME holding deploy/dagster.yaml when PostgreSQL is reachable, else None (an error in CI)."""
    connection = postgres_connection()
    if connection is None:
        assert os.environ.get("CI") != "true", "CI must reach PostgreSQL through the DAGSTER_PG_* variables"
        return None
    connection.close()
    home = tmp_path_factory.mktemp("dagster_home_postgres")
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture(scope="session")
def pipeline_instance(postgres_home):
    if postgres_home is None:
        yield dg.DagsterInstance.ephemeral()
        return
    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        yield instance


def run_scenario_job(output_root, scenario_id: str, inputs=None):
    return run_job("restoration_scenarios_job", output_root, inputs=inputs, asset_selection=[scenario_key(scenario_id)])


@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory, pipeline_instance):
    """(result, output_root) of the main job on the embedded default data."""
    output_root = tmp_path_factory.mktemp("published")
    result = run_main_job(output_root, instance=pipeline_instance)
    assert result.success
    return result, output_root


@pytest.fixture(scope="session")
def scenario_runs(embedded_run):
    """{scenario id: result} of the scenario job for every shipped scenario, after the main job, same output root."""
    _, output_root = embedded_run
    results = {key: run_scenario_job(output_root, key) for key in scenario_ids()}
    assert all(result.success for result in results.values())
    return results
