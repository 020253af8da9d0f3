"""The monthly refresh: a schedule for the previous month's drop and a sensor on the landing folder.

Neither launches a run for a month without a drop folder: the schedule skips with a reason naming the folder,
the sensor only sees folders that exist. The sensor launches one run per new or changed drop; its cursor holds the
data version (sha256 over the drop's table files) of every drop it has launched a run for.
"""

import json
from datetime import datetime, timedelta

import dagster as dg

from soil_pipeline.assets.sources import drop_keys, drop_version
from soil_pipeline.partitions import monthly_drops
from soil_pipeline.resources import InputDatasets

MAIN_JOB = "soil_pipeline_job"
DROP_TAG = "soil_pipeline/drop_version"


def previous_month(when: datetime) -> str:
    return (when.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


@dg.schedule(
    name="monthly_refresh",
    job_name=MAIN_JOB,
    cron_schedule=monthly_drops.get_cron_schedule(),
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
    return dg.RunRequest(partition_key=month, run_key=f"{month}:{version}", tags={DROP_TAG: version})


@dg.sensor(
    name="new_field_drops",
    job_name=MAIN_JOB,
    minimum_interval_seconds=60,
    description="One run of the main job per new or changed drop folder under <landing>/field_samples/.",
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_field_drops(context: dg.SensorEvaluationContext, inputs: InputDatasets):
    launched = json.loads(context.cursor) if context.cursor else {}
    current = {key: drop_version(inputs.drop_dir(key)) for key in drop_keys(inputs)}
    changed = {key: version for key, version in current.items() if launched.get(key) != version}
    requests = [
        dg.RunRequest(partition_key=key, run_key=f"{key}:{version}", tags={DROP_TAG: version})
        for key, version in changed.items()
    ]
    cursor = json.dumps({**launched, **current}, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason=f"no new or changed drop under {inputs.landing_dir}", cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
