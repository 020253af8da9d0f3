"""The embedded Africa Soil Profiles drop split into monthly drops by sampling date, as a survey delivered over
the years would arrive: for the multi-drop tests and docs/field_validation_drops.py."""

import shutil
from pathlib import Path

import pandas as pd

from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.resources import InputDatasets

SITES, HORIZONS = "afsp_sites.csv", "afsp_horizons.csv"


def embedded_drop() -> Path:
    return InputDatasets().drop_dir(EMBEDDED_DROP_PARTITION)


def split_by_sampling_date(landing: Path, drops: dict[str, str | None]) -> dict[str, int]:
    """Write one drop folder per key of `drops` ({YYYY-MM: first sampling date of the next drop, None for the
    last}, in order) under `landing/field_samples/`: each holds the embedded sites sampled before its bound and not
    in an earlier drop (undated sites go to the first), with all their horizons, the files' text as it is. Returns
    the sites per drop."""
    source = embedded_drop()
    sites = pd.read_csv(source / SITES, dtype="str", keep_default_na=False)
    horizons = pd.read_csv(source / HORIZONS, dtype="str", keep_default_na=False)
    dates = pd.to_datetime(sites["TIMESTRR"].replace("", None))
    placed = pd.Series(False, index=sites.index)
    counts = {}
    for i, (key, bound) in enumerate(drops.items()):
        mine = ~placed & ((dates < pd.Timestamp(bound)) if bound else True)
        if i == 0:
            mine |= dates.isna()
        placed |= mine
        write_drop(landing, key, sites[mine], horizons[horizons["SOURCEID"].isin(sites.loc[mine, "SOURCEID"])])
        counts[key] = int(mine.sum())
    return counts


def write_drop(landing: Path, key: str, sites: pd.DataFrame, horizons: pd.DataFrame) -> Path:
    folder = landing / "field_samples" / key
    folder.mkdir(parents=True, exist_ok=True)
    sites.to_csv(folder / SITES, index=False)
    horizons.to_csv(folder / HORIZONS, index=False)
    return folder


def copy_drop(landing: Path, key: str, new_key: str) -> Path:
    """The drop `key` delivered again, unchanged, as drop `new_key`."""
    folder = landing / "field_samples" / new_key
    shutil.copytree(landing / "field_samples" / key, folder)
    return folder
