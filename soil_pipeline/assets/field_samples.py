"""Field SOC samples: monthly drops of site and horizon tables, and the topsoil (0-30 cm) SOC stock per site.

Source: `<landing_dir>/field_samples/YYYY-MM/` holding one `*sites.csv|parquet` and one `*horizons.csv|parquet`.
The embedded default is the Africa Soil Profiles database (Leenaars 2014) as the 2012-10 drop.
"""

import dagster as dg
import numpy as np
import pandas as pd
import shapely
from rasterio.transform import rowcol

from soil_pipeline import provenance
from soil_pipeline.partitions import monthly_drops
from soil_pipeline.readers import HORIZON_COLUMNS, SITE_COLUMNS, find_drop_file, read_table_file
from soil_pipeline.resources import InputDatasets
from soil_pipeline.science.grid import Layer
from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991
from soil_pipeline.science.regions import NO_REGION, assign_points
from soil_pipeline.science.stocks import topsoil_stocks

TOPSOIL_TOP_CM = 0.0
TOPSOIL_BOTTOM_CM = 30.0
# Sites on the coast can fall just outside the generalised 1:110m polygons; beyond this they stay unassigned.
COUNTRY_NEAREST_MAX_DEG = 0.5


def _read_drop(context: dg.AssetExecutionContext, inputs: InputDatasets, table: str, columns: dict) -> pd.DataFrame:
    path = find_drop_file(inputs.drop_dir(context.partition_key), table)
    frame = read_table_file(path, columns)
    frame.attrs["provenance"] = {"inputs": provenance.file_input(f"{table}[{context.partition_key}]", path)}
    return frame


@dg.asset(
    partitions_def=monthly_drops,
    io_manager_key="published_io_manager",
    group_name="field_samples",
    code_version="1",
)
def field_sites(context: dg.AssetExecutionContext, inputs: InputDatasets) -> pd.DataFrame:
    """Sampling sites of one monthly drop: id, WGS84 longitude/latitude (degrees), sampling date, source."""
    return _read_drop(context, inputs, "sites", SITE_COLUMNS)


@dg.asset(
    partitions_def=monthly_drops,
    io_manager_key="published_io_manager",
    group_name="field_samples",
    code_version="1",
)
def field_horizons(context: dg.AssetExecutionContext, inputs: InputDatasets) -> pd.DataFrame:
    """Horizons of one monthly drop: depths (cm), SOC (g/kg), bulk density (g/cm3), coarse fragments (% vol)."""
    return _read_drop(context, inputs, "horizons", HORIZON_COLUMNS)


def _sample_layer(layer: Layer, lon: np.ndarray, lat: np.ndarray, outside) -> np.ndarray:
    rows, cols = rowcol(layer.grid.transform, lon, lat)
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < layer.grid.height) & (cols >= 0) & (cols < layer.grid.width)
    values = np.full(len(lon), outside, dtype=layer.data.dtype)
    values[inside] = layer.data[rows[inside], cols[inside]]
    return values


@dg.asset(
    partitions_def=monthly_drops,
    io_manager_key="published_io_manager",
    group_name="field_samples",
    code_version="1",
)
def topsoil_soc_stocks(
    field_sites: pd.DataFrame, field_horizons: pd.DataFrame, countries: pd.DataFrame, climate_zone_grid: Layer
) -> pd.DataFrame:
    """SOC stock 0-30 cm per site (t C/ha), with bulk density filled by Manrique & Jones (1991) where missing.

    Sites that do not cover 0-30 cm, lack SOC, or lack BD outside the pedotransfer domain keep a null stock and an
    `exclusion_reason`. Each site is placed in its country (Natural Earth ADM0_A3) and IPCC 2019 climate zone.
    """
    stocks = topsoil_stocks(field_sites["site_id"], field_horizons, TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM)
    sites = field_sites.drop_duplicates("site_id")[["site_id", "longitude_deg", "latitude_deg"]]
    table = sites.merge(stocks, on="site_id", how="right", validate="one_to_one")
    lon = table["longitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    lat = table["latitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    index, method = assign_points(lon, lat, shapely.from_wkb(countries["geometry_wkb"]), COUNTRY_NEAREST_MAX_DEG)
    codes = countries["adm0_a3"].to_numpy(dtype=object)
    table["country_adm0_a3"] = pd.Series(np.where(index == NO_REGION, None, codes[index]), dtype="str")
    table["country_assignment"] = pd.Series(method, dtype="str")
    table["climate_zone_code"] = _sample_layer(climate_zone_grid, lon, lat, 0).astype("int64")
    table.attrs["provenance"] = provenance.combine(
        field_sites.attrs.get("provenance", {}),
        field_horizons.attrs.get("provenance", {}),
        countries.attrs.get("provenance", {}),
        climate_zone_grid.provenance,
        {
            "parameters": {
                "topsoil_depth_cm": [TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM],
                "bd_pedotransfer_function": MANRIQUE_JONES_1991.name,
                "bd_pedotransfer_citation": MANRIQUE_JONES_1991.citation,
                "country_nearest_max_deg": COUNTRY_NEAREST_MAX_DEG,
            }
        },
    )
    return table.sort_values("site_id", kind="mergesort").reset_index(drop=True)
