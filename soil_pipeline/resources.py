"""Configurable input locations; every default points at the data embedded in the package."""

import hashlib
from pathlib import Path

import dagster as dg

DATA_DIR = Path(__file__).resolve().parent / "data"


class InputDatasets(dg.ConfigurableResource):
    """Where inputs are read from: local paths or any GDAL-readable URL for rasters."""

    landing_dir: str = str(DATA_DIR / "landing")
    soc_stock_2010_raster: str = str(DATA_DIR / "whrc_soc_debt_10km" / "SOCS_0_30cm_year_2010AD_10km.tif")
    soc_stock_no_land_use_raster: str = str(DATA_DIR / "whrc_soc_debt_10km" / "SOCS_0_30cm_year_NoLU_10km.tif")
    cropland_raster: str = str(
        DATA_DIR / "hyde32_cropland_2016_10km" / "lcv_landuse.cropland_hyde_p_10km_s0..0cm_2016_v3.2.tif"
    )
    climate_zones_raster: str = str(DATA_DIR / "ipcc_climate_zones_0p5" / "ipcc_climate_zones.tif")
    countries_vector: str = str(DATA_DIR / "naturalearth_110m_admin0" / "ne_110m_admin_0_countries.geojson")
    # Optional pasture/grazing area (km2 per cell, like the HYDE cropland raster); when set, converted land for the
    # restoration scenarios is cropland plus pasture. None by default: no pasture layer is embedded.
    pasture_raster: str | None = None

    def drop_dir(self, partition_key: str) -> Path:
        return Path(self.landing_dir) / "field_samples" / partition_key


class QualityReports(dg.ConfigurableResource):
    """Where Great Expectations Data Docs are written: one static HTML site per run and dataset."""

    base_dir: str

    def docs_dir(self, run_id: str, dataset: str, partition: str | None = None) -> Path:
        return Path(self.base_dir) / run_id / (f"{dataset}_{partition}" if partition else dataset)


class ArtifactStore(dg.ConfigurableResource):
    """Where non-tabular outputs (PNG maps) go: `<root>/<name>/<sha256 prefix><suffix>`, named by content."""

    root: str

    def write(self, name: str, data: bytes, suffix: str) -> Path:
        path = Path(self.root) / name / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".tmp-{path.name}")
            staging.write_bytes(data)
            staging.replace(path)
        return path
