"""Load ODCS v3 contracts into plain dataclasses: one place that reads the YAML, everything else derives from it."""

import difflib
import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from soil_pipeline.contracts import rules
from soil_pipeline.contracts.bounded_yaml import safe_load, yaml_problem

# The repository keeps contracts at the top level (data_contracts/); the package reaches them through the symlink
# soil_pipeline/data/contracts, which a wheel build turns into a copy, so installed packages carry them too.
CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "data" / "contracts"
# Columns of raw bytes (WKB geometry) have no dtype to check: pandas keeps them as objects.
UNTYPED_PHYSICAL_TYPES = frozenset({"bytes"})


class ContractError(ValueError):
    """The contract file itself is invalid."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    source_name: str
    logical_type: str
    physical_type: str
    required: bool = False
    unique: bool = False
    minimum: float | None = None
    maximum: float | None = None
    valid_values: tuple | None = None
    foreign_key: str | None = None
    unit: str | None = None
    description: str = ""
    # Computed while validating (e.g. a count of collapsed copies), not read from the landing file.
    derived: bool = False
    # Above this (and within the range) a value is kept but flagged as implausible.
    plausible_maximum: float | None = None

    def range_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None and self.maximum is not None:
            return f"{self.name} must be within [{self.minimum}, {self.maximum}]{unit}"
        if self.minimum is not None:
            return f"{self.name} must be >= {self.minimum}{unit}"
        return f"{self.name} must be <= {self.maximum}{unit}"


@dataclass(frozen=True)
class DatasetRule:
    """A rule on the whole table; `kind` names one of `rules.DATASET_KINDS`, `params` are its keys."""

    id: str
    kind: str
    params: dict = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class TableContract:
    id: str
    version: str
    columns: tuple[ColumnSpec, ...]
    rules: tuple[DatasetRule, ...]
    sha256: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"

    def column(self, name: str) -> ColumnSpec:
        return next(column for column in self.columns if column.name == name)

    def source_columns(self) -> dict[str, str]:
        return {column.source_name: column.name for column in self.columns if not column.derived}


@dataclass(frozen=True)
class RasterContract:
    id: str
    version: str
    crs: str
    resolution_deg: float
    extent_deg: tuple[float, float, float, float]
    dtype: str
    nodata: float
    nodata_tagged: bool
    scale: float
    offset: float
    band_count: int
    minimum: float
    maximum: float
    unit: str
    sha256: str
    path: str
    # Stock layers: the depth interval their values refer to, and the plausible range of their median (a unit guard).
    depth_cm: tuple[float, float] | None = None
    median_range: tuple[float, float] | None = None
    # The share of the land its values must cover (grid assets), and for a second stock source the range of its
    # mean over the 2010 stock layer's on the cells both cover (a unit-factor disagreement falls outside it).
    min_land_share: float | None = None
    reference_ratio: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"


def odcs_schema() -> dict:
    """The ODCS v3 JSON Schema shipped with `open_data_contract_standard` (a valid schema: a test checks it, once,
    rather than every process: `check_schema` takes ~0.3 s)."""
    return json.loads(resources.files("open_data_contract_standard").joinpath("schema.json").read_text())


@functools.cache
def _odcs_validator():
    """The validator of `odcs_schema`, built once per process."""
    import jsonschema

    schema = odcs_schema()
    return jsonschema.validators.validator_for(schema)(schema)


def _custom(entries) -> dict:
    return {entry["property"]: entry["value"] for entry in entries or []}


def _refuse(where: str, what: str, word: str, known) -> ContractError:
    """An unknown word of a contract: where it is, a close known one, and all known ones."""
    close = difflib.get_close_matches(str(word), list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ContractError(f"{where}: unknown {what} '{word}'{hint}; known {what}s: {', '.join(sorted(known))}")


def _check_keys(where: str, what: str, given, required, optional=()) -> None:
    for key in given:
        if key not in (*required, *optional):
            raise _refuse(where, what, key, (*required, *optional))
    if missing := [key for key in required if key not in given]:
        raise ContractError(f"{where}: missing {what}(s) {', '.join(missing)}; required: {', '.join(required)}")


def _quality_keys(quality: dict, *structural: str) -> list[str]:
    """The keys of a quality entry that state what it checks."""
    return [key for key in quality if key not in (*rules.DESCRIPTIVE_QUALITY_KEYS, "type", *structural)]


def _column_quality(quality: dict, where: str) -> tuple:
    """The allowed values of an `invalidValues` entry, the one quality metric a column takes."""
    kind = rules.AllowedValues
    if quality.get("metric") != kind.metric or quality.get("type", "library") != "library":
        raise _refuse(where, "column quality metric", quality.get("metric") or quality.get("type"), [kind.metric])
    _check_keys(where, f"{kind.metric} key", _quality_keys(quality, "metric"), ("arguments", "mustBe"))
    _check_keys(where, f"{kind.metric} argument", quality["arguments"], kind.arguments)
    if quality["mustBe"] != 0:
        raise ContractError(f"{where}: {kind.metric} supports mustBe: 0 only, found {quality['mustBe']}")
    return tuple(quality["arguments"]["validValues"])


def _column(prop: dict, path: Path) -> ColumnSpec:
    where = f"{path}: column {prop['name']}"
    options = prop.get("logicalTypeOptions", {})
    _check_keys(where, "logicalTypeOptions key", options, (), rules.Range.options)
    custom = _custom(prop.get("customProperties"))
    _check_keys(where, "customProperties key", custom, (), rules.COLUMN_PROPERTIES)
    valid = [_column_quality(quality, where) for quality in prop.get("quality", [])]
    if len(valid) > 1:
        raise ContractError(f"{where}: at most one {rules.AllowedValues.metric} quality entry per column")
    foreign = next(
        (r["to"] for r in prop.get("relationships", []) if r.get("type", "foreignKey") == "foreignKey"), None
    )
    return ColumnSpec(
        name=prop["name"],
        source_name=prop.get("physicalName", prop["name"]),
        logical_type=prop["logicalType"],
        physical_type=prop["physicalType"],
        required=prop.get("required", False),
        unique=prop.get("unique", False),
        minimum=options.get("minimum"),
        maximum=options.get("maximum"),
        valid_values=next(iter(valid), None) or None,
        foreign_key=foreign,
        unit=custom.get("unit"),
        description=prop.get("description", ""),
        derived=bool(custom.get("derived", False)),
        plausible_maximum=custom.get("plausibleMaximum"),
    )


def _rule(quality: dict, path: Path, columns: list[str]) -> DatasetRule:
    """A table quality entry as a rule of a kind in `rules.DATASET_KINDS`, its keys checked."""
    where = f"{path}: dataset rule {quality.get('id', '(no id)')}"
    if "id" not in quality:
        raise ContractError(f"{where}: missing key id (the rule's name in rejects and errors)")
    if quality.get("type") == "custom":
        _check_keys(where, "key", _quality_keys(quality), ("engine", "implementation"))
        if quality["engine"] != rules.CUSTOM_ENGINE:
            raise _refuse(where, "engine", quality["engine"], [rules.CUSTOM_ENGINE])
        if not isinstance(quality["implementation"], dict) or "rule" not in quality["implementation"]:
            raise ContractError(f"{where}: implementation must be a mapping with rule: <kind> and its keys")
        params = dict(quality["implementation"])
        name = params.pop("rule")
        if name not in rules.DATASET_KINDS:
            raise _refuse(where, "rule kind", name, rules.DATASET_KINDS)
        kind = rules.DATASET_KINDS[name]
        _check_keys(f"{where} ({name})", "key", params, kind.keys)
    elif quality.get("type", "library") == "library" and quality.get("metric") in rules.METRIC_KINDS:
        kind = rules.METRIC_KINDS[quality["metric"]]
        where = f"{where} ({quality['metric']})"
        _check_keys(where, "key", _quality_keys(quality, "metric"), kind.metric_keys)
        if kind.metric_arguments:
            _check_keys(where, "argument", quality["arguments"], kind.metric_arguments)
        try:
            params = kind.from_metric(quality)
        except ValueError as error:
            raise ContractError(f"{where}: {error}") from error
    elif quality.get("type", "library") != "library":
        raise _refuse(where, "quality type", quality["type"], ("library", "custom"))
    else:
        raise _refuse(where, "metric", quality.get("metric"), rules.METRIC_KINDS)
    for key in kind.column_keys:
        for column in params[key] if isinstance(params[key], list) else [params[key]]:
            if column not in columns:
                raise _refuse(f"{where} ({kind.name}) {key}", "column", column, columns)
    return DatasetRule(quality["id"], kind.name, params, quality.get("description", ""))


def _rules(qualities: list[dict], path: Path, columns: list[str]) -> tuple[DatasetRule, ...]:
    found = tuple(_rule(quality, path, columns) for quality in qualities)
    for name, kind in rules.DATASET_KINDS.items():
        if kind.once and len(ids := [rule.id for rule in found if rule.kind == name]) > 1:
            raise ContractError(f"{path}: dataset rules {', '.join(ids)}: at most one {name} rule per contract")
    return found


def _read(path: Path, data: bytes) -> dict:
    """The ODCS document in `data` (the bytes of `path`), validated against the ODCS schema and pydantic model."""
    # Imported here: the GX worker process unpickles contracts and never reads one.
    import jsonschema
    from open_data_contract_standard.model import OpenDataContractStandard

    try:
        document = safe_load(data.decode("utf-8"))
    except yaml.YAMLError as error:  # where and what, never the text of the line
        raise ContractError(f"{path}: not valid YAML{yaml_problem(error)}") from None
    try:
        validator = _odcs_validator()
        if not validator.is_valid(document):
            raise jsonschema.exceptions.best_match(validator.iter_errors(document))
        OpenDataContractStandard.model_validate(document)
    except (jsonschema.ValidationError, ValueError) as error:
        raise ContractError(f"{path}: not a valid ODCS v3 contract: {error}") from error
    return document


def load_table_contract(name: str, directory: Path = CONTRACTS_DIR) -> TableContract:
    path = Path(directory) / f"{name}.yaml"
    return _table_contract(path, path.read_bytes())


# Contracts are read by many steps of a run: each file (table or raster contract) is parsed and validated once per
# process and content (the bytes are part of the key, so an edited file is read again).
@functools.lru_cache(maxsize=64)
def _table_contract(path: Path, data: bytes) -> TableContract:
    document = _read(path, data)
    table = document["schema"][0]
    columns = tuple(_column(prop, path) for prop in table["properties"])
    return TableContract(
        id=document["id"],
        version=document["version"],
        columns=columns,
        rules=_rules(table.get("quality", []), path, [column.name for column in columns]),
        sha256=hashlib.sha256(data).hexdigest(),
        path=str(path),
    )


def load_raster_contract(name: str, directory: Path = CONTRACTS_DIR) -> RasterContract:
    path = Path(directory) / f"{name}.yaml"
    return _raster_contract(path, path.read_bytes())


@functools.lru_cache(maxsize=64)
def _raster_contract(path: Path, data: bytes) -> RasterContract:
    document = _read(path, data)
    raster = document["schema"][0]
    grid = _custom(raster.get("customProperties"))
    _check_keys(
        f"{path}: raster", "customProperties key", grid, rules.RASTER_GRID_PROPERTIES, rules.RASTER_GRID_OPTIONAL
    )
    band = raster["properties"][0]
    where = f"{path}: band {band['name']}"
    band_custom = _custom(band.get("customProperties"))
    _check_keys(where, "customProperties key", band_custom, (), rules.RASTER_BAND_PROPERTIES)
    _check_keys(where, "logicalTypeOptions key", band.get("logicalTypeOptions", {}), rules.Range.options)
    for element, label in ((raster, f"{path}: raster"), (band, where)):
        if element.get("quality"):
            raise ContractError(
                f"{label}: quality rules are not checked on rasters (its contract rules are its grid, "
                "encoding, range and medianBetween)"
            )
    median = band_custom.get(rules.MedianBetween.raster_property)
    return RasterContract(
        id=document["id"],
        version=document["version"],
        crs=grid["crs"],
        resolution_deg=float(grid["resolutionDeg"]),
        extent_deg=tuple(float(v) for v in grid["extentDeg"]),
        dtype=grid["dtype"],
        nodata=grid["nodata"],
        nodata_tagged=bool(grid["nodataTagged"]),
        scale=float(grid["scale"]),
        offset=float(grid["offset"]),
        band_count=int(grid["bandCount"]),
        minimum=band["logicalTypeOptions"]["minimum"],
        maximum=band["logicalTypeOptions"]["maximum"],
        unit=band_custom.get("unit", ""),
        sha256=hashlib.sha256(data).hexdigest(),
        path=str(path),
        depth_cm=tuple(float(v) for v in grid["depthCm"]) if "depthCm" in grid else None,
        median_range=tuple(float(v) for v in median) if median is not None else None,
        min_land_share=float(grid["minLandShare"]) if "minLandShare" in grid else None,
        reference_ratio=tuple(float(v) for v in band_custom["referenceRatio"])
        if "referenceRatio" in band_custom
        else None,
    )
