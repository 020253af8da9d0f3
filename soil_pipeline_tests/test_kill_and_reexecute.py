"""A run killed with SIGKILL mid-way is re-executed from failure and completes; what it had staged is neither lost
nor duplicated: once the commit sensor has seen the re-execution succeed (its parent's staged outputs count), the
catalog ends exactly as the uninterrupted shared run of the main job left it, and nothing was listed before."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from soil_pipeline.definitions import build_definitions
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.run_commit import commit_successful_runs
from soil_pipeline.runner import QUIET_LOGS
from soil_pipeline_tests.conftest import commit_sensor_context

OUTPUT_ROOT_ENV = "SOIL_PIPELINE_TEST_OUTPUT_ROOT"
STEPS_BEFORE_KILL = 3
# The main job as `soil-pipeline run` runs it, on the DAGSTER_HOME instance.
RUN_SCRIPT = """
import sys
from soil_pipeline.runner import run_job

run_job(sys.argv[1], partition=sys.argv[2])
"""


def main_job() -> dg.JobDefinition:
    """The main job on the output root under test (module level, so Dagster can reconstruct it)."""
    return build_definitions(os.environ[OUTPUT_ROOT_ENV]).resolve_job_def("soil_pipeline_job")


def _succeeded_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    return {record.event_log_entry.step_key for record in records}


def _latest(root: Path) -> set[tuple]:
    return {(row["asset"], row["partition"], row["version"]) for row in VersionedParquetStore(root).catalog()}


@pytest.fixture
def killed_run(tmp_path, monkeypatch):
    """(instance, run id, output root) of a main-job run killed with SIGKILL after a few steps had succeeded."""
    home, root = tmp_path / "home", tmp_path / "published"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(root))
    process = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(root), EMBEDDED_DROP_PARTITION], env=os.environ)
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            runs = instance.get_run_records()
            if runs and len(_succeeded_steps(instance, runs[0].dagster_run.run_id)) >= STEPS_BEFORE_KILL:
                break
            time.sleep(0.5)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        run = instance.get_run_records()[0].dagster_run
        assert run.status == dg.DagsterRunStatus.STARTED
        # What Dagster's run monitoring does for a run whose process died: mark it failed.
        instance.report_run_failed(run, "run worker killed with SIGKILL")
        yield instance, run.run_id, root


def test_a_killed_run_reexecuted_from_failure_completes_without_loss_or_duplicates(killed_run, embedded_run):
    instance, run_id, root = killed_run
    done_before = _succeeded_steps(instance, run_id)
    options = dg.ReexecutionOptions.from_failure(run_id, instance)
    # The parent's tags carry its partition, as when re-executing from the UI.
    tags = instance.get_run_by_id(run_id).tags
    job = dg.reconstructable(main_job)
    with dg.execute_job(job, instance, run_config=QUIET_LOGS, tags=tags, reexecution_options=options) as result:
        assert result.success
        rerun = set(_succeeded_steps(instance, result.run_id))
        assert _latest(root) == set(), "a killed or uncommitted run listed something"
        commit_successful_runs(commit_sensor_context(instance, result, root))
    assert done_before and not done_before & rerun, "steps that had succeeded were run again"
    # what the shared main-job run listed (later tests may add the scenario job's tables to its root)
    outcome, _ = embedded_run
    assert _latest(root) == {(row["asset"], row["partition"], row["version"]) for row in outcome.committed}
