"""Check a raster against its contract before it is aligned: grid, type, nodata, scaling, plausible values, and for
stock layers the depth interval and a unit guard on the median.

Every broken rule is reported at once: one InputError naming the file and each rule (a value-range failure also
names the pixel window). A raster with a declaration (contracts.raster_declaration) is checked on its declared,
converted values: the file's encoding (dtype, nodata tag, scale/offset) and cell size are then the declaration's
business, and a raster declared regional is not held to the global extent.
"""

import numpy as np
from rasterio.crs import CRS

from soil_pipeline.contracts.model import RasterContract
from soil_pipeline.contracts.raster_declaration import RasterDeclaration, to_contract_units
from soil_pipeline.readers import InputError, RasterBand

# Grid edges may differ from the contract by this fraction of a cell: WHRC stores its 5' cell size as 0.0833333,
# which puts its east edge 0.002 cell short of 180; a real shift (say 0.1 cell or more) is still refused.
EDGE_TOLERANCE_CELLS = 0.01
# A raster covering less than this share of the contract's extent is taken for a regional one.
REGIONAL_SHARE = 0.9


def _extent(band: RasterBand) -> tuple[float, float, float, float]:
    t = band.transform
    height, width = band.data.shape
    south, north = sorted((t.f, t.f + t.e * height))
    return t.c, south, t.c + t.a * width, north


def _grid_failures(band: RasterBand, contract: RasterContract, declaration: RasterDeclaration | None) -> list:
    failures = []
    if band.band_count != contract.band_count:
        failures.append(("bandCount", f"expected {contract.band_count} band(s), found {band.band_count}"))
    if not band.crs or CRS.from_user_input(band.crs) != CRS.from_user_input(contract.crs):
        failures.append(("crs", f"expected {contract.crs}, found {band.crs or 'no CRS'}"))
    t, res = band.transform, contract.resolution_deg
    if declaration is None and (
        t.b != 0 or t.d != 0 or not np.isclose(abs(t.a), res, rtol=1e-6) or not np.isclose(abs(t.e), res, rtol=1e-6)
    ):
        failures.append(("resolutionDeg", f"expected {res} deg square cells, found {abs(t.a)} x {abs(t.e)}"))
    if declaration is not None and declaration.regional:
        return failures
    found, cell = _extent(band), abs(t.a) or res
    edges = [
        f"{name} edge at {edge:.6f}, expected {wanted} ({abs(edge - wanted) / cell:.3f} cell off)"
        for name, edge, wanted in zip(("west", "south", "east", "north"), found, contract.extent_deg, strict=True)
        if abs(edge - wanted) / cell > EDGE_TOLERANCE_CELLS
    ]
    if edges:
        failures.append(("extentDeg", ", ".join(edges)))
    if edges and _looks_regional(found, contract.extent_deg):
        share = _share(found, contract.extent_deg)
        failures.append(
            (
                "extentDeg",
                f"covers only {share:.1%} of the global extent {list(contract.extent_deg)}: a regional raster passed "
                f"as global. Declare it (extent: regional, rasters.{contract.id} in the raster_declaration file) to "
                "have it labelled regional and never summed as global",
            )
        )
    return failures


def _share(found, wanted) -> float:
    def area(w, s, e, n):
        return max(e - w, 0.0) * max(np.sin(np.radians(n)) - np.sin(np.radians(s)), 0.0)

    return area(*found) / area(*wanted)


def _looks_regional(found, wanted) -> bool:
    inside = found[0] >= wanted[0] and found[1] >= wanted[1] and found[2] <= wanted[2] and found[3] <= wanted[3]
    return inside and _share(found, wanted) < REGIONAL_SHARE


def _encoding_failures(band: RasterBand, contract: RasterContract) -> list:
    failures = []
    if str(band.data.dtype) != contract.dtype:
        failures.append(("dtype", f"expected {contract.dtype}, found {band.data.dtype}"))
    if contract.nodata_tagged and band.nodata != contract.nodata:
        failures.append(("nodata", f"expected a nodata tag of {contract.nodata}, found {band.nodata}"))
    if (band.scale, band.offset) != (contract.scale, contract.offset):
        failures.append(
            ("scale/offset", f"expected {contract.scale}/{contract.offset}, found {band.scale}/{band.offset}")
        )
    return failures


def _value_failures(values: np.ndarray, valid: np.ndarray, contract: RasterContract, guard: bool) -> list:
    failures = []
    bad = valid & ((values < contract.minimum) | (values > contract.maximum))
    if bad.any():
        rows, cols = np.nonzero(bad)
        window = f"rows {rows.min()}-{rows.max()}, cols {cols.min()}-{cols.max()}"
        example = values[rows[0], cols[0]]
        failures.append(
            (
                "valueRange",
                f"{int(bad.sum())} pixel(s) outside [{contract.minimum}, {contract.maximum}] {contract.unit} in window "
                f"{window} (e.g. {example:g} at row {rows[0]}, col {cols[0]})",
            )
        )
    if guard and contract.median_range and valid.any():
        low, high = contract.median_range
        median = float(np.median(values[valid]))
        if not low <= median <= high:
            hint = (
                f"; x 10 it would be {median * 10:g}: the values look like kg C/m2, declare unit: kg C/m2"
                if low <= median * 10 <= high
                else ": declare its unit, scale and offset"
            )
            failures.append(
                (
                    "medianBetween",
                    f"median {median:g} {contract.unit} of {int(valid.sum())} valid cells is outside [{low:g}, "
                    f"{high:g}] {contract.unit}{hint} (rasters.{contract.id} in the raster_declaration file)",
                )
            )
    return failures


def _depth_failures(declaration: RasterDeclaration | None, contract: RasterContract) -> list:
    if declaration is None or contract.depth_cm is None or declaration.depth_cm is None:
        return []
    if tuple(declaration.depth_cm) == tuple(contract.depth_cm):
        return []
    found, wanted = declaration.depth_cm, contract.depth_cm
    return [("depthCm", f"declared {found[0]:g}-{found[1]:g} cm, the layer must be {wanted[0]:g}-{wanted[1]:g} cm")]


def check_raster(
    band: RasterBand, contract: RasterContract, declaration: RasterDeclaration | None = None
) -> RasterBand:
    """The band ready for alignment (undeclared: as stored, with the contract's nodata; declared: float32 in the
    contract's unit, NaN for no data), or one InputError naming the file and every broken rule."""
    failures = _grid_failures(band, contract, declaration) + _depth_failures(declaration, contract)
    if declaration is None:
        failures += _encoding_failures(band, contract)
        values, valid = band.data, band.data != contract.nodata
    else:
        values = to_contract_units(band.data, declaration, contract.unit, band.nodata, band.scale, band.offset)
        valid = np.isfinite(values)
    failures += _value_failures(values, valid, contract, guard=declaration is None or declaration.unit is None)
    if failures:
        rules = "; ".join(f"rule {rule}: {detail}" for rule, detail in failures)
        raise InputError(f"{band.path}: breaks contract {contract.label} ({len(failures)} rule(s)): {rules}")
    if declaration is None:
        return RasterBand(band.data, band.transform, band.crs, contract.nodata, band.path, band.band_count)
    return RasterBand(values, band.transform, band.crs, np.nan, band.path, band.band_count)
