"""The code location loads with the expected assets and jobs."""

from soil_pipeline.definitions import defs


def test_definitions_load_with_the_expected_assets():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"field_sites", "field_horizons", "topsoil_soc_stocks", "countries", "regional_soc_stocks"} <= keys
    assert {"soc_stock_grid", "cropland_grid", "climate_zone_grid", "country_grid"} <= keys
    assert defs.resolve_job_def("soil_pipeline_job").partitions_def is not None
