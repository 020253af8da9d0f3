"""Ingest of one field-sample drop in bounded memory, without Dagster: what the field assets (and the ingest
benchmark) call.

Each landing file is read in chunks (`readers.iter_table_chunks`) and its rows spilled into buckets by site id, so
one bucket holds every row a cross-row rule compares (identical copies, unique ids, unique site and depth) and
every horizon of its sites. Sites, then horizons, are validated bucket by bucket (`contracts.stream`); the topsoil
stock is computed per bucket of sites with all their horizons. Peak memory is about one bucket, whatever the
size of the drop; outputs are Arrow IPC files written batch by batch and sorted out of core.
"""

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from soil_pipeline.contracts.declaration import TablePlan, apply_declaration
from soil_pipeline.contracts.model import TableContract, load_raster_contract, load_table_contract
from soil_pipeline.contracts.stream import (
    BUCKET_BYTES,
    Buckets,
    BucketValidator,
    SpillWriter,
    StreamValidation,
    bucket_count,
    bucket_of,
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
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG, NO_REGION
from soil_pipeline.science.stocks import (
    blocking_sites,
    flag_quarantined_horizons,
    text_array,
    text_series,
    topsoil_stocks,
)

KEY = "site_id"
TOPSOIL_TOP_CM = 0.0
TOPSOIL_BOTTOM_CM = 30.0
STOCK_REJECT_COLUMNS = [KEY, "upper_depth_cm", "lower_depth_cm"]
# The horizon columns `topsoil_stocks` reads (of a bucket without horizon rows: an empty frame of them).
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
    horizons = horizons[STOCK_HORIZON_COLUMNS]  # only what the stock reads: the other columns are not copied along
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
    # the topsoil stock table (one row per valid site, sorted by site id) and its contract check, when asked for
    stocks: TableFile | None = None
    stocks_check: StreamValidation | None = None


@dataclass(frozen=True)
class Placement:
    """What places each site for the stock table: the countries (`Regions` of Natural Earth ADM0_A3 polygons, as
    `site_references` makes them) and the IPCC climate zones on the common grid."""

    countries: Regions
    climate_zones: RasterSource

    @classmethod
    def of(cls, countries: Regions, climate_zone_grid: Layer) -> "Placement":
        return cls(countries, stored(climate_zone_grid).source("climate_zone", fill=0))


def validate_drop(
    paths: dict[str, Path],
    contracts: dict[str, TableContract],
    folder: Path,
    land: LandMask | None = None,
    regions: Regions | None = None,
    bucket_bytes: int = BUCKET_BYTES,
    plans: dict[str, TablePlan] | None = None,
    placement: Placement | None = None,
) -> DropValidation:
    """Validate a drop's sites, then its horizons (a horizon must belong to a valid site), bucket by bucket (about
    `bucket_bytes` of source text each), count the sites that get a 0-30 cm stock (for the drop-level gate) and judge
    the drop's plausibility as a whole (`drop_evidence`: coordinates against `land` and `regions`, depth and SOC
    units, field stocks against the stock layer of `land`).

    `plans` are the drop declaration's plans per table (`contracts.declaration.plan_table`), applied to every chunk
    as it is read; without them the files are read by the contracts' physical names. With a `placement`, the
    topsoil stock table is written from the same buckets as their horizons are validated (`StockTable`), so the
    drop is read once."""
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
    table = StockTable(sites.valid, placement, folder / "stocks", n_horizons) if placement else None

    def site_ids(i: int) -> pd.Series:
        return ids[i].cast(pa.large_string()).to_pandas(types_mapper=text_types)

    def count_stocks(i: int, validation: Validation) -> None:
        if not len(ids[i]):
            tally.add_horizons(validation, None)
            return  # no valid site in this bucket, so no stock (and pandas cannot join two empty arrow columns)
        stocks = site_stocks(site_ids(i), validation.valid, validation.rejects)
        tally.add_horizons(validation, stocks)
        has_stock = stocks["topsoil_soc_stock_t_c_per_ha"].notna()
        with_stock[0] += int(has_stock.sum())
        exclusions.update(stocks.loc[~has_stock, "exclusion_reason"].value_counts().to_dict())
        counted.add(i)
        if table:
            table.add(i, stocks)

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
    uncounted = [i for i in range(n_horizons) if i not in counted and len(ids[i])]
    exclusions["no_horizons"] += sum(len(ids[i]) for i in uncounted)
    evidence = judge(tally, sites, land, regions, plans)
    evidence += confirmed_guards(horizons, (plans or {}).get("field_horizons"))
    drop = DropValidation(sites, horizons, with_stock[0], +exclusions, evidence)
    if table:
        no_horizons = pd.DataFrame({column: pd.Series(dtype="float64") for column in STOCK_HORIZON_COLUMNS})
        no_horizons = no_horizons.astype({KEY: "str"})
        for i in uncounted:
            table.add(i, site_stocks(site_ids(i), no_horizons, no_horizons[STOCK_REJECT_COLUMNS]))
        drop.stocks, drop.stocks_check = table.finish()
    return drop


def site_references(countries: pd.DataFrame, soc_stock_2010: RasterSource) -> tuple[LandMask, Regions]:
    """What every field site is checked against, by `field_drop` and `soil-pipeline check-drop` alike: land is where
    the WHRC 2010 SOC stock has a value (`HasValue` of its contract's no-data value: NaN on the pipeline's grid, that
    value in the raw file), regions are the countries' polygons (`countries` in the layout of
    `readers.read_countries`, the `countries` asset)."""
    nodata = load_raster_contract("soc_stock_2010_raster").nodata
    land = LandMask(soc_stock_2010, LAND_MASK_NAME, HasValue(nodata))
    return land, Regions(shapely.from_wkb(countries["geometry_wkb"]), countries["adm0_a3"].to_numpy(dtype=object))


def place_sites(table: pd.DataFrame, placement: Placement) -> pd.DataFrame:
    """Country (Natural Earth ADM0_A3, with how it was assigned) and IPCC climate zone of each site (0 off the
    grid); only the climate-zone blocks holding sites are read."""
    lon = table["longitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    lat = table["latitude_deg"].to_numpy(dtype=float, na_value=np.nan)
    index, method = placement.countries.assigner(lon, lat, COUNTRY_NEAREST_MAX_DEG)
    codes = pa.array(placement.countries.codes, pa.string(), from_pandas=True)
    table["country_adm0_a3"] = text_series(codes.take(pa.array(index, mask=index == NO_REGION)))
    table["country_assignment"] = text_series(pa.array(method, pa.string()))
    table["climate_zone_code"] = sample_points(placement.climate_zones, lon, lat, 0).astype("int64")
    return table


def _with_coordinates(stocks: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """`stocks` with each site's longitude and latitude from its first row in `sites` (NaN for a site not there)
    after the site id, as a right merge on the site id gives them."""
    at = pc.index_in(text_array(stocks[KEY]), value_set=text_array(sites[KEY]))
    at = at.to_numpy(zero_copy_only=False)  # float: NaN where not found
    found = ~np.isnan(at)
    rows = np.where(found, at, 0).astype(np.intp)
    table = stocks.reset_index(drop=True)
    for position, column in enumerate(("longitude_deg", "latitude_deg"), start=1):
        values = sites[column].to_numpy(dtype=float, na_value=np.nan)
        table.insert(position, column, np.where(found, values[rows], np.nan))
    return table


class StockTable:
    """The topsoil stock table written bucket by bucket as the drop's horizons are validated: each bucket's stocks
    joined to its sites' coordinates (spilled from the valid sites by the horizons' buckets), placed in country and
    climate zone, appended to Arrow IPC and checked against the topsoil_soc_stocks contract; sorted by site id at
    the end."""

    SITE_COLUMNS = [KEY, "longitude_deg", "latitude_deg"]

    def __init__(self, sites: TableFile | None, placement: Placement, folder: Path, n_buckets: int):
        self.placement, self.folder = placement, folder
        self.sites = Buckets(folder / "sites", n_buckets, KEY)
        for batch in sites.batches(self.SITE_COLUMNS) if sites is not None else []:
            self.sites.add(pa.Table.from_batches([batch]))
        self.parts = SpillWriter(folder / "stocks.part.arrow")
        contract = load_table_contract("topsoil_soc_stocks")
        self.check = BucketValidator(contract, folder / "check", keep_valid=False)

    def add(self, i: int, stocks: pd.DataFrame) -> None:
        """The stock rows of bucket `i` (`site_stocks` of all its valid sites)."""
        table = place_sites(_with_coordinates(stocks, self.sites.read(i)), self.placement)
        self.parts.write(table)
        self.check.add(i, table)

    def finish(self) -> tuple[TableFile, StreamValidation]:
        validation = self.check.finish()
        return self.parts.sorted_file(self.folder / "topsoil_soc_stocks.arrow", [KEY]), validation
