"""Configurable input locations; every default points at the data embedded in the package."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pydantic
from pydantic import Field

from soil_pipeline.contracts import gx_worker
from soil_pipeline.contracts.raster import RasterLimits
from soil_pipeline.embedded import COUNTRIES_VECTOR, LANDING_DIR
from soil_pipeline.engine import memory
from soil_pipeline.engine.raster import WINDOW_CELLS, GridConfig
from soil_pipeline.provenance import file_sha256
from soil_pipeline.publishing.root import LocalRoot, OutputRoot
from soil_pipeline.publishing.store import sha256_bytes
from soil_pipeline.raster_inputs import RASTER_INPUTS, RasterInput
from soil_pipeline.science.grid import GridSpec

# Where `soil-pipeline docs` serves the output root on this machine (Data Docs and full-size maps), the default of
# the links in the Dagster UI; a shared deployment sets `docs_url` in its configuration file instead.
DEFAULT_SITE_URL = "http://127.0.0.1:8765"


class _InputLocations(dg.ConfigurableResource):
    """Where inputs are read from: local paths, or any GDAL-readable URL for rasters (one field per raster input
    of `raster_inputs.RASTER_INPUTS`)."""

    landing_dir: str = Field(
        default=str(LANDING_DIR), description="Folder holding the monthly drops, field_samples/YYYY-MM/."
    )
    countries_vector: str = Field(
        default=str(COUNTRIES_VECTOR),
        description="Natural Earth 1:10m Admin 0 countries (zipped GeoJSON, or any file geopandas reads).",
    )
    field_declaration: str | None = Field(
        default=None,
        description="Declaration (YAML) of how the drops' tables map onto the contracts; unset: each drop's own "
        "declaration.yaml, else the embedded Africa Soil Profiles layout.",
    )
    raster_declaration: str | None = Field(
        default=None,
        description="Declaration (YAML) of the rasters' units, scale/offset, nodata, depth and extent when the files "
        "do not say; unset: each raster must match its contract as stored.",
    )

    def drop_dir(self, partition_key: str) -> Path:
        return Path(self.landing_dir) / "field_samples" / partition_key

    def raster(self, entry: RasterInput) -> str | None:
        """The configured path or URL of a raster input (None: an optional one left unset)."""
        return getattr(self, entry.name)


# The `inputs` resource: the fields above plus one per raster input, with its default and description, built from
# the registry so that adding a raster input never touches this file (the launchpad shows them all, described).
InputDatasets = pydantic.create_model(
    "InputDatasets",
    __base__=_InputLocations,
    __module__=__name__,
    __doc__=_InputLocations.__doc__,
    **{
        entry.name: (str | None if entry.default is None else str, Field(entry.default, description=entry.description))
        for entry in RASTER_INPUTS
    },
)


class QualityReports(dg.ConfigurableResource):
    """Great Expectations reports: one static HTML Data Docs site per run and dataset, under the output root.

    GX runs in one worker process per pipeline process, started once (when a run's resources are set up, so it
    imports while the first steps compute) and kept for the process's later runs; a report is made in the
    background (`submit`) while the step goes on. GX renders to a local folder; on a non-local root the site is then
    uploaded there.
    """

    base: str
    # Where `base` is served over HTTP (`soil-pipeline docs`), for a link the Dagster UI can open; None: no link.
    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        gx_worker.warm_up()  # GX imports in its own process while the run's first steps compute

    def submit(self, frame, contract, run_id: str, dataset: str, partition: str | None = None, orphans=None):
        """The contract's GX suite on `frame` (`gx_suite.run_gx`) in the GX worker, in the background: a future of
        (report, where the site's index.html is, its URL or None)."""
        return gx_worker.in_background(self._report, frame, contract, run_id, dataset, partition, orphans)

    def _report(self, frame, contract, run_id: str, dataset: str, partition: str | None, orphans):
        with self.site(run_id, dataset, partition) as (docs, index):
            report = gx_worker.run_gx(frame, contract, docs, orphans)
        return report, index, self.link(run_id, dataset, partition)

    def link(self, run_id: str, dataset: str, partition: str | None = None) -> str | None:
        folder = f"{dataset}_{partition}" if partition else dataset
        return f"{self.url}/{run_id}/{folder}/index.html" if self.url else None

    @contextmanager
    def site(self, run_id: str, dataset: str, partition: str | None = None) -> Iterator[tuple[Path, str]]:
        """Yields (local folder to render into, where the site's index.html will be)."""
        parts = (run_id, f"{dataset}_{partition}" if partition else dataset)
        root = OutputRoot.parse(self.base).open()
        if isinstance(root, LocalRoot):
            local = root.dir.joinpath(*parts)
            yield local, str(local / "index.html")
            return
        with tempfile.TemporaryDirectory() as scratch:
            yield Path(scratch), root.display(*parts, "index.html")
            root.upload_dir(Path(scratch), parts)


class ArtifactStore(dg.ConfigurableResource):
    """Where non-tabular outputs (PNG maps) go: `<root>/<name>/<sha256 prefix><suffix>`, named by content."""

    root: str
    # Where `root` is served over HTTP (`soil-pipeline docs`), for images the Dagster UI can show; None: no URL.
    url: str | None = None

    def write(self, name: str, data: bytes | Path, suffix: str) -> tuple[str, str | None]:
        """(where the artifact (bytes, or a local file to copy) was written, its URL when the root is served)."""
        digest = file_sha256(data) if isinstance(data, Path) else sha256_bytes(data)
        parts = (*name.split("/"), f"{digest[:16]}{suffix}")
        path = OutputRoot.parse(self.root).open().write_file(parts, data)
        return path, f"{self.url}/{'/'.join(parts)}" if self.url else None


class RasterEngine(dg.ConfigurableResource):
    """The streaming raster engine's settings: the common grid (CRS, cell size, extent; default the WHRC 5' grid)
    and where windows run: local threads, or the Dask cluster at `scheduler_address` (e.g. tcp://host:8786)."""

    crs: str = GridConfig.crs
    resolution_deg: float = GridConfig.resolution_deg
    west: float = GridConfig.west
    north: float = GridConfig.north
    width: int = GridConfig.width
    height: int = GridConfig.height
    scheduler_address: str | None = None
    threads: int = 2
    window_cells: int = WINDOW_CELLS
    # What an input raster's header may claim before anything of it is read (contracts.raster.RasterLimits).
    max_raster_cells: int = Field(RasterLimits.max_cells, description="Most cells an input raster may have.")
    max_raster_bytes: int = Field(
        RasterLimits.max_bytes, description="Most bytes an input raster may decode to (cells x bands x bytes/value)."
    )
    max_block_bytes: int = Field(
        RasterLimits.max_block_bytes, description="Most bytes one block of an input raster may decode to."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        memory.return_freed_memory()  # a run allocates and frees large tables and window arrays
        memory.collect_less_often()

    def limits(self) -> RasterLimits:
        return RasterLimits(self.max_raster_cells, self.max_raster_bytes, self.max_block_bytes)

    def grid(self) -> GridSpec:
        return GridConfig(self.crs, self.resolution_deg, self.west, self.north, self.width, self.height).spec()

    @contextmanager
    def executor(self):
        """None for local threads, else a `distributed.Client` connected to the scheduler."""
        if not self.scheduler_address:
            yield None
            return
        from distributed import Client

        with Client(self.scheduler_address) as client:
            yield client

    def describe(self) -> dict:
        where = f"dask scheduler {self.scheduler_address}" if self.scheduler_address else f"{self.threads} threads"
        return {"grid": self.grid().describe(), "executor": where, "window_cells": self.window_cells}
