"""Readers for landing files and global datasets: file formats in, canonical column names and arrays out.

Landing tables are read as text, verbatim: types come from the contracts (`contracts.validate.coerce`), never from
guessing, so `000001` stays `000001` and one blank id cannot turn an id column into floats. CSV files are parsed
by pyarrow in blocks (quoted cells may span lines); each record keeps the physical line its first line is on.
"""

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import rasterio
import shapely
from affine import Affine

from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.science.grid import GridSpec

TABLE_SUFFIXES = {".csv", ".parquet"}
DROP_FOLDER_PATTERN = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
DROP_FOLDER_FORM = "YYYY-MM, e.g. 2012-10"
CSV_BLOCK_BYTES = 16 << 20
LINE_SCAN_BYTES = 16 << 20
# A per-drop declaration applied to each chunk in the contract layout (see `to_contract_layout`).
Declare = Callable[[pd.DataFrame], pd.DataFrame]


def _inside(path: Path, folder: Path) -> Path:
    """The resolved path of a drop file; a symlink resolving outside the landing folder is refused."""
    resolved = path.resolve()
    if path.is_symlink() and not resolved.is_relative_to(folder.resolve()):
        raise InputError(
            path,
            f"symlink to {resolved}, outside the landing folder {folder}; "
            "copy the file into the drop instead of linking it",
            Remedy.SYMLINK,
        )
    return resolved


def find_drop_file(drop_dir: Path, table: str, landing_dir: Path | None = None) -> Path:
    """The single `*<table>.csv` or `*<table>.parquet` file of a monthly drop folder, resolved.

    Symlinks (the file or the drop folder) are followed only when they resolve inside `landing_dir`.
    """
    landing_dir = landing_dir or drop_dir.parent.parent
    if not drop_dir.is_dir():
        raise InputError(drop_dir, "no field-sample drop folder for this partition", Remedy.DROP_FOLDER)
    _inside(drop_dir, landing_dir)
    matches = sorted(p for p in drop_dir.iterdir() if p.suffix in TABLE_SUFFIXES and p.stem.endswith(table))
    if len(matches) != 1:
        raise InputError(
            drop_dir,
            f"expected exactly one *{table}.csv or *{table}.parquet file, found {len(matches)}",
            Remedy.ONE_TABLE_EACH,
        )
    return _inside(matches[0], landing_dir)


def drop_folders(landing_dir: Path) -> tuple[list[str], list[str]]:
    """(folders named like a monthly partition, other folders) under `<landing>/field_samples/`, sorted."""
    folder = Path(landing_dir) / "field_samples"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    valid = [name for name in names if DROP_FOLDER_PATTERN.fullmatch(name)]
    return valid, [name for name in names if name not in valid]


def not_utf8(path: Path) -> InputError:
    """The error of a file that is not UTF-8 text, naming the first bad byte and its line."""
    line, where = _first_bad_byte(path)
    return InputError(path, f"not UTF-8 text ({where})", Remedy.UTF8, line=line)


def _first_bad_byte(path: Path) -> tuple[int | None, str]:
    """Where a file stops being UTF-8: (line, the byte, its line and why), read in blocks whatever its size."""
    decoder, line = codecs.getincrementaldecoder("utf-8")(), 1
    with open(path, "rb") as handle:
        while block := handle.read(LINE_SCAN_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                # error.object is the decoder's pending bytes (part of one character, never a newline) + block
                line += error.object[: error.start].count(b"\n")
                return line, f"byte 0x{error.object[error.start]:02x} at line {line}: {error.reason}"
            line += block.count(b"\n")
    return None, "undecodable text"


def _csv_header(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputError(path, "empty file, no header line", Remedy.EMPTY)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise not_utf8(path) from error
    return next(csv.reader(io.StringIO(text)))


def check_header(path: Path, header: list[str], columns: dict[str, str]) -> None:
    """Every contract column present once; no two names equal up to case and surrounding whitespace."""
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().casefold()
        if key in seen:
            same = "duplicate column name" if seen[key] == name else "column names differ only by case or whitespace"
            raise InputError(path, f"{same}: {seen[key]!r} and {name!r} (rename or remove one)", Remedy.COLUMN_NAMES)
        seen[key] = name
    missing = [name for name in columns if name not in header]
    if missing:
        raise missing_columns(path, header, ", ".join(missing))


def missing_columns(path: Path, header: list[str], missing: str) -> InputError:
    """The error of a table without the columns `missing`; a header of one column holding a ';' is named as a
    delimiter problem."""
    if len(header) == 1 and ";" in header[0]:
        hint = " (the header has one column with ';' in it: is the delimiter not a comma?)"
        return InputError(path, f"missing required column(s) {missing}{hint}", Remedy.DELIMITER)
    return InputError(path, f"missing required column(s) {missing}", Remedy.REQUIRED_COLUMNS)


def _record_line_blocks(path: Path) -> Iterator[np.ndarray]:
    """Physical line (1-based) of the first line of every non-empty record, header included, block by block.

    Newlines inside double quotes do not end a record (RFC 4180: an escaped quote `""` toggles twice). The file is
    scanned in blocks, so memory stays bounded by the block size.
    """
    in_quote, line, at_record_start = False, 1, True
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
            yield first_line[~blank]
            in_quote = bool((len(quotes) + in_quote) % 2)
            at_record_start = bool(data[-1] == ord("\n")) and not in_quote
            line += len(newlines)
    if in_quote:
        raise InputError(path, "malformed CSV (a quoted cell is never closed: unbalanced '\"')", Remedy.COMPLETE_CSV)


def record_lines(path: Path) -> np.ndarray:
    """Physical line (1-based) of the first line of every non-empty record, header included."""
    blocks = list(_record_line_blocks(path))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)


class _LineFeed:
    """Hands out the record lines of a CSV file in the order its records are parsed."""

    def __init__(self, path: Path):
        self.blocks, self.pending, self.taken = _record_line_blocks(path), np.zeros(0, dtype=np.int64), 0

    def take(self, n: int) -> np.ndarray | None:
        """The next `n` lines, or None when the scan found fewer records than that."""
        while len(self.pending) < n:
            block = next(self.blocks, None)
            if block is None:
                return None
            self.pending = np.concatenate((self.pending, block))
        lines, self.pending = self.pending[:n], self.pending[n:]
        self.taken += n
        return lines

    def count(self) -> int:
        """Records scanned in the whole file (drains the scan)."""
        return self.taken + len(self.pending) + sum(len(block) for block in self.blocks)


def _next_is_newline(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    following = np.minimum(positions + 1, len(data) - 1)
    return (positions + 1 < len(data)) & (data[following] == ord("\n"))


def _text_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow", na_value=np.nan))


def _csv_text_chunks(path: Path, columns: dict[str, str], chunk_bytes: int) -> Iterator[pd.DataFrame]:
    header = _csv_header(path)
    check_header(path, header, columns)
    lines = _LineFeed(path)
    lines.take(1)  # the header
    types = {name: pa.string() for name in columns}
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(block_size=chunk_bytes),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=types, include_columns=list(columns), strings_can_be_null=False
        ),
    )
    parsed = 0
    for batch in reader:
        parsed += batch.num_rows
        first = lines.take(batch.num_rows)
        if first is None:
            break
        frame = _text_frame(pa.Table.from_batches([batch]))
        frame["source_line"] = first
        yield frame
    scanned = lines.count() - 1
    parsed += sum(batch.num_rows for batch in reader)
    if scanned != parsed:
        raise InputError(path, f"malformed CSV ({scanned} records by line scan, {parsed} parsed)", Remedy.COMPLETE_CSV)


def _parquet_text_chunks(path: Path, columns: dict[str, str], chunk_bytes: int) -> Iterator[pd.DataFrame]:
    source = pq.ParquetFile(path)
    check_header(path, source.schema_arrow.names, columns)
    first_line = 1
    rows = max(1, chunk_bytes // 64)
    for batch in source.iter_batches(batch_size=rows, columns=list(columns)):
        frame = _text_frame(pa.table({name: batch.column(name).cast(pa.string()) for name in columns}))
        frame["source_line"] = np.arange(first_line, first_line + len(frame), dtype="int64")
        first_line += len(frame)
        yield frame


def _input_errors(path: Path, error: Exception) -> InputError:
    """The dataset-level error (file and rule) a reader's exception stands for."""
    if isinstance(error, InputError):
        return error
    if isinstance(error, UnicodeDecodeError):
        return not_utf8(path)
    if isinstance(error, pa.ArrowInvalid):
        message = str(error)
        if path.suffix == ".parquet":
            return InputError(path, f"unreadable table ({message})", Remedy.UNREADABLE)
        if "invalid UTF8" in message:
            return not_utf8(path)
        if "Empty CSV" in message:
            return InputError(path, "empty file, no header line", Remedy.EMPTY)
        return InputError(path, f"malformed CSV ({message})", Remedy.COMPLETE_CSV)
    return InputError(path, f"unreadable table ({error})", Remedy.UNREADABLE)


def to_contract_layout(
    chunk: pd.DataFrame, columns: dict[str, str], path: Path, declare: Declare | None = None
) -> pd.DataFrame:
    """One chunk of source text (source column names, `source_line`) in the contract's layout: canonical column
    names in contract order, then `source_file` and `source_line`. Every source chunk passes here once before
    validation; `declare` is the drop's declaration for this table (`contracts.declaration.apply_declaration` with
    the table's plan: units, CRS, missing markers, fixed values and absent columns), applied chunk by chunk."""
    frame = chunk.rename(columns=columns)
    frame["source_file"] = path.name
    frame = frame[[*columns.values(), "source_file", "source_line"]]
    return declare(frame) if declare else frame


def _source_chunks(path: Path, columns: dict[str, str], chunk_bytes: int) -> Iterator[pd.DataFrame]:
    reader = _parquet_text_chunks if path.suffix == ".parquet" else _csv_text_chunks
    try:
        yield from reader(path, columns, chunk_bytes)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise _input_errors(path, error) from error


def iter_table_chunks(
    path: Path, columns: dict[str, str], chunk_bytes: int = CSV_BLOCK_BYTES, declare: Declare | None = None
) -> Iterator[pd.DataFrame]:
    """A CSV (UTF-8, comma-separated) or Parquet table as text, chunk by chunk, in the contract's layout (see
    `to_contract_layout`) with source file and line (CSV: physical line of the record's first line, header = 1;
    Parquet: row number, first row = 1). Memory is bounded by the chunk size; a broken file raises `InputError`
    naming it, possibly after earlier chunks were yielded."""
    for chunk in _source_chunks(path, columns, chunk_bytes):
        yield to_contract_layout(chunk, columns, path, declare)


def empty_text_frame(columns: dict[str, str], path: Path, declare: Declare | None = None) -> pd.DataFrame:
    """The layout of `iter_table_chunks` with no rows (what a header-only file holds)."""
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    empty = pd.DataFrame({name: pd.Series(dtype=text) for name in columns}).assign(source_line=np.zeros(0, "int64"))
    return to_contract_layout(empty, columns, path, declare)


def read_table_file(path: Path, columns: dict[str, str], declare: Declare | None = None) -> pd.DataFrame:
    """The whole table of `iter_table_chunks` as one frame (for small tables)."""
    chunks = list(iter_table_chunks(path, columns, declare=declare))
    return pd.concat(chunks, ignore_index=True) if chunks else empty_text_frame(columns, path, declare)


@dataclass(frozen=True)
class RasterInfo:
    """A raster's header: what its contract's grid and encoding rules are checked against (no values)."""

    path: str
    transform: Affine
    crs: str
    nodata: float | None
    dtype: str
    width: int
    height: int
    block: tuple[int, int]
    band_count: int = 1
    scale: float = 1.0
    offset: float = 0.0

    def grid(self) -> GridSpec:
        return GridSpec(width=self.width, height=self.height, transform=self.transform, crs=self.crs)


def raster_info(path: str) -> RasterInfo:
    """The header of band 1 of any GDAL-readable raster (path or URL)."""
    try:
        with rasterio.open(path) as src:
            return RasterInfo(
                path=str(path),
                transform=src.transform,
                crs=src.crs.to_string() if src.crs else "",
                nodata=src.nodata,
                dtype=src.dtypes[0],
                width=src.width,
                height=src.height,
                block=tuple(src.block_shapes[0]),
                band_count=src.count,
                scale=src.scales[0],
                offset=src.offsets[0],
            )
    except rasterio.errors.RasterioError as error:
        raise InputError(path, f"unreadable raster ({error})", Remedy.UNREADABLE) from error


def read_countries(path: str) -> pd.DataFrame:
    """The countries layer (Natural Earth admin 0, any format geopandas reads) in the `countries` contract's layout:
    its columns renamed, the polygons as 2-D WKB in lon/lat WGS84, sorted by ADM0_A3 code. What the `countries` asset
    publishes and what field sites are placed in (`ingest.site_references`)."""
    import geopandas as gpd  # slow to import: only where a vector is read

    columns = load_table_contract("countries").source_columns()
    columns.pop("geometry_wkb")
    frame = gpd.read_file(path)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(path, f"missing required column(s) {', '.join(missing)}", Remedy.COUNTRIES)
    if frame.crs is None or frame.crs.to_epsg() != 4326:
        raise InputError(path, f"expected lon/lat WGS84 (EPSG:4326 / CRS84), got {frame.crs}", Remedy.COUNTRIES)
    table = pd.DataFrame(frame[list(columns)].rename(columns=columns))
    table["geometry_wkb"] = shapely.to_wkb(frame.geometry.values, output_dimension=2)
    return table.sort_values("adm0_a3", kind="mergesort").reset_index(drop=True)
