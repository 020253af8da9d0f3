"""Runs launched from the UI or the daemon are committed by a run status sensor, whatever assets they selected."""

import dagster as dg
import pandas as pd

from soil_pipeline.assets import regions
from soil_pipeline.definitions import build_definitions, build_resources
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.run_commit import commit_successful_runs
from soil_pipeline.runner import QUIET_LOGS
from soil_pipeline_tests.conftest import commit_sensor_context


def test_the_sensor_commits_a_successful_subset_run_and_nothing_is_listed_before(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [regions.countries], resources=build_resources(str(tmp_path)), run_config=QUIET_LOGS, instance=instance
    )
    assert result.success
    store = VersionedParquetStore(tmp_path)
    assert store.catalog() == []

    context = commit_sensor_context(instance, result, tmp_path)
    commit_successful_runs(context)
    [row] = store.catalog()
    assert (row["asset"], row["latest"]) == ("countries", True)
    assert [run["run_id"] for run in store.document()["runs"]] == [result.run_id]
    commit_successful_runs(context)
    assert len(store.document()["runs"]) == 1


def test_the_commit_sensors_are_registered_and_running_by_default():
    definitions = build_definitions()
    for name in ("commit_successful_runs", "mark_failed_runs"):
        sensor = definitions.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_re_execution_commits_what_its_failed_parent_staged_and_it_did_not_redo(tmp_path):
    store = VersionedParquetStore(tmp_path)
    frame = pd.DataFrame({"site_id": ["a"], "value": [1.0]})
    sites = store.stage("parent", "sites", frame, {"inputs": {}, "parameters": {}})
    store.stage("parent", "stocks", frame, {"inputs": {}, "parameters": {"try": 1}})
    store.mark_failed("parent")
    stocks = store.stage("child", "stocks", frame, {"inputs": {}, "parameters": {"try": 2}})
    store.commit_run("child", ancestors=("parent",))
    assert {row["asset"]: row["version"] for row in store.catalog()} == {
        "sites": sites.version,
        "stocks": stocks.version,
    }
