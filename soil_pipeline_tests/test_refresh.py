"""The monthly schedule and the landing-folder sensor: a run per drop that exists, a skip naming the missing folder."""

import json
import shutil
from datetime import UTC, datetime

import dagster as dg
import pytest

from soil_pipeline.assets import sources
from soil_pipeline.assets.sources import DATA_VERSION_TAG
from soil_pipeline.definitions import build_definitions
from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.partitions import field_drops
from soil_pipeline.refresh import RefreshSettings, monthly_refresh, raw_inputs
from soil_pipeline.resources import InputDatasets

defs = build_definitions()
new_field_drops = defs.get_sensor_def("new_field_drops")
EMBEDDED_DROP = DATA_DIR / "landing" / "field_samples" / "2012-10"


@pytest.fixture
def landing(tmp_path):
    """A landing folder holding only the embedded 2012-10 drop."""
    shutil.copytree(EMBEDDED_DROP, tmp_path / "field_samples" / "2012-10")
    return tmp_path


def _tick(landing, when: datetime, instance):
    """A tick of the schedule (which needs a persistent instance: `dg.instance_for_test`)."""
    resources = {"inputs": InputDatasets(landing_dir=str(landing))}
    repository = defs.get_repository_def()
    with dg.build_schedule_context(
        scheduled_execution_time=when, resources=resources, repository_def=repository, instance=instance
    ) as context:
        return monthly_refresh.evaluate_tick(context)


def test_schedule_requests_the_previous_month_when_its_drop_exists_and_registers_its_partition(landing):
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2026-10")
    with dg.instance_for_test() as instance:
        result = _tick(landing, datetime(2026, 11, 1, tzinfo=UTC), instance)
        assert [request.partition_key for request in result.run_requests] == ["2026-10"]
        assert instance.get_dynamic_partitions(field_drops.name) == ["2026-10"]


def test_schedule_skips_a_month_without_a_drop_naming_the_folder(landing):
    with dg.instance_for_test() as instance:
        result = _tick(landing, datetime(2026, 12, 1, tzinfo=UTC), instance)
    assert not result.run_requests
    assert str(landing / "field_samples" / "2026-11") in result.skip_message


@pytest.fixture
def instance():
    """A persistent test instance: sensors and schedules load dynamic partitions through it."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _sense(landing, instance, cursor=None, settle_seconds=0):
    refresh = RefreshSettings(settle_seconds=settle_seconds)
    resources = {"inputs": InputDatasets(landing_dir=str(landing)), "refresh": refresh}
    with dg.build_sensor_context(cursor=cursor, resources=resources, definitions=defs, instance=instance) as context:
        result = new_field_drops(context)  # called directly: evaluating a tick validates keys not yet registered
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return [request.partition_key for request in result.run_requests or []], result.cursor, skip


def test_sensor_launches_one_run_per_new_or_changed_drop_and_keeps_its_cursor(landing, instance):
    keys, cursor, _ = _sense(landing, instance)
    assert keys == ["2012-10"]
    keys, cursor, skip = _sense(landing, instance, cursor)
    assert keys == [] and "no new or changed drop" in skip
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2012-11")
    keys, cursor, _ = _sense(landing, instance, cursor)
    assert keys == ["2012-11"]
    sites = landing / "field_samples" / "2012-10" / "afsp_sites.csv"
    sites.write_text(sites.read_text() + "\n")
    keys, _, _ = _sense(landing, instance, cursor)
    assert keys == ["2012-10"]


def test_a_drop_still_arriving_waits_for_a_later_tick(landing, instance):
    keys, cursor, _ = _sense(landing, instance)
    # copied keeping its files' modification times: their inode change times say it has just arrived (and the
    # fixture's 2012-10 too, remembered as it was)
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2012-11", copy_function=shutil.copy2)
    keys, held, skip = _sense(landing, instance, cursor, settle_seconds=3600)
    assert keys == [] and skip.endswith("still arriving (written less than 3600 s ago): 2012-10, 2012-11")
    assert json.loads(held) == json.loads(cursor)  # not remembered: a later tick sees it as new
    keys, _, _ = _sense(landing, instance, held, settle_seconds=0)
    assert keys == ["2012-11"]


def _first_tick(landing, instance, rule: str, ingested: list[str]):
    """The sensor's first tick (no cursor) with `ingested` partitions of field_sites already materialized."""
    instance.add_dynamic_partitions(field_drops.name, ingested)
    for key in ingested:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="field_sites", partition=key))
    refresh = RefreshSettings(first_tick=rule, settle_seconds=0)
    resources = {"inputs": InputDatasets(landing_dir=str(landing)), "refresh": refresh}
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
        result = new_field_drops(context)
    return sorted(request.partition_key for request in result.run_requests or []), json.loads(result.cursor)


@pytest.mark.parametrize(
    ("rule", "launched"), [("unmaterialized", ["2012-11"]), ("all", ["2012-10", "2012-11"]), ("none", [])]
)
def test_the_first_tick_treats_drops_already_there_as_configured(landing, instance, rule, launched):
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2012-11")
    keys, cursor = _first_tick(landing, instance, rule, ingested=["2012-10"])
    assert keys == launched
    assert sorted(cursor) == ["2012-10", "2012-11"]  # every drop remembered: later ticks launch only on change


def _raw_tick(instance, inputs: InputDatasets, cursor=None):
    with dg.build_sensor_context(instance=instance, resources={"inputs": inputs}, cursor=cursor) as context:
        return raw_inputs(context)


def _observed(result) -> dict:
    return {
        (event.asset_key.to_user_string(), event.partition): event.tags[DATA_VERSION_TAG]
        for event in result.asset_events
    }


def test_raw_inputs_registers_drops_and_records_each_input_version_once_until_it_changes(landing, instance, tmp_path):
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2013-02")
    (landing / "field_samples" / "2013-2").mkdir()  # not a drop folder name: never a partition
    countries = tmp_path / "countries.geojson.zip"
    shutil.copy(InputDatasets().countries_vector, countries)
    inputs = InputDatasets(landing_dir=str(landing), countries_vector=str(countries))

    first = _raw_tick(instance, inputs)
    assert instance.get_dynamic_partitions(field_drops.name) == ["2012-10", "2013-02"] and not first.run_requests
    observed = _observed(first)
    assert observed[("countries_vector", None)] == sources.file_version(str(countries))
    assert observed[("pasture_raster", None)] == "not configured"
    for key in ("2012-10", "2013-02"):
        assert observed[("field_sample_drop", key)] == sources.drop_version(landing / "field_samples" / key)
    second = _raw_tick(instance, inputs, first.cursor)
    assert isinstance(second, dg.SkipReason) and "no raw input changed" in second.skip_message

    countries.write_bytes(countries.read_bytes() + b"\0")
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2013-03")
    third = _raw_tick(instance, inputs, first.cursor)
    assert sorted(_observed(third)) == [("countries_vector", None), ("field_sample_drop", "2013-03")]
    assert "2013-03" in instance.get_dynamic_partitions(field_drops.name)
