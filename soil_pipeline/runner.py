"""The one way to run the pipeline in-process, for `soil-pipeline run`, the tests and the benchmarks: build the job,
execute it, commit a successful run (its outputs listed as the latest together) or mark a failed one, and return
what happened (`RunOutcome`, with each failed step's cause as typed fields when the step raised an `InputError`).

A job runs through `dg.execute_job` from a recipe of plain values (`runner_job`), which, unlike
`execute_in_process`, keeps no step's output in memory until the run ends. Runs from the UI or the daemon are
committed by the run status sensors instead (`run_commit.py`).
"""

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from soil_pipeline.definitions import build_definitions, main_job, scenario_job
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION, register_drops
from soil_pipeline.publishing.grids import StoredLayer, layer_from_geotiff
from soil_pipeline.publishing.maintenance import DEFAULT_KEEP_RUNS
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.redaction import has_secret
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.run_commit import commit_run

MAIN_JOB, SCENARIO_JOB = main_job.name, scenario_job.name
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# `soil-pipeline run` reports failures itself, one line per failed step naming the cause: no Dagster tracebacks;
# the `progress` logger prints one line per finished step.
PROGRESS_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}, "progress": {}}}


@dataclass(frozen=True)
class StepFailure:
    """Why a step failed: `cause` (the failure's description, else the innermost error's message) and, when the
    step raised an `InputError`, its fields from the failure's metadata (`failures.as_failure`)."""

    step: str
    cause: str
    file: str | None = None
    rule: str | None = None
    remedy: str | None = None
    line: int | None = None
    window: str | None = None
    details: tuple[str, ...] = ()

    @classmethod
    def of(cls, event: dg.DagsterEvent) -> "StepFailure":
        data = event.step_failure_data
        user = data.user_failure_data
        if user is None or not user.description:
            return cls(event.step_key, _root_cause(data.error))
        fields = {key: value.value for key, value in (user.metadata or {}).items()}
        details = tuple(fields.get("details", "").splitlines())
        known = {key: fields.get(key) for key in ("file", "rule", "remedy", "line", "window")}
        return cls(event.step_key, user.description.strip(), **known, details=details)


def _root_cause(error) -> str:
    """The innermost cause of a Dagster error (e.g. the OSError under DagsterExecutionHandleOutputError)."""
    while error.cause is not None:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[-1] if lines else error.cls_name


@dataclass(frozen=True)
class RunOutcome:
    """One run: the Dagster `result` (its events), the outputs its commit listed with their status ("new" or
    "unchanged"; none when the run failed) and the output root it ran on."""

    job_name: str
    result: dg.JobExecutionResult
    output_root: str
    committed: list[dict] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.result.success

    @property
    def run_id(self) -> str:
        return self.result.run_id

    def failures(self) -> list[StepFailure]:
        return [StepFailure.of(event) for event in self.result.all_events if event.is_step_failure]

    def layer(self, asset: str) -> StoredLayer:
        """The grid this run wrote for `asset` (an intermediate), read in place from the output root (a local one;
        from its bytes on an object store)."""
        _, location = VersionedParquetStore(self.output_root).intermediate_location(
            self.run_id, asset, None, self.run_id
        )
        return layer_from_geotiff(location)


def run_job(
    output_root: str | Path,
    job_name: str = MAIN_JOB,
    *,
    partition: str | None = None,
    inputs: InputDatasets | dict | None = None,
    raster_engine: RasterEngine | dict | None = None,
    instance: dg.DagsterInstance | None = None,
    run_config: dict | None = None,
    asset_selection: Sequence[str | dg.AssetKey] | None = None,
    keep_runs: int | None = DEFAULT_KEEP_RUNS,
    progress: bool = False,
) -> RunOutcome:
    """Run `job_name` (of `asset_selection` only, when given) on `output_root`, for the monthly drop `partition`,
    with the `inputs` and `raster_engine` settings (resources or their fields) on `instance` (default: the
    DAGSTER_HOME instance when one is set, so runs show in the UI, else an in-memory one). `run_config` adds to the
    log settings (e.g. an asset's config); `progress` prints one line per finished step on stderr.

    A successful run is committed (then, on a local root and unless `keep_runs` is None, `gc` keeps that many runs'
    intermediates and Data Docs); a failed one is marked failed and lists nothing."""
    output_root = str(output_root)
    recipe = (job_name, output_root, _held_secrets(_plain(inputs)), _held_secrets(_plain(raster_engine)))
    job = dg.build_reconstructable_job(__name__, runner_job.__name__, reconstructable_args=recipe)
    logs = PROGRESS_LOGS if progress else QUIET_LOGS
    selection = [dg.AssetKey.from_user_string(key) if isinstance(key, str) else key for key in asset_selection or []]
    with _instance(instance) as running:
        if partition:
            register_drops(running, [partition])
        # Not opened as a context manager: that would set up every resource again to load outputs, unused here.
        result = dg.execute_job(
            job,
            running,
            run_config={**logs, **(run_config or {})},
            tags={"dagster/partition": partition} if partition else None,
            asset_selection=selection or None,
        )
    if not result.success:
        VersionedParquetStore(output_root).mark_failed(result.run_id)
        return RunOutcome(job_name, result, output_root)
    return RunOutcome(job_name, result, output_root, commit_run(output_root, result.run_id, keep_runs))


def run_pipeline(
    output_root: str,
    partition: str | None = None,
    inputs: dict | None = None,
    raster_engine: dict | None = None,
    keep_runs: int | None = DEFAULT_KEEP_RUNS,
    progress: bool = True,
) -> list[RunOutcome]:
    """What `soil-pipeline run` runs: the main job for one drop (default: the embedded one), then the scenario job
    (every scenario); stops at the first failed run."""
    outcomes = []
    for job_name, key in ((MAIN_JOB, partition or EMBEDDED_DROP_PARTITION), (SCENARIO_JOB, None)):
        settings = {"inputs": inputs, "raster_engine": raster_engine, "keep_runs": keep_runs, "progress": progress}
        outcomes.append(run_job(output_root, job_name, partition=key, **settings))
        if not outcomes[-1].success:
            break
    return outcomes


def _plain(settings: dg.ConfigurableResource | dict | None) -> dict:
    """A resource's fields that were set, as plain values (what a job recipe holds)."""
    if settings is None or isinstance(settings, dict):
        return dict(settings or {})
    return settings.model_dump(exclude_unset=True)


# Settings holding a credential (a URL with a password or a signature), by placeholder: a job's recipe is stored
# with the run (Dagster run storage, shown in the UI), so it names the placeholder only; the value stays in the
# memory of the process that runs the job (the in-process executor rebuilds the job there).
HELD_PREFIX = "held-in-memory:"
_held: dict[str, str] = {}


def _held_secrets(settings: dict) -> dict:
    """`settings` with each value holding a credential replaced by a placeholder (`HELD_PREFIX`)."""
    out = {}
    for name, value in settings.items():
        if isinstance(value, str) and has_secret(value):
            key = f"{HELD_PREFIX}{name}:{hashlib.sha256(value.encode()).hexdigest()[:16]}"
            _held[key] = value
            value = key
        out[name] = value
    return out


def _revealed(settings: dict) -> dict:
    """The settings of a job recipe with their held values back; a clear error when this process does not hold
    them (a run of the runner rebuilt elsewhere, e.g. re-executed from the UI)."""
    out = {}
    for name, value in settings.items():
        if isinstance(value, str) and value.startswith(HELD_PREFIX):
            if value not in _held:
                raise RuntimeError(
                    f"setting {name} held a credential, kept in the memory of the process that started the run "
                    "only (never in run storage): start the run again from soil-pipeline run or run_job"
                )
            value = _held[value]
        out[name] = value
    return out


def _instance(instance: dg.DagsterInstance | None):
    """`instance` as it is, else (closed after the run) the DAGSTER_HOME instance when one is set, else an in-memory
    one."""
    if instance is not None:
        return contextlib.nullcontext(instance)
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def runner_job(job_name: str, output_root: str, inputs: dict, raster_engine: dict) -> dg.JobDefinition:
    """The job `run_job` executes, built from plain values: `dg.execute_job` rebuilds it from this recipe."""
    as_text = functools.partial(json.dumps, sort_keys=True, default=str)
    return _definitions(output_root, as_text(inputs), as_text(raster_engine)).resolve_job_def(job_name)


@functools.lru_cache(maxsize=2)
def _definitions(output_root: str, inputs: str, raster_engine: str) -> dg.Definitions:
    """The definitions of `runner_job`, built once per process for the same values (Dagster reconstructs the job
    several times per run)."""
    settings = InputDatasets(**_revealed(json.loads(inputs))), RasterEngine(**_revealed(json.loads(raster_engine)))
    return with_progress(build_definitions(output_root, *settings))


def with_progress(definitions: dg.Definitions) -> dg.Definitions:
    """The definitions with a `progress` logger beside the console one: one line on stderr per finished step."""

    class StepLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
            if event is not None and (event.is_step_success or event.is_step_failure or event.is_step_skipped):
                outcome = "done" if event.is_step_success else "FAILED" if event.is_step_failure else "skipped"
                print(f"[{record.dagster_meta['job_name']}] {outcome:7s} {event.step_key}", file=sys.stderr, flush=True)

    @dg.logger(description="One line per finished step, for `soil-pipeline run`.")
    def progress(_):
        logger = logging.getLogger("soil_pipeline.progress")
        logger.setLevel(logging.DEBUG)
        if not logger.handlers:
            logger.addHandler(StepLines())
        return logger

    loggers = {"console": dg.colored_console_logger, "progress": progress}
    return dg.Definitions.merge(definitions, dg.Definitions(loggers=loggers))
