"""Configurable input locations; every default points at the data embedded in the package."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from soil_pipeline.contracts import gx_worker
from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.engine import memory
from soil_pipeline.engine.raster import WINDOW_CELLS, GridConfig
from soil_pipeline.provenance import file_sha256
from soil_pipeline.publishing.root import LocalRoot, open_root
from soil_pipeline.publishing.store import sha256_bytes
from soil_pipeline.science.grid import GridSpec

# Where `soil-pipeline docs` serves the output root (Data Docs and maps) for links and images in the Dagster UI.
DEFAULT_SITE_URL = "http://127.0.0.1:8765"


class InputDatasets(dg.ConfigurableResource):
    """Where inputs are read from: local paths or any GDAL-readable URL for rasters."""

    landing_dir: str = str(DATA_DIR / "landing")
    soc_stock_2010_raster: str = str(DATA_DIR / "whrc_soc_debt_10km" / "SOCS_0_30cm_year_2010AD_10km.tif")
    soc_stock_no_land_use_raster: str = str(DATA_DIR / "whrc_soc_debt_10km" / "SOCS_0_30cm_year_NoLU_10km.tif")
    # WHRC prediction error of the 2010 organic carbon density at 0 and 30 cm (0.1 kg C/m3): each region's stock error
    soc_stock_error_0cm_raster: str = str(DATA_DIR / "whrc_soc_debt_10km" / "abs_error_OCDENS_0cm_2010AD_10km_ll.tif")
    soc_stock_error_30cm_raster: str = str(DATA_DIR / "whrc_soc_debt_10km" / "abs_error_OCDENS_30cm_2010AD_10km_ll.tif")
    cropland_raster: str = str(
        DATA_DIR / "hyde32_cropland_2016_10km" / "lcv_landuse.cropland_hyde_p_10km_s0..0cm_2016_v3.2.tif"
    )
    climate_zones_raster: str = str(DATA_DIR / "ipcc_climate_zones_0p5" / "ipcc_climate_zones.tif")
    countries_vector: str = str(DATA_DIR / "naturalearth_10m_admin0" / "ne_10m_admin_0_countries_deu.geojson.zip")
    # Optional pasture/grazing area (km2 per cell, like the HYDE cropland raster); when set, converted land for the
    # restoration scenarios is cropland plus pasture. None by default: no pasture layer is embedded.
    pasture_raster: str | None = None
    # Declaration (YAML) of how the field-sample drops' tables map onto the contracts; None: each drop's own
    # declaration.yaml, else the embedded Africa Soil Profiles layout (soil_pipeline/data/declarations/).
    field_declaration: str | None = None
    # Declaration (YAML) of the rasters' units, scale/offset, nodata, depth and extent when the files do not say
    # (contracts.raster_declaration); None: each raster must match its contract as stored.
    raster_declaration: str | None = None
    # Optional second SOC stock 0-30 cm source beside WHRC (e.g. SoilGrids-derived over a region); it must have an
    # entry with a label in the raster declaration. Summed per region beside WHRC in regional_soc_stocks.
    second_soc_stock_raster: str | None = None

    def drop_dir(self, partition_key: str) -> Path:
        return Path(self.landing_dir) / "field_samples" / partition_key


class QualityReports(dg.ConfigurableResource):
    """Where Great Expectations Data Docs go: one static HTML site per run and dataset, under the output root.

    GX renders to a local folder; on a non-local root the site is then uploaded there.
    """

    base: str
    # Where `base` is served over HTTP (`soil-pipeline docs`), for a link the Dagster UI can open; None: no link.
    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        gx_worker.warm_up()  # GX imports in its own process while the run's first steps compute

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        gx_worker.stop()

    def validate(self, frame, contract, docs_dir: Path, orphans: dict | None = None) -> dict:
        """The contract's GX suite on `frame` (`gx_suite.run_gx`), in the GX worker process."""
        return gx_worker.run_gx(frame, contract, docs_dir, orphans)

    def release(self) -> None:
        """This run validates nothing more: end the GX worker and free its memory."""
        gx_worker.stop()

    def link(self, run_id: str, dataset: str, partition: str | None = None) -> str | None:
        folder = f"{dataset}_{partition}" if partition else dataset
        return f"{self.url}/{run_id}/{folder}/index.html" if self.url else None

    @contextmanager
    def site(self, run_id: str, dataset: str, partition: str | None = None) -> Iterator[tuple[Path, str]]:
        """Yields (local folder to render into, where the site's index.html will be)."""
        parts = (run_id, f"{dataset}_{partition}" if partition else dataset)
        root = open_root(self.base)
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
        path = open_root(self.root).write_file(parts, data)
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

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        memory.return_freed_memory()  # a run allocates and frees large tables and window arrays

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
