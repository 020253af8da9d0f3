"""Check a raster against its contract before it is aligned: grid, type, nodata, scaling, plausible values, and for
stock layers the depth interval and a unit guard on the median.

The grid and encoding rules are read from the file's header; the values are checked in one streaming pass over the
file's own windows (whole blocks), so a raster of any size is checked without being held whole. Every broken rule
is reported at once: one InputError naming the file and each rule (a value-range failure also names the pixel
window). A raster with a declaration (contracts.raster_declaration) is checked on its declared, converted values:
the file's encoding (dtype, nodata tag, scale/offset) and cell size are then the declaration's business, and a
raster declared regional is not held to the global extent.
"""

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.windows import Window

from soil_pipeline.contracts.model import RasterContract
from soil_pipeline.contracts.raster_declaration import RasterDeclaration, to_contract_units
from soil_pipeline.contracts.rules import MedianBetween
from soil_pipeline.engine import raster as engine
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.readers import RasterInfo, raster_info

# Grid edges may differ from the contract by this fraction of a cell: WHRC stores its 5' cell size as 0.0833333,
# which puts its east edge 0.002 cell short of 180; a real shift (say 0.1 cell or more) is still refused.
EDGE_TOLERANCE_CELLS = 0.01
# A raster covering less than this share of the contract's extent is taken for a regional one.
REGIONAL_SHARE = 0.9


# At most about this many cells feed the median unit guard: a larger raster gives one valid value in `step` of each
# window's (step = cells / this, rounded up), so a 1 km layer's guard holds about 16 M values, not 933 M.
MEDIAN_SAMPLE_CELLS = 1 << 24


def _extent(band: RasterInfo) -> tuple[float, float, float, float]:
    t = band.transform
    south, north = sorted((t.f, t.f + t.e * band.height))
    return t.c, south, t.c + t.a * band.width, north


def _grid_failures(band: RasterInfo, contract: RasterContract, declaration: RasterDeclaration | None) -> list:
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


def _encoding_failures(band: RasterInfo, contract: RasterContract) -> list:
    failures = []
    if band.dtype != contract.dtype:
        failures.append(("dtype", f"expected {contract.dtype}, found {band.dtype}"))
    if contract.nodata_tagged and band.nodata != contract.nodata:
        failures.append(("nodata", f"expected a nodata tag of {contract.nodata}, found {band.nodata}"))
    if (band.scale, band.offset) != (contract.scale, contract.offset):
        failures.append(
            ("scale/offset", f"expected {contract.scale}/{contract.offset}, found {band.scale}/{band.offset}")
        )
    return failures


@dataclass(frozen=True)
class DeclaredValues:
    """A declared raster's values in the contract's unit (float32, NaN for no data): `RasterSource.declare`."""

    declaration: RasterDeclaration
    unit: str
    scale: float
    offset: float

    def __call__(self, values: np.ndarray, nodata: float | None) -> np.ndarray:
        return to_contract_units(values, self.declaration, self.unit, nodata, self.scale, self.offset)


@dataclass(frozen=True)
class ValueTask:
    """One window of the file: cells outside the contract's range (count, bounding box, first example) and the
    valid cells' count, sum and sampled values (one in `step` of the window's valid cells). Picklable."""

    source: engine.RasterSource
    minimum: float
    maximum: float
    nodata: float | None
    step: int

    def __call__(self, window: Window) -> dict:
        try:
            with engine.opened(self.source) as dataset:
                values = engine.read_window(dataset, self.source, window)[0]
        except rasterio.errors.RasterioError as error:
            rows = f"rows {window.row_off}-{window.row_off + window.height - 1}"
            cols = f"cols {window.col_off}-{window.col_off + window.width - 1}"
            detail = error.__cause__ or error  # GDAL's own message, under rasterio's "Read failed"
            raise InputError(
                self.source.location,
                f"unreadable raster in window {rows}, {cols} ({detail})",
                Remedy.UNREADABLE,
                window=f"{rows}, {cols}",
            ) from error
        valid = np.isfinite(values) if self.nodata is None else values != self.nodata
        if values.dtype.kind == "f" and self.nodata is not None:
            valid &= ~np.isnan(values)
        bad = valid & ((values < self.minimum) | (values > self.maximum))
        r0, c0 = int(window.row_off), int(window.col_off)
        rows, cols = np.nonzero(bad)
        first = ((rows[0] + r0, cols[0] + c0, float(values[rows[0], cols[0]])),) if len(rows) else ()
        box = (rows.min() + r0, rows.max() + r0, cols.min() + c0, cols.max() + c0) if len(rows) else ()
        sampled = values[valid][:: self.step]
        return {
            "bad": np.array([bad.sum()], dtype="float64"),
            "valid": np.array([valid.sum()], dtype="float64"),
            "valid_sum": np.array([values[valid].sum(dtype="float64")]),
            "first": first,
            "box": box,
            "sample": sampled,
        }


class ValueFindings:
    """What the value pass found, window by window (`consume`), in window order."""

    def __init__(self):
        self.first, self.boxes, self.samples = [], [], []

    def consume(self, window, part: dict) -> dict:
        self.first += part.pop("first")
        if box := part.pop("box"):
            self.boxes.append(box)
        self.samples.append(part.pop("sample"))
        return part

    def window(self) -> str | None:
        """The pixel window holding every value out of range, None when there is none."""
        if not self.boxes:
            return None
        boxes = np.array(self.boxes)
        return f"rows {boxes[:, 0].min()}-{boxes[:, 1].max()}, cols {boxes[:, 2].min()}-{boxes[:, 3].max()}"


def _value_failures(sums: dict, found: ValueFindings, contract: RasterContract, guard: bool, step: int) -> list:
    failures = []
    if bad := int(sums.get("bad", [0])[0]):
        row, col, example = min(found.first)
        failures.append(
            (
                "valueRange",
                f"{bad} pixel(s) outside [{contract.minimum}, {contract.maximum}] {contract.unit} in window "
                f"{found.window()} (e.g. {example:g} at row {row}, col {col})",
            )
        )
    valid = int(sums.get("valid", [0])[0])
    if guard and contract.median_range and valid:
        low, high = contract.median_range
        sample = np.concatenate(found.samples)
        median = float(np.median(sample))
        if not MedianBetween.within(median, low, high):
            hint = (
                f"; x 10 it would be {median * 10:g}: the values look like kg C/m2, declare unit: kg C/m2"
                if low <= median * 10 <= high
                else ": declare its unit, scale and offset"
            )
            of = (
                f"{valid} valid cells"
                if step == 1
                else f"{len(sample)} of {valid} valid cells (one in {step} of each window's)"
            )
            failures.append(
                (
                    "medianBetween",
                    f"median {median:g} {contract.unit} of {of} is outside [{low:g}, "
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


@dataclass(frozen=True)
class CheckedRaster:
    """A raster that passed its contract: the engine input reading its checked values (undeclared: as stored, the
    contract's nodata as `fill`; declared: float32 in the contract's unit, NaN for no data), its header, the sum
    of its valid values (in the contract's unit) and the contract's no-data value (what an integer grid holds where
    there is none)."""

    source: engine.RasterSource
    info: RasterInfo
    valid_sum: float
    nodata: float | None


def check_raster(
    path: str,
    contract: RasterContract,
    declaration: RasterDeclaration | None = None,
    executor=None,
    threads: int = 2,
    window_cells: int = engine.WINDOW_CELLS,
) -> CheckedRaster:
    """Check the raster at `path` (any GDAL path or URL) in one streaming pass; one InputError naming the file and
    every broken rule."""
    band = raster_info(path)
    failures = _grid_failures(band, contract, declaration) + _depth_failures(declaration, contract)
    if declaration is None:
        failures += _encoding_failures(band, contract)
        source = engine.RasterSource(path, name=contract.id, dtype=band.dtype, fill=contract.nodata)
        nodata = contract.nodata
    else:
        declare = DeclaredValues(declaration, contract.unit, band.scale, band.offset)
        source = engine.RasterSource(path, name=contract.id, declare=declare)
        nodata = None
    step = max(1, math.ceil(band.width * band.height / MEDIAN_SAMPLE_CELLS))
    task = ValueTask(source, contract.minimum, contract.maximum, nodata, step)
    found = ValueFindings()
    window_list = engine.windows(band.grid(), _block(band), window_cells)
    sums, _ = engine.run_pass(task, window_list, executor, threads, f"check {contract.id}", found.consume)
    guard = declaration is None or declaration.unit is None
    failures += _value_failures(sums, found, contract, guard, step)
    if failures:
        raise _broken(band, contract, failures, found.window())
    return CheckedRaster(source, band, float(sums.get("valid_sum", [0.0])[0]), contract.nodata)


def _broken(band: RasterInfo, contract: RasterContract, failures: list, window: str | None) -> InputError:
    """One error naming every broken rule, with the pixel window of the values out of range (None: none are)."""
    rules = "; ".join(f"rule {rule}: {detail}" for rule, detail in failures)
    return InputError(
        band.path,
        f"breaks contract {contract.label} ({len(failures)} rule(s)): {rules}",
        Remedy.RASTER_CONTRACT,
        window=window,
    )


def _block(band: RasterInfo) -> tuple[int, int]:
    """The file's block, as rows of at most about `WINDOW_CELLS` cells for a file stored as one strip."""
    rows = min(band.block[0], band.height, max(1, engine.WINDOW_CELLS // min(band.block[1], band.width)))
    return rows, min(band.block[1], band.width)
