"""Check a raster against its contract before it is aligned: grid, type, nodata, scaling, plausible values.

Every failure raises InputError naming the file and the rule; a value-range failure also names the pixel window.
"""

import numpy as np
from rasterio.crs import CRS

from soil_pipeline.contracts.model import RasterContract
from soil_pipeline.readers import InputError, RasterBand

# Grid edges may differ from the contract by this fraction of a cell: WHRC stores its 5' cell size as 0.0833333,
# which puts its east edge 0.002 cell short of 180; a real shift (say 0.1 cell or more) is still refused.
EDGE_TOLERANCE_CELLS = 0.01


def _fail(band: RasterBand, contract: RasterContract, rule: str, detail: str):
    raise InputError(f"{band.path}: breaks contract {contract.label}, rule {rule}: {detail}")


def _check_grid(band: RasterBand, contract: RasterContract) -> None:
    if band.band_count != contract.band_count:
        _fail(band, contract, "bandCount", f"expected {contract.band_count} band(s), found {band.band_count}")
    if not band.crs or CRS.from_user_input(band.crs) != CRS.from_user_input(contract.crs):
        _fail(band, contract, "crs", f"expected {contract.crs}, found {band.crs or 'no CRS'}")
    t, res = band.transform, contract.resolution_deg
    if t.b != 0 or t.d != 0 or not np.isclose(abs(t.a), res, rtol=1e-6) or not np.isclose(abs(t.e), res, rtol=1e-6):
        _fail(band, contract, "resolutionDeg", f"expected {res} deg square cells, found {abs(t.a)} x {abs(t.e)}")
    height, width = band.data.shape
    west, east = t.c, t.c + t.a * width
    south, north = sorted((t.f, t.f + t.e * height))
    expected = contract.extent_deg
    for name, found, wanted in zip(
        ("west", "south", "east", "north"), (west, south, east, north), expected, strict=True
    ):
        off_cells = abs(found - wanted) / res
        if off_cells > EDGE_TOLERANCE_CELLS:
            _fail(
                band, contract, "extentDeg", f"{name} edge at {found:.6f}, expected {wanted} ({off_cells:.3f} cell off)"
            )


def _check_values(band: RasterBand, contract: RasterContract) -> None:
    if str(band.data.dtype) != contract.dtype:
        _fail(band, contract, "dtype", f"expected {contract.dtype}, found {band.data.dtype}")
    if contract.nodata_tagged and band.nodata != contract.nodata:
        _fail(band, contract, "nodata", f"expected a nodata tag of {contract.nodata}, found {band.nodata}")
    if (band.scale, band.offset) != (contract.scale, contract.offset):
        _fail(
            band,
            contract,
            "scale/offset",
            f"expected {contract.scale}/{contract.offset}, found {band.scale}/{band.offset}",
        )
    valid = band.data != contract.nodata
    bad = valid & ((band.data < contract.minimum) | (band.data > contract.maximum))
    if bad.any():
        rows, cols = np.nonzero(bad)
        window = f"rows {rows.min()}-{rows.max()}, cols {cols.min()}-{cols.max()}"
        example = band.data[rows[0], cols[0]]
        _fail(
            band,
            contract,
            "valueRange",
            f"{int(bad.sum())} pixel(s) outside [{contract.minimum}, {contract.maximum}] {contract.unit} in window "
            f"{window} (e.g. {example} at row {rows[0]}, col {cols[0]})",
        )


def check_raster(band: RasterBand, contract: RasterContract) -> RasterBand:
    """The band with the contract's nodata applied, or InputError naming the file and the broken rule."""
    _check_grid(band, contract)
    _check_values(band, contract)
    return RasterBand(band.data, band.transform, band.crs, contract.nodata, band.path, band.band_count)
