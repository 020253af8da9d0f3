"""The sort at the end of a streamed validation (contracts.stream.SpillWriter): parts spilled bucket by bucket come
back in the order asked for, the same whether sorted in memory or by DuckDB out of core."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from soil_pipeline.contracts.stream import SpillWriter
from soil_pipeline.publishing.parquet import ArrowFile


def _parts() -> list[pd.DataFrame]:
    """Rejects-like rows in three buckets, each in its own source order, with repeated lines and missing columns."""
    rng = np.random.default_rng(3)
    lines = rng.permutation(np.repeat(np.arange(2, 302), 2))
    parts = []
    for bucket in np.array_split(lines, 3):
        bucket = np.sort(bucket)
        parts.append(
            pd.DataFrame(
                {
                    "source_file": "horizons.csv",
                    "source_line": bucket.astype("int64"),
                    "rule": np.where(bucket % 3 == 0, "range", "required"),
                    "column": pd.Series(
                        rng.choice(np.array([None, "soc_g_per_kg", "bulk_density"]), len(bucket)), dtype="str"
                    ),
                    "value": pd.Series(bucket.astype(str), dtype="str"),
                }
            )
        )
    return parts


@pytest.mark.parametrize("in_memory_bytes", [1 << 30, 0], ids=["in memory", "duckdb"])
def test_spilled_parts_come_back_sorted_with_missing_last(tmp_path, in_memory_bytes):
    writer = SpillWriter(tmp_path / "rejects.part.arrow", in_memory_bytes=in_memory_bytes)
    for part in _parts():
        writer.write(part)
    order = ["source_file", "source_line", "rule", "column"]
    table = writer.sorted_file(tmp_path / "rejects.arrow", order)
    back = pa.ipc.open_file(table.path).read_all().to_pandas()
    assert back["column"].isna().any() and back["column"].notna().any()
    expected = pd.concat(_parts(), ignore_index=True).sort_values(order, na_position="last", ignore_index=True)
    pd.testing.assert_frame_equal(back, expected)
    assert not (tmp_path / "rejects.part.arrow").exists()


def test_an_empty_spill_gives_a_file_without_batches(tmp_path):
    writer = SpillWriter(tmp_path / "rejects.part.arrow")
    writer.write(_parts()[0].iloc[:0])
    table = writer.sorted_file(tmp_path / "rejects.arrow", ["source_line"])
    assert pa.ipc.open_file(table.path).num_record_batches == 0 and table.num_rows == 0
    assert list(table.batches()) == [] and table.head(5).columns.tolist() == list(_parts()[0].columns)


def test_an_arrow_file_gives_batches_of_the_rows_asked_for_as_parquet_does(tmp_path):
    """Publishing writes a row group per batch: an intermediate must batch its rows as a Parquet file would."""
    frame = pd.DataFrame({"a": np.arange(250), "b": pd.Series(np.arange(250).astype(str), dtype="str")})
    with pa.ipc.new_file(tmp_path / "t.arrow", pa.Schema.from_pandas(frame, preserve_index=False)) as writer:
        for start, stop in ((0, 100), (100, 150), (150, 250)):
            writer.write_table(pa.Table.from_pandas(frame.iloc[start:stop], preserve_index=False))
    table = ArrowFile(str(tmp_path / "t.arrow"))
    assert [batch.num_rows for batch in table.batches(rows=120)] == [120, 120, 10]
    assert [batch.num_rows for batch in table.batches(["b"], rows=30)] == [30] * 8 + [10]
    assert table.num_rows == 250 and table.head(3)["b"].tolist() == ["0", "1", "2"]
    back = pd.concat(table.frames(rows=70), ignore_index=True)
    pd.testing.assert_frame_equal(back, frame)
