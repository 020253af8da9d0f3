"""Zonings of the common grid: global, country, IPCC climate zone and 4p1000 priority region, with their tables.

A zoning is a per-cell zone index and a table with columns zone_index, region_type, region_id, region_name.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.reference_data import priority_regions
from soil_pipeline.science.aggregation import WORLD, global_row
from soil_pipeline.science.grid import Layer
from soil_pipeline.science.regions import NO_REGION, group_membership

CLIMATE_ZONE_LEGEND = DATA_DIR / "ipcc_climate_zones_0p5" / "legend.csv"
UNASSIGNED = "UNASSIGNED"
REGION_TYPES = ("global", "priority_region", "country", "climate_zone")
# The regional SOC stock table (regional_soc_stocks) is published without the 4p1000 priority regions.
STOCK_REGION_TYPES = tuple(kind for kind in REGION_TYPES if kind != "priority_region")


def climate_zone_names() -> pd.DataFrame:
    return pd.read_csv(CLIMATE_ZONE_LEGEND, dtype={"code": "int64", "name": "str"})


def global_metadata(table: pd.DataFrame, columns) -> dict[str, float]:
    """`global_<column>`: the all-region row's value of each of `columns` (the World's, or the run's region's), as
    materialization metadata."""
    world = global_row(table)
    return {f"global_{name}": float(world[name]) for name in columns}


def extent_name(soc_stock_grid: Layer) -> str:
    """The name of the all-region row of a run's tables, from the run's extent: `WORLD` when the common grid covers
    the globe and the stock layers are global; else the label of the stock layers declared regional, or the
    common grid's bounds, said to be regional."""
    extent = soc_stock_grid.provenance.get("parameters", {}).get("soc_stock_extent")
    if extent:
        return f"{extent['label']} (regional extent, not global)"
    if soc_stock_grid.grid.covers_globe():
        return WORLD
    west, south, east, north = soc_stock_grid.grid.bounds()
    return f"Common grid {west:.4g} to {east:.4g} E, {south:.4g} to {north:.4g} N (regional extent, not global)"


def zone_tables(
    countries: pd.DataFrame, zone_names: pd.DataFrame, groups: list[dict], world_name: str = WORLD
) -> dict[str, pd.DataFrame]:
    n = len(countries)
    country_rows = pd.DataFrame(
        {
            "zone_index": np.arange(n + 1),
            "region_type": "country",
            "region_id": [*countries["adm0_a3"], UNASSIGNED],
            "region_name": [*countries["name"], "Land beyond the nearest-country distance from every polygon"],
        }
    )
    zone_rows = pd.DataFrame(
        {
            "zone_index": zone_names["code"],
            "region_type": "climate_zone",
            "region_id": zone_names["code"].astype("str"),
            "region_name": zone_names["name"],
        }
    )
    priority_rows = pd.DataFrame(
        {
            "zone_index": np.arange(len(groups)),
            "region_type": "priority_region",
            "region_id": [group["id"] for group in groups],
            "region_name": [group["name"] for group in groups],
        }
    )
    global_row = pd.DataFrame(
        {"zone_index": [0], "region_type": "global", "region_id": "GLOBAL", "region_name": world_name}
    )
    return {"global": global_row, "priority_region": priority_rows, "country": country_rows, "climate_zone": zone_rows}


@dataclass(frozen=True)
class Zoner:
    """Zone index per cell for every region type, from a window's `country` (row index into countries, -1 =
    none) and `climate_zone` (code) layers; picklable, so the streaming engine can send it to Dask workers."""

    n_countries: int
    membership: np.ndarray

    def __call__(self, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        country_cells, climate_zone_cells = layers["country"], layers["climate_zone"]
        country = np.where(country_cells < 0, self.n_countries, country_cells).astype("int64")
        return {
            "global": np.zeros(country.shape, dtype="int64"),
            "priority_region": self.membership[country],
            "country": country,
            "climate_zone": climate_zone_cells.astype("int64"),
        }


def zoner(countries: pd.DataFrame, world_name: str = WORLD) -> tuple[Zoner, dict[str, pd.DataFrame], dict[str, int]]:
    """(Zoner, zone table per region type, number of zone indices per region type); `world_name` names the
    all-region row (`extent_name` of the run's stock grid)."""
    groups = priority_regions()
    tables = zone_tables(countries, climate_zone_names(), groups, world_name)
    membership = np.append(group_membership(countries["subregion"], countries["adm0_a3"], groups), NO_REGION)
    sizes = {kind: int(table["zone_index"].max()) + 1 for kind, table in tables.items()}
    return Zoner(len(countries), membership), tables, sizes


def zonings(
    countries: pd.DataFrame, country_cells: np.ndarray, climate_zone_cells: np.ndarray
) -> dict[str, tuple[np.ndarray, pd.DataFrame]]:
    """(zone index per cell, table) for every region type, for cells given by their country row index (-1 = none)
    and climate zone code. Cells outside every country count in the UNASSIGNED country row."""
    zone_of, tables, _ = zoner(countries)
    cells = zone_of({"country": country_cells, "climate_zone": climate_zone_cells})
    return {kind: (cells[kind], tables[kind]) for kind in REGION_TYPES}
