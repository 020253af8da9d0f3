"""PNG maps of gridded results. Figures are built with matplotlib's object API (no pyplot state, no display) and
rendered by its Agg canvas."""

import base64
import io

import numpy as np
from matplotlib.figure import Figure

from soil_pipeline.science.grid import GridSpec, block_mean, map_block


def share_map_png(share: np.ndarray, land: np.ndarray, grid: GridSpec, title: str, label: str) -> bytes:
    """A global map of `share` (0-1 per cell) over grey `land` cells, averaged over `map_block(grid)` cells a side."""
    block = map_block(grid)
    return block_map_png(block_mean(share, block), block_mean(land.astype("float32"), block), grid, title, label)


# Dots per inch of a map shown inline in the Dagster UI (a 10 x 5 in figure, about 500 pixels wide, some 40 kB).
INLINE_DPI = 50


def inline_markdown(png: bytes, alt: str) -> str:
    """Markdown showing `png` by itself (a data URI): the Dagster UI needs no other server to show it."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def block_map_png(share_blocks, land_blocks, grid: GridSpec, title: str, label: str, dpi: int = 110) -> bytes:
    """`share_map_png` from block means already taken (e.g. window by window by the streaming engine)."""
    shown = np.where(share_blocks > 0, share_blocks, np.nan)
    land_blocks = land_blocks > 0
    west, north = grid.transform.c, grid.transform.f
    extent = (west, west + grid.transform.a * grid.width, north + grid.transform.e * grid.height, north)
    figure = Figure(figsize=(10, 5), dpi=dpi)
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
