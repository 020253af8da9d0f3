"""Grids between pipeline steps as GeoTIFF: tiled, ZSTD-compressed at level 1 (several times faster to write and
faster to read than DEFLATE; the embedded run's six grids take 6.6 MB against 6.2), readable by GDAL (>= 2.3), QGIS
or rasterio.

A `Layer` becomes one GeoTIFF (one band per layer of a 3-D array); its units, alignment and provenance travel as
JSON in the file's tags, so a file opened by hand still says what it holds. NaN stays NaN in float grids.
"""

import json

import numpy as np
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from soil_pipeline.science.grid import GridSpec, Layer
from soil_pipeline.science.raster_engine import RasterSource

TAG = "soil_pipeline"
TILE = 512


def layer_to_geotiff(layer: Layer) -> bytes:
    if isinstance(layer, StoredLayer):
        return layer.tiff
    bands = layer.data if layer.data.ndim == 3 else layer.data[np.newaxis]
    tags = {"units": layer.units, "alignment": layer.alignment, "provenance": layer.provenance, "ndim": layer.data.ndim}
    profile = {
        "driver": "GTiff",
        "width": layer.grid.width,
        "height": layer.grid.height,
        "count": bands.shape[0],
        "dtype": bands.dtype.name,
        "crs": CRS.from_user_input(layer.grid.crs),
        "transform": layer.grid.transform,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "zstd",
        "zstd_level": 1,
        "num_threads": "ALL_CPUS",  # blocks are compressed independently: the same bytes, sooner
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            dataset.write(bands)
            dataset.update_tags(**{TAG: json.dumps(tags, sort_keys=True)})
        return memory.read()


class StoredLayer(Layer):
    """A `Layer` kept as its GeoTIFF bytes: `data` decodes the whole grid on first use (for steps that need it),
    `source()` lets the streaming engine read it window by window instead."""

    def __init__(self, tiff: bytes):
        with MemoryFile(tiff) as memory, memory.open() as dataset:
            tags = json.loads(dataset.tags()[TAG])
            self.grid = GridSpec(
                width=dataset.width, height=dataset.height, transform=dataset.transform, crs=dataset.crs.to_string()
            )
            self.dtype = dataset.dtypes[0]
            self.count = dataset.count
        self.tiff = tiff
        self.units, self.alignment, self.provenance = tags["units"], tags["alignment"], tags["provenance"]
        self._ndim = tags["ndim"]
        self._data = None

    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            with MemoryFile(self.tiff) as memory, memory.open() as dataset:
                bands = dataset.read()
            self._data = bands if self._ndim == 3 else bands[0]
        return self._data

    def band(self, index: int) -> np.ndarray:
        """`Layer.band`, reading only that band (and not keeping it) unless the layer is already in memory."""
        if self._data is not None:
            return super().band(index)
        with MemoryFile(self.tiff) as memory, memory.open() as dataset:
            return dataset.read(index)

    def source(self, name: str, bands: tuple[int, ...] = (1,), fill=None) -> RasterSource:
        """This grid as an engine input; `fill` replaces nothing (intermediates carry NaN or their own codes)."""
        fill = float("nan") if fill is None else fill
        return RasterSource(self.tiff, name=name, bands=bands, dtype=self.dtype, fill=fill)


def layer_from_geotiff(data: bytes) -> StoredLayer:
    return StoredLayer(data)


def stored(layer: Layer) -> StoredLayer:
    """The layer as a `StoredLayer`, so that it can be read as an engine source: itself, or a plain in-memory
    `Layer` (e.g. in tests) encoded once as GeoTIFF."""
    return layer if isinstance(layer, StoredLayer) else layer_from_geotiff(layer_to_geotiff(layer))
