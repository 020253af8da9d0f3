"""Deterministic Parquet encoding: the same frame and library versions give the same bytes.

Fixed writer settings, no index column, no wall-clock anywhere in the file; the provenance goes into the file's
key-value metadata (`soil_pipeline.provenance`, JSON with sorted keys), so a copied file still says what it is.
Tables with point coordinates can be written as GeoParquet (spec 1.1.0, WKB points, OGC:CRS84) via geopandas.
"""

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from soil_pipeline.science.validation import without_attrs

PROVENANCE_KEY = b"soil_pipeline.provenance"
WRITER_SETTINGS = {"compression": "zstd", "compression_level": 3, "version": "2.6", "use_dictionary": True}
GEOMETRY_COLUMN = "geometry"
POINT_CRS = "OGC:CRS84"
BATCH_ROWS = 1 << 18


@dataclass
class TableFile:
    """A table too large to hold in memory: a Parquet file, read batch by batch.

    `path` is local, or a path on `filesystem` (fsspec); `attrs["provenance"]` plays the part of a DataFrame's."""

    path: str
    filesystem: object = None
    attrs: dict = field(default_factory=dict)

    def _open(self) -> pq.ParquetFile:
        return pq.ParquetFile(self.filesystem.open(self.path, "rb") if self.filesystem else self.path)

    @property
    def schema(self) -> pa.Schema:
        return self._open().schema_arrow

    @property
    def num_rows(self) -> int:
        return self._open().metadata.num_rows

    def dtypes(self) -> pd.Series:
        """The pandas dtypes the table reads back with."""
        return self.schema.empty_table().to_pandas().dtypes

    def batches(self, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        yield from self._open().iter_batches(batch_size=rows, columns=columns)

    def frames(self, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
        for batch in self.batches(columns, rows):
            yield pa.Table.from_batches([batch]).to_pandas()

    def to_pandas(self) -> pd.DataFrame:
        """The whole table in memory (for a table known to be small)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema).to_pandas()

    def head(self, n: int) -> pd.DataFrame:
        batch = next(self.batches(rows=n), None)
        return self.schema.empty_table().to_pandas() if batch is None else pa.Table.from_batches([batch]).to_pandas()


class ArrowFile(TableFile):
    """A local Arrow IPC file (uncompressed) read as a `TableFile`: the ingest's sorted intermediates, which are only
    read back batch by batch (to be published, or checked), so encoding them as Parquet would be wasted work. Batches
    come in `rows` as a Parquet file's do (`iter_batches`), whatever batches the file holds."""

    @property
    def schema(self) -> pa.Schema:
        with pa.OSFile(self.path) as source:
            return pa.ipc.open_file(source).schema

    @property
    def num_rows(self) -> int:
        with pa.OSFile(self.path) as source:
            reader = pa.ipc.open_file(source)
            return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))

    def batches(self, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        # read through a file, not a memory map: a mapped file read whole would count as resident
        with pa.OSFile(self.path) as source:
            reader = pa.ipc.open_file(source)
            pending, held = [], 0
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                pending.append(batch if columns is None else batch.select(columns))
                held += batch.num_rows
                while held >= rows > 0:
                    table = pa.Table.from_batches(pending)
                    yield pa.concat_batches(table.slice(0, rows).to_batches())
                    pending, held = table.slice(rows).to_batches(), held - rows
            if held:
                yield pa.concat_batches(pending)


def to_parquet_bytes(frame: pd.DataFrame, provenance: dict | None = None) -> bytes:
    """Parquet bytes of `frame` (no index column), with `provenance` as JSON in the file's key-value metadata."""
    return _write(arrow_table(frame), provenance)


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """`pa.Table.from_pandas(frame, preserve_index=False)`, the frame's attrs (e.g. its provenance) in the pandas
    metadata as pyarrow puts them there (pandas gives them back as attrs), but put there once: the columns are taken
    out of the frame without its attrs, which pandas would otherwise deep-copy into every column taken."""
    table = pa.Table.from_pandas(without_attrs(frame), preserve_index=False)
    if not frame.attrs:
        return table
    pandas_metadata = json.loads(table.schema.metadata[b"pandas"])
    pandas_metadata["attributes"] = frame.attrs
    return table.replace_schema_metadata({**table.schema.metadata, b"pandas": json.dumps(pandas_metadata).encode()})


def to_geoparquet_bytes(frame: pd.DataFrame, x: str, y: str, provenance: dict | None = None) -> bytes:
    """GeoParquet bytes: `frame` plus a WKB point `geometry` column from columns `x`/`y` (lon/lat degrees, WGS84).

    geopandas writes the spec's `geo` metadata (encoding, geometry types, CRS, bbox); its public writer takes no
    extra key-value metadata, so its output is read back and re-encoded with the provenance and fixed settings.
    Rows with a missing coordinate get a null geometry.
    """
    import geopandas

    if GEOMETRY_COLUMN in frame.columns:
        raise ValueError(f"frame already has a {GEOMETRY_COLUMN!r} column")
    lon = frame[x].to_numpy(dtype=float, na_value=np.nan)
    lat = frame[y].to_numpy(dtype=float, na_value=np.nan)
    points = geopandas.points_from_xy(lon, lat)
    points[np.isnan(lon) | np.isnan(lat)] = None
    geometry = geopandas.GeoSeries(points, index=frame.index, crs=POINT_CRS, name=GEOMETRY_COLUMN)
    buffer = io.BytesIO()
    geopandas.GeoDataFrame(frame, geometry=geometry).to_parquet(
        buffer, index=False, schema_version="1.1.0", **WRITER_SETTINGS
    )
    return _write(pq.read_table(io.BytesIO(buffer.getvalue())), provenance)


def _write(table: pa.Table, provenance: dict | None) -> bytes:
    if provenance is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True).encode()
        table = table.replace_schema_metadata(metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **WRITER_SETTINGS)
    return buffer.getvalue()


def read_provenance(source) -> dict:
    """The provenance embedded in a Parquet file (path or file object); {} when there is none."""
    metadata = pq.read_schema(source).metadata or {}
    return json.loads(metadata[PROVENANCE_KEY]) if PROVENANCE_KEY in metadata else {}


def _with_provenance(schema: pa.Schema, provenance: dict | None, extra: dict | None = None) -> pa.Schema:
    metadata = dict(schema.metadata or {})
    metadata.update(extra or {})
    if provenance is not None:
        metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True).encode()
    return schema.with_metadata(metadata)


def _point_bbox(table: TableFile, x: str, y: str) -> list[float] | None:
    low, high = [np.inf, np.inf], [-np.inf, -np.inf]
    for batch in table.batches([x, y]):
        lon, lat = batch.column(x), batch.column(y)
        both = pc.and_(pc.is_valid(lon), pc.is_valid(lat))
        for i, values in enumerate((pc.filter(lon, both), pc.filter(lat, both))):
            if len(values):
                low[i], high[i] = min(low[i], pc.min(values).as_py()), max(high[i], pc.max(values).as_py())
    return [low[0], low[1], high[0], high[1]] if np.isfinite(low[0]) else None


def _geo_layout(table: TableFile, x: str, y: str) -> tuple[pa.Schema, bytes]:
    """The GeoParquet schema and `geo` metadata geopandas writes for this table, with the bbox of all its rows."""
    sample = table.head(1)
    layout = pq.read_schema(io.BytesIO(to_geoparquet_bytes(sample, x, y)))
    geo = json.loads(layout.metadata[b"geo"])
    bbox = _point_bbox(table, x, y)
    if bbox is None:
        geo["columns"][GEOMETRY_COLUMN].pop("bbox", None)
        geo["columns"][GEOMETRY_COLUMN]["geometry_types"] = []
    else:
        geo["columns"][GEOMETRY_COLUMN]["bbox"] = bbox
    schema = table.schema.append(layout.field(GEOMETRY_COLUMN))
    return schema, json.dumps(geo).encode()


# A WKB point: byte order (1, little-endian), geometry type (uint32 1, Point), x and y (float64).
_WKB_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])


def _points_wkb(batch: pa.RecordBatch, x: str, y: str) -> pa.Array:
    """Little-endian 2D WKB points (the bytes `shapely.to_wkb` gives), null where a coordinate is missing; built
    as one buffer rather than one GEOS point per row."""
    lon = batch.column(x).to_numpy(zero_copy_only=False).astype("float64")
    lat = batch.column(y).to_numpy(zero_copy_only=False).astype("float64")
    missing = np.isnan(lon) | np.isnan(lat)
    records = np.empty(int((~missing).sum()), dtype=_WKB_POINT)
    records["order"], records["type"], records["x"], records["y"] = 1, 1, lon[~missing], lat[~missing]
    offsets = np.concatenate([[0], np.cumsum(np.where(missing, 0, _WKB_POINT.itemsize))]).astype("int32")
    validity = pa.array(~missing).buffers()[1] if missing.any() else None
    return pa.Array.from_buffers(
        pa.binary(), len(lon), [validity, pa.py_buffer(offsets), pa.py_buffer(records.tobytes())], int(missing.sum())
    )


def write_table_file(
    table: TableFile, target, provenance: dict | None = None, points: tuple[str, str] | None = None
) -> str:
    """Re-encode `table` batch by batch into `target` (a local path) with the fixed writer settings and the
    provenance (and, with `points`, as GeoParquet like `to_geoparquet_bytes`); returns the file's sha256."""
    if points:
        schema, geo = _geo_layout(table, *points)
        schema = _with_provenance(schema, provenance, {b"geo": geo})
    else:
        schema = _with_provenance(table.schema, provenance)
    with pq.ParquetWriter(target, schema, **WRITER_SETTINGS) as writer:
        for batch in table.batches():
            columns = batch.columns + ([_points_wkb(batch, *points)] if points else [])
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()
