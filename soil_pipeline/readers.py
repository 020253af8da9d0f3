"""Readers for landing files and global datasets: file formats in, canonical column names and arrays out.

Landing tables are read as text, verbatim: types come from the contracts (`contracts.validate.coerce`), never from
guessing, so `000001` stays `000001` and one blank id cannot turn an id column into floats. CSV files are parsed
by pyarrow in blocks (quoted cells may span lines); each record keeps the physical line its first line is on.
"""

import codecs
import csv
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
HEADER_MAX_BYTES = 1 << 20
QUOTE, COMMA, LF, CR = (ord(c) for c in '",\n\r')
CELL_START = (COMMA, LF, CR)  # the byte before a cell's first character
UTF8_BOM = b"\xef\xbb\xbf"
# What follows pyarrow's 'Expected n columns, got m' is the record's text.
PARSER_QUOTE = re.compile(r"(got \d+):.*", re.DOTALL)
# Entries named like a table that are not files, by stat test (a named pipe would block a reader).
_NOT_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
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


def is_table_name(name: str) -> bool:
    """A file name a drop table may have: `.csv` or `.parquet`, in any case (`sites.CSV` is a CSV file)."""
    return Path(name).suffix.lower() in TABLE_SUFFIXES


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def regular_file(path: Path) -> Path:
    """`path` when it is a regular file (symlinks followed). A directory, named pipe, device or socket named like a
    table is refused before anything opens it: reading a named pipe would wait for a writer forever."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as error:
        raise InputError(path, "a symlink to a file that does not exist", Remedy.NOT_A_FILE) from error
    if stat.S_ISREG(mode):
        return path
    kind = next((text for test, text in _NOT_FILES if test(mode)), "not a regular file")
    raise InputError(path, f"{kind}, not a regular file: a drop table must be a file", Remedy.NOT_A_FILE)


def find_drop_file(drop_dir: Path, table: str, landing_dir: Path | None = None) -> Path:
    """The single `*<table>.csv` or `*<table>.parquet` file of a monthly drop folder (suffix in any case), resolved.

    Symlinks (the file or the drop folder) are followed only when they resolve inside `landing_dir`; an entry so
    named that is not a regular file (a directory, a named pipe, a device) is refused."""
    landing_dir = landing_dir or drop_dir.parent.parent
    if not drop_dir.is_dir():
        raise InputError(drop_dir, "no field-sample drop folder for this partition", Remedy.DROP_FOLDER)
    _inside(drop_dir, landing_dir)
    matches = sorted(
        p for p in drop_dir.iterdir() if is_table_name(p.name) and Path(p.name).stem.casefold().endswith(table)
    )
    if len(matches) != 1:
        raise InputError(
            drop_dir,
            f"expected exactly one *{table}.csv or *{table}.parquet file, found {len(matches)}",
            Remedy.ONE_TABLE_EACH,
        )
    return regular_file(_inside(matches[0], landing_dir))


def drop_folders(landing_dir: Path) -> tuple[list[str], list[str]]:
    """(folders named like a monthly partition, other folders) under `<landing>/field_samples/`, sorted."""
    folder = Path(landing_dir) / "field_samples"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    valid = [name for name in names if DROP_FOLDER_PATTERN.fullmatch(name)]
    return valid, [name for name in names if name not in valid]


def not_utf8(path: Path) -> InputError:
    """The error of a file that is not UTF-8 text, naming the first bad byte, its line and column."""
    line, where, column = _first_bad_byte(path)
    return InputError(path, f"not UTF-8 text ({where}){column}", Remedy.UTF8, line=line)


def _line_ends(data: np.ndarray) -> np.ndarray:
    """Positions of the line ends in a block: each '\\n', and each '\\r' not followed by '\\n' (files of classic Mac
    OS end lines with '\\r' alone). A block never ends inside a '\\r\\n' (`_blocks`)."""
    newline, carriage = data == LF, data == CR
    carriage[:-1] &= ~newline[1:]
    return np.flatnonzero(newline | carriage)


def _blocks(handle) -> Iterator[bytes]:
    """A file's bytes in blocks of about `LINE_SCAN_BYTES`, none ending in '\\r' or '"' unless the file does (so a
    '\\r\\n' or a '""' is never split between two blocks)."""
    while block := handle.read(LINE_SCAN_BYTES):
        while block[-1] in (CR, QUOTE) and (more := handle.read(1)):
            block += more
        yield block


def _first_bad_byte(path: Path) -> tuple[int | None, str, str]:
    """Where a file stops being UTF-8: (line, the byte, its line and why, ', column <name>'), read in blocks
    whatever its size. The column is counted by the commas before the byte on its line (quotes are not followed)."""
    decoder, line, commas = codecs.getincrementaldecoder("utf-8")(), 1, 0
    with open(path, "rb") as handle:
        for block in _blocks(handle):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                # error.object is the decoder's pending bytes (part of one character, never a line end) + block
                before = np.frombuffer(error.object[: error.start], dtype=np.uint8)
                ends = _line_ends(before)
                line += len(ends)
                on_line = before[ends[-1] + 1 :] if len(ends) else before
                commas = (0 if len(ends) else commas) + int((on_line == COMMA).sum())
                column = _column_label(path, commas) if line > 1 else f"column {commas + 1}"
                return line, f"byte 0x{error.object[error.start]:02x} at line {line}: {error.reason}", f", {column}"
            data = np.frombuffer(block, dtype=np.uint8)
            ends = _line_ends(data)
            commas = (0 if len(ends) else commas) + int((data[(ends[-1] + 1 if len(ends) else 0) :] == COMMA).sum())
            line += len(ends)
    return None, "undecodable text", ""


def _column_label(path: Path, index: int) -> str:
    """'column <header name>' for the `index`-th field (0-based) of a CSV file, else its number."""
    try:
        header = _csv_header(path)
    except InputError:
        header = []
    return f"column {header[index]!r}" if index < len(header) else f"column {index + 1}"


def _first_line(path: Path) -> bytes:
    """The bytes of a file's first line (up to its '\\n' or '\\r'), read without reading the whole file."""
    head = b""
    with open(path, "rb") as handle:
        while len(head) <= HEADER_MAX_BYTES and (piece := handle.read(1 << 16)):
            head += piece
            if b"\n" in piece or b"\r" in piece:
                break
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    if not ends and len(head) > HEADER_MAX_BYTES:
        raise InputError(path, f"no line end in the first {HEADER_MAX_BYTES} bytes: not a CSV table", Remedy.UNREADABLE)
    return head[: min(ends)] if ends else head


def _csv_header(path: Path) -> list[str]:
    first = _first_line(path)
    if not first.strip():
        raise InputError(path, "empty file, no header line", Remedy.EMPTY, line=1)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise not_utf8(path) from error
    return next(csv.reader([text]))


def check_header(path: Path, header: list[str], columns: dict[str, str]) -> None:
    """Every contract column present once; no two names equal up to case and surrounding whitespace."""
    check_names(path, header)
    missing = [name for name in columns if name not in header]
    if missing:
        raise missing_columns(path, header, ", ".join(missing))


def check_names(path: Path, header: list[str]) -> None:
    """No two column names equal up to case and surrounding whitespace."""
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().casefold()
        if key in seen:
            same = "duplicate column name" if seen[key] == name else "column names differ only by case or whitespace"
            raise InputError(
                path, f"{same}: {seen[key]!r} and {name!r} (rename or remove one)", Remedy.COLUMN_NAMES, line=1
            )
        seen[key] = name


def missing_columns(path: Path, header: list[str], missing: str) -> InputError:
    """The error of a table without the columns `missing`; a header of one column holding a ';' is named as a
    delimiter problem."""
    if len(header) == 1 and ";" in header[0]:
        hint = " (the header has one column with ';' in it: is the delimiter not a comma?)"
        return InputError(path, f"missing required column(s) {missing}{hint}", Remedy.DELIMITER, line=1)
    return InputError(path, f"missing required column(s) {missing}", Remedy.REQUIRED_COLUMNS, line=1)


def _quote_toggles(data: np.ndarray, in_quote: bool, previous: int, start: int) -> tuple[np.ndarray, bool]:
    """The quotes of a block that open or close a quoted cell, read as pyarrow (and RFC 4180) read them, and whether
    a cell is still open at the block's end. A quote opens a cell only at the cell's start (after a delimiter or a
    line end, or at `start`, the file's first character); inside a quoted cell '""' is a quote and any other quote
    closes it. Any other quote is text, e.g. the inch mark of `pit 12" deep`. `previous` is the byte before the
    block.

    When every quote that would open a cell by alternation is at a cell's start (or is the second of a '""'), taking
    the quotes in turn gives the same quoted spans (a '""' inside a cell closes and reopens it at once): no loop."""
    quotes = np.flatnonzero(data == QUOTE)
    openers = quotes[int(in_quote) :: 2]
    before = data[np.maximum(openers - 1, 0)]
    at_start = (before == COMMA) | (before == LF) | (before == CR) | (before == QUOTE) | (openers == start)
    if openers.size and openers[0] == 0:
        at_start[0] = previous in CELL_START
    if at_start.all():
        return quotes, bool((len(quotes) + in_quote) % 2)
    return _quote_toggles_in_turn(data, quotes.tolist(), in_quote, previous, start)


def _quote_toggles_in_turn(data, quotes: list[int], in_quote: bool, previous: int, start: int):
    """`_quote_toggles` one quote at a time (a block with a quote inside an unquoted cell)."""
    toggles, i, n = [], 0, len(quotes)
    while i < n:
        position = quotes[i]
        if in_quote:
            if i + 1 < n and quotes[i + 1] == position + 1:  # '""' inside a quoted cell
                i += 2
                continue
            in_quote = False
            toggles.append(position)
        elif position == start or (int(data[position - 1]) if position else previous) in CELL_START:
            in_quote = True
            toggles.append(position)
        i += 1
    return np.asarray(toggles, dtype=np.int64), in_quote


def _record_line_blocks(path: Path) -> Iterator[np.ndarray]:
    """Physical line (1-based) of the first line of every non-empty record, header included, block by block.

    Line ends are '\\n', '\\r\\n' or '\\r' alone; a line end inside a quoted cell does not end a record (see
    `_quote_toggles`). Memory stays bounded by the block size."""
    in_quote, line, at_record_start, previous, offset = False, 1, True, LF, 0
    record_offset, opened = 0, None  # where the current record starts; (line, offset) of the quote left open
    with open(path, "rb") as handle:
        for number, block in enumerate(_blocks(handle)):
            data = np.frombuffer(block, dtype=np.uint8)
            # the file's first character (after a byte order mark) starts a cell; -1: no byte of a later block does
            start = (len(UTF8_BOM) if block.startswith(UTF8_BOM) else 0) if number == 0 else -1
            toggles, still_open = _quote_toggles(data, in_quote, previous, start)
            ends = _line_ends(data)
            record_end = (np.searchsorted(toggles, ends) + in_quote) % 2 == 0
            ends_of_records = ends[record_end]
            if len(ends_of_records):
                record_offset = offset + int(ends_of_records[-1]) + 1
            if still_open and len(toggles):
                opened = (line + int(np.searchsorted(ends, toggles[-1])), offset + int(toggles[-1]), record_offset)
            position = np.concatenate(([0] if at_record_start else [], ends_of_records + 1)).astype(np.int64)
            first_line = np.concatenate(([line] if at_record_start else [], line + 1 + np.flatnonzero(record_end)))
            keep = position < len(data)
            position, first_line = position[keep], first_line[keep].astype(np.int64)
            yield first_line[~np.isin(data[position], (LF, CR))]
            in_quote, previous = still_open, int(data[-1])
            at_record_start = previous in (LF, CR) and not in_quote
            line += len(ends)
            offset += len(data)
    if in_quote:
        at_line, at, record = opened
        raise InputError(
            path,
            f"malformed CSV (a quoted cell is never closed: the '\"' at line {at_line}, "
            f"{_column_label(path, _cell_index(path, record, at))} opens a cell that no '\"' closes)",
            Remedy.COMPLETE_CSV,
            line=at_line,
        )


def _cell_index(path: Path, record: int, at: int) -> int:
    """The index of the cell holding byte `at` of a record starting at byte `record` (delimiters outside quotes)."""
    with open(path, "rb") as handle:
        handle.seek(record)
        data = np.frombuffer(handle.read(at - record), dtype=np.uint8)
    toggles, in_quote = _quote_toggles(data, False, LF, -1)
    commas = np.flatnonzero(data == COMMA)
    return int(((np.searchsorted(toggles, commas) % 2) == 0).sum())


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


def _misshapen_record(path: Path) -> tuple[int, str] | None:
    """(line, text) of the first record whose number of cells differs from the header's, read with the csv module
    (which reads quotes as pyarrow does); None when every record has the header's cells."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, [])
            line = reader.line_num
            for row in reader:
                first, line = line + 1, reader.line_num
                if row and len(row) != len(header):
                    where = f"after column {header[len(row) - 1]!r}" if len(row) < len(header) else "past the header"
                    return first, f"line {first}: {len(row)} cell(s) where the header has {len(header)} ({where})"
        except csv.Error:
            return None
    return None


def _malformed(path: Path, what: str) -> InputError:
    """'malformed CSV (what)', with the line and column of the first record whose cells do not match the header, or
    of the quote that opens a cell never closed. What pyarrow quotes of the record itself is left out: it may span
    lines."""
    what = PARSER_QUOTE.sub(r"\1", what).splitlines()[0] if what.strip() else what
    try:
        for _ in _record_line_blocks(path):  # a quote never closed explains the rest
            pass
    except InputError as error:
        return error
    found = _misshapen_record(path)
    if found is None:
        return InputError(path, f"malformed CSV ({what})", Remedy.COMPLETE_CSV)
    line, where = found
    return InputError(path, f"malformed CSV ({what}) at {where}", Remedy.COMPLETE_CSV, line=line)


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
        raise _malformed(path, f"{scanned} records by line scan, {parsed} parsed")


def _parquet_text(path: Path, batch: pa.RecordBatch, name: str) -> pa.Array:
    """One Parquet column as text: NaN in a float column is missing (how pandas writes a missing float), a
    timestamp with a time zone is its local date and time there (the date the sample was taken where it was)."""
    column = batch.column(name)
    kind = column.type
    if pa.types.is_floating(kind):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, kind), column)
    elif pa.types.is_timestamp(kind) and kind.tz:
        column = pc.local_timestamp(column)
    try:
        return column.cast(pa.string())
    except pa.ArrowException as error:
        raise InputError(
            path, f"column {name!r} of type {kind} cannot be read as text ({error})", Remedy.UNREADABLE
        ) from error


def _parquet_text_chunks(path: Path, columns: dict[str, str], chunk_bytes: int) -> Iterator[pd.DataFrame]:
    """A Parquet table as text; a file whose footer cannot be read is unreadable as a whole, one whose data breaks
    off is named by the first row that could not be read."""
    source = pq.ParquetFile(path)
    check_header(path, source.schema_arrow.names, columns)
    first_line = 1
    rows = max(1, chunk_bytes // 64)
    batches = source.iter_batches(batch_size=rows, columns=list(columns))
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as error:
            raise InputError(
                path, f"unreadable table from row {first_line} on ({error})", Remedy.UNREADABLE, line=first_line
            ) from error
        if batch is None:
            return
        frame = _text_frame(pa.table({name: _parquet_text(path, batch, name) for name in columns}))
        frame["source_line"] = np.arange(first_line, first_line + len(frame), dtype="int64")
        first_line += len(frame)
        yield frame


def _input_errors(path: Path, error: Exception) -> InputError:
    """The dataset-level error (file, rule, and line when known) a reader's exception stands for."""
    if isinstance(error, InputError):
        return error
    if isinstance(error, UnicodeDecodeError):
        return not_utf8(path)
    if isinstance(error, pa.ArrowInvalid):
        message = str(error)
        if is_parquet(path):
            return InputError(path, f"unreadable table ({message})", Remedy.UNREADABLE)
        if "invalid UTF8" in message:
            return not_utf8(path)
        if "Empty CSV" in message:
            return InputError(path, "empty file, no header line", Remedy.EMPTY, line=1)
        return _malformed(path, message)
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
    reader = _parquet_text_chunks if is_parquet(path) else _csv_text_chunks
    try:
        yield from reader(path, columns, chunk_bytes)
    except (OSError, ValueError, csv.Error, pa.ArrowException) as error:
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
