"""Grids between pipeline steps as GeoTIFF: tiled, deflate-compressed, readable by GDAL, QGIS or rasterio.

A `Layer` becomes one GeoTIFF (one band per layer of a 3-D array); its units, alignment and provenance travel as
JSON in the file's tags, so a file opened by hand still says what it holds. NaN stays NaN in float grids.
"""

import json

import numpy as np
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from soil_pipeline.science.grid import GridSpec, Layer

TAG = "soil_pipeline"
TILE = 512


def layer_to_geotiff(layer: Layer) -> bytes:
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
        "compress": "deflate",
        "predictor": 3 if bands.dtype.kind == "f" else 2,
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            dataset.write(bands)
            dataset.update_tags(**{TAG: json.dumps(tags, sort_keys=True)})
        return memory.read()


def layer_from_geotiff(data: bytes) -> Layer:
    with MemoryFile(data) as memory, memory.open() as dataset:
        tags = json.loads(dataset.tags()[TAG])
        bands = dataset.read()
        grid = GridSpec(
            width=dataset.width, height=dataset.height, transform=dataset.transform, crs=dataset.crs.to_string()
        )
    return Layer(
        data=bands if tags["ndim"] == 3 else bands[0],
        grid=grid,
        units=tags["units"],
        alignment=tags["alignment"],
        provenance=tags["provenance"],
    )
