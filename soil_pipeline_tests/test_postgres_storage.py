"""Production storage: the shared pipeline run, recorded through deploy/dagster.yaml, reads back from PostgreSQL."""

import json

import dagster as dg
import pytest

from soil_pipeline_tests.conftest import postgres_connection

PUBLISHED = {"field_sites", "field_horizons", "topsoil_soc_stocks", "countries", "regional_soc_stocks"}


@pytest.fixture(scope="module")
def postgres(postgres_home):
    if postgres_home is None:
        pytest.skip("no PostgreSQL reachable through the DAGSTER_PG_* variables (not in CI)")
    connection = postgres_connection()
    yield connection
    connection.close()


def test_instance_keeps_runs_events_and_schedules_in_postgres(postgres, pipeline_instance):
    storages = (pipeline_instance.run_storage, pipeline_instance.event_log_storage, pipeline_instance.schedule_storage)
    assert [type(storage).__name__ for storage in storages] == [
        "PostgresRunStorage",
        "PostgresEventLogStorage",
        "PostgresScheduleStorage",
    ]


def test_the_pipeline_run_and_its_materializations_read_back_from_postgres(postgres, embedded_run, pipeline_instance):
    result, _ = embedded_run
    with postgres.cursor() as cursor:
        cursor.execute("SELECT run_id, pipeline_name, status FROM runs WHERE run_id = %s", (result.run_id,))
        runs = cursor.fetchall()
        cursor.execute(
            "SELECT asset_key, partition FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (result.run_id, "ASSET_MATERIALIZATION"),
        )
        materializations = cursor.fetchall()
    print("runs:", runs)
    print("materializations:", sorted(materializations))
    assert runs == [(result.run_id, "soil_pipeline_job", "SUCCESS")]
    assets = {tuple(json.loads(key))[0]: partition for key, partition in materializations}
    assert set(assets) >= PUBLISHED
    assert assets["field_sites"] == "2012-10" and assets["regional_soc_stocks"] is None
    [record] = pipeline_instance.fetch_materializations(dg.AssetKey("regional_soc_stocks"), limit=1).records
    assert record.run_id == result.run_id
