"""Deterministic Parquet encoding: the same frame and library versions give the same bytes."""

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"soil_pipeline.provenance"
WRITER_SETTINGS = {"compression": "zstd", "compression_level": 3, "version": "2.6", "use_dictionary": True}


def to_parquet_bytes(frame: pd.DataFrame, provenance: dict | None = None) -> bytes:
    """Parquet bytes of `frame` (no index column), with `provenance` as JSON in the file's key-value metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if provenance is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True).encode()
        table = table.replace_schema_metadata(metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **WRITER_SETTINGS)
    return buffer.getvalue()


def read_provenance(path) -> dict:
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[PROVENANCE_KEY]) if PROVENANCE_KEY in metadata else {}
