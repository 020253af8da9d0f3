"""Validate a table against its contract: coerce types, run the pandera schema lazily, split good rows from rejects.

Row-level failures (a failure with a row index) send that row to the rejects table, one reject row per broken rule,
with the source file and line. Failures without a row index (missing column, row count, a unit guard on the median)
are dataset-level: they are returned as `batch_errors` and the caller fails the run.

Every input row ends in exactly one of: valid (published), rejected (with its rules), or an identical copy collapsed
into a valid row (counted in its count column and listed with its line). A copy of a rejected row is rejected with
the same rules at its own line. `Validation.reconcile` raises when the three do not add up to the rows read.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc

from soil_pipeline.contracts.model import TableContract, load_table_contract
from soil_pipeline.contracts.pandera_schema import to_pandera
from soil_pipeline.contracts.rules import COLUMN_KINDS, DATASET_KINDS, parse_label
from soil_pipeline.engine.points import CellRule, HasValue, near_cells
from soil_pipeline.engine.raster import RasterSource
from soil_pipeline.errors import BrokenRule
from soil_pipeline.science.regions import NO_REGION, assign_points

# Column rules pandera checks itself (column options), by the name pandera gives their failures.
BUILTIN_RULES = {kind.pandera_builtin: kind for kind in COLUMN_KINDS if kind.pandera_builtin}
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

    def codes_at(self, lon: pd.Series, lat: pd.Series, tolerance_deg: float) -> np.ndarray:
        """The code of the polygon holding each point, else of the nearest within `tolerance_deg`; None if none."""
        index, _ = assign_points(lon, lat, self.geometries, tolerance_deg)
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
# A reject's `value` is the source text cut to this many characters; `value_length` keeps the full length.
MAX_VALUE_CHARS = 100


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def _blank(values: pd.Series) -> pd.Series:
    """Missing: no value, or only whitespace (the landing files' only missing-value marker is an empty cell)."""
    return values.isna() | (values.astype("str").str.strip() == "")


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


def _coerce_column(values: pd.Series, logical_type: str) -> pd.Series:
    if logical_type in {"number", "integer"}:
        return _strict_number(values)
    if logical_type == "date":
        if _is_text(values):
            values = values.astype("str").str.replace(ZONED_TIME, r"\1", regex=True)
        return pd.to_datetime(values, errors="coerce", format="ISO8601").astype("datetime64[ms]")
    if logical_type == "string":
        return values.astype("str").where(~_blank(values)) if _is_text(values) else values.astype("str")
    return values


def _missing_tokens(values: pd.Series) -> pd.Series:
    """Where a text column holds one of `MISSING_TOKENS`."""
    if not _is_text(values):
        return pd.Series(False, index=values.index)
    return values.astype("str").str.strip().str.casefold().isin(MISSING_TOKENS).fillna(False).astype(bool)


def coerce(frame: pd.DataFrame, contract: TableContract, notes: list | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Cast each contract column to its type; values that cannot be cast become missing and are reported. In number
    and date columns a missing-value token (`MISSING_TOKENS`) is missing, not a type error; each (column, token)
    so read is appended to `notes` with its rows and first source line."""
    out, failures = frame.copy(), []
    for column in contract.columns:
        if column.name not in out.columns or column.physical_type == "bytes":
            continue
        original = out[column.name]
        if column.logical_type in {"number", "integer", "date"} and (token := _missing_tokens(original)).any():
            if notes is not None:
                notes += _missing_notes(frame, column.name, original[token])
            original = original.where(~token)
        cast = _coerce_column(original, column.logical_type)
        if column.logical_type == "integer":
            non_integral = cast.notna() & (cast != np.floor(cast))
            cast = cast.where(~non_integral)
            cast = cast.astype("int64") if cast.notna().all() else cast
        broken = ~_blank(original) & cast.isna() if _is_text(original) else original.notna() & cast.isna()
        detail = f"{column.name} must be a {column.logical_type}"
        failures += [
            {"index": index, "rule": "type", "column": column.name, "detail": detail}
            for index in original.index[broken]
        ]
        out[column.name] = cast
    return out, failures


def _missing_notes(frame: pd.DataFrame, column: str, tokens: pd.Series) -> list[dict]:
    lines = frame.loc[tokens.index, "source_line"] if "source_line" in frame.columns else tokens.index.to_series() + 1
    texts = tokens.astype("str").str.strip()
    return [
        {"column": column, "value": text, "rows": len(group), "first_line": int(lines.loc[group].min())}
        for text, group in texts.groupby(texts.to_numpy()).groups.items()
    ]


def _row_failures(cases: pd.DataFrame, contract: TableContract) -> list[dict]:
    """One failure per row, rule and column: a row missing two required values yields two."""
    failures, seen = [], set()
    for case in cases.drop_duplicates(subset=["index", "check", "column"]).itertuples(index=False):
        check = str(case.check)
        if "|" in check:
            rule, column, detail = parse_label(check)
        elif check in BUILTIN_RULES:
            kind = BUILTIN_RULES[check]
            rule, column, detail = kind.name, case.column, kind.detail(contract.column(case.column))
        else:
            rule, column, detail = check, str(case.column), f"{case.column}: {check}"
        if (case.index, rule, column) not in seen:
            seen.add((case.index, rule, column))
            failures.append({"index": case.index, "rule": rule, "column": column, "detail": detail})
    return failures


def _compound_failures(cases: pd.DataFrame, contract: TableContract) -> list[dict]:
    rule = next(rule for rule in contract.rules if rule.kind == "compound_unique")
    columns, detail = DATASET_KINDS[rule.kind].detail(rule)
    return [
        {"index": index, "rule": rule.id, "column": columns, "detail": detail}
        for index in cases["index"].dropna().unique()
    ]


def _point_failures(frame: pd.DataFrame, contract: TableContract, land: LandMask | None, regions: Regions | None):
    """Plausibility of coordinates that passed their ranges: on land (the land mask within a tolerance), and not
    in an excluded region (e.g. Antarctica, by country polygon within a tolerance)."""
    failures = []
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
        column = kind.detail(rule)[0]
        failures += [{"index": i, "rule": rule.id, "column": column, "detail": detail} for i in lon.index[broken]]
    return failures


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


def _rejects_table(failures: list[dict], frame: pd.DataFrame, typed: pd.DataFrame, contract: TableContract):
    """One row per failure: values as source text from `frame`, site id and depths as typed in `typed` (indexed as
    `frame`)."""
    if not failures:
        columns = load_table_contract(REJECTS_CONTRACT).columns
        return pd.DataFrame({column.name: pd.Series(dtype=column.physical_type) for column in columns})
    table = pd.DataFrame(failures)
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

    Rows are compared by a 64-bit hash first; only rows whose hash repeats are compared in full.
    """
    rule = next((rule for rule in contract.rules if rule.kind == "collapse_identical"), None)
    if rule is None:
        return frame, pd.Series([], dtype=frame.index.dtype)
    count_column = rule.params["countColumn"]
    columns = [c.name for c in contract.columns if c.name in frame.columns and c.name != count_column]
    hashes = pd.util.hash_pandas_object(frame[columns], index=False)
    candidates = hashes.duplicated(keep=False)
    copies = pd.Series(1, index=frame.index, dtype="int64")
    first = pd.Series(True, index=frame.index)
    copy_of = pd.Series([], dtype=frame.index.dtype)
    if candidates.any():
        keys = frame.loc[candidates, columns].astype("str").fillna("\0")
        first[candidates] = ~keys.duplicated(keep="first")
        rows = keys.assign(kept_row=keys.index).groupby(columns, sort=False, dropna=False)["kept_row"]
        copies[candidates] = rows.transform("size")
        kept = rows.transform("first")
        copy_of = kept[~first[candidates]]
    out = frame[first].copy()
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


def validate(
    frame: pd.DataFrame,
    contract: TableContract,
    foreign_values: dict | None = None,
    land: LandMask | None = None,
    regions: Regions | None = None,
    whole_table_rules: bool = True,
) -> Validation:
    """Coerce, then validate lazily with the contract's pandera schema; nothing is dropped without a reject row.

    `land` and `regions` (polygons and their codes) are what the contract's point plausibility rules test
    coordinates against; without them those rules are not checked. Without `whole_table_rules`, `frame` is one
    part of a larger table: row count, medians, missing shares and the share gate are left to the caller.
    """
    n_rows, source = len(frame), frame
    frame, copy_of = collapse_identical(frame, contract)
    notes: list[dict] = []
    coerced, failures = coerce(frame, contract, notes)
    batch_errors: list[str] = []
    try:
        to_pandera(contract, foreign_values, whole_table_rules).validate(coerced, lazy=True)
    except pandera.errors.SchemaErrors as error:
        cases = error.failure_cases
        row_cases = cases[cases["index"].notna()]
        compound = row_cases["check"].astype("str") == "multiple_fields_uniqueness"
        failures += _row_failures(row_cases[~compound], contract)
        if compound.any():
            failures += _compound_failures(row_cases[compound], contract)
        for case in cases[cases["index"].isna()].drop_duplicates(subset=["check"]).itertuples(index=False):
            check = str(case.check)
            rule, _, detail = parse_label(check) if "|" in check else (check, "", f"{check}: {case.failure_case}")
            if not detail.startswith(("dtype(", "coerce_dtype(")) or not failures:
                batch_errors.append(BrokenRule(f"{contract.label}: {detail}", _kind(contract, rule)))
    failures += _point_failures(coerced, contract, land, regions)
    rejected = {failure["index"] for failure in failures}
    # a copy of a rejected row is rejected with its rules, at its own line; a copy of a valid row is listed
    copy_rejected = copy_of.isin(rejected)
    by_row: dict = {}
    for failure in failures:
        by_row.setdefault(failure["index"], []).append(failure)
    failures += [{**failure, "index": copy} for copy, row in copy_of[copy_rejected].items() for failure in by_row[row]]
    n_rejected = len(rejected) + int(copy_rejected.sum())
    if whole_table_rules and failures:
        by_rule = pd.DataFrame(failures).groupby(["rule", "column"]).size()
        gate = share_gate(contract, n_rejected, n_rows, by_rule)
        batch_errors += [BrokenRule(f"{contract.label}: {error}", SHARE_GATE) for error in gate]
    typed = _typed_by_source_row(coerced, source, copy_of) if failures else coerced
    rejects = _rejects_table(failures, source, typed, contract)
    coerced = without_source_texts(coerced)
    valid = coerced.drop(index=list(rejected)).reset_index(drop=True)
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
