"""Shared fixtures: one run of the main job on the embedded data (through `soil_pipeline.runner`, as
`soil-pipeline run` does), reused by the end-to-end tests.

That run is recorded in PostgreSQL through `deploy/dagster.yaml` when the `DAGSTER_PG_*` variables name a reachable
server (always in CI, where `.ci/run` starts one), else in an ephemeral instance.
"""

import inspect
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from soil_pipeline.assets.scenarios import scenario_key
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.reference_data import scenario_ids
from soil_pipeline.run_commit import Publication
from soil_pipeline.runner import MAIN_JOB, SCENARIO_JOB, RunOutcome, run_job

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ENV = ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT")


def commit_sensor_context(instance, result, output_root) -> dg.RunStatusSensorContext:
    """What the daemon hands `commit_successful_runs` when the run of `result` has succeeded."""
    return dg.build_run_status_sensor_context(
        sensor_name="commit_successful_runs",
        dagster_event=result.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"publication": Publication(output_root=str(output_root))},
    )


def run_main_job(output_root, partition: str = EMBEDDED_DROP_PARTITION, instance=None, inputs=None) -> RunOutcome:
    return run_job(output_root, MAIN_JOB, partition=partition, instance=instance, inputs=inputs)


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


def pytest_configure(config):
    _database_of_this_worker()


def _database_of_this_worker() -> None:
    """Under pytest-xdist each worker process records its runs in a PostgreSQL database of its own, DAGSTER_PG_DB
    suffixed with the worker's name and created empty here: the workers' shared pipeline runs, and the tests that
    read back "the latest materialization", never meet (and Dagster never creates its tables twice at once)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or postgres_connection() is None:
        return
    name = f"{os.environ['DAGSTER_PG_DB']}_{worker}"
    new_database(name)
    os.environ["DAGSTER_PG_DB"] = name


def new_database(name: str) -> None:
    """An empty PostgreSQL database `name` (any earlier one of that name dropped), owned by the DAGSTER_PG_* role."""
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(*statements: str) -> None:
    connection = postgres_connection()
    connection.autocommit = True  # CREATE and DROP DATABASE run outside a transaction
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


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


def run_scenario_job(output_root, scenario_id: str, inputs=None) -> RunOutcome:
    return run_job(output_root, SCENARIO_JOB, inputs=inputs, asset_selection=[scenario_key(scenario_id)])


@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory, pipeline_instance):
    """(RunOutcome, output_root) of the main job on the embedded default data."""
    output_root = tmp_path_factory.mktemp("published")
    outcome = run_main_job(output_root, instance=pipeline_instance)
    assert outcome.success, outcome.failures()
    return outcome, output_root


@pytest.fixture(scope="session")
def scenario_runs(embedded_run):
    """{scenario id: RunOutcome} of the scenario job for every shipped scenario, after the main job, same root."""
    _, output_root = embedded_run
    outcomes = {key: run_scenario_job(output_root, key) for key in scenario_ids()}
    assert all(outcome.success for outcome in outcomes.values())
    return outcomes


# End-to-end tests: those that run the pipeline through Dagster (in-process or in processes of their own), start
# servers (the UI, the daemon, PostgreSQL, an S3 server) or wait on processes; `pytest -m "not e2e"` runs the rest,
# the focused tests of the science core, the engine, the contracts and the store, in a minute or two.
E2E_FIXTURES = {
    "embedded_run",
    "scenario_runs",
    "pipeline_instance",
    "published_root",
    "copied_root",
    "ui",
    "deployment",
}
E2E_CALLS = ("run_job(", "run_pipeline(", "subprocess.", "execute_in_process(", "dg.materialize(", 'main(["run"')
# Modules whose every test is end to end (through helpers the heuristics above do not see).
E2E_MODULES = {
    "test_pipeline",
    "test_run_processes",
    "test_kill_and_reexecute",
    "test_publishing_pipeline",
    "test_potential_scenarios_pipeline",
    "test_browser",
    "test_production",
    "test_postgres_storage",
    "test_dask_cluster",
    "test_store_s3",
    "test_engine_stress",
    "test_store_processes",
    "test_field_validation_pipeline",
}


# The slowest modules, slowest first (wall seconds of a CI run on 2 cores, each with its waits on servers and
# daemons). They run first, each file whole on the first free worker (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml), so the longest start at once on different workers and the many short files fill in after them,
# leaving no long file alone at the end; the other modules follow in their usual order.
SLOWEST_FIRST = (
    "test_browser",  # `dagster dev`, a backfill of two drops in multiprocess runs: ~200 s
    "test_production",  # the webserver and daemon on PostgreSQL, a run launched by the sensor: ~90 s
    "test_run_processes",  # two whole runs at once, a run killed mid-way: ~110 s
    "test_field_validation_pipeline",  # three drops run one after the other: ~80 s
    "test_bad_inputs",
    "test_kill_and_reexecute",
    "test_publishing_pipeline",
    "test_pipeline",
    "test_raster_engine",
    "test_potential_scenarios_pipeline",
    "test_bad_inputs_tables",
    "test_contracts",
)


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1] if item.module else ""


def _slowest_first(item) -> int:
    module = _module(item)
    return SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)


def pytest_collection_modifyitems(items):
    items.sort(key=_slowest_first)  # stable: each module's tests stay together and in order
    for item in items:
        source = getattr(item.function, "__code__", None)
        text = inspect.getsource(item.function) if source else ""
        module = _module(item)
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in E2E_MODULES or E2E_FIXTURES & fixtures or any(call in text for call in E2E_CALLS):
            item.add_marker(pytest.mark.e2e)
