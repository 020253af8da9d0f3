"""Validate tables larger than memory against their contracts, one bucket of rows at a time.

Rows are partitioned by the hash of a key column (the site id) into buckets spilled to disk as Arrow IPC files.
Every cross-row rule of the field contracts compares rows of one key only (identical copies, unique site ids,
unique site and upper depth), so each bucket is validated whole with `validate` and the outcome is the same as
validating the table at once. The whole-table rules (row count, unit-guard medians, missing shares) and the
drop-level share gate are evaluated over all buckets. Valid rows and rejects are spilled as Arrow IPC and written
to an Arrow IPC file in source order: sorted in memory when small, else by DuckDB, whose sort spills to disk past
its memory limit. Peak memory is about one bucket being validated (`BUCKET_BYTES` of source text; roughly 0.6 kB
per row) plus the values a median needs (at most 8 bytes per value, much less when values repeat:
`rules.MedianValues`).
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from soil_pipeline.contracts.model import TableContract
from soil_pipeline.contracts.validate import (
    COPY_COLUMNS,
    MISSING_NOTE_COLUMNS,
    SAMPLE_ROWS,
    SHARE_GATE,
    LandMask,
    Regions,
    Validation,
    WholeTableRules,
    reconcile,
    share_gate,
    validate,
)
from soil_pipeline.errors import BrokenRule
from soil_pipeline.publishing.parquet import BATCH_ROWS, ArrowFile, TableFile

BUCKET_BYTES = 24 << 20
DUCKDB_MEMORY_LIMIT = "256MB"
# Spilled parts up to this size (Arrow bytes) are sorted in memory (the table read back, written sorted a batch at a
# time; less than one bucket being validated takes); larger ones by DuckDB, out of core.
IN_MEMORY_SORT_BYTES = 256 << 20
# The Great Expectations suite runs on at most this many rows: the first bucket (sites chosen by hash), cut here.
GX_SAMPLE_ROWS = 100_000


def bucket_count(source_bytes: int, bucket_bytes: int = BUCKET_BYTES) -> int:
    return max(1, math.ceil(source_bytes / bucket_bytes))


def bucket_of(keys: pd.Series | pa.Array, n_buckets: int) -> np.ndarray:
    """Bucket of each key: a stable hash of its text; missing and blank keys share one bucket. Each distinct key is
    hashed once (the keys dictionary-encoded by Arrow)."""
    if n_buckets == 1:
        return np.zeros(len(keys), dtype=np.int64)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if not isinstance(keys, pa.Array) or not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
        text = pd.Series(keys.to_pandas() if isinstance(keys, pa.Array) else keys, dtype="str")
        keys = pa.array(text, type=pa.large_string(), from_pandas=True)
    encoded = pc.dictionary_encode(keys)
    distinct = pc.utf8_trim_whitespace(encoded.dictionary)  # as pandas strips arrow text
    text = np.append(distinct.to_numpy(zero_copy_only=False), "")  # the last: missing keys
    by_text = (pd.util.hash_array(text, categorize=False) % np.uint64(n_buckets)).astype(np.int64)
    return by_text[pc.fill_null(encoded.indices, len(text) - 1).to_numpy()]


def text_types(arrow_type: pa.DataType):
    """`types_mapper` giving text the dtype the readers give it (pandas arrow strings, NaN for missing)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow", na_value=np.nan)
    return None


class Buckets:
    """Rows spilled by key into `n` Arrow IPC files under `folder`, read back one bucket at a time."""

    def __init__(self, folder: Path, n: int, key: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / f"bucket-{i:04d}.arrow" for i in range(n)]
        self.key, self.schema, self.writers, self.closed = key, None, [None] * n, False

    def add(self, frame: pd.DataFrame | pa.Table) -> None:
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        if self.schema is None:
            self.schema = table.schema
        table = table.cast(self.schema)
        buckets = bucket_of(table.column(self.key), len(self.paths))
        if len(self.paths) > 1:  # one bucket takes every row as it is
            order = np.argsort(buckets, kind="stable")
            table, buckets = table.take(pa.array(order)), buckets[order]
        bounds = np.searchsorted(buckets, np.arange(len(self.paths) + 1))
        for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if stop > start:
                if self.writers[i] is None:
                    self.writers[i] = pa.ipc.new_file(self.paths[i], self.schema)
                self.writers[i].write_table(table.slice(start, stop - start))

    @property
    def empty(self) -> bool:
        return self.schema is None

    def holds(self, i: int) -> bool:
        """Whether bucket `i` has rows."""
        return self.writers[i] is not None

    def close(self) -> None:
        if not self.closed:
            for writer in self.writers:
                if writer is not None:
                    writer.close()
        self.closed = True

    def read(self, i: int) -> pd.DataFrame | None:
        """The rows of bucket `i` (None when it has none) as pandas, text as arrow strings; the file is removed."""
        self.close()
        if self.writers[i] is None:
            return None
        with pa.memory_map(str(self.paths[i])) as source:
            table = pa.ipc.open_file(source).read_all()
        frame = table.to_pandas(types_mapper=text_types)
        del table
        self.paths[i].unlink()
        return frame

    def frames(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """(bucket, rows) of every non-empty bucket, in bucket order."""
        for i in range(len(self.paths)):
            frame = self.read(i)
            if frame is not None:
                yield i, frame


class SpillWriter:
    """Parts appended bucket by bucket (one schema: the first part's) to an Arrow IPC file, for one sort at the end.

    The parts are spilled as Arrow IPC (no encoding) and the sorted table is written once as an Arrow IPC file too
    (`ArrowFile`): it is only read back batch by batch (publishing encodes it with its own settings)."""

    def __init__(self, path: Path, in_memory_bytes: int = IN_MEMORY_SORT_BYTES):
        self.path, self.writer, self.schema, self.nbytes = path, None, None, 0
        self.in_memory_bytes = in_memory_bytes

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pa.ipc.new_stream(self.path, self.schema)
        table = table.cast(self.schema)
        self.writer.write_table(table)
        self.nbytes += table.nbytes

    def sorted_file(self, target: Path, order_by: Iterable[str]) -> ArrowFile | None:
        if self.writer is None:
            return None
        self.writer.close()
        if self.nbytes <= self.in_memory_bytes:
            _sort_in_memory(self.path, target, list(order_by), self.schema)
        else:
            sort_spilled(self.path, target, list(order_by), self.schema)
        self.path.unlink()
        return ArrowFile(str(target))


def _sorted_writer(target: Path, schema: pa.Schema) -> pa.ipc.RecordBatchFileWriter:
    return pa.ipc.new_file(target, schema)


def _sort_in_memory(source: Path, target: Path, order_by: list[str], schema: pa.Schema) -> None:
    """`source` (an Arrow IPC stream) sorted by `order_by` into `target` in memory, as DuckDB sorts (ascending, missing
    last)."""
    with pa.OSFile(str(source)) as spilled:
        table = pa.ipc.open_stream(spilled).read_all()
        order = _sort_order(table, order_by)
        with _sorted_writer(target, schema) as writer:
            for start in range(0, len(table), BATCH_ROWS):
                rows = table.slice(start, BATCH_ROWS) if order is None else table.take(order.slice(start, BATCH_ROWS))
                writer.write_table(rows)


def _sort_order(table: pa.Table, order_by: list[str]) -> pa.Array | None:
    """The indices sorting `table` by `order_by` as `pc.sort_indices` does (ascending, missing last, stable); None
    when the rows are in that order already. Leading keys of one value throughout (e.g. the source file) order
    nothing and are left out; a last key of integers without missing values (e.g. the source line) is sorted by
    numpy's stable sort, which finds the runs the buckets left sorted."""
    keys = list(order_by)
    while len(keys) > 1 and _one_value(table.column(keys[0])):
        keys.pop(0)
    column = table.column(keys[0])
    if len(keys) == 1 and pa.types.is_integer(column.type) and not column.null_count:
        values = column.to_numpy()
        return None if (np.diff(values) >= 0).all() else pa.array(np.argsort(values, kind="stable"))
    return pc.sort_indices(table, [(name, "ascending", "at_end") for name in keys])


def _one_value(column: pa.ChunkedArray) -> bool:
    """Whether every row of `column` holds the same value (none missing)."""
    return not column.null_count and (not len(column) or pc.all(pc.equal(column, column[0])).as_py())


def sort_spilled(source: Path, target: Path, order_by: list[str], schema: pa.Schema) -> None:
    """`source` (an Arrow IPC stream) sorted by `order_by` into `target` with `schema`, out of core (DuckDB spills
    past its limit). DuckDB reads the stream batch by batch: as a dataset, the file would be mapped into memory
    (and count as resident) whole."""
    import duckdb

    spill = source.parent / "duckdb_spill"
    config = {
        "memory_limit": DUCKDB_MEMORY_LIMIT,
        "threads": 2,
        "temp_directory": str(spill),
    }
    with duckdb.connect(config=config) as connection:
        connection.execute("SET enable_progress_bar = false")
        order = ", ".join(f'"{name}"' for name in order_by)
        with pa.OSFile(str(source)) as spilled:
            result = connection.from_arrow(pa.ipc.open_stream(spilled)).order(order)
            with _sorted_writer(target, schema) as writer:
                for batch in result.to_arrow_reader(BATCH_ROWS):
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))


@dataclass
class StreamValidation:
    """What `validate` says about a whole table, gathered bucket by bucket; valid rows and rejects on disk."""

    contract: TableContract
    n_checked: int = 0  # rows read
    n_rows: int = 0  # rows after identical copies collapsed
    rejected_rows: int = 0  # rows read that were rejected (copies of a rejected row included)
    n_valid: int = 0
    identical_copies: int = 0  # copies collapsed into a valid row
    batch_errors: list[str] = field(default_factory=list)
    by_rule: Counter = field(default_factory=Counter)
    valid: TableFile | None = None
    rejects: TableFile | None = None
    gx_sample: pd.DataFrame | None = None
    gx_sample_note: str = ""
    copies: TableFile | None = None  # the identical copies listed (contracts.validate.COPY_COLUMNS), in file order
    _heads: list[pd.DataFrame] = field(default_factory=list)
    _missing: list[pd.DataFrame] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.batch_errors and self.rejected_rows == 0

    def failures_by_rule(self) -> dict[str, int]:
        by_rule = {f"{rule}:{column}": int(n) for (rule, column), n in sorted(self.by_rule.items())}
        return {**by_rule, **{f"dataset:{error.split(':', 1)[0]}": 1 for error in self.batch_errors}}

    def sample(self) -> pd.DataFrame:
        if self.rejects is not None:
            return self.rejects.head(SAMPLE_ROWS)
        if not self._heads:
            return pd.DataFrame()
        heads = pd.concat(self._heads, ignore_index=True)
        return heads.sort_values(["source_file", "source_line", "rule", "column"]).head(SAMPLE_ROWS)

    def rows_rejected(self) -> int:
        return self.rejected_rows

    def reconcile(self) -> None:
        """Every row read is valid, rejected or an identical copy collapsed into a valid row (AccountingError)."""
        reconcile(self.contract, self.n_checked, self.n_valid, self.identical_copies, self.rejected_rows)

    def undeclared_missing(self) -> pd.DataFrame:
        """Values read as missing that the declaration does not list (column, value, rows, first source line)."""
        if not self._missing:
            return pd.DataFrame(columns=MISSING_NOTE_COLUMNS)
        table = pd.concat(self._missing, ignore_index=True)
        summed = table.groupby(["column", "value"], sort=True).agg(
            rows=("rows", "sum"), first_line=("first_line", "min")
        )
        return summed.reset_index()[MISSING_NOTE_COLUMNS]

    def _add(self, validation: Validation) -> None:
        self.n_checked += validation.n_checked
        self.n_rows += len(validation.checked)
        self.n_valid += len(validation.valid)
        self.identical_copies += len(validation.copies)
        if len(validation.undeclared_missing):
            self._missing.append(validation.undeclared_missing)
        self.rejected_rows += validation.rows_rejected()
        self.by_rule.update(validation.rejects.groupby(["rule", "column"]).size().to_dict())
        self.batch_errors += [error for error in validation.batch_errors if error not in self.batch_errors]
        if len(validation.rejects):
            self._heads = [*self._heads, validation.sample()]


def validate_buckets(
    buckets: Iterable[tuple[int, pd.DataFrame]],
    contract: TableContract,
    folder: Path,
    *,
    empty: pd.DataFrame | None = None,
    **options,
) -> StreamValidation:
    """Validate each bucket (all rows of its keys) with `validate`, then the whole-table rules over all of them
    (`BucketValidator`, whose `options` these are); `empty` is validated when there are no rows at all."""
    validator = BucketValidator(contract, folder, **options)
    for i, frame in buckets:
        validator.add(i, frame)
    return validator.finish(empty)


class BucketValidator:
    """A table validated bucket by bucket as its buckets are made (`add`), then as a whole (`finish`).

    `foreign_values(bucket)` gives the allowed values of foreign keys for that bucket; `on_bucket` sees each
    bucket's validation (e.g. to compute per-site figures); `attrs` are set on every bucket's frame (spilled rows
    lose them), e.g. the conversions a declaration made. Valid rows are sorted by `valid_order` (unless not
    `keep_valid`), rejects by file, line, rule and column, into Arrow IPC files under `folder`.
    """

    def __init__(  # noqa: PLR0913
        self,
        contract: TableContract,
        folder: Path,
        *,
        foreign_values: Callable[[int], dict] | None = None,
        land: LandMask | None = None,
        regions: Regions | None = None,
        on_bucket: Callable[[int, Validation], None] | None = None,
        valid_order: Iterable[str] = ("source_file", "source_line"),
        keep_valid: bool = True,
        attrs: dict | None = None,
    ):
        folder.mkdir(parents=True, exist_ok=True)
        self.contract, self.folder, self.valid_order, self.attrs = contract, folder, valid_order, attrs or {}
        self.foreign_values, self.land, self.regions, self.on_bucket = foreign_values, land, regions, on_bucket
        self.result, self.whole, self.n_buckets = StreamValidation(contract), WholeTableRules(contract), 0
        self.valid = SpillWriter(folder / "valid.part.arrow") if keep_valid else None
        self.rejects = SpillWriter(folder / "rejects.part.arrow")
        self.copies = SpillWriter(folder / "copies.part.arrow")

    def add(self, i: int, frame: pd.DataFrame) -> None:
        """Validate bucket `i` (all rows of its keys)."""
        self.n_buckets += 1
        frame.attrs.update(self.attrs)
        self._validate(i, frame)

    def finish(self, empty: pd.DataFrame | None = None) -> StreamValidation:
        """The whole-table rules and the share gate over all buckets; valid rows and rejects sorted on disk."""
        if not self.n_buckets and empty is not None:
            self._validate(0, empty)
        result, contract, folder = self.result, self.contract, self.folder
        result.reconcile()
        result.batch_errors += self.whole.errors(contract.label, result.n_rows)
        by_rule = pd.Series(result.by_rule, dtype="int64")
        if len(by_rule):
            by_rule.index = pd.MultiIndex.from_tuples(by_rule.index)
        gate = share_gate(contract, result.rejected_rows, result.n_checked, by_rule)
        result.batch_errors += [BrokenRule(f"{contract.label}: {error}", SHARE_GATE) for error in gate]
        if self.valid is not None:
            result.valid = self.valid.sorted_file(folder / "valid.arrow", self.valid_order)
        order = ["source_file", "source_line", "rule", "column"]
        result.rejects = self.rejects.sorted_file(folder / "rejects.arrow", order)
        result.copies = self.copies.sorted_file(folder / "copies.arrow", ["source_file", "source_line"])
        if result.gx_sample is not None and len(result.gx_sample) < result.n_rows:
            result.gx_sample_note = (
                f"sample: the first {len(result.gx_sample)} of {result.n_rows} rows, from the first of "
                f"{self.n_buckets} buckets (rows grouped by a hash of the key)"
            )
        return result

    def _validate(self, i: int, frame: pd.DataFrame) -> None:
        result = self.result
        foreign = self.foreign_values(i) if self.foreign_values else None
        validation = validate(
            frame, self.contract, foreign, land=self.land, regions=self.regions, whole_table_rules=False
        )
        result._add(validation)
        self.whole.add(validation.checked)
        if result.gx_sample is None:
            # taken, not sliced: a slice would keep the whole bucket's columns alive until the end
            result.gx_sample = validation.checked.take(np.arange(min(GX_SAMPLE_ROWS, len(validation.checked))))
            result.gx_sample_note = f"whole table ({len(result.gx_sample)} rows)"
        if self.valid is not None:
            self.valid.write(validation.valid)
        self.rejects.write(validation.rejects)
        if len(validation.copies):
            self.copies.write(validation.copies[COPY_COLUMNS])
        if self.on_bucket:
            self.on_bucket(i, validation)
