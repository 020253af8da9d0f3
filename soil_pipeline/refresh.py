"""The monthly refresh: a schedule for the previous month's drop and a sensor on the landing folder; and the raw
inputs kept current in the UI (a sensor registering each drop folder as a partition, see `partitions.py`, and
recording the data version of every raw input when it changes).

Neither launches a run for a month without a drop folder: the schedule skips with a reason naming the folder,
the sensor only sees folders that exist. The sensor launches one run per new or changed drop; its cursor holds the
data version (sha256 over the drop's table files) of every drop it has seen. On its first tick (no cursor yet) the
drops already in the landing folder are treated as `RefreshSettings.first_tick` says. A drop folder still being
written (a file changed within `RefreshSettings.settle_seconds`) waits for a later tick. The daemon evaluates it every
`RefreshSettings.interval_seconds` (a sensor's interval is part of its definition: `new_field_drops_sensor` builds it
from the configuration when the code location loads).
"""

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from soil_pipeline.assets.sources import (
    DATA_VERSION_TAG,
    drop_keys,
    drop_stamp,
    drop_version,
    file_stamp,
    file_version,
    raw_input_files,
)
from soil_pipeline.partitions import field_drops, register_drops
from soil_pipeline.resources import InputDatasets

MAIN_JOB = "soil_pipeline_job"
DROP_TAG = "soil_pipeline/drop_version"
# The asset whose materialized partitions tell which drops were already ingested.
INGESTED = dg.AssetKey("field_sites")


class RefreshSettings(dg.ConfigurableResource):
    """What the landing-folder sensor does with the drops already there when it is first turned on, how long it lets
    a drop folder settle before reading it, and how often it looks."""

    first_tick: Literal["unmaterialized", "all", "none"] = Field(
        default="unmaterialized",
        description='"unmaterialized" (default): a run for each drop whose field tables this Dagster instance has '
        'never materialized; "all": a run for every drop; "none": no run, the drops are only remembered, so that '
        "only drops added or changed later start runs.",
    )
    settle_seconds: int = Field(
        default=60,
        ge=0,
        description="A drop folder with a file written (or copied in) less than this many seconds ago is still "
        "arriving: the sensor leaves it to a later tick instead of running on half a drop.",
    )
    interval_seconds: int = Field(
        default=60,
        ge=1,
        description="The least time between two ticks of the sensor: a new drop waits up to this long (after it "
        "has settled) for its run. Read when the code location loads (a sensor's interval is part of its definition).",
    )


def previous_month(when: datetime) -> str:
    return (when.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


@dg.schedule(
    name="monthly_refresh",
    job_name=MAIN_JOB,
    cron_schedule="0 0 1 * *",
    execution_timezone="UTC",
    description="At the start of each month, ingest the previous month's drop and refresh everything downstream; "
    "skipped when that month has no drop folder.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def monthly_refresh(context: dg.ScheduleEvaluationContext, inputs: InputDatasets):
    month = previous_month(context.scheduled_execution_time)
    folder = inputs.drop_dir(month)
    if not folder.is_dir():
        return dg.SkipReason(f"no field-sample drop for {month}: folder {folder} does not exist")
    version = drop_version(folder)
    register_drops(context.instance, [month])
    return dg.RunRequest(partition_key=month, run_key=f"{month}:{version}", tags={DROP_TAG: version})


def new_field_drops_sensor(interval_seconds: int) -> dg.SensorDefinition:
    """The landing-folder sensor, evaluated every `interval_seconds` (`RefreshSettings.interval_seconds`)."""

    @dg.sensor(
        name="new_field_drops",
        job_name=MAIN_JOB,
        minimum_interval_seconds=interval_seconds,
        description="One run of the main job per new or changed drop folder under <landing>/field_samples/.",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def new_field_drops(context: dg.SensorEvaluationContext, inputs: InputDatasets, refresh: RefreshSettings):
        return _new_or_changed_drops(context, inputs, refresh)

    return new_field_drops


def _new_or_changed_drops(context: dg.SensorEvaluationContext, inputs: InputDatasets, refresh: RefreshSettings):
    launched = json.loads(context.cursor) if context.cursor else {}
    keys = drop_keys(inputs)
    arriving = [key for key in keys if _arriving(inputs.drop_dir(key), refresh.settle_seconds)]
    current = {key: drop_version(inputs.drop_dir(key)) for key in keys if key not in arriving}
    changed = {key: version for key, version in current.items() if launched.get(key) != version}
    if context.cursor is None:
        changed = _first_tick(context, changed, refresh.first_tick)
    requests = [
        dg.RunRequest(partition_key=key, run_key=f"{key}:{version}", tags={DROP_TAG: version})
        for key, version in changed.items()
    ]
    cursor = json.dumps({**launched, **current}, sort_keys=True)
    if not requests:
        reason = f"no new or changed drop under {inputs.landing_dir}"
        if arriving:
            reason += f"; still arriving (written less than {refresh.settle_seconds} s ago): {', '.join(arriving)}"
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    unregistered = _unregistered(context, [request.partition_key for request in requests])
    return dg.SensorResult(run_requests=requests, cursor=cursor, dynamic_partitions_requests=unregistered)


@dg.sensor(
    name="raw_inputs",
    minimum_interval_seconds=60,
    description="Keeps the raw inputs current in the UI, launching no run: registers each drop folder "
    "<landing>/field_samples/YYYY-MM/ as a partition of the field-sample assets, and records the data version of "
    "every raw input (file, drop) whenever it changes, so that a run records what it read and the catalog marks "
    "what a changed input feeds as stale.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def raw_inputs(context: dg.SensorEvaluationContext, inputs: InputDatasets):
    known = json.loads(context.cursor) if context.cursor else {}
    current, events = {}, []
    for name, path in raw_input_files(inputs).items():
        current[name] = _versioned(known.get(name), file_stamp(path), lambda path=path: file_version(path))
        if known.get(name, [None, None])[1] != current[name][1]:
            events.append(_observation(name, current[name][1]))
    added = register_drops(context.instance, drop_keys(inputs))  # before their observations, in this same tick
    for key in drop_keys(inputs):
        folder, entry = inputs.drop_dir(key), f"drop:{key}"
        current[entry] = _versioned(known.get(entry), drop_stamp(folder), lambda folder=folder: drop_version(folder))
        if known.get(entry, [None, None])[1] != current[entry][1]:
            events.append(_observation("field_sample_drop", current[entry][1], key))
    if not events:
        return dg.SkipReason(f"no raw input changed under {inputs.landing_dir} or elsewhere")
    if added:
        context.log.info(f"drops registered as partitions: {', '.join(added)}")
    return dg.SensorResult(asset_events=events, cursor=json.dumps(current))


def _arriving(folder: Path, settle_seconds: int) -> bool:
    """Whether a file of the drop folder (or the folder itself) was written less than `settle_seconds` ago. The
    inode change time counts too: a copy that keeps the files' modification times (cp -p, rsync -t) still sets it."""
    paths = [folder, *folder.iterdir()]
    newest = max(max(stat.st_mtime, stat.st_ctime) for stat in (path.stat() for path in paths))
    return time.time() - newest < settle_seconds


def _versioned(known: list | None, stamp: list | None, version) -> list:
    """[stamp, data version]: the known version while the stamp is unchanged (and known), else `version()`."""
    if known is not None and stamp is not None and known[0] == stamp:
        return known
    return [stamp, version()]


def _observation(key: str, version: str, partition: str | None = None) -> dg.AssetObservation:
    return dg.AssetObservation(asset_key=key, partition=partition, tags={DATA_VERSION_TAG: version})


def _unregistered(context: dg.SensorEvaluationContext, keys: list[str]) -> list[dg.AddDynamicPartitionsRequest]:
    new = [key for key in keys if not context.instance.has_dynamic_partition(field_drops.name, key)]
    return [field_drops.build_add_request(new)] if new else []


def _first_tick(context: dg.SensorEvaluationContext, drops: dict[str, str], rule: str) -> dict[str, str]:
    """The drops to launch runs for on the sensor's first tick (`RefreshSettings.first_tick`)."""
    if rule == "all":
        return drops
    if rule == "none":
        return {}
    ingested = context.instance.get_materialized_partitions(INGESTED)
    return {key: version for key, version in drops.items() if key not in ingested}
