"""The pipeline's regional aggregation on a real dask.distributed cluster (2 worker processes) gives the same sums,
bit for bit, as local threads, and the same table as the published regional_soc_stocks."""

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from soil_pipeline.assets.regional import CELL_QUANTITIES
from soil_pipeline.engine import raster as engine
from soil_pipeline.engine.zonal import sums_table, zonal_statistics
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.reference_data import factor
from soil_pipeline.science.aggregation import regional_cell_quantities, regional_table_from_sums
from soil_pipeline.zones import STOCK_REGION_TYPES, zoner


def _sources(intermediate) -> dict[str, engine.RasterSource]:
    def source(name, **kwargs):
        return engine.RasterSource(str(intermediate / f"{name}.tif"), name=name, **kwargs)

    return {
        "soc_stock": source("soc_stock_grid", bands=(1, 2)),
        "cropland": source("cropland_grid"),
        "climate_zone": source("climate_zone_grid", dtype="int16", fill=0),
        "country": source("country_grid", dtype="int32", fill=-1),
    }


@pytest.fixture(scope="module")
def dask_client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield client


def test_regional_aggregation_on_a_local_cluster_equals_the_local_run(embedded_run, dask_client):
    _, root = embedded_run
    intermediate = next((root / "_runs").glob("*/intermediate"))
    store = VersionedParquetStore(str(root))
    countries = store.read("countries", store.latest_by_partition("countries")[None])
    zone_of, tables, sizes = zoner(countries)
    grid = engine.GridConfig().spec()
    args = (_sources(intermediate), grid, regional_cell_quantities, zone_of, sizes)
    local, local_report, _ = zonal_statistics(*args, window_cells=1_000_000)
    remote, remote_report, _ = zonal_statistics(*args, executor=dask_client, window_cells=1_000_000)
    assert len(dask_client.scheduler_info()["workers"]) == 2
    assert remote_report.windows == local_report.windows > 4
    assert remote.keys() == local.keys()
    for key, values in local.items():
        np.testing.assert_array_equal(remote[key], values, err_msg=key)
    published = store.read("regional_soc_stocks", store.latest_by_partition("regional_soc_stocks")[None])
    rate = factor("four_per_1000", "annual_rate")
    table = pd.concat(
        [regional_table_from_sums(sums_table(remote, k, tables[k], CELL_QUANTITIES), rate) for k in STOCK_REGION_TYPES],
        ignore_index=True,
    )
    for column in ("soc_stock_2010_pg_c", "cropland_area_mha", "target_4p1000_tg_c_per_yr"):
        np.testing.assert_allclose(table[column], published[column], rtol=1e-12, err_msg=column)
