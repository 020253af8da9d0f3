"""Field-drop declarations: how a survey's own tables map onto the field_sites / field_horizons contracts.

A declaration is a small YAML file (beside the drop as `declaration.yaml` or `.yml`, or given explicitly) naming, per
table, the source header of each contract column, the units the values are in, the CRS of the coordinates (a 2D CRS
of the Earth), the texts that mean "missing", a date format or fixed values; for the drop, the country the survey
covers and the plausibility verdicts its author confirms (`confirm`, with a reason: see `drop_evidence`).
`plan_table` checks it against the contract and the file's header; `apply_declaration` is a pure function on one
frame (or chunk) of source rows, applied before contract validation: it converts to the contract's units and WGS84,
keeps the source text of every converted column for the rejects (`source_text:<column>`) and describes each
conversion in `frame.attrs[DECLARED_CONVERSIONS]`.
"""

import datetime as dt
import fnmatch
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup

from soil_pipeline.contracts.bounded_yaml import read_bounded_yaml
from soil_pipeline.contracts.model import TableContract
from soil_pipeline.contracts.validate import DECLARED_CONVERSIONS, SOURCE_TEXT_PREFIX, _strict_number
from soil_pipeline.errors import DeclarationError, InputError, Remedy
from soil_pipeline.readers import (
    _csv_header,
    _inside,
    check_names,
    find_drop_file,
    is_parquet,
    is_table_name,
    missing_columns,
    regular_file,
)
from soil_pipeline.science.units import TO_CANONICAL, coarse_fragments_mass_to_vol_pct, organic_matter_unit

DECLARATIONS_DIR = Path(__file__).resolve().parents[1] / "data" / "declarations"
DEFAULT_DECLARATION = DECLARATIONS_DIR / "africa_soil_profiles.yaml"
DROP_DECLARATION_NAME = "declaration.yaml"
# The names a drop's own declaration may have (compared case-insensitively); any other YAML file in a drop is named
# in an error rather than silently ignored.
DROP_DECLARATION_NAMES = ("declaration.yaml", "declaration.yml")
YAML_SUFFIXES = (".yaml", ".yml")
WGS84 = "EPSG:4326"
TABLE_KEYS = {"field_sites": "sites", "field_horizons": "horizons"}
TOP_KEYS = {"declaration", "name", "description", "source", "missing_values", "country", "confirm", "sites", "horizons"}
# What a declaration may confirm against the plausibility checks (drop_evidence), the table whose declaration it
# must match, and how: the confirmed value is the declared one.
CONFIRM_KEYS = {
    "soc_unit": "field_horizons",
    "bd_unit": "field_horizons",
    "depth_unit": "field_horizons",
    "coordinates_crs": "field_sites",
}
DEPTH_COLUMNS = ("upper_depth_cm", "lower_depth_cm")
SOC_COLUMN = "soc_g_per_kg"
# The columns whose declared unit each unit confirmation names.
CONFIRMED_COLUMNS = {
    "soc_unit": (SOC_COLUMN,),
    "bd_unit": ("bulk_density_g_per_cm3",),
    "depth_unit": DEPTH_COLUMNS,
}
# The Earth's ellipsoids (WGS84 6,378,137 m; Airy 1830 6,377,563 m; Bessel 1841 6,377,397 m; ...): a CRS on another
# body (Mars 3,396,190 m) is refused.
EARTH_SEMI_MAJOR_M = (6.3e6, 6.4e6)
TABLE_FIELDS = {"file", "columns", "units", "coordinates_crs", "date_format", "fixed"}
# Beyond the contract's required columns, what the 0-30 cm stock cannot do without (BD has a pedotransfer
# function, missing coarse fragments count as 0 and are flagged).
STOCK_NEEDS = {"field_horizons": {"soc_g_per_kg": "SOC content, for the 0-30 cm stock"}}
COORDINATES = ("longitude_deg", "latitude_deg")
DATE_COLUMN = "sampling_date"
CF_COLUMN, BD_COLUMN = "coarse_fragments_vol_pct", "bulk_density_g_per_cm3"


@dataclass(frozen=True)
class FieldDeclaration:
    """A parsed declaration file (structure checked; columns are checked against a contract by `plan_table`)."""

    path: Path
    name: str
    missing_values: tuple[str, ...]
    tables: dict[str, dict]
    country: tuple[str, ...] = ()  # ADM0_A3 codes of the countries the survey covers, when it names them
    confirm: dict[str, str] = field(default_factory=dict)  # confirmed check -> value, and "reason"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.path.name})"


@dataclass(frozen=True)
class TablePlan:
    """What `apply_declaration` does to one table's rows: the plan of a declaration for one file."""

    table: str
    declaration: str
    key: str
    source_columns: dict[str, str]  # source header -> contract column, for the columns present in the file
    absent: tuple[str, ...]  # optional contract columns the file does not have: null, flagged
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (declared unit, contract unit)
    coordinates_crs: str = WGS84
    date_format: str | None = None
    fixed: dict[str, str] = field(default_factory=dict)
    missing_values: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    confirmed: dict[str, str] = field(default_factory=dict)  # this table's confirmations, and "reason"

    def conversions(self) -> dict[str, str]:
        """Each conversion as text, by contract column (what the rejects' `conversion` column and provenance say)."""
        out = {}
        for column, (unit, canonical) in self.units.items():
            if column == CF_COLUMN and unit == "% mass":
                out[column] = (
                    f"declared % mass, converted to % vol with the fine-earth BD and a particle density of 2.65 g/cm3 "
                    f"({self.declaration})"
                )
            elif organic_matter_unit(unit):
                out[column] = (
                    f"declared {unit} (organic matter), x {TO_CANONICAL[canonical][unit]:g} to {canonical} of "
                    f"organic carbon (van Bemmelen factor 0.58) ({self.declaration})"
                )
            else:
                out[column] = (
                    f"declared {unit}, x {TO_CANONICAL[canonical][unit]:g} to {canonical} ({self.declaration})"
                )
        if self.coordinates_crs != WGS84 and all(c in self.source_columns.values() for c in COORDINATES):
            text = f"declared {self.coordinates_crs}, transformed to WGS84 (EPSG:4326) with pyproj ({self.declaration})"
            out.update({column: text for column in COORDINATES})
        if self.date_format:
            out[DATE_COLUMN] = f"declared date format {self.date_format!r}, read as ISO 8601 ({self.declaration})"
        return out

    def describe(self) -> dict:
        """For provenance: the mapping, absent columns, fixed values and conversions (with the pyproj operation)."""
        text = {
            "declaration": self.declaration,
            "columns": {target: source for source, target in self.source_columns.items()},
            "absent_columns_null": list(self.absent),
            "fixed": self.fixed,
            "missing_values": list(self.missing_values),
            "conversions": self.conversions(),
        }
        if self.country:
            text["country"] = list(self.country)
        if self.confirmed:
            text["confirmed"] = dict(self.confirmed)
        if self.coordinates_crs != WGS84:
            transformer = _transformer(self.coordinates_crs)
            text["coordinate_operation"] = {"description": transformer.description, "accuracy_m": transformer.accuracy}
        return text


def _fail(path, message: str):
    raise DeclarationError(path, message)


def load_declaration(path: str | Path) -> FieldDeclaration:
    """A declaration file, bounded (see bounded_yaml) and checked for structure: known keys, units, CRS."""
    path = Path(path)
    data = read_bounded_yaml(regular_file(path))
    if unknown := sorted(set(data) - TOP_KEYS):
        _fail(path, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TOP_KEYS))}")
    if data.get("declaration") != 1:
        _fail(path, "declaration: 1 is required (the version of this file format)")
    markers = data.get("missing_values") or []
    if not isinstance(markers, list) or not all(isinstance(m, str | int | float) for m in markers):
        _fail(path, "missing_values must be a list of texts, e.g. ['NA', '-9999']")
    tables = {}
    for table, key in TABLE_KEYS.items():
        spec = data.get(key)
        if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
            _fail(path, f"{key}.columns is required: a mapping of contract column -> header in the {key} file")
        if unknown := sorted(set(spec) - TABLE_FIELDS):
            _fail(path, f"{key}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TABLE_FIELDS))}")
        if "coordinates_crs" in spec:
            _check_crs(path, f"{key}.coordinates_crs", spec["coordinates_crs"])
        tables[table] = spec
    name = str(data.get("name") or path.stem)
    country, confirm = _countries(path, data.get("country")), _confirmations(path, data.get("confirm"))
    return FieldDeclaration(path, name, tuple(str(m) for m in markers), tables, country, confirm)


def _check_crs(path: Path, key: str, value) -> None:
    """A CRS coordinates can be in: one pyproj knows, two-dimensional (geographic lon/lat or projected x/y; not
    vertical, compound, 3D or geocentric) and of the Earth, with an operation to WGS84."""
    try:
        crs = CRS.from_user_input(value)
    except CRSError as error:
        _fail(path, f"{key} {value!r} is not a CRS pyproj knows ({error})")
    if crs.is_vertical or crs.is_compound or crs.is_geocentric or len(crs.axis_info) != 2:
        what = "compound CRS" if crs.is_compound else "vertical CRS" if crs.is_vertical else crs.type_name
        _fail(
            path,
            f"{key} {value!r} is a {what} ({crs.name}): coordinates need a 2D horizontal CRS, geographic "
            "(longitude, latitude) or projected (x, y), e.g. EPSG:4326",
        )
    if not crs.is_geographic and not crs.is_projected:
        _fail(path, f"{key} {value!r} ({crs.type_name}, {crs.name}) is neither geographic nor projected")
    axis = crs.ellipsoid.semi_major_metre if crs.ellipsoid else None
    if axis is None or not EARTH_SEMI_MAJOR_M[0] <= axis <= EARTH_SEMI_MAJOR_M[1]:
        body = crs.ellipsoid.name if crs.ellipsoid else "no ellipsoid"
        _fail(path, f"{key} {value!r} ({crs.name}) is not a CRS of the Earth ({body}, semi-major axis {axis} m)")
    try:
        _transformer(crs.to_string() if crs.to_authority() else crs.to_wkt())
    except (ProjError, CRSError) as error:
        _fail(path, f"{key} {value!r} ({crs.name}): PROJ has no operation from it to WGS84 ({error})")


def _countries(path: Path, value) -> tuple[str, ...]:
    """`country`: an ADM0_A3 code (Natural Earth, e.g. AUS) or a list of them; checked against the countries
    layer when the drop is checked."""
    if value is None:
        return ()
    codes = value if isinstance(value, list) else [value]
    if not codes or not all(isinstance(c, str) and len(c) == 3 and c.isalpha() and c.isupper() for c in codes):
        _fail(
            path, f"country must be an ADM0_A3 code (three capital letters, e.g. AUS) or a list of them, not {value!r}"
        )
    return tuple(codes)


def _confirmations(path: Path, value) -> dict[str, str]:
    """`confirm`: {check: the declared value confirmed, ..., reason: why}; the reason is required."""
    if value is None:
        return {}
    allowed = ", ".join(CONFIRM_KEYS)
    if not isinstance(value, dict) or not set(value) - {"reason"}:
        _fail(path, f"confirm must be a mapping of one or more of {allowed} to the declared value, and a reason")
    if unknown := sorted(set(value) - set(CONFIRM_KEYS) - {"reason"}):
        _fail(path, f"confirm: unknown key(s) {', '.join(map(str, unknown))}; allowed: {allowed}, reason")
    reason = value.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < 10:
        _fail(path, "confirm.reason is required: say, in a sentence, why the values are right despite the check")
    return {str(k): str(v).strip() for k, v in value.items()}


def resolve_declaration(drop_dir: Path, explicit: str | None = None) -> FieldDeclaration:
    """The declaration of a drop: the explicit one (resource config or CLI), else `declaration.yaml` (or `.yml`, in
    any case) in the drop, else the embedded Africa Soil Profiles layout. A drop holding two such files, or another
    YAML file and no declaration, is refused naming them: a declaration is never silently ignored."""
    if explicit:
        return load_declaration(explicit)
    drop_dir = Path(drop_dir)
    entries = sorted(drop_dir.iterdir()) if drop_dir.is_dir() else []
    found = [p for p in entries if p.name.casefold() in DROP_DECLARATION_NAMES]
    if len(found) > 1:
        names = " and ".join(repr(p.name) for p in found)
        _fail(drop_dir, f"two declarations, {names}: keep one")
    if found:
        return load_declaration(regular_file(found[0]))
    other = [p.name for p in entries if p.suffix.casefold() in YAML_SUFFIXES]
    if other:
        _fail(
            drop_dir,
            f"{', '.join(map(repr, other))} in the drop is not read: a drop's declaration is named declaration.yaml "
            "(rename it), or is passed with --declaration / the field_declaration input",
        )
    return load_declaration(DEFAULT_DECLARATION)


def is_drop_declaration(name: str) -> bool:
    """Whether a file of a drop folder is its declaration (what the drop's data version includes)."""
    return name.casefold() in DROP_DECLARATION_NAMES


def find_table_file(drop_dir: Path, declaration: FieldDeclaration, table: str, landing_dir: Path) -> Path:
    """The one file of `table` in the drop matching the declared `file` pattern(s) ('|'-separated globs); without
    one, the drop's one `*sites` / `*horizons` table."""
    key = TABLE_KEYS[table]
    if not declaration.tables[table].get("file"):
        return find_drop_file(drop_dir, key, landing_dir)
    patterns = [pattern.casefold() for pattern in str(declaration.tables[table]["file"]).split("|")]
    if not drop_dir.is_dir():
        raise InputError(drop_dir, "no field-sample drop folder for this partition", Remedy.DROP_FOLDER)
    _inside(drop_dir, landing_dir)
    names = sorted(p for p in drop_dir.iterdir() if is_table_name(p.name))
    matches = [p for p in names if any(fnmatch.fnmatchcase(p.name.casefold(), pattern) for pattern in patterns)]
    if len(matches) != 1:
        raise InputError(
            drop_dir,
            f"expected exactly one {key} file matching {'|'.join(patterns)} ({key}.file in {declaration.path}), "
            f"found {len(matches)}",
            Remedy.DECLARED_FILE,
        )
    return regular_file(_inside(matches[0], landing_dir))


def table_header(path: Path) -> list[str]:
    """The column names of a drop table (CSV header line or Parquet schema), no two alike (`readers.check_names`)."""
    if is_parquet(path):
        try:
            header = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as error:
            raise InputError(path, f"unreadable table ({error})", Remedy.UNREADABLE) from error
    else:
        header = _csv_header(path)
    check_names(path, header)
    return header


def _canonical_unit(contract: TableContract, column: str) -> str | None:
    return contract.column(column).unit


def plan_table(
    declaration: FieldDeclaration, table: str, contract: TableContract, path: Path, header: list[str]
) -> TablePlan:
    """Check the declaration against the contract and the file's header; one error names every missing column the
    contract or the stock needs, with the drop file and the declaration key that would supply it; then one names
    every other declared header the file does not have (an optional column is absent only when not declared: a
    misspelt BLD must not silently become the pedotransfer function's BD). A confirmation must confirm what is
    declared."""
    spec, key = declaration.tables[table], TABLE_KEYS[table]
    names = {column.name for column in contract.columns if not column.derived}
    columns = {str(k): str(v) for k, v in spec["columns"].items() if v is not None}
    fixed = {str(k): v.isoformat() if isinstance(v, dt.date) else str(v) for k, v in (spec.get("fixed") or {}).items()}
    units = {str(k): str(v) for k, v in (spec.get("units") or {}).items()}
    for where, keys in (("columns", columns), ("fixed", fixed), ("units", units)):
        if unknown := sorted(set(keys) - names):
            _fail(declaration.path, f"{key}.{where}: {', '.join(unknown)} not in contract {contract.label}")
    unit_plan = {}
    for column, unit in units.items():
        canonical = _canonical_unit(contract, column)
        allowed = TO_CANONICAL.get(canonical, {canonical: 1.0})
        if unit not in allowed and not (column == CF_COLUMN and unit == "% mass"):
            extra = ", % mass" if column == CF_COLUMN else ""
            _fail(
                declaration.path,
                f"{key}.units.{column}: {unit!r} is not a unit this column can be converted from; "
                f"use one of {', '.join(allowed)}{extra}",
            )
        if unit != canonical:
            unit_plan[column] = (unit, canonical)
    present = {source: target for target, source in columns.items() if source in header}
    needed = {c.name: "required by the contract" for c in contract.columns if c.required and not c.derived}
    needed.update(STOCK_NEEDS.get(table, {}))
    problems = []
    for column, why in needed.items():
        if column in fixed or column in present.values():
            continue
        if column in columns:
            problems.append(f"{column} ({why}) from header {columns[column]!r} ({key}.columns.{column})")
        else:
            problems.append(f"{column} ({why}): no header declared (add {key}.columns.{column}: <header>)")
    if problems:
        raise missing_columns(path, header, f"by declaration {declaration.path}: {'; '.join(problems)}")
    if declared_absent := sorted(column for column, source in columns.items() if source not in header):
        listed = "; ".join(f"{c} from header {columns[c]!r} ({key}.columns.{c})" for c in declared_absent)
        raise InputError(
            path,
            f"declared column(s) not in the file, by declaration {declaration.path}: {listed}; correct the header, "
            "or remove the key to have the column null",
            Remedy.REQUIRED_COLUMNS,
            line=1,
        )
    crs = str(spec.get("coordinates_crs", WGS84))
    if CRS.from_user_input(crs) == CRS.from_user_input(WGS84):
        crs = WGS84
    absent = tuple(sorted(names - set(present.values()) - set(fixed)))
    confirmed = _confirmed(declaration, table, {**{c: u for c, (u, _) in unit_plan.items()}, "crs": crs}, contract)
    return TablePlan(
        table=table,
        declaration=str(declaration.path.name),
        key=key,
        source_columns=present,
        absent=absent,
        units=unit_plan,
        coordinates_crs=crs,
        date_format=spec.get("date_format"),
        fixed=fixed,
        missing_values=declaration.missing_values,
        country=declaration.country,
        confirmed=confirmed,
    )


def _confirmed(declaration: FieldDeclaration, table: str, declared: dict[str, str], contract) -> dict[str, str]:
    """The declaration's confirmations that concern `table`, each checked to name the declared value (the declared
    unit, or the contract's when none is declared; the declared CRS), with the reason."""
    mine = {k: v for k, v in declaration.confirm.items() if CONFIRM_KEYS.get(k) == table}
    for key, value in mine.items():
        if key == "coordinates_crs":
            same = CRS.from_user_input(value) == CRS.from_user_input(declared["crs"]) if _is_crs(value) else False
            stated = declared["crs"]
        else:
            units = {declared.get(c, _canonical_unit(contract, c)) for c in CONFIRMED_COLUMNS[key]}
            stated = " and ".join(sorted(units))
            same = units == {value}
        if not same:
            _fail(
                declaration.path,
                f"confirm.{key} is {value!r} but the declaration states {stated}: a confirmation must name the "
                "declared value (correct the units or coordinates_crs, or the confirmation)",
            )
    return {**mine, "reason": declaration.confirm["reason"]} if mine else {}


def _is_crs(value: str) -> bool:
    try:
        CRS.from_user_input(value)
    except CRSError:
        return False
    return True


@functools.cache
def _transformer(crs: str) -> Transformer:
    """The first (most accurate available) of PROJ's operations from `crs` to WGS84, lon/lat order: a named,
    recorded operation, e.g. 'GDA94 to WGS 84 (1)' (3 m) for EPSG:4283."""
    group = TransformerGroup(crs, WGS84, always_xy=True)
    return group.transformers[0] if group.transformers else Transformer.from_crs(crs, WGS84, always_xy=True)


def _as_text(numbers: pd.Series, original: pd.Series, parsed: pd.Series) -> pd.Series:
    """Converted numbers as text (shortest round-trip form). Where the source was not a number its text stays, so
    the type rule reports what the file said; a number that could not be converted (e.g. no BD) becomes blank."""
    text = pc.cast(pa.array(numbers.to_numpy(), from_pandas=True), pa.string())
    converted = pd.Series(text.to_numpy(zero_copy_only=False), index=numbers.index, dtype=original.dtype)
    return converted.where(numbers.notna(), original.where(~parsed))


def _scaled(values: pd.Series, factor: float) -> pd.Series:
    """values x factor; a factor below 1 whose inverse is a whole number divides by it (1400 kg/m3 is 1.4 g/cm3,
    not 1.4000000000000001)."""
    inverse = 1 / factor
    return values / round(inverse) if factor < 1 and abs(inverse - round(inverse)) < 1e-9 else values * factor


def apply_declaration(frame: pd.DataFrame, plan: TablePlan) -> pd.DataFrame:
    """Source rows (text, renamed to contract columns) -> rows in the contract's units and WGS84; pure.

    Missing-value markers become blank; fixed values and absent optional columns (null) are added; each converted
    column keeps its source text in `source_text:<column>`. Conversion texts go to `attrs[DECLARED_CONVERSIONS]`.
    """
    out = frame.copy()
    text_dtype = pd.StringDtype("pyarrow", na_value=np.nan)
    if plan.missing_values:
        markers = set(plan.missing_values)
        for column in plan.source_columns.values():
            out[column] = out[column].where(~out[column].str.strip().isin(markers))
    for column, value in plan.fixed.items():
        out[column] = pd.Series(value, index=out.index, dtype=text_dtype)
    for column in plan.absent:
        out[column] = pd.Series(pd.NA, index=out.index, dtype=text_dtype)
    conversions = plan.conversions()
    for column in conversions:
        if column in plan.source_columns.values():
            out[SOURCE_TEXT_PREFIX + column] = out[column]
    raw = {column: _strict_number(out[column]) for column in plan.units}
    converted = {}
    for column, (unit, canonical) in plan.units.items():
        if column == CF_COLUMN and unit == "% mass":
            bd = _strict_number(out[BD_COLUMN])  # still the source text: converted columns are written below
            bd = _scaled(bd, TO_CANONICAL["g/cm3"][plan.units[BD_COLUMN][0]]) if BD_COLUMN in plan.units else bd
            converted[column] = pd.Series(coarse_fragments_mass_to_vol_pct(raw[column], bd), index=out.index)
        else:
            converted[column] = _scaled(raw[column], TO_CANONICAL[canonical][unit])
    for column, values in converted.items():
        out[column] = _as_text(values, out[column], raw[column].notna())
    if plan.coordinates_crs != WGS84 and COORDINATES[0] in conversions:
        x, y = _strict_number(out[COORDINATES[0]]), _strict_number(out[COORDINATES[1]])
        both = x.notna() & y.notna()
        # a point outside the CRS's domain becomes inf (errcheck off): the range rule quarantines it
        lon, lat = _transformer(plan.coordinates_crs).transform(x[both].to_numpy(), y[both].to_numpy())
        for column, values in zip(COORDINATES, (lon, lat), strict=True):
            out[column] = _as_text(pd.Series(values, index=x.index[both]).reindex(out.index), out[column], both)
    if plan.date_format and DATE_COLUMN in plan.source_columns.values():
        dates = pd.to_datetime(out[DATE_COLUMN], format=plan.date_format, errors="coerce")
        iso = pd.Series(dates.dt.strftime("%Y-%m-%d"), index=out.index, dtype=text_dtype)
        out[DATE_COLUMN] = iso.where(dates.notna(), out[DATE_COLUMN])
    out.attrs[DECLARED_CONVERSIONS] = conversions
    return out
