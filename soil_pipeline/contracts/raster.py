"""Check a raster against its contract before it is aligned: header limits, grid, type, nodata, scaling, plausible
values, and for stock layers the depth interval and a unit guard on the median.

The header is checked first, before any value is read: a raster whose size (cells, decoded bytes, the bytes of one
block, which GDAL decodes whole) exceeds the engine's limits (`RasterLimits`, configurable on the `raster_engine`
resource) is refused at once. The grid and encoding rules are read from the header too; the values are checked in
one streaming pass over the file's own windows (whole blocks), so a raster of any size is checked without being
held whole. Every broken rule is reported at once: one InputError naming the file and each rule (a value-range
failure also names the pixel window).

A raster with a declaration (contracts.raster_declaration) is checked on its declared, converted values: its
encoding (dtype, nodata tag, scale/offset) and cell size are then the declaration's business, and a raster
declared regional is not held to the global extent. The plausibility rules apply to every raster whatever was
declared: some valid cells (`validCells`), more than one value (`valueVariety`) and, for stock layers, the median
in its plausible range (`medianBetween`, naming the unit the values look like). A declaration can confirm a
plausibility rule with a reason (`confirm:`): the rule is then recorded as confirmed (provenance and metadata)
instead of failing.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.windows import Window

from soil_pipeline.contracts.model import RasterContract
from soil_pipeline.contracts.raster_declaration import (
    CONFIRMABLE,
    RASTER_UNITS,
    RasterDeclaration,
    to_contract_units,
)
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


@dataclass(frozen=True)
class RasterLimits:
    """What a raster's header may claim before anything is read: cells, decoded bytes (cells x bands x bytes per
    value) and the decoded bytes of one block (GDAL decodes a block whole to read any cell of it: a 300 KB file
    claiming one block of 100,000 x 100,000 cells asks for 20 GB). The defaults admit a global 250 m grid
    (172,800 x 86,400 = 14.9 G cells, 119 GB as float64) stored in blocks of up to 128 MiB."""

    max_cells: int = 1 << 35
    max_bytes: int = 1 << 37
    max_block_bytes: int = 1 << 27

    def failures(self, band: RasterInfo) -> list:
        size = np.dtype(band.dtype).itemsize
        cells = band.width * band.height
        block_bytes = band.block[0] * band.block[1] * size * band.band_count
        found = [
            ("maxCells", cells, self.max_cells, f"{band.width} x {band.height} = {cells:,} cells"),
            ("maxBytes", cells * size * band.band_count, self.max_bytes, f"{_bytes(cells * size * band.band_count)}"),
            (
                "maxBlockBytes",
                block_bytes,
                self.max_block_bytes,
                f"blocks of {band.block[1]} x {band.block[0]} cells, {_bytes(block_bytes)} each decoded at once",
            ),
        ]
        return [
            (rule, f"the header claims {what}, more than the limit of {_bytes(limit) if 'Bytes' in rule else limit}")
            for rule, value, limit, what in found
            if value > limit
        ]


def _bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def extent_of(band: RasterInfo) -> tuple[float, float, float, float]:
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
    if t.b != 0 or t.d != 0:
        failures.append(
            (
                "northUp",
                f"the grid is rotated or sheared (geotransform rotation terms {t.b:g} and {t.d:g}, not 0): warp it "
                "onto a north-up lon/lat grid first (e.g. gdalwarp -t_srs EPSG:4326)",
            )
        )
        return failures
    if declaration is None and (not np.isclose(abs(t.a), res, rtol=1e-6) or not np.isclose(abs(t.e), res, rtol=1e-6)):
        failures.append(("resolutionDeg", f"expected {res} deg square cells, found {abs(t.a)} x {abs(t.e)}"))
    if declaration is not None and declaration.regional:
        return failures
    found, cell = extent_of(band), abs(t.a) or res
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
class ValidCells:
    """A `RasterSource.declare` hook giving 1.0 where the source has a value (after its own declaration, if any)
    and NaN where it has none: summed onto a coarser grid, the number of its cells each grid cell holds."""

    declare: Callable[[np.ndarray, float | None], np.ndarray] | None = None

    def __call__(self, values: np.ndarray, nodata: float | None) -> np.ndarray:
        if self.declare is not None:
            values, nodata = self.declare(values, nodata), None
        valid = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, dtype=bool)
        if nodata is not None:
            valid &= values != nodata
        return np.where(valid, np.float32(1.0), np.float32(np.nan))


@dataclass(frozen=True)
class ValueTask:
    """One window of the file: cells outside the contract's range (count, bounding box, first example) and the
    valid cells' count, sum, smallest and largest value and sampled values (one in `step` of the window's valid
    cells). Picklable."""

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
        kept = values[valid]
        return {
            "bad": np.array([bad.sum()], dtype="float64"),
            "valid": np.array([valid.sum()], dtype="float64"),
            "valid_sum": np.array([kept.sum(dtype="float64")]),
            "first": first,
            "box": box,
            "span": (float(kept.min()), float(kept.max())) if kept.size else (),
            "sample": kept[:: self.step],
        }


class ValueFindings:
    """What the value pass found, window by window (`consume`), in window order."""

    def __init__(self):
        self.first, self.boxes, self.samples = [], [], []
        self.low, self.high = math.inf, -math.inf

    def consume(self, window, part: dict) -> dict:
        self.first += part.pop("first")
        if box := part.pop("box"):
            self.boxes.append(box)
        if span := part.pop("span"):
            self.low, self.high = min(self.low, span[0]), max(self.high, span[1])
        self.samples.append(part.pop("sample"))
        return part

    def window(self) -> str | None:
        """The pixel window holding every value out of range, None when there is none."""
        if not self.boxes:
            return None
        boxes = np.array(self.boxes)
        return f"rows {boxes[:, 0].min()}-{boxes[:, 1].max()}, cols {boxes[:, 2].min()}-{boxes[:, 3].max()}"


def _value_failures(
    sums: dict, found: ValueFindings, contract: RasterContract, band: RasterInfo, declared_unit: str | None, step: int
) -> list:
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
    if not valid:
        return [*failures, ("validCells", f"no valid cell: all {band.width * band.height:,} cells are no data")]
    if found.low == found.high:
        failures.append(
            (
                "valueVariety",
                f"all {valid:,} valid cells hold the same value, {found.low:g} {contract.unit}: a blank or constant "
                "raster (a fill value not declared as nodata?)",
            )
        )
    if contract.median_range:
        failures += _median_failures(np.concatenate(found.samples), valid, contract, declared_unit, step)
    return failures


def _median_failures(sample: np.ndarray, valid: int, contract: RasterContract, declared: str | None, step: int):
    low, high = contract.median_range
    median = float(np.median(sample))
    if MedianBetween.within(median, low, high):
        return []
    of = (
        f"{valid} valid cells"
        if step == 1
        else f"{len(sample)} of {valid} valid cells (one in {step} of each window's)"
    )
    return [
        (
            "medianBetween",
            f"median {median:g} {contract.unit} of {of} is outside [{low:g}, {high:g}] {contract.unit}"
            f"{_unit_hint(median, low, high, contract.unit, declared)} (rasters.{contract.id} in the "
            "raster_declaration file)",
        )
    ]


def _unit_hint(median: float, low: float, high: float, unit: str, declared: str | None) -> str:
    """What the median would be in the unit that brings it nearest the middle of its range, when one does."""
    units = RASTER_UNITS.get(unit, {})
    base = units.get(declared or unit, 1.0)
    centre = math.sqrt(low * high) if low > 0 else (low + high) / 2
    candidates = [(name, factor / base) for name, factor in units.items() if factor != base]
    fitting = [(name, f) for name, f in candidates if low <= median * f <= high]
    if not fitting:
        return ": declare its unit, scale and offset"
    name, factor = min(fitting, key=lambda item: abs(math.log(median * item[1] / centre)) if median else 0)
    as_declared = f", not {declared} as declared" if declared else ""
    return (
        f"; x {factor:g} it would be {median * factor:g}: the values look like {name}{as_declared}, "
        f"declare unit: {name}"
    )


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
    of its valid values (in the contract's unit), the contract's no-data value (what an integer grid holds where
    there is none) and the plausibility rules its declaration confirmed ({rule: {finding, reason}})."""

    source: engine.RasterSource
    info: RasterInfo
    valid_sum: float
    nodata: float | None
    confirmed: dict = field(default_factory=dict)


def check_raster(
    path: str,
    contract: RasterContract,
    declaration: RasterDeclaration | None = None,
    executor=None,
    threads: int = 2,
    window_cells: int = engine.WINDOW_CELLS,
    limits: RasterLimits = RasterLimits(),
) -> CheckedRaster:
    """Check the raster at `path` (any GDAL path or URL): its header against `limits` before anything is read,
    then its rules in one streaming pass; one InputError naming the file and every broken rule."""
    band = raster_info(path)
    if too_large := limits.failures(band):
        raise _broken(band, contract, too_large, None, Remedy.RASTER_LIMITS)
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
    declared_unit = declaration.unit if declaration is not None else None
    failures += _value_failures(sums, found, contract, band, declared_unit, step)
    failures, confirmed = confirmations(failures, declaration)
    if failures:
        plausibility = all(rule in CONFIRMABLE for rule, _ in failures)
        remedy = Remedy.RASTER_PLAUSIBILITY if plausibility else Remedy.RASTER_CONTRACT
        raise _broken(band, contract, failures, found.window(), remedy)
    return CheckedRaster(source, band, float(sums.get("valid_sum", [0.0])[0]), contract.nodata, confirmed)


def confirmations(failures: list, declaration: RasterDeclaration | None) -> tuple[list, dict]:
    """(the broken rules the declaration does not confirm, {confirmed rule: {"finding", "reason"}})."""
    if declaration is None:
        return failures, {}
    kept, confirmed = [], {}
    for rule, detail in failures:
        reason = declaration.confirmed(rule)
        if reason is None:
            kept.append((rule, detail))
        else:
            confirmed[rule] = {"finding": detail, "reason": reason, "declaration": declaration.path.name}
    return kept, confirmed


def _broken(
    band: RasterInfo, contract: RasterContract, failures: list, window: str | None, remedy: Remedy
) -> InputError:
    """One error naming every broken rule, with the pixel window of the values out of range (None: none are)."""
    rules = "; ".join(f"rule {rule}: {detail}" for rule, detail in failures)
    return InputError(
        band.path, f"breaks contract {contract.label} ({len(failures)} rule(s)): {rules}", remedy, window=window
    )


def _block(band: RasterInfo) -> tuple[int, int]:
    """The file's block, as rows of at most about `WINDOW_CELLS` cells for a file stored as one strip."""
    rows = min(band.block[0], band.height, max(1, engine.WINDOW_CELLS // min(band.block[1], band.width)))
    return rows, min(band.block[1], band.width)
