"""Field-drop declarations: how a survey's own tables map onto the field_sites / field_horizons contracts.

A declaration is a small YAML file (beside the drop as `declaration.yaml`, or given explicitly) naming, per table,
the source header of each contract column, the units the values are in, the CRS of the coordinates, the texts that
mean "missing", a date format or fixed values. `plan_table` checks it against the contract and the file's header;
`apply_declaration` is a pure function on one frame (or chunk) of source rows, applied before contract validation:
it converts to the contract's units and WGS84, keeps the source text of every converted column for the rejects
(`source_text:<column>`) and describes each conversion in `frame.attrs[DECLARED_CONVERSIONS]`.
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
from pyproj.exceptions import CRSError
from pyproj.transformer import TransformerGroup

from soil_pipeline.contracts.bounded_yaml import read_bounded_yaml
from soil_pipeline.contracts.model import TableContract
from soil_pipeline.contracts.validate import DECLARED_CONVERSIONS, SOURCE_TEXT_PREFIX, _strict_number
from soil_pipeline.errors import DeclarationError, InputError, Remedy
from soil_pipeline.readers import _csv_header, _inside, find_drop_file, missing_columns
from soil_pipeline.science.units import TO_CANONICAL, coarse_fragments_mass_to_vol_pct

DECLARATIONS_DIR = Path(__file__).resolve().parents[1] / "data" / "declarations"
DEFAULT_DECLARATION = DECLARATIONS_DIR / "africa_soil_profiles.yaml"
DROP_DECLARATION_NAME = "declaration.yaml"
WGS84 = "EPSG:4326"
TABLE_KEYS = {"field_sites": "sites", "field_horizons": "horizons"}
TOP_KEYS = {"declaration", "name", "description", "source", "missing_values", "sites", "horizons"}
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

    def conversions(self) -> dict[str, str]:
        """Each conversion as text, by contract column (what the rejects' `conversion` column and provenance say)."""
        out = {}
        for column, (unit, canonical) in self.units.items():
            if column == CF_COLUMN and unit == "% mass":
                out[column] = (
                    f"declared % mass, converted to % vol with the fine-earth BD and a particle density of 2.65 g/cm3 "
                    f"({self.declaration})"
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
        if self.coordinates_crs != WGS84:
            transformer = _transformer(self.coordinates_crs)
            text["coordinate_operation"] = {"description": transformer.description, "accuracy_m": transformer.accuracy}
        return text


def _fail(path, message: str):
    raise DeclarationError(path, message)


def load_declaration(path: str | Path) -> FieldDeclaration:
    """A declaration file, bounded (see bounded_yaml) and checked for structure: known keys, units, CRS."""
    path = Path(path)
    data = read_bounded_yaml(path)
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
            try:
                CRS.from_user_input(spec["coordinates_crs"])
            except CRSError as error:
                _fail(path, f"{key}.coordinates_crs {spec['coordinates_crs']!r} is not a CRS pyproj knows ({error})")
        tables[table] = spec
    name = str(data.get("name") or path.stem)
    return FieldDeclaration(path, name, tuple(str(m) for m in markers), tables)


def resolve_declaration(drop_dir: Path, explicit: str | None = None) -> FieldDeclaration:
    """The declaration of a drop: the explicit one (resource config or CLI), else `declaration.yaml` in the drop,
    else the embedded Africa Soil Profiles layout."""
    if explicit:
        return load_declaration(explicit)
    beside = Path(drop_dir) / DROP_DECLARATION_NAME
    return load_declaration(beside if beside.is_file() else DEFAULT_DECLARATION)


def find_table_file(drop_dir: Path, declaration: FieldDeclaration, table: str, landing_dir: Path) -> Path:
    """The one file of `table` in the drop matching the declared `file` pattern(s) ('|'-separated globs); without
    one, the drop's one `*sites` / `*horizons` table."""
    key = TABLE_KEYS[table]
    if not declaration.tables[table].get("file"):
        return find_drop_file(drop_dir, key, landing_dir)
    patterns = str(declaration.tables[table]["file"]).split("|")
    if not drop_dir.is_dir():
        raise InputError(drop_dir, "no field-sample drop folder for this partition", Remedy.DROP_FOLDER)
    _inside(drop_dir, landing_dir)
    names = sorted(p for p in drop_dir.iterdir() if p.is_file() and p.suffix in {".csv", ".parquet"})
    matches = [p for p in names if any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns)]
    if len(matches) != 1:
        raise InputError(
            drop_dir,
            f"expected exactly one {key} file matching {'|'.join(patterns)} ({key}.file in {declaration.path}), "
            f"found {len(matches)}",
            Remedy.DECLARED_FILE,
        )
    return _inside(matches[0], landing_dir)


def table_header(path: Path) -> list[str]:
    """The column names of a drop table (CSV header line or Parquet schema)."""
    if path.suffix != ".parquet":
        return _csv_header(path)
    try:
        return pq.read_schema(path).names
    except (OSError, pa.ArrowException) as error:
        raise InputError(path, f"unreadable table ({error})", Remedy.UNREADABLE) from error


def _canonical_unit(contract: TableContract, column: str) -> str | None:
    return contract.column(column).unit


def plan_table(
    declaration: FieldDeclaration, table: str, contract: TableContract, path: Path, header: list[str]
) -> TablePlan:
    """Check the declaration against the contract and the file's header; one error names every problem with the
    drop file, the column and the declaration key that would supply it."""
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
    crs = str(spec.get("coordinates_crs", WGS84))
    if CRS.from_user_input(crs) == CRS.from_user_input(WGS84):
        crs = WGS84
    absent = tuple(sorted(names - set(present.values()) - set(fixed)))
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
    )


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
    """values x factor; a factor below 1 divides by its inverse (1400 kg/m3 is 1.4 g/cm3, not 1.4000000000000001)."""
    return values * factor if factor >= 1 else values / round(1 / factor, 9)


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
        lon, lat = _transformer(plan.coordinates_crs).transform(x[both].to_numpy(), y[both].to_numpy())
        for column, values in zip(COORDINATES, (lon, lat), strict=True):
            out[column] = _as_text(pd.Series(values, index=x.index[both]).reindex(out.index), out[column], both)
    if plan.date_format and DATE_COLUMN in plan.source_columns.values():
        dates = pd.to_datetime(out[DATE_COLUMN], format=plan.date_format, errors="coerce")
        iso = pd.Series(dates.dt.strftime("%Y-%m-%d"), index=out.index, dtype=text_dtype)
        out[DATE_COLUMN] = iso.where(dates.notna(), out[DATE_COLUMN])
    out.attrs[DECLARED_CONVERSIONS] = conversions
    return out
