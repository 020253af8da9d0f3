"""Run-level publishing in Dagster terms: a run's outputs become the latest together, once the run has succeeded.

During a run the IO managers only *stage* (see `io_managers.py`); the commit lists them all in one atomic catalog
write. Who commits, whatever the job or the selection (a whole job, "Materialize all", a subset picked in the UI):

- runs launched from the UI, a schedule or a sensor (the daemon is running): the `commit_successful_runs` run
  status sensor, on every successful run of this code location; `mark_failed_runs` records failed ones for `gc`;
- `soil-pipeline run`, the tests and the benchmarks: `runner.run_job`, right after each successful in-process run;
- `dg.materialize` / `execute_in_process` in a notebook: call `commit_run(output_root, result.run_id)`.

Committing is idempotent, so a run both the CLI and the sensor see is listed once. After each commit, `gc` keeps
the latest `keep_runs` runs' Data Docs and intermediates (the retention setting) and removes failed runs' leftovers.
"""

import dagster as dg

from soil_pipeline.publishing.maintenance import DEFAULT_GRACE_HOURS, DEFAULT_KEEP_RUNS, gc
from soil_pipeline.publishing.root import OutputRoot
from soil_pipeline.publishing.store import VersionedParquetStore


def commit_run(
    output_root: OutputRoot | str,
    run_id: str,
    keep_runs: int | None = DEFAULT_KEEP_RUNS,
    ancestors: tuple[str, ...] = (),
) -> list[dict]:
    """Commit `run_id`'s staged outputs (with its `ancestors`' for a re-execution); then, on a local root and unless
    `keep_runs` is None, run `gc`."""
    store = VersionedParquetStore(output_root)
    outcome = store.commit_run(run_id, ancestors)
    if keep_runs is not None and store.output_root.is_local:
        gc(store, keep_runs=keep_runs, grace_hours=DEFAULT_GRACE_HOURS)
    return outcome


class Publication(dg.ConfigurableResource):
    """Where runs are committed, and how many runs' Data Docs and intermediates to keep (None: keep all)."""

    output_root: str
    keep_runs: int | None = DEFAULT_KEEP_RUNS

    def commit(self, run_id: str, ancestors: tuple[str, ...] = ()) -> list[dict]:
        return commit_run(self.output_root, run_id, self.keep_runs, ancestors)

    def mark_failed(self, run_id: str) -> None:
        VersionedParquetStore(self.output_root).mark_failed(run_id)


def _ancestors(context: dg.RunStatusSensorContext) -> tuple[str, ...]:
    """The runs a re-execution ("from failure" in the UI) continues, oldest first: their staged outputs count."""
    ancestors, run = [], context.dagster_run
    while run is not None and run.parent_run_id:
        ancestors.insert(0, run.parent_run_id)
        run = context.instance.get_run_by_id(run.parent_run_id)
    return tuple(ancestors)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lists what a successful run staged as the latest versions, in one catalog commit.",
)
def commit_successful_runs(context: dg.RunStatusSensorContext, publication: Publication):
    outcome = publication.commit(context.dagster_run.run_id, _ancestors(context))
    context.log.info(f"committed run {context.dagster_run.run_id}: {len(outcome)} outputs")


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a failed run so that gc removes the versions it staged (they were never listed).",
)
def mark_failed_runs(context: dg.RunFailureSensorContext, publication: Publication):
    publication.mark_failed(context.dagster_run.run_id)
