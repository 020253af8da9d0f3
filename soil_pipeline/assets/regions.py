"""Regions: country boundaries from Natural Earth 1:10m Admin 0 (public domain, simplified copy), keyed on ADM0_A3.

ADM0_A3 rather than ISO_A3, which is "-99" for France, Norway and others in this release.
"""

import dagster as dg
import geopandas as gpd
import pandas as pd
import shapely

from soil_pipeline import provenance
from soil_pipeline.assets.sources import observe_files, retried_on_transient_io
from soil_pipeline.checks import contract_specs, publish_if_valid
from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.readers import InputError
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
    columns = load_table_contract("countries").source_columns()
    columns.pop("geometry_wkb")
    with retried_on_transient_io():
        frame = gpd.read_file(path)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}")
    if frame.crs is None or frame.crs.to_epsg() != 4326:
        raise InputError(f"{path}: expected lon/lat WGS84 (EPSG:4326 / CRS84), got {frame.crs}")
    table = pd.DataFrame(frame[list(columns)].rename(columns=columns))
    table["geometry_wkb"] = shapely.to_wkb(frame.geometry.values, output_dimension=2)
    table = table.sort_values("adm0_a3", kind="mergesort").reset_index(drop=True)
    table.attrs["provenance"] = {"inputs": provenance.file_input("countries_vector", path)}
    yield from publish_if_valid("countries", table)
