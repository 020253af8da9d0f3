"""Regions: country boundaries from Natural Earth 1:10m Admin 0 (public domain, simplified copy), keyed on ADM0_A3.

ADM0_A3 rather than ISO_A3, which is "-99" for France, Norway and others in this release.
"""

import dagster as dg

from soil_pipeline import provenance
from soil_pipeline.assets.sources import observe_files, retried_on_transient_io
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.failures import reported
from soil_pipeline.readers import read_countries
from soil_pipeline.resources import InputDatasets


@dg.asset(
    io_manager_key="published_io_manager",
    group_name="regions",
    code_version="2",
    check_specs=contract_specs("countries"),
    deps=["countries_vector"],
)
def countries(context: dg.AssetExecutionContext, inputs: InputDatasets):
    """One row per country: ADM0_A3 code, name, continent, UN subregion, polygon as WKB (lon/lat WGS84)."""
    observe_files(context, inputs, "countries_vector")
    path = inputs.countries_vector
    with reported(), retried_on_transient_io():
        table = read_countries(path)
    table.attrs["provenance"] = {"inputs": provenance.file_input("countries_vector", path)}
    yield from publish_if_valid("countries", table)
