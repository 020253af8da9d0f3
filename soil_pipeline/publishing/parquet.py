"""Deterministic Parquet encoding: the same frame and library versions give the same bytes.

Fixed writer settings, no index column, no wall-clock anywhere in the file; the provenance goes into the file's
key-value metadata (`soil_pipeline.provenance`, JSON with sorted keys), so a copied file still says what it is.
Tables with point coordinates can be written as GeoParquet (spec 1.1.0, WKB points, OGC:CRS84) via geopandas.
"""

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"soil_pipeline.provenance"
WRITER_SETTINGS = {"compression": "zstd", "compression_level": 3, "version": "2.6", "use_dictionary": True}
GEOMETRY_COLUMN = "geometry"
POINT_CRS = "OGC:CRS84"


def to_parquet_bytes(frame: pd.DataFrame, provenance: dict | None = None) -> bytes:
    """Parquet bytes of `frame` (no index column), with `provenance` as JSON in the file's key-value metadata."""
    return _write(pa.Table.from_pandas(frame, preserve_index=False), provenance)


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
