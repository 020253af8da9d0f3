"""The code location loads with the expected assets and jobs, on the defaults or on the configuration file the
environment variable SOIL_PIPELINE_CONFIG names (the file `soil-pipeline run --config` reads)."""

import dagster as dg
import pytest

from soil_pipeline.cli import _apply_config, _parser
from soil_pipeline.contracts.bounded_yaml import DeclarationError
from soil_pipeline.definitions import CONFIG_ENV, defs
from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT, OutputRoot
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.runner import runner_job

CONFIG = """\
output_root: ./published              # relative paths: relative to this file
partition: 2012-10                    # for soil-pipeline run; the UI picks the partition at launch
inputs:
  landing_dir: ./landing
  pasture_raster: ./rasters/pasture.tif
  soc_stock_2010_raster: /vsicurl/https://example.org/soc_2010.tif
raster_engine:
  threads: 1
  window_cells: 65536
refresh:                              # the landing-folder sensor (code location only)
  interval_seconds: 5
"""


def _fields(resource, model) -> dict:
    return {name: getattr(resource, name) for name in model.model_fields}


def test_definitions_load_with_the_expected_assets(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    loaded = defs()
    keys = {key.to_user_string() for key in loaded.resolve_asset_graph().get_all_asset_keys()}
    assert {"field_sites", "field_horizons", "topsoil_soc_stocks", "countries", "regional_soc_stocks"} <= keys
    assert {"soc_stock_grid", "cropland_grid", "climate_zone_grid", "country_grid"} <= keys
    assert loaded.resolve_job_def("soil_pipeline_job").partitions_def is not None
    assert _fields(loaded.resources["inputs"], InputDatasets) == _fields(InputDatasets(), InputDatasets)
    assert loaded.resources["publication"].output_root == OutputRoot.parse(DEFAULT_OUTPUT_ROOT).url
    assert loaded.get_sensor_def("new_field_drops").minimum_interval_seconds == 60


def test_the_code_location_reads_the_file_soil_pipeline_config_names_as_the_cli_does(tmp_path, monkeypatch):
    folder = tmp_path / "deployment"
    folder.mkdir()
    config = folder / "pipeline.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv(CONFIG_ENV, str(config))
    resources = defs().resources
    inputs, engine = resources["inputs"], resources["raster_engine"]
    assert defs().get_sensor_def("new_field_drops").minimum_interval_seconds == 5
    assert inputs.landing_dir == str(folder / "landing")
    assert inputs.pasture_raster == str(folder / "rasters" / "pasture.tif")
    assert inputs.soc_stock_2010_raster == "/vsicurl/https://example.org/soc_2010.tif"
    assert inputs.cropland_raster == InputDatasets().cropland_raster  # not in the file: the default
    assert (engine.threads, engine.window_cells, engine.width) == (1, 65536, RasterEngine().width)
    assert resources["publication"].output_root == str(folder / "published")
    assert resources["quality_reports"].base == f"{folder / 'published'}/_data_docs"
    # `soil-pipeline run --config` on the same file: the same inputs, engine and output root, and its partition.
    args = _parser().parse_args(["run", "--config", str(config)])
    _apply_config(args)
    assert (args.output_root, args.partition) == (str(folder / "published"), "2012-10")
    job = runner_job("soil_pipeline_job", args.output_root, args.inputs, args.raster_engine)
    names = ("inputs", "raster_engine", "publication")
    with dg.build_resources({name: job.resource_defs[name] for name in names}) as built:
        assert _fields(built.inputs, InputDatasets) == _fields(inputs, InputDatasets)
        assert _fields(built.raster_engine, RasterEngine) == _fields(engine, RasterEngine)
        assert built.publication.output_root == resources["publication"].output_root


def test_a_bad_configuration_file_is_named_with_line_and_key_never_its_values(tmp_path, monkeypatch):
    config = tmp_path / "pipeline.yaml"
    monkeypatch.setenv(CONFIG_ENV, str(config))
    signed = "/vsicurl/https://x.org/a.tif?X-Amz-Signature=SECRET"
    cases = (
        (
            f"inputs:\n  landing_dir: ./landing\n  soc_raster: {signed}\n",
            f"{config}: inputs: unknown input(s) soc_raster (line 3); known: climate_zones_raster, countries_vector",
        ),
        (
            "raster_engine:\n  threads: tls://user:SECRET@host\n",
            f"{config}: line 2: raster_engine.threads: Input should be a valid integer",
        ),
        ("output_root:\n  - s3://SECRET/root\n", f"{config}: line 1: output_root: must be text (a path or URL), got"),
        (f"inputs:\n  pasture_raster:\n    url: {signed}\n", f"{config}: line 2: inputs.pasture_raster: must be text"),
        ("inputs: [SECRET]\n", f"{config}: line 1: inputs: must be a mapping of input -> value"),
        ("inputs:\n  landing_dir: 'SECRET\n", f"{config}: not valid YAML at line 3, column 1: found unexpected end"),
        (
            "output_rot: ./SECRET\n",
            f"{config}: unknown key(s) output_rot (line 1); known: docs_url, inputs, output_root",
        ),
    )
    for text, expected in cases:
        config.write_text(text)
        with pytest.raises(DeclarationError) as error:
            defs()
        assert expected in str(error.value) and "SECRET" not in str(error.value)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match=f"missing.yaml: no such configuration file \\(named by {CONFIG_ENV}"):
        defs()
