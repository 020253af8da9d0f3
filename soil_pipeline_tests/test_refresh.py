"""The monthly schedule and the landing-folder sensor: a run per drop that exists, a skip naming the missing folder."""

import shutil
from datetime import UTC, datetime

import dagster as dg
import pytest

from soil_pipeline.definitions import defs
from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.refresh import monthly_refresh, new_field_drops
from soil_pipeline.resources import InputDatasets

EMBEDDED_DROP = DATA_DIR / "landing" / "field_samples" / "2012-10"


@pytest.fixture
def landing(tmp_path):
    """A landing folder holding only the embedded 2012-10 drop."""
    shutil.copytree(EMBEDDED_DROP, tmp_path / "field_samples" / "2012-10")
    return tmp_path


def _tick(landing, when: datetime):
    resources = {"inputs": InputDatasets(landing_dir=str(landing))}
    repository = defs.get_repository_def()
    with dg.build_schedule_context(
        scheduled_execution_time=when, resources=resources, repository_def=repository
    ) as context:
        return monthly_refresh.evaluate_tick(context)


def test_schedule_requests_the_previous_month_when_its_drop_exists(landing):
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2026-10")
    result = _tick(landing, datetime(2026, 11, 1, tzinfo=UTC))
    assert [request.partition_key for request in result.run_requests] == ["2026-10"]


def test_schedule_skips_a_month_without_a_drop_naming_the_folder(landing):
    result = _tick(landing, datetime(2026, 12, 1, tzinfo=UTC))
    assert not result.run_requests
    assert str(landing / "field_samples" / "2026-11") in result.skip_message


def _sense(landing, cursor=None):
    resources = {"inputs": InputDatasets(landing_dir=str(landing))}
    with dg.build_sensor_context(cursor=cursor, resources=resources, definitions=defs) as context:
        result = new_field_drops.evaluate_tick(context)
    return [request.partition_key for request in result.run_requests], result.cursor, result.skip_message


def test_sensor_launches_one_run_per_new_or_changed_drop_and_keeps_its_cursor(landing):
    keys, cursor, _ = _sense(landing)
    assert keys == ["2012-10"]
    keys, cursor, skip = _sense(landing, cursor)
    assert keys == [] and "no new or changed drop" in skip
    shutil.copytree(EMBEDDED_DROP, landing / "field_samples" / "2012-11")
    keys, cursor, _ = _sense(landing, cursor)
    assert keys == ["2012-11"]
    sites = landing / "field_samples" / "2012-10" / "afsp_sites.csv"
    sites.write_text(sites.read_text() + "\n")
    keys, _, _ = _sense(landing, cursor)
    assert keys == ["2012-10"]
