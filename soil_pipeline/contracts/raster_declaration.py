"""Raster declarations: what a stock or area raster's numbers mean when the file does not say (unit, scale/offset,
nodata, depth interval, role, regional or global extent), and the pure conversion of its values into the contract's
unit. `to_contract_units` works on any array or window, so a windowed reader can call it block by block.

    declaration: 1
    rasters:
      soc_stock_2010_raster:
        label: SoilGrids 2.0 SOC stock 0-30 cm, Ghana
        role: stock_2010            # the input's role (raster_inputs: stock_2010, stock_no_land_use,
                                    # cropland_area, climate_zones, pasture_area, stock_second_source)
        unit: kg C/m2               # t C/ha | Mg C/ha | kg C/m2 | g C/m2 | kg C/ha (stocks); km2 | ha | m2 (areas)
        scale: 0.01                 # raw x scale + offset, then the unit conversion
        offset: 0
        nodata: -32768              # when the file has no nodata tag
        depth_cm: [0, 30]           # stocks: must be the contract's 0-30 cm
        extent: regional            # global (default) | regional: labelled regional, never summed as global
        confirm:                    # a plausibility rule the values break, confirmed as right (recorded)
          medianBetween: peat soils, median 310 t C/ha checked against the survey
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soil_pipeline.contracts.bounded_yaml import DeclarationError, is_number, read_bounded_yaml
from soil_pipeline.raster_inputs import RASTER_INPUTS

# Contract unit -> {declared unit: factor to the contract unit}.
RASTER_UNITS = {
    "t C/ha": {"t C/ha": 1.0, "Mg C/ha": 1.0, "kg C/m2": 10.0, "g C/m2": 0.01, "kg C/ha": 0.001},
    "km2 per cell": {"km2": 1.0, "ha": 0.01, "m2": 1e-6},
}
# Input name -> the role its entry must name: every raster input of the registry is declarable.
ROLES = {entry.name: entry.declared_as for entry in RASTER_INPUTS}
EXTENTS = ("global", "regional")
FIELDS = {"label", "role", "unit", "scale", "offset", "nodata", "depth_cm", "extent", "confirm"}
# The plausibility rules a declaration may confirm (each with its reason): the distribution of the values, their
# variety, their coverage of the land and the ratio to the reference stock layer. The encoding, grid, range and
# header limits cannot be confirmed.
CONFIRMABLE = ("medianBetween", "valueVariety", "landShare", "referenceRatio")


@dataclass(frozen=True)
class RasterDeclaration:
    name: str  # the input it declares, e.g. soc_stock_2010_raster
    path: Path  # the declaration file
    role: str
    label: str = ""
    unit: str | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    depth_cm: tuple[float, float] | None = None
    extent: str = "global"
    # rule -> why the user is sure the values are right though they break it (recorded in provenance and metadata)
    confirm: tuple[tuple[str, str], ...] = ()

    @property
    def regional(self) -> bool:
        return self.extent == "regional"

    def describe(self) -> dict:
        """For provenance and metadata."""
        return {
            "declaration": self.path.name,
            "label": self.label,
            "role": self.role,
            "unit": self.unit,
            "scale": self.scale,
            "offset": self.offset,
            "nodata": self.nodata,
            "depth_cm": list(self.depth_cm) if self.depth_cm else None,
            "extent": self.extent,
            "confirm": dict(self.confirm) or None,
        }

    def confirmed(self, rule: str) -> str | None:
        """The reason given for `rule`, when the declaration confirms it."""
        return dict(self.confirm).get(rule)


def _entry(path: Path, name: str, spec) -> RasterDeclaration:
    entry = f"rasters.{name}"
    if name not in ROLES:
        raise DeclarationError(path, f"{entry}: not a declarable raster input; use one of {', '.join(ROLES)}")
    if not isinstance(spec, dict):
        raise DeclarationError(path, f"{entry}: expected a mapping of {', '.join(sorted(FIELDS))}")
    if unknown := sorted(set(spec) - FIELDS):
        raise DeclarationError(
            path, f"{entry}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}"
        )
    role = spec.get("role", ROLES[name])
    if role != ROLES[name]:
        raise DeclarationError(path, f"{entry}.role: {role!r}, but this input is the {ROLES[name]} layer")
    for key in ("scale", "offset", "nodata"):
        if spec.get(key) is not None and not is_number(spec[key]):
            raise DeclarationError(path, f"{entry}.{key}: must be a number, got {spec[key]!r}")
    if spec.get("scale") == 0:
        raise DeclarationError(path, f"{entry}.scale: must not be 0")
    extent = spec.get("extent", "global")
    if extent not in EXTENTS:
        raise DeclarationError(path, f"{entry}.extent: {extent!r}; use global or regional")
    depth = spec.get("depth_cm")
    if depth is not None and not (isinstance(depth, list) and len(depth) == 2 and all(is_number(d) for d in depth)):
        raise DeclarationError(path, f"{entry}.depth_cm: expected [top, bottom] in cm, e.g. [0, 30]")
    confirm = _confirmations(path, entry, spec.get("confirm"))
    unit = spec.get("unit")
    if unit is not None and not any(unit in units for units in RASTER_UNITS.values()):
        known = ", ".join(u for units in RASTER_UNITS.values() for u in units)
        raise DeclarationError(path, f"{entry}.unit: {unit!r} is not a unit this pipeline converts; use one of {known}")
    return RasterDeclaration(
        name=name,
        path=path,
        role=role,
        label=str(spec.get("label", "")),
        unit=unit,
        scale=spec.get("scale"),
        offset=spec.get("offset"),
        nodata=spec.get("nodata"),
        depth_cm=tuple(float(d) for d in depth) if depth else None,
        extent=extent,
        confirm=confirm,
    )


def _confirmations(path: Path, entry: str, confirm) -> tuple[tuple[str, str], ...]:
    if confirm is None:
        return ()
    if not isinstance(confirm, dict) or not confirm:
        raise DeclarationError(path, f"{entry}.confirm: expected a mapping of rule -> reason, e.g. medianBetween: ...")
    for rule, reason in confirm.items():
        if rule not in CONFIRMABLE:
            raise DeclarationError(
                path, f"{entry}.confirm.{rule}: not a rule a declaration can confirm; use {', '.join(CONFIRMABLE)}"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise DeclarationError(path, f"{entry}.confirm.{rule}: give the reason the values are right, as text")
    return tuple((rule, reason.strip()) for rule, reason in confirm.items())


def load_raster_declarations(path: str | Path | None) -> dict[str, RasterDeclaration]:
    """{input name: declaration} from a raster declaration file; {} without one."""
    if not path:
        return {}
    path = Path(path)
    data = read_bounded_yaml(path)
    if data.get("declaration") != 1 or not isinstance(data.get("rasters"), dict):
        raise DeclarationError(path, "expected 'declaration: 1' and a 'rasters:' mapping of input name -> fields")
    if unknown := sorted(set(data) - {"declaration", "rasters", "description"}):
        raise DeclarationError(path, f"unknown key(s) {', '.join(unknown)}; allowed: declaration, rasters")
    return {name: _entry(path, name, spec) for name, spec in data["rasters"].items()}


def unit_factor(declaration: RasterDeclaration, contract_unit: str) -> float:
    """Factor from the declared unit to the contract's; 1 when no unit is declared."""
    if declaration.unit is None:
        return 1.0
    units = RASTER_UNITS.get(contract_unit, {contract_unit: 1.0})
    if declaration.unit not in units:
        raise DeclarationError(
            declaration.path,
            f"rasters.{declaration.name}.unit: {declaration.unit!r} cannot be converted to "
            f"{contract_unit}, the unit of this layer; use one of {', '.join(units)}",
        )
    return units[declaration.unit]


def unit_mixup(factor: float, contract_unit: str, declared: str | None) -> tuple[str, float] | None:
    """The unit the values look like when they are `factor` times what they should be, read as `declared` (None:
    the contract's unit): (unit, its factor relative to the declared one), e.g. (kg C/m2, 10) for values of 7
    read as t C/ha that should be 70; None when no unit of the contract's family explains a factor within a
    factor of 2 (10 ** 0.3)."""
    units = RASTER_UNITS.get(contract_unit)
    if not units or factor <= 0:
        return None
    base = units.get(declared or contract_unit, 1.0)
    best = min(units.items(), key=lambda item: abs(np.log10(item[1] / base) + np.log10(factor)))
    relative = best[1] / base
    if relative == 1.0 or abs(np.log10(relative) + np.log10(factor)) > 0.3:
        return None
    return best[0], relative


def to_contract_units(
    values: np.ndarray,
    declaration: RasterDeclaration,
    contract_unit: str,
    file_nodata: float | None = None,
    file_scale: float = 1.0,
    file_offset: float = 0.0,
) -> np.ndarray:
    """Raw raster values (any array or window) -> float32 in the contract's unit, NaN where no data; pure.

    Nodata: the declared value, else the file's tag. Scale/offset: the declared ones, else the file's. Then the
    declared unit's factor, e.g. x 10 from kg C/m2 to t C/ha.
    """
    nodata = declaration.nodata if declaration.nodata is not None else file_nodata
    scale = declaration.scale if declaration.scale is not None else file_scale
    offset = declaration.offset if declaration.offset is not None else file_offset
    out = values.astype("float64") * scale + offset
    out *= unit_factor(declaration, contract_unit)
    missing = ~np.isfinite(values) if values.dtype.kind == "f" else np.zeros(values.shape, dtype=bool)
    if nodata is not None:
        missing |= values == nodata
    out[missing] = np.nan
    return out.astype("float32")
