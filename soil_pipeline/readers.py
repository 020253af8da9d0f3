"""Readers for landing files and global datasets: file formats in, canonical column names and arrays out."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from affine import Affine


class InputError(ValueError):
    """A dataset-level problem with an input file: the message names the file and the rule broken."""


def find_drop_file(drop_dir: Path, table: str) -> Path:
    """The single `*<table>.csv` or `*<table>.parquet` file of a monthly drop folder."""
    if not drop_dir.is_dir():
        raise InputError(f"{drop_dir}: no field-sample drop folder for this partition")
    matches = sorted(p for p in drop_dir.iterdir() if p.suffix in {".csv", ".parquet"} and p.stem.endswith(table))
    if len(matches) != 1:
        raise InputError(
            f"{drop_dir}: expected exactly one *{table}.csv or *{table}.parquet file, found {len(matches)}"
        )
    return matches[0]


def _first_bad_byte(path: Path) -> str:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return f"byte 0x{data[error.start]:02x} at line {line}: {error.reason}"
    return "undecodable text"


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, encoding="utf-8", low_memory=False)
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({_first_bad_byte(path)})") from error
    except pd.errors.EmptyDataError as error:
        raise InputError(f"{path}: empty file, no header line") from error
    except pd.errors.ParserError as error:
        raise InputError(f"{path}: malformed CSV ({error})") from error
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: unreadable table ({error})") from error


def read_table_file(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """A CSV (UTF-8, comma-separated) or Parquet table renamed to canonical names, with source file and line."""
    frame = _read_frame(path)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        hint = (
            " (the header has one column with ';' in it: is the delimiter not a comma?)"
            if (len(frame.columns) == 1 and ";" in str(frame.columns[0]))
            else ""
        )
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}{hint}")
    frame = frame[list(columns)].rename(columns=columns)
    frame["source_file"] = path.name
    first_data_line = 2 if path.suffix == ".csv" else 1
    frame["source_line"] = np.arange(first_data_line, first_data_line + len(frame), dtype="int64")
    return frame


@dataclass
class RasterBand:
    data: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None
    path: str
    band_count: int = 1
    scale: float = 1.0
    offset: float = 0.0


def read_raster(path: str) -> RasterBand:
    """Band 1 of any GDAL-readable raster (path or URL) with the grid facts its contract is checked against."""
    try:
        with rasterio.open(path) as src:
            return RasterBand(
                data=src.read(1),
                transform=src.transform,
                crs=src.crs.to_string() if src.crs else "",
                nodata=src.nodata,
                path=str(path),
                band_count=src.count,
                scale=src.scales[0],
                offset=src.offsets[0],
            )
    except rasterio.errors.RasterioError as error:
        raise InputError(f"{path}: unreadable raster ({error})") from error
