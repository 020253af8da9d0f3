"""The code location loads, and the monthly schedule asks for the previous month's drop."""

from datetime import UTC, datetime

import dagster as dg

from soil_pipeline.definitions import defs


def test_definitions_load_with_the_expected_assets():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"field_sites", "field_horizons", "topsoil_soc_stocks", "countries", "regional_soc_stocks"} <= keys
    assert {"soc_stock_grid", "cropland_grid", "climate_zone_grid", "country_grid"} <= keys
    assert defs.resolve_job_def("soil_pipeline_job").partitions_def is not None


def test_monthly_schedule_requests_the_previous_month():
    schedule = defs.resolve_schedule_def("monthly_refresh")
    tick = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [request.partition_key for request in requests] == ["2026-10"]
