"""Bounded-memory ingest: a drop validated in buckets of sites, and its stocks computed bucket by bucket, give
exactly what the whole-table validation and stock computation give (embedded AfSP drop, real data)."""

from pathlib import Path

import pandas as pd
import pytest
import shapely

from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.contracts.validate import Regions, validate
from soil_pipeline.ingest import Placement, site_stocks, validate_drop
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.publishing.grids import layer_from_geotiff
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.readers import iter_table_chunks, read_table_file
from soil_pipeline.resources import InputDatasets

DROP = Path(InputDatasets().drop_dir(EMBEDDED_DROP_PARTITION))
PATHS = {"field_sites": DROP / "afsp_sites.csv", "field_horizons": DROP / "afsp_horizons.csv"}
CONTRACTS = {name: load_table_contract(name) for name in PATHS}


@pytest.fixture(scope="module")
def whole():
    """Sites and horizons validated as whole tables (what a drop small enough for one bucket gets)."""
    sites = validate(
        read_table_file(PATHS["field_sites"], CONTRACTS["field_sites"].source_columns()), CONTRACTS["field_sites"]
    )
    foreign = {"field_sites.site_id": set(sites.valid["site_id"])}
    columns = CONTRACTS["field_horizons"].source_columns()
    horizons = validate(read_table_file(PATHS["field_horizons"], columns), CONTRACTS["field_horizons"], foreign)
    return sites, horizons


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory):
    """The same drop in buckets of 1 MB of source text (1 site bucket, 5 horizon buckets)."""
    folder = tmp_path_factory.mktemp("bucketed")
    return validate_drop(PATHS, CONTRACTS, folder, bucket_bytes=1 << 20), folder


def test_bucketed_validation_equals_whole_table_validation(whole, bucketed):
    drop, _ = bucketed
    for old, new in zip(whole, (drop.sites, drop.horizons), strict=True):
        pd.testing.assert_frame_equal(new.valid.to_pandas(), old.valid)
        pd.testing.assert_frame_equal(new.rejects.to_pandas(), old.rejects)
        assert new.failures_by_rule() == old.failures_by_rule()
        assert (new.n_checked, new.rows_rejected(), new.batch_errors) == (old.n_checked, old.rows_rejected(), [])
    assert "first of 5 buckets" in drop.horizons.gx_sample_note
    stocks = site_stocks(whole[0].valid["site_id"], whole[1].valid, whole[1].rejects)
    assert drop.sites_with_stock == stocks["topsoil_soc_stock_t_c_per_ha"].notna().sum() == 19104
    excluded = stocks["topsoil_soc_stock_t_c_per_ha"].isna()
    assert drop.stock_exclusions == stocks.loc[excluded, "exclusion_reason"].value_counts().to_dict()


@pytest.fixture(scope="module")
def placement(embedded_run):
    """Countries and climate zones as the embedded run made them."""
    store = VersionedParquetStore(str(embedded_run[1]))
    zones = layer_from_geotiff(store.read_intermediate("none", "climate_zone_grid", None)[1])
    countries = store.read("countries")
    regions = Regions(shapely.from_wkb(countries["geometry_wkb"]), countries["adm0_a3"].to_numpy(dtype=object))
    return Placement.of(regions, zones)


def test_bucketed_stocks_equal_the_published_stocks(embedded_run, placement, tmp_path):
    """Stocks computed as the drop's horizons are validated in 5 buckets equal what the pipeline published for the
    embedded drop (one bucket), and pass their contract."""
    drop = validate_drop(PATHS, CONTRACTS, tmp_path, bucket_bytes=1 << 20, placement=placement)
    assert drop.stocks_check.passed and drop.stocks_check.n_checked == drop.sites.n_valid
    published = VersionedParquetStore(str(embedded_run[1])).read(
        "topsoil_soc_stocks", partition=EMBEDDED_DROP_PARTITION
    )
    pd.testing.assert_frame_equal(drop.stocks.to_pandas(), published)


def test_sites_in_buckets_without_a_horizon_still_get_their_stock_row(placement, tmp_path):
    """100 sites, the horizons of 3 of them, in buckets of 100 bytes: most horizon buckets hold valid sites and no
    horizon, and each of those sites still gets its row, excluded as `no_horizons`, as the drop-level count says."""
    sites = PATHS["field_sites"].read_text().splitlines(keepends=True)[:101]
    horizons = PATHS["field_horizons"].read_text().splitlines(keepends=True)
    measured = {line.split(",", 1)[0] for line in sites[1:4]}
    paths = {name: tmp_path / f"{name}.csv" for name in PATHS}
    paths["field_sites"].write_text("".join(sites))
    paths["field_horizons"].write_text("".join(horizons[:1] + [h for h in horizons if h.split(",", 1)[0] in measured]))
    drop = validate_drop(paths, CONTRACTS, tmp_path / "work", bucket_bytes=100, placement=placement)
    table = drop.stocks.to_pandas()
    assert len(table) == drop.sites.n_valid == 100 and table["site_id"].is_monotonic_increasing
    without = table[~table["site_id"].isin(measured)]
    assert (without["exclusion_reason"] == "no_horizons").all()
    assert len(without) == drop.stock_exclusions["no_horizons"] == 97
    assert table.loc[table["site_id"].isin(measured), "exclusion_reason"].ne("no_horizons").all()


def test_chunks_keep_physical_source_lines(tmp_path):
    """Chunks of a few hundred bytes split a file whose quoted cells span lines: lines stay physical."""
    path = tmp_path / "sites.csv"
    rows = [f'S{i},"db\n{i}",{i % 90}.5,1.0,2012-10-02' for i in range(50)]
    path.write_text("SOURCEID,SOURCEDB,LONWGS84,LATWGS84,TIMESTRR\n" + "\n".join(rows) + "\n")
    columns = CONTRACTS["field_sites"].source_columns()
    chunks = list(iter_table_chunks(path, columns, chunk_bytes=256))
    assert len(chunks) > 3
    frame = pd.concat(chunks, ignore_index=True)
    assert frame["source_line"].tolist() == [2 + 2 * i for i in range(50)]
    assert frame["site_id"].tolist() == [f"S{i}" for i in range(50)]
