"""Ingest of one field-sample drop in bounded memory, without Dagster: what the field assets (and the ingest
benchmark) call.

Each landing file is read in chunks (`readers.iter_table_chunks`) and its rows spilled into buckets by site id, so
one bucket holds every row a cross-row rule compares (identical copies, unique ids, unique site and depth) and
every horizon of its sites. Sites, then horizons, are validated bucket by bucket (`contracts.stream`); the topsoil
stock is computed per bucket of sites with all their horizons. Peak memory is about one bucket, whatever the
size of the drop; outputs are Parquet files written batch by batch and sorted out of core.
"""

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from soil_pipeline.contracts.declaration import TablePlan, apply_declaration
from soil_pipeline.contracts.model import TableContract, load_raster_contract, load_table_contract
from soil_pipeline.contracts.stream import (
    BUCKET_BYTES,
    Buckets,
    StreamValidation,
    bucket_count,
    bucket_of,
    sort_parquet,
    text_types,
    validate_buckets,
)
from soil_pipeline.contracts.validate import DECLARED_CONVERSIONS, LandMask, Regions, Validation
from soil_pipeline.drop_evidence import EvidenceTally, Finding, confirmed_guards, judge
from soil_pipeline.engine.points import HasValue, sample_points
from soil_pipeline.engine.raster import RasterSource
from soil_pipeline.publishing.grids import stored
from soil_pipeline.publishing.parquet import TableFile
from soil_pipeline.readers import Declare, empty_text_frame, iter_table_chunks
from soil_pipeline.science.grid import Layer
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG, NO_REGION, PointAssigner
from soil_pipeline.science.stocks import blocking_sites, flag_quarantined_horizons, topsoil_stocks

KEY = "site_id"
TOPSOIL_TOP_CM = 0.0
TOPSOIL_BOTTOM_CM = 30.0
# Horizons per bucket when computing stocks from published tables (about 0.3 kB each in memory).
STOCK_BUCKET_ROWS = 400_000
STOCK_REJECT_COLUMNS = [KEY, "upper_depth_cm", "lower_depth_cm"]
# The horizon columns `topsoil_stocks` reads: only these are spilled and read back.
STOCK_HORIZON_COLUMNS = [*STOCK_REJECT_COLUMNS, "soc_g_per_kg", "bulk_density_g_per_cm3", "coarse_fragments_vol_pct"]
# The land mask sites must lie on (or next to), as rejects name it.
LAND_MASK_NAME = "WHRC SOC stock 2010"


@dataclass(frozen=True)
class TableSource:
    """How a drop table is read: its source columns (header -> contract column) and the declaration each chunk
    passes through (None: the contract's physical names, values as they are)."""

    columns: dict[str, str]
    declare: Declare | None = None
    conversions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, contract: TableContract, plan: TablePlan | None = None) -> "TableSource":
        if plan is None:
            return cls(contract.source_columns())
        return cls(plan.source_columns, functools.partial(apply_declaration, plan=plan), plan.conversions())

    def empty(self, path: Path) -> pd.DataFrame:
        return empty_text_frame(self.columns, path, self.declare)


def read_in_buckets(path: Path, source: TableSource, folder: Path, n_buckets: int) -> Buckets:
    """The landing file's rows as text in the contract layout, declared chunk by chunk, spilled into `n_buckets`
    buckets by site id."""
    buckets = Buckets(folder, n_buckets, KEY)
    for chunk in iter_table_chunks(path, source.columns, declare=source.declare):
        buckets.add(chunk)
    return buckets


def _valid_ids_by_bucket(sites: TableFile | None, n_buckets: int) -> list[pa.Array]:
    parts = [[] for _ in range(n_buckets)]
    for batch in sites.batches([KEY]) if sites is not None else []:
        ids = batch.column(KEY)
        buckets = bucket_of(ids, n_buckets)
        for i in np.unique(buckets):
            parts[i].append(ids.filter(pa.array(buckets == i)))
    return [pa.concat_arrays(part).cast(pa.string()) if part else pa.array([], pa.string()) for part in parts]


def site_stocks(site_ids: pd.Series, horizons: pd.DataFrame, horizon_rejects: pd.DataFrame) -> pd.DataFrame:
    """Topsoil stock per valid site; a site with a quarantined horizon in 0-30 cm (or of unknown depth) gets none."""
    bd_max = load_table_contract("field_horizons").column("bulk_density_g_per_cm3").plausible_maximum
    stocks = topsoil_stocks(site_ids, horizons, TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM, bd_plausible_max_g_per_cm3=bd_max)
    return flag_quarantined_horizons(stocks, blocking_sites(horizon_rejects, TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM))


@dataclass
class DropValidation:
    sites: StreamValidation
    horizons: StreamValidation
    sites_with_stock: int
    # valid sites without a 0-30 cm stock, by exclusion reason
    stock_exclusions: Counter = field(default_factory=Counter)
    # the drop's plausibility checks (drop_evidence): a failed, unconfirmed one refuses the drop
    evidence: list[Finding] = field(default_factory=list)


def validate_drop(
    paths: dict[str, Path],
    contracts: dict[str, TableContract],
    folder: Path,
    land: LandMask | None = None,
    regions: Regions | None = None,
    bucket_bytes: int = BUCKET_BYTES,
    plans: dict[str, TablePlan] | None = None,
) -> DropValidation:
    """Validate a drop's sites, then its horizons (a horizon must belong to a valid site), bucket by bucket (about
    `bucket_bytes` of source text each), count the sites that get a 0-30 cm stock (for the drop-level gate) and judge
    the drop's plausibility as a whole (`drop_evidence`: coordinates against `land` and `regions`, depth and SOC
    units, field stocks against the stock layer of `land`).

    `plans` are the drop declaration's plans per table (`contracts.declaration.plan_table`), applied to every chunk
    as it is read; without them the files are read by the contracts' physical names."""
    sources = {name: TableSource.of(contract, (plans or {}).get(name)) for name, contract in contracts.items()}
    sites_contract, horizons_contract = contracts["field_sites"], contracts["field_horizons"]
    tally = EvidenceTally()
    n_sites = bucket_count(paths["field_sites"].stat().st_size, bucket_bytes)
    buckets = read_in_buckets(paths["field_sites"], sources["field_sites"], folder / "sites_in", n_sites)
    sites = validate_buckets(
        buckets.frames(),
        sites_contract,
        folder / "sites",
        land=land,
        regions=regions,
        on_bucket=lambda _, validation: tally.add_sites(validation),
        empty=sources["field_sites"].empty(paths["field_sites"]),
        attrs={DECLARED_CONVERSIONS: sources["field_sites"].conversions},
    )

    n_horizons = bucket_count(paths["field_horizons"].stat().st_size, bucket_bytes)
    buckets = read_in_buckets(paths["field_horizons"], sources["field_horizons"], folder / "horizons_in", n_horizons)
    ids = _valid_ids_by_bucket(sites.valid, n_horizons)
    site_key = horizons_contract.column(KEY).foreign_key
    with_stock, exclusions, counted = [0], Counter(), set()

    def count_stocks(i: int, validation: Validation) -> None:
        if not len(ids[i]):
            tally.add_horizons(validation, None)
            return  # no valid site in this bucket, so no stock (and pandas cannot join two empty arrow columns)
        site_ids = ids[i].cast(pa.large_string()).to_pandas(types_mapper=text_types)
        stocks = site_stocks(site_ids, validation.valid, validation.rejects)
        tally.add_horizons(validation, stocks)
        has_stock = stocks["topsoil_soc_stock_t_c_per_ha"].notna()
        with_stock[0] += int(has_stock.sum())
        exclusions.update(stocks.loc[~has_stock, "exclusion_reason"].value_counts().to_dict())
        counted.add(i)

    horizons = validate_buckets(
        buckets.frames(),
        horizons_contract,
        folder / "horizons",
        foreign_values=lambda i: {site_key: ids[i]},
        on_bucket=count_stocks,
        empty=sources["field_horizons"].empty(paths["field_horizons"]),
        attrs={DECLARED_CONVERSIONS: sources["field_horizons"].conversions},
    )
    # valid sites in a bucket without any horizon row
    exclusions["no_horizons"] += sum(len(ids[i]) for i in range(n_horizons) if i not in counted)
    evidence = judge(tally, sites, land, regions, plans)
    evidence += confirmed_guards(horizons, (plans or {}).get("field_horizons"))
    return DropValidation(sites, horizons, with_stock[0], +exclusions, evidence)


def site_references(countries: pd.DataFrame, soc_stock_2010: RasterSource) -> tuple[LandMask, Regions]:
    """What every field site is checked against, by `field_drop` and `soil-pipeline check-drop` alike: land is where
    the WHRC 2010 SOC stock has a value (`HasValue` of its contract's no-data value: NaN on the pipeline's grid, that
    value in the raw file), regions are the countries' polygons (`countries` in the layout of
    `readers.read_countries`, the `countries` asset)."""
    nodata = load_raster_contract("soc_stock_2010_raster").nodata
    land = LandMask(soc_stock_2010, LAND_MASK_NAME, HasValue(nodata))
    return land, Regions(shapely.from_wkb(countries["geometry_wkb"]), countries["adm0_a3"].to_numpy(dtype=object))


def place_sites(
    table: pd.DataFrame, countries: pd.DataFrame, climate_zones: RasterSource, polygons: PointAssigner
) -> pd.DataFrame:
    """Country (Natural Earth ADM0_A3, with how it was assigned) and IPCC climate zone of each site (0 off the
    grid); only the climate-zone blocks holding sites are read."""
    lon = table["longitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    lat = table["latitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    index, method = polygons(lon, lat, COUNTRY_NEAREST_MAX_DEG)
    codes = countries["adm0_a3"].to_numpy(dtype=object)
    table["country_adm0_a3"] = pd.Series(np.where(index == NO_REGION, None, codes[index]), dtype="str")
    table["country_assignment"] = pd.Series(method, dtype="str")
    table["climate_zone_code"] = sample_points(climate_zones, lon, lat, 0).astype("int64")
    return table


def _spill(table: TableFile, folder: Path, n_buckets: int, columns: list[str] | None = None) -> Buckets:
    buckets = Buckets(folder, n_buckets, KEY)
    for batch in table.batches(columns):
        buckets.add(pa.Table.from_batches([batch]))
    return buckets


def _frame(buckets: Buckets, i: int, like: TableFile, columns: list[str] | None = None) -> pd.DataFrame:
    frame = buckets.read(i)
    if frame is None:
        frame = like.schema.empty_table().to_pandas()
    return frame[columns] if columns else frame


def topsoil_table(
    sites: TableFile,
    horizons: TableFile,
    horizon_rejects: TableFile,
    countries: pd.DataFrame,
    climate_zone_grid: Layer,
    folder: Path,
    bucket_rows: int = STOCK_BUCKET_ROWS,
) -> tuple[TableFile, StreamValidation]:
    """The topsoil stock table (one row per valid site, sorted by site id) and its check against the
    topsoil_soc_stocks contract, computed one bucket of sites (about `bucket_rows` horizons) at a time with all
    their horizons and rejects."""
    n_buckets = max(1, math.ceil(horizons.num_rows / bucket_rows))
    site_columns = [KEY, "longitude_deg", "latitude_deg"]
    spilled = {
        "sites": _spill(sites, folder / "sites", n_buckets, site_columns),
        "horizons": _spill(horizons, folder / "horizons", n_buckets, STOCK_HORIZON_COLUMNS),
        "rejects": _spill(horizon_rejects, folder / "rejects", n_buckets, STOCK_REJECT_COLUMNS),
    }
    polygons = PointAssigner(shapely.from_wkb(countries["geometry_wkb"]))
    climate_zones = stored(climate_zone_grid).source("climate_zone", fill=0)

    # buckets without a site have no row to compute (and pandas cannot join two empty arrow columns)
    with_sites = [i for i in range(n_buckets) if spilled["sites"].holds(i)] or [0]

    def tables():
        for i in with_sites:
            site_rows = _frame(spilled["sites"], i, sites, site_columns)
            stocks = site_stocks(
                site_rows[KEY],
                _frame(spilled["horizons"], i, horizons, STOCK_HORIZON_COLUMNS),
                _frame(spilled["rejects"], i, horizon_rejects, STOCK_REJECT_COLUMNS),
            )
            table = site_rows.drop_duplicates(KEY).merge(stocks, on=KEY, how="right", validate="one_to_one")
            yield i, place_sites(table, countries, climate_zones, polygons)

    parts = folder / "stocks.part.parquet"
    contract = load_table_contract("topsoil_soc_stocks")
    validation = validate_buckets(_written(tables(), parts), contract, folder / "check", keep_valid=False)
    target = folder / "topsoil_soc_stocks.parquet"
    sort_parquet(parts, target, [KEY], TableFile(str(parts)).schema)
    parts.unlink()
    return TableFile(str(target)), validation


def _written(tables, path: Path):
    """Pass each (bucket, table) on after appending the table to the Parquet file `path`."""
    writer, schema = None, None
    try:
        for i, table in tables:
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            if writer is None:
                schema = arrow.schema
                writer = pq.ParquetWriter(path, schema, compression="lz4")
            writer.write_table(arrow.cast(schema))
            yield i, table
    finally:
        if writer is not None:
            writer.close()
