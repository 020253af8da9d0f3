"""PNG maps of gridded results. Figures are built with matplotlib's object API (no pyplot state, no display) and
rendered by its Agg canvas."""

import base64
import io

import numpy as np
from matplotlib import rcParams
from matplotlib.figure import Figure
from PIL import Image

from soil_pipeline.science.grid import GridSpec, block_mean, map_block


def share_map_png(share: np.ndarray, land: np.ndarray, grid: GridSpec, title: str, label: str) -> bytes:
    """A global map of `share` (0-1 per cell) over grey `land` cells, averaged over `map_block(grid)` cells a side."""
    block = map_block(grid)
    return block_map_png(block_mean(share, block), block_mean(land.astype("float32"), block), grid, title, label)


# Dots per inch of a map file, and of a map shown inline in the Dagster UI (a 10 x 5 in figure, about 500 pixels
# wide, some 40 kB).
MAP_DPI = 110
INLINE_DPI = 50


def inline_markdown(png: bytes, alt: str) -> str:
    """Markdown showing `png` by itself (a data URI): the Dagster UI needs no other server to show it."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def thumbnail_png(png: bytes, dpi: int = INLINE_DPI, drawn_at: int = MAP_DPI) -> bytes:
    """The map `png`, drawn at `drawn_at` dots per inch, scaled to `dpi` (Lanczos): the picture drawing the figure
    again at `dpi` gives, with smoother text, in a fifth of the time."""
    image = Image.open(io.BytesIO(png))
    scale = dpi / drawn_at
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buffer, format="png")
    return buffer.getvalue()


def block_map_png(share_blocks, land_blocks, grid: GridSpec, title: str, label: str, dpi: int = MAP_DPI) -> bytes:
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
    return _png(figure)


def _png(figure: Figure) -> bytes:
    """The figure as PNG cropped to its tight box: the same bytes as `savefig(bbox_inches="tight")`, which draws the
    whole figure once only to measure it. `Figure.get_tightbbox` lays out what it measures by itself (aspect, ticks,
    titles; the images, clipped to their axes, are no part of the box), so here the figure is drawn once, to render it
    (test_maps compares the bytes with savefig's)."""
    tight = figure.get_tightbbox().padded(rcParams["savefig.pad_inches"])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches=tight, metadata={"Software": None})
    return buffer.getvalue()


def field_map_scatter_png(field, mapped, title: str, map_label: str, dpi: int = MAP_DPI) -> bytes:
    """Map against field stocks (t C/ha) at the same sites on log axes, as hexagons counting the sites (so a
    million sites draw as fast as a hundred), with the 1:1 line; sites with a value <= 0 on either axis are left
    out (a log axis has no place for them)."""
    field, mapped = np.asarray(field, dtype=float), np.asarray(mapped, dtype=float)
    keep = np.isfinite(field) & np.isfinite(mapped) & (field > 0) & (mapped > 0)
    figure = Figure(figsize=(6, 5.5), dpi=dpi)
    axes = figure.subplots()
    if keep.any():
        low = float(min(field[keep].min(), mapped[keep].min()))
        high = float(max(field[keep].max(), mapped[keep].max()))
        cells = axes.hexbin(
            field[keep], mapped[keep], xscale="log", yscale="log", gridsize=70, bins="log", mincnt=1, cmap="viridis"
        )
        figure.colorbar(cells, ax=axes, shrink=0.8, label="sites per hexagon")
        axes.plot([low, high], [low, high], color="black", linewidth=1, label="1:1")
        axes.legend(loc="upper left")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("field stock 0-30 cm (t C/ha)")
    axes.set_ylabel(f"{map_label} 0-30 cm (t C/ha)")
    axes.set_title(f"{title} ({int(keep.sum()):,} sites)")
    return _png(figure)


def residual_map_png(lon, lat, residual, land: np.ndarray, grid: GridSpec, title: str, dpi: int = MAP_DPI) -> bytes:
    """Sites coloured by their residual (map - field, t C/ha; a diverging scale symmetric about 0 to the 95th
    percentile of |residual|) over grey `land` (a coarse boolean picture of the grid's mapped cells), framed on the
    sites."""
    lon, lat, residual = (np.asarray(v, dtype=float) for v in (lon, lat, residual))
    keep = np.isfinite(lon) & np.isfinite(lat) & np.isfinite(residual)
    west, north = grid.transform.c, grid.transform.f
    extent = (west, west + grid.transform.a * grid.width, north + grid.transform.e * grid.height, north)
    figure = Figure(figsize=(8, 7), dpi=dpi)
    axes = figure.subplots()
    axes.imshow(np.where(land, 0.85, np.nan), cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    if keep.any():
        reach = float(np.nanpercentile(np.abs(residual[keep]), 95)) or 1.0
        order = np.argsort(np.abs(residual[keep]))  # the largest residuals drawn last, on top
        points = axes.scatter(
            lon[keep][order], lat[keep][order], c=residual[keep][order], s=3, cmap="RdBu_r", vmin=-reach, vmax=reach
        )
        figure.colorbar(points, ax=axes, shrink=0.7, label="map - field (t C/ha)")
        margin = 2.0
        axes.set_xlim(max(extent[0], lon[keep].min() - margin), min(extent[1], lon[keep].max() + margin))
        axes.set_ylim(max(extent[2], lat[keep].min() - margin), min(extent[3], lat[keep].max() + margin))
    axes.set_title(title)
    axes.set_xlabel("longitude (deg)")
    axes.set_ylabel("latitude (deg)")
    return _png(figure)
