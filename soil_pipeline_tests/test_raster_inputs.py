"""A raster input is declared once (raster_inputs.RASTER_INPUTS): the `inputs` resource, the observable source
assets, the raster declarations and the contracts agree with the registry name for name, so adding an input is one
registry entry plus its contract."""

from pathlib import Path

import yaml

from soil_pipeline.contracts.model import CONTRACTS_DIR, load_raster_contract
from soil_pipeline.contracts.raster import check_raster
from soil_pipeline.contracts.raster_declaration import load_raster_declarations
from soil_pipeline.definitions import build_definitions
from soil_pipeline.raster_inputs import (
    AREA_PER_CELL,
    BY_NAME,
    CLASS_CODES,
    DENSITY_ERROR,
    PASTURE,
    RASTER_INPUTS,
    STOCK_DENSITY,
)
from soil_pipeline.resources import InputDatasets
from soil_pipeline_tests.conftest import FIXTURES

NAMES = [entry.name for entry in RASTER_INPUTS]
NOT_RASTERS = {"landing_dir", "countries_vector", "field_declaration", "raster_declaration"}


def test_the_resource_has_one_described_field_per_raster_input_with_its_default():
    fields = InputDatasets.model_fields
    assert set(fields) - NOT_RASTERS == set(NAMES)
    for entry in RASTER_INPUTS:
        field = fields[entry.name]
        assert (field.default, field.description) == (entry.default, entry.description), entry.name
        assert field.is_required() is False
        assert getattr(InputDatasets(), entry.name) == entry.default
        assert entry.default is None or Path(entry.default).is_file(), entry.name  # a default is embedded data
    schema = InputDatasets().get_resource_definition().config_schema.config_type.fields
    assert schema["pasture_raster"].description == PASTURE.description  # what the launchpad shows
    assert set(schema) == set(fields)


def test_every_raster_input_is_an_observable_source_and_declarable(tmp_path):
    graph = build_definitions().resolve_asset_graph()
    observed = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).is_observable}
    assert observed - {"field_sample_drop", "climate_zone_legend", "countries_vector"} == set(NAMES)
    declaration = tmp_path / "rasters.yaml"
    entries = {entry.name: {"role": entry.declared_as, "label": entry.name} for entry in RASTER_INPUTS}
    declaration.write_text(yaml.safe_dump({"declaration": 1, "rasters": entries}))
    declared = load_raster_declarations(declaration)
    assert {name: d.role for name, d in declared.items()} == {e.name: e.declared_as for e in RASTER_INPUTS}
    assert len({entry.declared_as for entry in RASTER_INPUTS}) == len(RASTER_INPUTS)


def test_every_raster_input_has_its_contract_and_every_raster_contract_an_input():
    raster_contracts = {
        path.stem
        for path in CONTRACTS_DIR.glob("*.yaml")
        if yaml.safe_load(path.read_text())["schema"][0]["physicalType"] == "raster"
    }
    assert raster_contracts == {entry.contract for entry in RASTER_INPUTS}
    for entry in RASTER_INPUTS:
        contract = load_raster_contract(entry.contract)
        assert contract.id == entry.contract
        if entry.role.unit is not None:  # the role's unit is the contract's: what the grid asset sums or averages
            assert contract.unit == entry.role.unit, entry.name
    assert {entry.role for entry in RASTER_INPUTS} == {STOCK_DENSITY, AREA_PER_CELL, CLASS_CODES, DENSITY_ERROR}
    assert (STOCK_DENSITY.resampling, AREA_PER_CELL.resampling, CLASS_CODES.resampling) == ("average", "sum", "nearest")
    assert BY_NAME["cropland_raster"].role == BY_NAME["pasture_raster"].role == AREA_PER_CELL


def test_a_hyde_pasture_layer_on_the_5_arcminute_lattice_meets_the_pasture_contract():
    # The stand-in HYDE 3.2 layer on the exact global 5' lattice (km2 per cell, uint8, nodata 255).
    path = FIXTURES / "hyde32_cropland_km2_2016_5arcmin_aligned.tif"
    checked = check_raster(str(path), load_raster_contract(PASTURE.contract))
    assert checked.valid_sum > 1.5e7  # km2: HYDE's 15.9 M km2 of cropland, rounded per cell
