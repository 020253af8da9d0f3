"""Validate a table against its contract: coerce types, judge every rule on whole columns, split good rows from rejects.

Each rule kind of the contract (contracts.rules) gives the rows breaking it as one vectorised mask over the typed
columns, with pandera's verdicts; a table whose columns are not of the contract's types (or lack one) is judged by
the contract's pandera schema instead, which names the type problem. No step loops over rows in Python.

Row-level failures (a failure with a row index) send that row to the rejects table, one reject row per broken rule,
with the source file and line. Failures without a row index (missing column, row count, a unit guard on the median)
are dataset-level: they are returned as `batch_errors` and the caller fails the run.

Every input row ends in exactly one of: valid (published), rejected (with its rules), or an identical copy collapsed
into a valid row (counted in its count column and listed with its line). A copy of a rejected row is rejected with
the same rules at its own line. `Validation.reconcile` raises when the three do not add up to the rows read.
"""

import copy
import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from soil_pipeline.contracts.model import UNTYPED_PHYSICAL_TYPES, TableContract, load_table_contract
from soil_pipeline.contracts.rules import COLUMN_KINDS, DATASET_KINDS, parse_label, repeated_rows
from soil_pipeline.engine.points import CellRule, HasValue, near_cells
from soil_pipeline.engine.raster import RasterSource
from soil_pipeline.errors import BrokenRule
from soil_pipeline.science.regions import NO_REGION, PointAssigner
from soil_pipeline.science.validation import without_attrs

# Column rules pandera checks itself (column options), by the name pandera gives their failures.
BUILTIN_RULES = {kind.pandera_builtin: kind for kind in COLUMN_KINDS if kind.pandera_builtin}
# The dtypes `coerce` gives each physical type, which the pandera schema accepts: a table of these types is judged by
# the rule kinds' masks (test_contract_rules checks they find pandera's rows), any other by the pandera schema itself.
COERCED_DTYPES = {
    "str": (pd.StringDtype("pyarrow", na_value=np.nan),),
    "float64": (np.dtype("float64"),),
    "int64": (np.dtype("int64"),),
    "bool": (np.dtype("bool"),),
    "datetime64[ms]": (np.dtype("datetime64[ms]"),),
}
# Text as the readers give it: pandas strings on pyarrow, NaN for missing.
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
FAILURE_COLUMNS = ["index", "rule", "column", "detail"]
SAMPLE_ROWS = 10
REJECTS_CONTRACT = "field_rejects"
# A rejected horizon's depths travel with its reject rows: only a horizon overlapping 0-30 cm blocks a site's stock.
DEPTH_COLUMNS = ("upper_depth_cm", "lower_depth_cm")
# A column converted by an input declaration keeps its source text here, so a reject shows what the file said.
SOURCE_TEXT_PREFIX = "source_text:"
# The frame attribute holding the declared conversions by column, which the rejects' `conversion` column names.
DECLARED_CONVERSIONS = "declared_conversions"
# The kind of the drop-level rule refusing a drop whose share of quarantined rows is too high.
SHARE_GATE = "max_rejected_share"
# Texts meaning "missing" in what common software writes (R NA, numpy/pandas nan, SQL NULL, Python None, Excel #N/A,
# SAS/Stata "."), compared case-insensitively: in a number or date column they are read as missing even when the
# declaration does not list them, with a note suggesting it should (`Validation.undeclared_missing`). "n.d." is not
# one: a value below detection is not a missing value, and is quarantined as not a number.
MISSING_TOKENS = frozenset({"na", "n/a", "#n/a", "nan", "null", "none", ".", "-", "--"})
# A date and time with a time zone (ISO 8601 'Z' or an offset): the zone is dropped, keeping the local date and time
# where the sample was taken.
ZONED_TIME = r"^(\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)\s*$"


class AccountingError(RuntimeError):
    """Rows read != rows valid + rows rejected + identical copies collapsed: a defect of the validation itself."""


@dataclass(frozen=True)
class LandMask:
    """Cells that are land (e.g. where the WHRC SOC stock has a value): those of `source`'s band for which
    `is_land(values, nodata)` holds (`HasValue()`: not NaN; `HasValue(nodata)`: nor a no-data value). Only the
    blocks around the points asked about are read, never the whole grid."""

    source: RasterSource
    name: str
    is_land: CellRule = HasValue()

    def near(self, lon: np.ndarray, lat: np.ndarray, radius_cells: int) -> np.ndarray:
        """True where a land cell lies within `radius_cells` cells (rows and columns) of the point's cell;
        longitude wraps around."""
        return near_cells(self.source, lon, lat, radius_cells, self.is_land)


@dataclass(frozen=True)
class Regions:
    """Polygons (shapely) and their codes, e.g. the `countries` asset's geometries and ADM0_A3 codes."""

    geometries: np.ndarray
    codes: np.ndarray

    @functools.cached_property
    def assigner(self) -> PointAssigner:
        """The polygons prepared once for every batch of points."""
        return PointAssigner(self.geometries)

    def codes_at(self, lon: pd.Series, lat: pd.Series, tolerance_deg: float) -> np.ndarray:
        """The code of the polygon holding each point, else of the nearest within `tolerance_deg`; None if none."""
        index, _ = self.assigner(lon, lat, tolerance_deg)
        return np.where(index == NO_REGION, None, self.codes[index])


@dataclass
class Validation:
    contract: TableContract
    n_checked: int  # rows read
    checked: pd.DataFrame  # after identical copies collapsed
    valid: pd.DataFrame
    rejects: pd.DataFrame
    batch_errors: list[str]
    n_rejected: int = 0  # rows read that were rejected (copies of a rejected row included)
    # identical copies collapsed into a valid row: source_file, source_line, and the line of the row kept
    copies: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COPY_COLUMNS))
    # values read as missing that the declaration does not list: column, value, rows, first source line
    undeclared_missing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MISSING_NOTE_COLUMNS))

    @property
    def passed(self) -> bool:
        return not self.batch_errors and self.rejects.empty

    def failures_by_rule(self) -> dict[str, int]:
        counts = self.rejects.groupby(["rule", "column"]).size()
        by_rule = {f"{rule}:{column}": int(n) for (rule, column), n in counts.items()}
        return {**by_rule, **{f"dataset:{error.split(':', 1)[0]}": 1 for error in self.batch_errors}}

    def sample(self) -> pd.DataFrame:
        return self.rejects.head(SAMPLE_ROWS)

    def rows_rejected(self) -> int:
        """Rows read that were rejected (with at least one reject row each)."""
        return self.n_rejected

    def reconcile(self) -> None:
        reconcile(self.contract, self.n_checked, len(self.valid), len(self.copies), self.n_rejected)


def reconcile(contract: TableContract, n_in: int, valid: int, copies: int, rejected: int) -> None:
    """Every row read is valid, rejected or an identical copy of a valid row; AccountingError when not."""
    if n_in != valid + copies + rejected:
        raise AccountingError(
            f"{contract.label}: {n_in} rows read, but {valid} valid + {copies} identical copies + {rejected} rejected "
            f"= {valid + copies + rejected}"
        )


COPY_COLUMNS = ["source_file", "source_line", "copy_of_line"]
MISSING_NOTE_COLUMNS = ["column", "value", "rows", "first_line"]
NUMBER_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
# The bytes a cell matching NUMBER_PATTERN can hold but its blanks. Of the cells made of them only, Arrow's cast to
# float64 accepts NUMBER_PATTERN matches only (test_contract_rules checks every such text up to 4 characters, blanks
# around it too): a column of such cells is parsed by one cast, without the regex.
NUMERAL_BYTES = b"0123456789+-.eE"
# The MISSING_TOKENS made of NUMERAL_BYTES.
NUMERAL_TOKENS = pa.array(sorted(t for t in MISSING_TOKENS if not t.encode().translate(None, NUMERAL_BYTES)))
NUMERAL_TOKEN_BYTES = max(len(t.as_py().encode()) for t in NUMERAL_TOKENS)
# A reject's `value` is the source text cut to this many characters; `value_length` keeps the full length.
MAX_VALUE_CHARS = 100


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def _blank(values: pd.Series) -> pd.Series:
    """Missing: no value, or only whitespace (the landing files' only missing-value marker is an empty cell)."""
    if values.dtype == TEXT:
        return pd.Series(_blank_cells(_arrow_text(values)), index=values.index)
    return values.isna() | (values.astype("str").str.strip() == "")


def _blank_cells(text: pa.Array) -> np.ndarray:
    """`_blank` of pyarrow text: missing, empty, or only Arrow's Unicode whitespace (what pandas strips). Only the
    cells not starting with a visible ASCII character (none of which is whitespace) are trimmed to tell."""
    blank = np.zeros(len(text), dtype=bool)
    if not len(text):
        return blank
    offsets, data = _text_buffers(text)
    blank = np.diff(offsets) == 0
    if text.null_count:
        blank |= text.is_null().to_numpy(zero_copy_only=False)
    filled = np.flatnonzero(~blank)
    first = data[offsets[filled]]
    maybe = filled[(first < ord("!")) | (first > ord("~"))]
    if len(maybe):
        trimmed = pc.utf8_trim_whitespace(text.take(pa.array(maybe)))
        blank[maybe] = pc.equal(pc.binary_length(trimmed), 0).to_numpy(zero_copy_only=False)
    return blank


def _strict_number(values: pd.Series) -> pd.Series:
    """Decimal or scientific notation only: `inf`, `1,5` or `n.d.` are type errors, not numbers (`NaN`, `NA` and the
    other `MISSING_TOKENS` are read as missing by `coerce` before)."""
    if values.dtype == "float64":  # already numbers (a pipeline's own table): nothing to parse
        return values
    if not _is_text(values):
        return pd.to_numeric(values, errors="coerce").astype("float64")
    text = pa.array(values, type=pa.string(), from_pandas=True)
    parsable = pc.match_substring_regex(text, NUMBER_PATTERN)
    numbers = pc.cast(pc.utf8_trim_whitespace(pc.if_else(parsable, text, None)), pa.float64())
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=values.index, dtype="float64")


def _text_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a pyarrow text array: each cell's start in `data` (and the last cell's end), as numpy."""
    offset_type = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets, data = text.buffers()
    offsets = np.frombuffer(
        offsets, dtype=offset_type, count=len(text) + 1, offset=text.offset * offset_type(0).itemsize
    )
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _only_bytes(offsets: np.ndarray, data: np.ndarray, allowed: bytes) -> np.ndarray:
    """Whether each cell (`_text_buffers`) holds only bytes of `allowed` (an empty or missing cell does). The bytes
    are first scanned at once (`bytes.translate`); only when some are not allowed is each located."""
    cells = data[offsets[0] : offsets[-1]]
    only = np.ones(len(offsets) - 1, dtype=bool)
    if not cells.tobytes().translate(None, allowed):
        return only
    table = np.zeros(256, dtype=bool)
    table[list(allowed)] = True
    # the cell of each other byte: the last cell starting at or before it (empty cells start where the next does)
    others = np.flatnonzero(~table[cells]) + offsets[0]
    only[np.searchsorted(offsets, others, side="right") - 1] = False
    return only


def _arrow_text(values: pd.Series) -> pa.Array:
    """A text column's pyarrow array (one chunk; pandas keeps arrow strings as large_string), copied only when pandas
    holds it in several chunks."""
    chunks = pa.chunked_array(values.array.__arrow_array__())
    return chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()


def _cells_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numbers, missing-value tokens, type errors) of a text column, each cell as `coerce` reads it: the cells of
    `NUMERAL_BYTES` (no blank) by one cast of the column as it is, with every other cell masked out; the others
    (blanks around a number, letters, `NaN`, `1,5`) cell by cell as `coerce` does for any text."""
    text = _arrow_text(values)
    if not len(text):
        return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    offsets, data = _text_buffers(text)
    lengths = np.diff(offsets)
    filled = lengths > 0
    if text.null_count:
        filled &= text.is_valid().to_numpy(zero_copy_only=False)
    plain = _only_bytes(offsets, data, NUMERAL_BYTES) & filled
    # a token among them: short, and not starting with a digit (no token has one)
    short = plain & (lengths <= NUMERAL_TOKEN_BYTES)
    short[short] = ~np.isin(data[offsets[:-1][short]], np.frombuffer(b"0123456789", dtype=np.uint8))
    tokens = np.zeros(len(text), dtype=bool)
    if short.any():
        found = pc.is_in(text.filter(pa.array(short)), value_set=NUMERAL_TOKENS)
        tokens[short] = found.to_numpy(zero_copy_only=False)
    simple, broken = plain & ~tokens, np.zeros(len(text), dtype=bool)
    rest = ~plain & filled
    numbers = None
    if simple.any():
        try:
            numbers = _cast_numbers(text, simple)
        except pa.ArrowInvalid:  # e.g. `1e` or `+-1`: only the cells matching NUMBER_PATTERN are cast at once
            odd = simple & ~_decimals(offsets, data)
            parsable = simple & ~odd
            parsable[odd] = pc.match_substring_regex(text.filter(pa.array(odd)), NUMBER_PATTERN).to_numpy(
                zero_copy_only=False
            )
            try:
                numbers = _cast_numbers(text, parsable)
                rest |= simple & ~parsable
            except pa.ArrowInvalid:
                rest |= simple
    numbers = np.full(len(text), np.nan) if numbers is None else numbers
    if rest.any():
        cells = values[rest]
        tokens[rest] = token = _missing_tokens(cells).to_numpy()
        cells = cells.where(~token)
        numbers[rest] = cast = _strict_number(cells).to_numpy()
        broken[rest] = (~_blank(cells) & np.isnan(cast)).to_numpy()
    return numbers, tokens, broken


def _decimals(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Whether each cell (`_text_buffers`) is digits with at most one '.' (`7`, `12.5`, `.5`, `5.`): a text
    NUMBER_PATTERN matches without the regex. Bytes are counted per cell by cumulative sums."""
    cells, starts = data[offsets[0] : offsets[-1]], offsets - offsets[0]
    points = np.concatenate(([0], np.cumsum(cells == ord("."))))[starts]
    others = np.concatenate(([0], np.cumsum((cells < ord("0")) | (cells > ord("9")))))[starts]
    n_points, n_others = np.diff(points), np.diff(others) - np.diff(points)
    return (n_others == 0) & (n_points <= 1) & (np.diff(starts) > n_points)


def _cast_numbers(text: pa.Array, cells: np.ndarray) -> np.ndarray:
    """The `cells` of `text` cast to float64 (Arrow's cast, ArrowInvalid when one is no number), NaN elsewhere."""
    return pc.cast(_masked(text, cells), pa.float64()).to_numpy(zero_copy_only=False, writable=True)


def _masked(text: pa.Array, keep: np.ndarray) -> pa.Array:
    """`text` with every cell not in `keep` missing, sharing its buffers (nothing copied but the validity bits)."""
    validity = pa.array(np.concatenate([np.zeros(text.offset, dtype=bool), keep])).buffers()[1]
    _, offsets, data = text.buffers()
    return pa.Array.from_buffers(text.type, len(text), [validity, offsets, data], offset=text.offset)


def _coerce_column(values: pd.Series, logical_type: str, blank: pd.Series | None) -> pd.Series:
    """`values` cast to `logical_type`; `blank` (`_blank` of text values, else None) is missing in a string."""
    if logical_type in {"number", "integer"}:
        return _strict_number(values)
    if logical_type == "date":
        if _is_text(values):
            values = values.astype("str")
            # only a cell with a time (a ':') can carry a zone
            zoned = values.str.contains(":", regex=False).fillna(False).astype(bool)
            if zoned.any():
                values = values.where(~zoned, values[zoned].str.replace(ZONED_TIME, r"\1", regex=True))
        return pd.to_datetime(values, errors="coerce", format="ISO8601").astype("datetime64[ms]")
    if logical_type == "string":
        if blank is None:
            return values.astype("str")
        return values.astype("str").where(~blank) if blank.any() else values.astype("str")
    return values


def _missing_tokens(values: pd.Series) -> pd.Series:
    """Where a text column holds one of `MISSING_TOKENS` (compared stripped and case-folded). No token has a digit,
    so only the cells without one are compared, each distinct text once."""
    found = np.zeros(len(values), dtype=bool)
    if not _is_text(values) or not len(values):
        return pd.Series(found, index=values.index)
    text = pa.array(values.astype("str"), type=pa.string(), from_pandas=True)
    candidates = pc.invert(pc.match_substring_regex(text, r"[0-9]")).fill_null(False).to_numpy(zero_copy_only=False)
    if candidates.any():
        distinct = pc.unique(text.filter(pa.array(candidates)))
        # stripped as pandas strips arrow text (Arrow's Unicode whitespace), case-folded as Python folds
        tokens = [value.casefold() in MISSING_TOKENS for value in pc.utf8_trim_whitespace(distinct).to_pylist()]
        where = pc.index_in(text.filter(pa.array(candidates)), value_set=distinct).to_numpy(zero_copy_only=False)
        found[candidates] = np.asarray(tokens, dtype=bool)[where]
    return pd.Series(found, index=values.index)


class Failures:
    """Rows breaking rules, gathered a block of rows at a time: one block per rule and column (`add`), or a table of
    them (`add_table`); `table` gives one row per row label, rule and column (the first detail)."""

    def __init__(self):
        self.parts: list[pd.DataFrame] = []

    def add(self, index, rule: str, column: str, detail: str) -> None:
        if len(index):
            self.parts.append(pd.DataFrame({"index": index, "rule": rule, "column": column, "detail": detail}))

    def add_table(self, table: pd.DataFrame) -> None:
        if len(table):
            self.parts.append(table[FAILURE_COLUMNS])

    def __bool__(self) -> bool:
        return bool(self.parts)

    def table(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({name: pd.Series(dtype="object") for name in FAILURE_COLUMNS})
        table = pd.concat(self.parts, ignore_index=True)
        return table.drop_duplicates(subset=["index", "rule", "column"]).reset_index(drop=True)


def coerce(frame: pd.DataFrame, contract: TableContract, notes: list | None = None) -> tuple[pd.DataFrame, Failures]:
    """Cast each contract column to its type; values that cannot be cast become missing and are reported. In number
    and date columns a missing-value token (`MISSING_TOKENS`) is missing, not a type error; each (column, token)
    so read is appended to `notes` with its rows and first source line."""
    out, failures = frame.copy(), Failures()
    for column in contract.columns:
        if column.name not in out.columns or column.physical_type == "bytes":
            continue
        original = out[column.name]
        if column.logical_type in {"number", "integer"} and original.dtype == TEXT:
            numbers, token, broken = _cells_numbers(original)
            cast, broken = pd.Series(numbers, index=original.index), pd.Series(broken, index=original.index)
        else:
            token = _missing_tokens(original) if column.logical_type in {"number", "integer", "date"} else None
            original = original.where(~token) if token is not None and token.any() else original
            blank = _blank(original) if _is_text(original) else None
            cast = _coerce_column(original, column.logical_type, blank)
            broken = ~blank & cast.isna() if blank is not None else original.notna() & cast.isna()
        if token is not None and token.any() and notes is not None:
            notes += _missing_notes(frame, column.name, out[column.name][token])
        if column.logical_type == "integer":
            non_integral = cast.notna() & (cast != np.floor(cast))
            broken |= non_integral
            cast = cast.where(~non_integral)
            cast = cast.astype("int64") if cast.notna().all() else cast
        failures.add(original.index[broken], "type", column.name, f"{column.name} must be a {column.logical_type}")
        out[column.name] = cast
    return out, failures


def _missing_notes(frame: pd.DataFrame, column: str, tokens: pd.Series) -> list[dict]:
    lines = frame.loc[tokens.index, "source_line"] if "source_line" in frame.columns else tokens.index.to_series() + 1
    texts = tokens.astype("str").str.strip()
    return [
        {"column": column, "value": text, "rows": len(group), "first_line": int(lines.loc[group].min())}
        for text, group in texts.groupby(texts.to_numpy()).groups.items()
    ]


def _case_failures(cases: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """pandera's row failure cases as failures, one per row, check and column (a row missing two required values
    yields two); each distinct check and column is named once."""
    cases = cases[["index", "check", "column"]].drop_duplicates().astype({"check": "str"})
    pairs = cases[["check", "column"]].drop_duplicates()
    names = pd.DataFrame(
        [_case_name(check, column, contract) for check, column in pairs.itertuples(index=False, name=None)],
        columns=FAILURE_COLUMNS[1:],
    )
    names.index = pd.MultiIndex.from_frame(pairs)
    named = names.reindex(pd.MultiIndex.from_frame(cases[["check", "column"]]))
    return pd.concat([cases[["index"]].reset_index(drop=True), named.reset_index(drop=True)], axis=1)


def _case_name(check: str, column, contract: TableContract) -> tuple[str, str, str]:
    """(rule, column, detail) of a pandera check's failure on `column`."""
    if "|" in check:
        return parse_label(check)
    if check in BUILTIN_RULES:
        kind = BUILTIN_RULES[check]
        return kind.name, column, kind.detail(contract.column(column))
    return check, str(column), f"{column}: {check}"


def _compound_failures(cases: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    rule = next(rule for rule in contract.rules if rule.kind == "compound_unique")
    columns, detail = DATASET_KINDS[rule.kind].detail(rule)
    index = cases["index"].dropna().unique()
    return pd.DataFrame({"index": index, "rule": rule.id, "column": columns, "detail": detail})


def _point_failures(
    frame: pd.DataFrame, contract: TableContract, land: LandMask | None, regions: Regions | None, failures: Failures
) -> None:
    """Plausibility of coordinates that passed their ranges: on land (the land mask within a tolerance), and not
    in an excluded region (e.g. Antarctica, by country polygon within a tolerance)."""
    for rule in contract.rules:
        kind = DATASET_KINDS[rule.kind]
        if not kind.on_points:
            continue
        lon, lat = frame[rule.params["longitude"]].astype("float64"), frame[rule.params["latitude"]].astype("float64")
        checkable = lon.between(-180, 180) & lat.between(-90, 90)
        lon, lat = lon[checkable], lat[checkable]
        if (found := kind.broken(rule, lon, lat, land, regions)) is None:
            continue
        broken, detail = found
        failures.add(lon.index[broken], rule.id, kind.detail(rule)[0], detail)


def _value_texts(frame: pd.DataFrame, index: pd.Series, columns: pd.Series) -> pd.Series:
    """The offending values as they were in the source (several columns joined by ', '); missing when blank."""
    values = pd.Series(None, index=range(len(index)), dtype="str")
    for column, positions in columns.groupby(columns.to_numpy()).groups.items():
        names = str(column).split(",")
        if not all(name in frame.columns for name in names):
            continue
        rows = index.iloc[positions]
        names = [SOURCE_TEXT_PREFIX + name if SOURCE_TEXT_PREFIX + name in frame.columns else name for name in names]
        parts = [frame.loc[rows, name].astype("str").fillna("").to_numpy() for name in names]
        joined = pd.Series(parts[0], dtype="str")
        for part in parts[1:]:
            joined = joined + ", " + pd.Series(part, dtype="str")
        if len(names) == 1:
            joined = joined.where(joined.str.strip() != "")
        values.iloc[positions] = joined.to_numpy()
    return values


def _rejects_table(table: pd.DataFrame, frame: pd.DataFrame, typed: pd.DataFrame, contract: TableContract):
    """One row per failure (`table`, as `Failures.table`): values as source text from `frame`, site id and depths as
    typed in `typed` (indexed as `frame`)."""
    if not len(table):
        columns = load_table_contract(REJECTS_CONTRACT).columns
        return pd.DataFrame({column.name: pd.Series(dtype=column.physical_type) for column in columns})
    index = table["index"]
    if "source_file" in frame.columns:
        source_file = frame.loc[index, "source_file"].to_numpy()
        source_line = frame.loc[index, "source_line"].to_numpy()
    else:
        source_file = np.full(len(table), contract.id)
        source_line = frame.index.get_indexer(index) + 1
    site = typed.loc[index, "site_id"].to_numpy() if "site_id" in typed.columns else [None] * len(table)
    values = _value_texts(frame, index.reset_index(drop=True), table["column"].astype("str"))
    declared = frame.attrs.get(DECLARED_CONVERSIONS, {})
    texts = {
        columns: "; ".join(dict.fromkeys(declared[c] for c in columns.split(",") if c in declared)) or None
        for columns in table["column"].astype("str").unique()
    }
    depths = {
        name: (typed.loc[index, name] if name in typed.columns else pd.Series(np.nan, index=index))
        for name in DEPTH_COLUMNS
    }
    rejects = pd.DataFrame(
        {
            "source_file": pd.Series(source_file, dtype="str"),
            "source_line": pd.Series(source_line, dtype="int64"),
            "site_id": pd.Series(site, dtype="str"),
            "rule": table["rule"].astype("str"),
            "column": table["column"].astype("str"),
            "value": values.str.slice(0, MAX_VALUE_CHARS),
            "value_length": values.str.len().fillna(0).astype("int64"),
            "detail": table["detail"].astype("str"),
            "contract": contract.label,
            "conversion": pd.Series(table["column"].astype("str").map(texts).to_numpy(), dtype="str"),
            **{name: pd.to_numeric(d, errors="coerce").astype("float64").to_numpy() for name, d in depths.items()},
        }
    )
    return rejects.sort_values(["source_file", "source_line", "rule", "column"], kind="mergesort").reset_index(
        drop=True
    )


def collapse_identical(frame: pd.DataFrame, contract: TableContract) -> tuple[pd.DataFrame, pd.Series]:
    """Rows identical in every contract column become one (the first), counting its copies in the count column;
    with the index of the row each copy collapsed into, by the copy's index.

    Rows repeated value for value (`repeated_rows`) are the candidates, compared as text.
    """
    rule = next((rule for rule in contract.rules if rule.kind == "collapse_identical"), None)
    if rule is None:
        return frame, pd.Series([], dtype=frame.index.dtype)
    count_column = rule.params["countColumn"]
    columns = [c.name for c in contract.columns if c.name in frame.columns and c.name != count_column]
    candidates = pd.Series(repeated_rows([frame[column] for column in columns]), index=frame.index)
    copies = pd.Series(1, index=frame.index, dtype="int64")
    first = pd.Series(True, index=frame.index)
    copy_of = pd.Series([], dtype=frame.index.dtype)
    if candidates.any():
        keys = frame.loc[candidates, columns].astype("str").fillna("\0")
        group = np.zeros(len(keys), dtype=np.int64)  # the same number for rows of the same texts
        for column in columns:
            codes, uniques = pd.factorize(keys[column])
            group = pd.factorize(group * len(uniques) + codes)[0]
        leader = np.unique(group, return_index=True)[1][group]  # each row's group's first row, by position
        is_first = leader == np.arange(len(keys))
        first[candidates] = is_first
        copies[candidates] = np.bincount(group)[group]
        copy_of = pd.Series(keys.index[leader[~is_first]], index=keys.index[~is_first], name="kept_row")
    out = frame.copy() if first.all() else frame[first].copy()
    out[count_column] = copies[first].to_numpy()
    return out, copy_of


def _kind(contract: TableContract, rule_id: str) -> str:
    """The kind of the contract's rule `rule_id` (a pandera check of its own, e.g. a dtype, is its own kind)."""
    return next((rule.kind for rule in contract.rules if rule.id == rule_id), rule_id)


def share_gate(contract: TableContract, rejected_rows: int, n_rows: int, by_rule: pd.Series) -> list[str]:
    """Drop-level gate: past the contract's maximum share of quarantined rows the whole drop is refused.

    `by_rule` counts the failures per (rule, column)."""
    rule = next((rule for rule in contract.rules if rule.kind == SHARE_GATE), None)
    if rule is None or not n_rows or not rejected_rows:
        return []
    share = 100.0 * rejected_rows / n_rows
    if share <= rule.params["maximumPct"]:
        return []
    top = by_rule.sort_index().sort_values(ascending=False).head(3)
    rules = ", ".join(f"{rule_}:{column} ({n} rows)" for (rule_, column), n in top.items())
    return [
        f"{rule.id}: {share:.1f} % of rows quarantined ({rejected_rows} of {n_rows}), more than the "
        f"{rule.params['maximumPct']} % allowed; top rules: {rules}"
    ]


class WholeTableRules:
    """The contract's whole-table rules, each with its kind's tally fed frame by frame (contracts.rules)."""

    def __init__(self, contract: TableContract):
        kinds = ((rule, DATASET_KINDS[rule.kind]) for rule in contract.rules)
        self.tallies = [(rule, kind, kind.tally(rule)) for rule, kind in kinds if kind.whole_table]

    def add(self, checked: pd.DataFrame) -> None:
        for _, _, tally in self.tallies:
            tally.add(checked)

    def errors(self, label: str, n_rows: int) -> list[str]:
        return [
            BrokenRule(f"{label}: {kind.detail(rule)[1]}", rule.kind)
            for rule, kind, tally in self.tallies
            if not kind.holds(rule, tally, n_rows)
        ]


def _typed_as_coerced(frame: pd.DataFrame, contract: TableContract) -> bool:
    """Whether every contract column is present with the dtype `coerce` gives its physical type."""
    return all(
        column.name in frame.columns
        and (
            column.physical_type in UNTYPED_PHYSICAL_TYPES
            or frame[column.name].dtype in COERCED_DTYPES.get(column.physical_type, ())
        )
        for column in contract.columns
    )


def rule_failures(frame: pd.DataFrame, contract: TableContract, foreign_values: dict, failures: Failures) -> None:
    """The rows of `frame` (coerced) breaking each row-level rule, in the order of the pandera schema: each column's
    rules, then the dataset rules."""
    for column in contract.columns:
        for kind in COLUMN_KINDS:
            if kind.applies(column) and (broken := kind.broken(column, frame[column.name], foreign_values)) is not None:
                failures.add(frame.index[broken.to_numpy(dtype=bool)], kind.name, column.name, kind.detail(column))
    for rule in contract.rules:
        kind = DATASET_KINDS[rule.kind]
        if (broken := kind.broken_rows(rule, frame)) is not None:
            column, detail = kind.detail(rule)
            failures.add(frame.index[broken.to_numpy(dtype=bool)], rule.id, column, detail)


def _pandera_failures(
    frame: pd.DataFrame, contract: TableContract, foreign_values: dict, whole_table_rules: bool, failures: Failures
) -> list[str]:
    """The contract's pandera schema on a table whose columns are not all of the contract's types: its row failures
    added to `failures`, its dataset-level errors returned (a type error only when no row failed)."""
    import pandera.pandas as pandera

    from soil_pipeline.contracts.pandera_schema import to_pandera

    try:
        to_pandera(contract, foreign_values, whole_table_rules).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as error:
        cases = error.failure_cases
    else:
        return []
    row_cases = cases[cases["index"].notna()]
    compound = row_cases["check"].astype("str") == "multiple_fields_uniqueness"
    failures.add_table(_case_failures(row_cases[~compound], contract))
    if compound.any():
        failures.add_table(_compound_failures(row_cases[compound], contract))
    errors = []
    for check, failure_case in (
        cases.loc[cases["index"].isna(), ["check", "failure_case"]]
        .drop_duplicates(subset=["check"])
        .itertuples(index=False, name=None)
    ):
        check = str(check)
        rule, _, detail = parse_label(check) if "|" in check else (check, "", f"{check}: {failure_case}")
        if not detail.startswith(("dtype(", "coerce_dtype(")) or not failures:
            errors.append(BrokenRule(f"{contract.label}: {detail}", _kind(contract, rule)))
    return errors


def validate(
    frame: pd.DataFrame,
    contract: TableContract,
    foreign_values: dict | None = None,
    land: LandMask | None = None,
    regions: Regions | None = None,
    whole_table_rules: bool = True,
) -> Validation:
    """Coerce, then judge every rule of the contract on whole columns; nothing is dropped without a reject row.

    `land` and `regions` (polygons and their codes) are what the contract's point plausibility rules test
    coordinates against; without them those rules are not checked. Without `whole_table_rules`, `frame` is one
    part of a larger table: row count, medians, missing shares and the share gate are left to the caller.
    """
    n_rows, source = len(frame), frame
    # worked on without its attrs (the provenance of a published table): pandas deep-copies them into every result
    frame, copy_of = collapse_identical(without_attrs(frame), contract)
    notes: list[dict] = []
    coerced, failures = coerce(frame, contract, notes)
    batch_errors: list[str] = []
    if _typed_as_coerced(coerced, contract):
        rule_failures(coerced, contract, foreign_values or {}, failures)
        if whole_table_rules:
            whole = WholeTableRules(contract)
            whole.add(coerced)
            batch_errors += whole.errors(contract.label, len(coerced))
    else:
        batch_errors += _pandera_failures(coerced, contract, foreign_values, whole_table_rules, failures)
    _point_failures(coerced, contract, land, regions, failures)
    table = failures.table()
    rejected = pd.Index(table["index"].unique())
    # a copy of a rejected row is rejected with its rules, at its own line; a copy of a valid row is listed
    copy_rejected = copy_of.isin(rejected)
    if copy_rejected.any():
        copies_of = pd.DataFrame({"copy": copy_of.index[copy_rejected], "index": copy_of[copy_rejected].to_numpy()})
        copied = copies_of.merge(table, on="index", how="inner", sort=False)
        table = pd.concat([table, copied.drop(columns="index").rename(columns={"copy": "index"})], ignore_index=True)
    n_rejected = len(rejected) + int(copy_rejected.sum())
    if whole_table_rules and len(table):
        by_rule = table.groupby(["rule", "column"]).size()
        gate = share_gate(contract, n_rejected, n_rows, by_rule)
        batch_errors += [BrokenRule(f"{contract.label}: {error}", SHARE_GATE) for error in gate]
    typed = _typed_by_source_row(coerced, source, copy_of) if len(table) else coerced
    rejects = _rejects_table(table, source, typed, contract)
    coerced = without_source_texts(coerced)
    kept = ~coerced.index.isin(rejected)
    valid = (coerced if kept.all() else coerced[kept]).reset_index(drop=True)
    coerced.attrs, valid.attrs = copy.deepcopy(source.attrs), copy.deepcopy(source.attrs)  # as pandas would carry them
    copies = _copies_listed(source, copy_of[~copy_rejected], contract)
    validation = Validation(
        contract, n_rows, coerced, valid, rejects, batch_errors, n_rejected, copies, _notes_table(notes)
    )
    validation.reconcile()
    return validation


def _typed_by_source_row(coerced: pd.DataFrame, source: pd.DataFrame, copy_of: pd.Series) -> pd.DataFrame:
    """The typed site id and depths the rejects carry, for every source row (a copy has its kept row's)."""
    columns = [c for c in ("site_id", *DEPTH_COLUMNS) if c in coerced.columns]
    rows = pd.Series(source.index, index=source.index)
    rows.loc[copy_of.index] = copy_of.to_numpy()
    return coerced.loc[rows.to_numpy(), columns].set_axis(source.index)


def _copies_listed(frame: pd.DataFrame, copy_of: pd.Series, contract: TableContract) -> pd.DataFrame:
    """The identical copies collapsed into a valid row: their file and line, and the line of the row kept (as in
    the rejects: a table without source lines is named by its contract and numbered from 1)."""
    if "source_line" in frame.columns:
        lines, files = frame["source_line"], frame["source_file"]
    else:
        lines = pd.Series(np.arange(1, len(frame) + 1), index=frame.index)
        files = pd.Series(contract.id, index=frame.index)
    return pd.DataFrame(
        {
            "source_file": files.loc[copy_of.index].astype("str").to_numpy(),
            "source_line": lines.loc[copy_of.index].astype("int64").to_numpy(),
            "copy_of_line": lines.loc[copy_of.to_numpy()].astype("int64").to_numpy(),
        },
        columns=COPY_COLUMNS,
    )


def _notes_table(notes: list[dict]) -> pd.DataFrame:
    """The undeclared missing-value tokens, one row per column and token."""
    if not notes:
        return pd.DataFrame(columns=MISSING_NOTE_COLUMNS)
    table = pd.DataFrame(notes)
    return (
        table.groupby(["column", "value"], sort=True)
        .agg(rows=("rows", "sum"), first_line=("first_line", "min"))
        .reset_index()[MISSING_NOTE_COLUMNS]
    )


def without_source_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without the source texts an input declaration kept beside converted columns."""
    kept = [c for c in frame.columns if str(c).startswith(SOURCE_TEXT_PREFIX)]
    return frame.drop(columns=kept) if kept else frame
