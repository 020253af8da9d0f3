"""Every raster input, declared once: its name (the `inputs` resource field, the observable source asset and the key
in a raster declaration), its contract, its default, what it holds on the common grid and how a raster declaration
applies to it. The resource, the source assets, the grid assets and the raster declarations all derive from
`RASTER_INPUTS`: adding a raster input is one entry here plus its contract in data_contracts/.
"""

from dataclasses import dataclass

from soil_pipeline.embedded import DATA_DIR


@dataclass(frozen=True)
class GridRole:
    """What a raster's cells hold, in which unit (its contract's band unit), and the resampling that keeps that
    meaning when the raster is not on the common grid's lattice."""

    holds: str
    unit: str | None  # None: codes, no unit
    resampling: str


# A density (t C/ha): a coarser cell holds the mean of the cells it covers.
STOCK_DENSITY = GridRole("SOC stock density, 0-30 cm", "t C/ha", "average")
# An amount per cell (km2): a coarser cell holds the sum of the cells it covers, so totals are preserved.
AREA_PER_CELL = GridRole("area per cell", "km2 per cell", "sum")
# Categories: never averaged, each cell takes the class of the nearest source cell.
CLASS_CODES = GridRole("class codes", None, "nearest")
# A map's stated prediction error of a density (WHRC: organic carbon density, 0.1 kg C/m3), averaged like it.
DENSITY_ERROR = GridRole("prediction error of organic carbon density", "0.1 kg C/m3", "average")


@dataclass(frozen=True)
class RasterInput:
    name: str
    contract: str  # data_contracts/<contract>.yaml
    default: str | None  # the embedded file; None: optional, unset by default
    description: str  # what the file is, for the resource's config and the source asset
    role: GridRole
    # How a raster declaration (contracts.raster_declaration) applies: the `role` its entry must name, and whether
    # the input is read only with a declared label naming its source.
    declared_as: str
    label_required: bool = False

    @property
    def resampling(self) -> str:
        return self.role.resampling


_WHRC = DATA_DIR / "whrc_soc_debt_10km"

SOC_STOCK_2010 = RasterInput(
    "soc_stock_2010_raster",
    "soc_stock_2010_raster",
    str(_WHRC / "SOCS_0_30cm_year_2010AD_10km.tif"),
    "WHRC SOC stock 0-30 cm, 2010 (t C/ha): a local path or any GDAL-readable URL.",
    STOCK_DENSITY,
    "stock_2010",
)
SOC_STOCK_NO_LAND_USE = RasterInput(
    "soc_stock_no_land_use_raster",
    "soc_stock_no_land_use_raster",
    str(_WHRC / "SOCS_0_30cm_year_NoLU_10km.tif"),
    "WHRC SOC stock 0-30 cm without land use (t C/ha): a local path or any GDAL-readable URL.",
    STOCK_DENSITY,
    "stock_no_land_use",
)
CROPLAND = RasterInput(
    "cropland_raster",
    "cropland_raster",
    str(DATA_DIR / "hyde32_cropland_2016_10km" / "lcv_landuse.cropland_hyde_p_10km_s0..0cm_2016_v3.2.tif"),
    "HYDE 3.2 cropland area 2016 (km2 per cell): a local path or any GDAL-readable URL.",
    AREA_PER_CELL,
    "cropland_area",
)
CLIMATE_ZONES = RasterInput(
    "climate_zones_raster",
    "climate_zones_raster",
    str(DATA_DIR / "ipcc_climate_zones_0p5" / "ipcc_climate_zones.tif"),
    "IPCC 2019 climate zone codes, 0.5 deg: a local path or any GDAL-readable URL.",
    CLASS_CODES,
    "climate_zones",
)
PASTURE = RasterInput(
    "pasture_raster",
    "pasture_raster",
    None,
    "Optional pasture/grazing area (km2 per cell, like the HYDE cropland raster); when set, converted land for the "
    "restoration scenarios is cropland plus pasture. Unset by default: no pasture layer is embedded.",
    AREA_PER_CELL,
    "pasture_area",
)
SECOND_SOC_STOCK = RasterInput(
    "second_soc_stock_raster",
    "second_soc_stock_raster",
    None,
    "Optional second SOC stock 0-30 cm source beside WHRC (e.g. SoilGrids-derived over a region), summed per region "
    "beside WHRC in regional_soc_stocks; it needs an entry with a label in the raster declaration. Unset by default.",
    STOCK_DENSITY,
    "stock_second_source",
    label_required=True,
)

SOC_STOCK_ERROR_0CM = RasterInput(
    "soc_stock_error_0cm_raster",
    "soc_stock_error_0cm_raster",
    str(_WHRC / "abs_error_OCDENS_0cm_2010AD_10km_ll.tif"),
    "WHRC prediction error of the 2010 organic carbon density at 0 cm (0.1 kg C/m3); with the 30 cm layer it gives "
    "each cell's 0-30 cm stock error: a local path or any GDAL-readable URL.",
    DENSITY_ERROR,
    "stock_error_0cm",
)
SOC_STOCK_ERROR_30CM = RasterInput(
    "soc_stock_error_30cm_raster",
    "soc_stock_error_30cm_raster",
    str(_WHRC / "abs_error_OCDENS_30cm_2010AD_10km_ll.tif"),
    "WHRC prediction error of the 2010 organic carbon density at 30 cm (0.1 kg C/m3): a local path or any "
    "GDAL-readable URL.",
    DENSITY_ERROR,
    "stock_error_30cm",
)

RASTER_INPUTS = (
    SOC_STOCK_2010,
    SOC_STOCK_NO_LAND_USE,
    SOC_STOCK_ERROR_0CM,
    SOC_STOCK_ERROR_30CM,
    CROPLAND,
    CLIMATE_ZONES,
    PASTURE,
    SECOND_SOC_STOCK,
)
BY_NAME = {entry.name: entry for entry in RASTER_INPUTS}
