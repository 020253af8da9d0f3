"""PNG maps of gridded results. Figures are built with matplotlib's object API (no pyplot state, no display) and
rendered by its Agg canvas."""

import io
import math

import numpy as np
from matplotlib.figure import Figure

from soil_pipeline.science.grid import GridSpec

# A map is drawn about this many blocks wide: the 10 x 5 in figure at 110 dpi shows about 1,100 pixels.
MAP_WIDTH_BLOCKS = 1080


def map_block(grid: GridSpec) -> int:
    """Cells per side of a map block: 4 on the 5' grid (a 1080-block-wide map), on a finer grid the power of two
    that keeps the map about as wide (64 at 1 km), so a block never straddles two of the engine's 512-cell-multiple
    windows and the map stays a few MB whatever the grid."""
    return int(min(512, max(4, 2 ** math.ceil(math.log2(grid.width / MAP_WIDTH_BLOCKS)))))


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    blocks = values[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3))


def share_map_png(share: np.ndarray, land: np.ndarray, grid: GridSpec, title: str, label: str) -> bytes:
    """A global map of `share` (0-1 per cell) over grey `land` cells, averaged over `map_block(grid)` cells a side."""
    block = map_block(grid)
    return block_map_png(_block_mean(share, block), _block_mean(land.astype("float32"), block), grid, title, label)


def block_map_png(share_blocks, land_blocks, grid: GridSpec, title: str, label: str) -> bytes:
    """`share_map_png` from block means already taken (e.g. window by window by the streaming engine)."""
    shown = np.where(share_blocks > 0, share_blocks, np.nan)
    land_blocks = land_blocks > 0
    west, north = grid.transform.c, grid.transform.f
    extent = (west, west + grid.transform.a * grid.width, north + grid.transform.e * grid.height, north)
    figure = Figure(figsize=(10, 5), dpi=110)
    axes = figure.subplots()
    land_shown = np.where(land_blocks, 0.85, np.nan)
    axes.imshow(land_shown, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    image = axes.imshow(shown, cmap="viridis", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.7, label=label)
    axes.set_title(title)
    axes.set_xlabel("longitude (deg)")
    axes.set_ylabel("latitude (deg)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()
