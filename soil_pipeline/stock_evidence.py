"""A stock raster judged by the field: its 0-30 cm stock at the cells of the field sites accumulated over every
published drop, against their field stocks (`science.plausibility.field_stock_verdict`). A unit slip a raster's own
value checks let through (a confirmed median, a regional raster whose median is plausible in either unit) moves the
median ratio by the unit's factor, which no real map and survey show: the raster is refused naming the unit its
values look like, unless its declaration confirms `fieldStocks`.

The accumulated stocks are those of the latest committed `field_site_history` on the output root: one
representative observation per distinct site (`science.sites`). They come from earlier runs, since a grid is built
before the run's own drop is read; the drop's own stocks are judged against the map by `drop_evidence`. No Dagster.
"""

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from soil_pipeline.contracts.raster_declaration import unit_mixup
from soil_pipeline.engine.points import sample_points
from soil_pipeline.engine.raster import RasterSource
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.science.plausibility import field_stock_verdict
from soil_pipeline.science.sites import STOCK, site_stocks

HISTORY = "field_site_history"
RULE = "fieldStocks"


def accumulated_field_stocks(output_root: str) -> tuple[pd.DataFrame, str | None]:
    """(longitude_deg, latitude_deg and field stock of every distinct site with a stock in the latest committed
    history, the history's version); empty, None before any drop was published."""
    store = VersionedParquetStore(output_root)
    version = store.latest(HISTORY)
    if version is None:
        return pd.DataFrame(columns=["longitude_deg", "latitude_deg", STOCK]), None
    sites = site_stocks(store.read(HISTORY, version))
    return sites[["longitude_deg", "latitude_deg", STOCK]], version


@dataclass(frozen=True)
class FieldStockCheck:
    """The outcome: `failures` [(rule, detail)] for the raster check's confirmations, `record` for metadata and
    provenance."""

    failures: list = field(default_factory=list)
    record: dict = field(default_factory=dict)


def field_stock_check(
    source: RasterSource, raster: str, output_root: str, contract_unit: str, declared_unit: str | None
) -> FieldStockCheck:
    """`raster` (its checked engine input `source`, in the contract's unit) at the accumulated field sites."""
    sites, version = accumulated_field_stocks(output_root)
    lon, lat = (sites[c].to_numpy(dtype="float64") for c in ("longitude_deg", "latitude_deg"))
    values = sample_points(replace(source, dtype="float32", fill=np.nan), lon, lat, np.nan).astype("float64")
    stock = sites[STOCK].to_numpy(dtype="float64")
    keep = np.isfinite(values) & (values > 0) & (stock > 0)
    median = float(np.median(values[keep] / stock[keep])) if keep.any() else float("nan")
    verdict = field_stock_verdict(int(keep.sum()), median, raster)
    record = {"field_site_history_version": version, "sites_with_a_value": int(keep.sum())}
    if verdict is None:
        return FieldStockCheck([], record | {"outcome": "not checked: fewer than 30 accumulated sites on the raster"})
    record |= {"outcome": "passed" if verdict.passed else "failed", "evidence": verdict.text, **verdict.figures}
    if verdict.passed:
        return FieldStockCheck([], record)
    hint = "; likely cause: the raster's unit, or a raster of another depth or quantity than a 0-30 cm stock"
    if (mixup := unit_mixup(median, contract_unit, declared_unit)) is not None:
        unit, factor = mixup
        read_as = declared_unit or contract_unit
        hint = (
            f"; likely cause: the raster's unit: the values look like {unit}, not {read_as} as declared (x {factor:g} "
            f"the ratio would be {median * factor:.3g}): declare unit: {unit}"
        )
    return FieldStockCheck([(RULE, verdict.text + hint)], record)
