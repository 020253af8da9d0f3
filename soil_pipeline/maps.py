"""PNG maps of gridded results. Figures are built with matplotlib's object API (no pyplot state, no display) and
rendered by its Agg canvas."""

import io

import numpy as np
from matplotlib.figure import Figure

from soil_pipeline.science.grid import GridSpec

DOWNSAMPLE = 4


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    blocks = values[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3))


def share_map_png(share: np.ndarray, land: np.ndarray, grid: GridSpec, title: str, label: str) -> bytes:
    """A global map of `share` (0-1 per cell) over grey `land` cells, averaged over 4 x 4 cell blocks."""
    return block_map_png(
        _block_mean(share, DOWNSAMPLE), _block_mean(land.astype("float32"), DOWNSAMPLE), grid, title, label
    )


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
