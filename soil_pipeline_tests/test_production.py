"""The production deployment of deploy/ as a data engineer starts it: `dagster-webserver` and `dagster-daemon run` on
deploy/workspace.yaml, the instance of deploy/dagster.yaml in PostgreSQL, the configuration named by
SOIL_PIPELINE_CONFIG. The sensor is turned on through the webserver; a new month dropped into the landing folder
becomes a run that the daemon queues and launches, recorded in PostgreSQL, whose outputs the commit sensor lists
in the output root's catalog."""

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline_tests.conftest import REPO_ROOT, drop_database, new_database, postgres_connection
from soil_pipeline_tests.servers import free_port, graphql, start, stop, wait_for_assets, wait_until

DEPLOY = REPO_ROOT / "deploy"
EMBEDDED_DROP = DATA_DIR / "landing" / "field_samples" / "2012-10"
NEW_MONTH = "2012-11"
SENSOR = {
    "repositoryLocationName": "soil_pipeline",
    "repositoryName": "__repository__",
    "sensorName": "new_field_drops",
}
START_SENSOR = (
    "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename "
    "... on Sensor { sensorState { status } } ... on PythonError { message } } }"
)
TICKS = (
    "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { sensorState { "
    "ticks(limit: 10) { status } } } } }"
)
SENSOR_RUNS = (
    "SELECT r.run_id, r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
    "WHERE t.key = 'dagster/sensor_name' AND t.value = 'new_field_drops' AND r.run_id IN "
    "(SELECT run_id FROM run_tags WHERE key = 'dagster/partition' AND value = %s)"
)
STARTUP_SECONDS, RUN_SECONDS = 240, 600


def _ended_ticks(port: int) -> list[dict]:
    """The sensor's ticks that have ended: a tick is listed as STARTED while it evaluates, and a drop copied then
    would be seen by the first tick (which, with first_tick: none, runs nothing)."""
    ticks = graphql(port, TICKS, {"s": SENSOR})["sensorOrError"]["sensorState"]["ticks"]
    return [tick for tick in ticks if tick["status"] != "STARTED"]


@pytest.fixture
def empty_database(postgres_home):
    """The name of a new, empty PostgreSQL database (dropped afterwards): the deployment starts from nothing, as a
    new one does, with no sensor state or runs of other tests."""
    if postgres_home is None:
        pytest.skip("no PostgreSQL reachable through the DAGSTER_PG_* variables (not in CI)")
    name = f"soil_pipeline_deploy_{uuid.uuid4().hex[:12]}"
    new_database(name)
    try:
        yield name
    finally:
        drop_database(name)


@pytest.fixture
def deployment(tmp_path, empty_database):
    """(webserver port, landing folder, output root, database) of a deployment started from deploy/ on a fresh
    folder and an empty database."""
    home, landing, output = tmp_path / "dagster_home", tmp_path / "landing", tmp_path / "output"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2012-10")
    config = tmp_path / "soil_pipeline.yaml"
    # the drop already there is left alone on the first tick: only what lands later starts a run; the sensor looks
    # every 5 s instead of every minute (the default), so that the test need not wait a minute for it
    refresh = "refresh:\n  first_tick: none\n  settle_seconds: 5\n  interval_seconds: 5\n"
    config.write_text(f"output_root: {output}\ninputs:\n  landing_dir: {landing}\n{refresh}")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SOIL_PIPELINE_CONFIG": str(config),
        "DAGSTER_PG_DB": empty_database,
    }
    bin_dir, port = Path(sys.executable).parent, free_port()
    workspace = str(DEPLOY / "workspace.yaml")
    webserver = start(
        [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
        tmp_path,
        env,
        tmp_path / "webserver.log",
    )
    daemon = start([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], tmp_path, env, tmp_path / "daemon.log")
    try:
        if not wait_for_assets(port, webserver, STARTUP_SECONDS):
            pytest.fail(f"dagster-webserver did not start:\n{(tmp_path / 'webserver.log').read_text()[-3000:]}")
        yield port, landing, output, empty_database
    finally:
        stop(daemon, webserver)


def test_a_new_drop_is_run_by_the_sensor_recorded_in_postgres_and_listed_in_the_catalog(deployment, tmp_path):
    port, landing, output, database = deployment
    started = graphql(port, START_SENSOR, {"s": SENSOR})["startSensor"]
    assert started["__typename"] == "Sensor", started
    wait_until("the sensor's first tick to end", STARTUP_SECONDS, lambda: _ended_ticks(port))

    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / NEW_MONTH)
    connection = postgres_connection(database)

    def sensor_run():
        with connection.cursor() as cursor:
            cursor.execute(SENSOR_RUNS, (NEW_MONTH,))
            rows = cursor.fetchall()
        connection.commit()
        return rows if rows and rows[0][1] in ("SUCCESS", "FAILURE", "CANCELED") else None

    try:
        [(run_id, status)] = wait_until(f"the sensor's run for {NEW_MONTH}", RUN_SECONDS, sensor_run)
    finally:
        connection.close()
    assert status == "SUCCESS", (tmp_path / "daemon.log").read_text()[-3000:]

    store = VersionedParquetStore(str(output))
    listed = wait_until("the commit sensor", STARTUP_SECONDS, lambda: store.latest_by_partition("field_sites"))
    assert set(listed) == {NEW_MONTH}  # the drop there before the sensor started was not run (first_tick: none)
    assert store.manifest("field_sites", listed[NEW_MONTH])["run"]["dagster_run_id"] == run_id
    assert store.read("regional_soc_stocks") is not None
