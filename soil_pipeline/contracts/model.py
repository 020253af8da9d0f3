"""Load ODCS v3 contracts into plain dataclasses: one place that reads the YAML, everything else derives from it."""

import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

# The repository keeps contracts at the top level (data_contracts/); the package reaches them through the symlink
# soil_pipeline/data/contracts, which a wheel build turns into a copy, so installed packages carry them too.
CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "data" / "contracts"


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
    """A rule on the whole table: row_count, compound_unique, column_less_than, median_between, null_percent_max,
    min_non_null, max_rejected_share, collapse_identical, point_on_land, point_region_excluded."""

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

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"


@functools.cache
def _odcs_validator() -> jsonschema.protocols.Validator:
    """The ODCS JSON Schema, checked once: `jsonschema.validate` re-checks the schema itself on every call (~0.5 s)."""
    schema = json.loads(resources.files("open_data_contract_standard").joinpath("schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def _custom(entries) -> dict:
    return {entry["property"]: entry["value"] for entry in entries or []}


def _column(prop: dict) -> ColumnSpec:
    options = prop.get("logicalTypeOptions", {})
    custom = _custom(prop.get("customProperties"))
    valid = next(
        (q["arguments"]["validValues"] for q in prop.get("quality", []) if q.get("metric") == "invalidValues"), None
    )
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
        valid_values=tuple(valid) if valid else None,
        foreign_key=foreign,
        unit=custom.get("unit"),
        description=prop.get("description", ""),
        derived=bool(custom.get("derived", False)),
        plausible_maximum=custom.get("plausibleMaximum"),
    )


def _rule(quality: dict) -> DatasetRule:
    metric, text = quality.get("metric"), quality.get("description", "")
    if metric == "rowCount":
        low, high = quality["mustBeBetween"]
        return DatasetRule(quality["id"], "row_count", {"minimum": low, "maximum": high}, text)
    if metric == "duplicateValues":
        return DatasetRule(quality["id"], "compound_unique", {"columns": quality["arguments"]["properties"]}, text)
    if metric == "nullValues" and quality.get("unit") == "percent":
        column = quality["arguments"]["properties"][0]
        return DatasetRule(
            quality["id"], "null_percent_max", {"column": column, "maximum": quality["mustBeLessOrEqualTo"]}, text
        )
    if quality.get("type") == "custom" and quality.get("engine") == "soil_pipeline":
        implementation = dict(quality["implementation"])
        return DatasetRule(quality["id"], implementation.pop("rule"), implementation, text)
    raise ContractError(f"unsupported quality rule {quality}")


def _read(name: str, directory: Path) -> tuple[dict, str]:
    path = directory / f"{name}.yaml"
    text = path.read_text()
    document = yaml.safe_load(text)
    try:
        if (invalid := jsonschema.exceptions.best_match(_odcs_validator().iter_errors(document))) is not None:
            raise invalid
        OpenDataContractStandard.model_validate(document)
    except (jsonschema.ValidationError, ValueError) as error:
        raise ContractError(f"{path}: not a valid ODCS v3 contract: {error}") from error
    return document, hashlib.sha256(path.read_bytes()).hexdigest()


def load_table_contract(name: str, directory: Path = CONTRACTS_DIR) -> TableContract:
    path = Path(directory) / f"{name}.yaml"
    return _load_table_contract(name, Path(directory), path.stat().st_mtime_ns if path.exists() else None)


@functools.lru_cache(maxsize=64)
def _load_table_contract(name: str, directory: Path, mtime_ns: int | None) -> TableContract:
    document, digest = _read(name, directory)
    table = document["schema"][0]
    return TableContract(
        id=document["id"],
        version=document["version"],
        columns=tuple(_column(prop) for prop in table["properties"]),
        rules=tuple(_rule(quality) for quality in table.get("quality", [])),
        sha256=digest,
        path=str(directory / f"{name}.yaml"),
    )


def load_raster_contract(name: str, directory: Path = CONTRACTS_DIR) -> RasterContract:
    document, digest = _read(name, directory)
    raster = document["schema"][0]
    grid = _custom(raster["customProperties"])
    band = raster["properties"][0]
    band_custom = _custom(band.get("customProperties"))
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
        unit=_custom(band.get("customProperties")).get("unit", ""),
        sha256=digest,
        path=str(directory / f"{name}.yaml"),
        depth_cm=tuple(float(v) for v in grid["depthCm"]) if "depthCm" in grid else None,
        median_range=tuple(float(v) for v in band_custom["medianBetween"]) if "medianBetween" in band_custom else None,
    )
