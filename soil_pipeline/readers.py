"""Readers for landing files and global datasets: file formats in, canonical column names and arrays out.

Landing tables are read as text, verbatim: types come from the contracts (`contracts.validate.coerce`), never from
guessing, so `000001` stays `000001` and one blank id cannot turn an id column into floats. CSV files are parsed
by pyarrow in blocks (quoted cells may span lines); each record keeps the physical line its first line is on.
"""

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import rasterio
from affine import Affine

TABLE_SUFFIXES = {".csv", ".parquet"}
DROP_FOLDER_PATTERN = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
DROP_FOLDER_FORM = "YYYY-MM, e.g. 2012-10"
CSV_BLOCK_BYTES = 16 << 20
LINE_SCAN_BYTES = 64 << 20


class InputError(ValueError):
    """A dataset-level problem with an input file: the message names the file and the rule broken."""


def _inside(path: Path, folder: Path) -> Path:
    """The resolved path of a drop file; a symlink resolving outside the landing folder is refused."""
    resolved = path.resolve()
    if path.is_symlink() and not resolved.is_relative_to(folder.resolve()):
        raise InputError(
            f"{path}: symlink to {resolved}, outside the landing folder {folder}; "
            "copy the file into the drop instead of linking it"
        )
    return resolved


def find_drop_file(drop_dir: Path, table: str, landing_dir: Path | None = None) -> Path:
    """The single `*<table>.csv` or `*<table>.parquet` file of a monthly drop folder, resolved.

    Symlinks (the file or the drop folder) are followed only when they resolve inside `landing_dir`.
    """
    landing_dir = landing_dir or drop_dir.parent.parent
    if not drop_dir.is_dir():
        raise InputError(f"{drop_dir}: no field-sample drop folder for this partition")
    _inside(drop_dir, landing_dir)
    matches = sorted(p for p in drop_dir.iterdir() if p.suffix in TABLE_SUFFIXES and p.stem.endswith(table))
    if len(matches) != 1:
        raise InputError(
            f"{drop_dir}: expected exactly one *{table}.csv or *{table}.parquet file, found {len(matches)}"
        )
    return _inside(matches[0], landing_dir)


def drop_folders(landing_dir: Path) -> tuple[list[str], list[str]]:
    """(folders named like a monthly partition, other folders) under `<landing>/field_samples/`, sorted."""
    folder = Path(landing_dir) / "field_samples"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    valid = [name for name in names if DROP_FOLDER_PATTERN.fullmatch(name)]
    return valid, [name for name in names if name not in valid]


def _first_bad_byte(path: Path) -> str:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return f"byte 0x{data[error.start]:02x} at line {line}: {error.reason}"
    return "undecodable text"


def _csv_header(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputError(f"{path}: empty file, no header line")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({_first_bad_byte(path)})") from error
    return next(csv.reader(io.StringIO(text)))


def check_header(path: Path, header: list[str], columns: dict[str, str]) -> None:
    """Every contract column present once; no two names equal up to case and surrounding whitespace."""
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().casefold()
        if key in seen:
            same = "duplicate column name" if seen[key] == name else "column names differ only by case or whitespace"
            raise InputError(f"{path}: {same}: {seen[key]!r} and {name!r} (rename or remove one)")
        seen[key] = name
    missing = [name for name in columns if name not in header]
    if missing:
        hint = (
            " (the header has one column with ';' in it: is the delimiter not a comma?)"
            if (len(header) == 1 and ";" in header[0])
            else ""
        )
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}{hint}")


def record_lines(path: Path) -> np.ndarray:
    """Physical line (1-based) of the first line of every non-empty record, header included.

    Newlines inside double quotes do not end a record (RFC 4180: an escaped quote `""` toggles twice). The file is
    scanned in blocks, so memory stays bounded by the block size plus 8 bytes per record.
    """
    starts, in_quote, line, at_record_start = [], False, 1, True
    with open(path, "rb") as handle:
        while block := handle.read(LINE_SCAN_BYTES):
            block += handle.readline()  # blocks end at a line end, so a "\r\n" is never split
            data = np.frombuffer(block, dtype=np.uint8)
            newlines = np.flatnonzero(data == ord("\n"))
            quotes = np.flatnonzero(data == ord('"'))
            outside = (np.searchsorted(quotes, newlines) + in_quote) % 2 == 0
            position = np.concatenate(([0] if at_record_start else [], newlines[outside] + 1)).astype(np.int64)
            first_line = np.concatenate(([line] if at_record_start else [], line + 1 + np.flatnonzero(outside)))
            keep = position < len(data)
            position, first_line = position[keep], first_line[keep].astype(np.int64)
            blank = (data[position] == ord("\n")) | ((data[position] == ord("\r")) & _next_is_newline(data, position))
            starts.append(first_line[~blank])
            in_quote = bool((len(quotes) + in_quote) % 2)
            at_record_start = bool(data[-1] == ord("\n")) and not in_quote
            line += len(newlines)
    if in_quote:
        raise InputError(f"{path}: malformed CSV (a quoted cell is never closed: unbalanced '\"')")
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


def _next_is_newline(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    following = np.minimum(positions + 1, len(data) - 1)
    return (positions + 1 < len(data)) & (data[following] == ord("\n"))


def _read_csv_text(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    header = _csv_header(path)
    check_header(path, header, columns)
    lines = record_lines(path)
    types = {name: pa.string() for name in columns}
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=types, include_columns=list(columns), strings_can_be_null=False
        ),
    )
    frame = reader.read_all().to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow", na_value=np.nan))
    if len(lines) != len(frame) + 1:
        raise InputError(f"{path}: malformed CSV ({len(lines) - 1} records by line scan, {len(frame)} parsed)")
    frame["source_line"] = lines[1:]
    return frame


def _read_parquet_text(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    schema = pq.read_schema(path)
    check_header(path, schema.names, columns)
    table = pq.read_table(path, columns=list(columns))
    text = {name: table[name].cast(pa.string()) for name in columns}
    frame = pa.table(text).to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow", na_value=np.nan))
    frame["source_line"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame


def read_table_file(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """A CSV (UTF-8, comma-separated) or Parquet table as text, renamed to canonical names, with source file and
    line (CSV: physical line of the record's first line, header = 1; Parquet: row number, first row = 1)."""
    try:
        reader = _read_parquet_text if path.suffix == ".parquet" else _read_csv_text
        frame = reader(path, columns)
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({_first_bad_byte(path)})") from error
    except pa.ArrowInvalid as error:
        message = str(error)
        if path.suffix == ".parquet":
            raise InputError(f"{path}: unreadable table ({message})") from error
        if "invalid UTF8" in message:
            raise InputError(f"{path}: not UTF-8 text ({_first_bad_byte(path)})") from error
        if "Empty CSV" in message:
            raise InputError(f"{path}: empty file, no header line") from error
        raise InputError(f"{path}: malformed CSV ({message})") from error
    except (OSError, ValueError, pa.ArrowException) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: unreadable table ({error})") from error
    frame = frame.rename(columns=columns)
    frame["source_file"] = path.name
    return frame[[*columns.values(), "source_file", "source_line"]]


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
