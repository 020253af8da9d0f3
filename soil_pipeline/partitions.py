"""Field-sample drops as dynamic partitions: one partition per drop folder `<landing>/field_samples/YYYY-MM/` that
exists, registered when it is found (the `raw_inputs` sensor, the `new_field_drops` sensor and the schedule in
the UI deployment; `soil-pipeline run` and the runner before a run). A month without a drop is no partition, so a
backfill over any range of partitions covers only drops that exist, and every run of it has data to ingest."""

import dagster as dg

from soil_pipeline.readers import DROP_FOLDER_PATTERN

# The embedded Africa Soil Profiles compilation is the 2012-10 drop (its latest sampling date is 2012-10-08).
EMBEDDED_DROP_PARTITION = "2012-10"

field_drops = dg.DynamicPartitionsDefinition(name="field_drops")


def is_drop_key(key: str) -> bool:
    return bool(DROP_FOLDER_PATTERN.fullmatch(key))


def register_drops(instance: dg.DagsterInstance, keys) -> list[str]:
    """Add the drop partitions among `keys` that the instance does not know yet; returns those added."""
    new = [key for key in keys if is_drop_key(key) and not instance.has_dynamic_partition(field_drops.name, key)]
    if new:
        instance.add_dynamic_partitions(field_drops.name, new)
    return new
