"""Reference data shipped with the package: cited literature factors, Monte Carlo specs, priority regions and
restoration scenario definitions (YAML under `data/`). Readers here; the science core receives plain values."""

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from soil_pipeline import provenance
from soil_pipeline.resources import DATA_DIR
from soil_pipeline.science.potential import PotentialParameters, implied_bulk_density
from soil_pipeline.science.scenarios import Scenario

FACTORS_FILE = DATA_DIR / "literature" / "factors.yaml"
UNCERTAINTY_FILE = DATA_DIR / "literature" / "uncertainty.yaml"
LAND_USE_LOSS_FILE = DATA_DIR / "literature" / "land_use_loss.yaml"
PRIORITY_REGIONS_FILE = DATA_DIR / "priority_regions" / "priority_regions_4p1000.yaml"
SCENARIOS_DIR = DATA_DIR / "scenarios"
ZOMER_LEVELS = ("medium", "high")


# Declaration files are small, hand-written YAML: anything bigger, or using anchors/aliases (which let a few lines
# expand to gigabytes, the "billion laughs"), or holding a number beyond these bounds, is refused before use.
MAX_DECLARATION_BYTES = 256 * 1024
MAX_ABS_NUMBER = 1e12
# Scenario fields that are scalars: (type, low, high) for numbers (inclusive; `fraction` excludes 0), (str, max len).
SCENARIO_SCALARS = {
    "version": (int, 1, 1_000_000),
    "description": (str, 2000),
    "fraction": (float, 0.0, 1.0),
    "scope": (str, 40),
    "scope_region_type": (str, 40),
    "priority": (str, 80),
    "horizon_yr": (float, 1e-6, 1000.0),
}
RECOVERY_SCALARS = {"curve": (str, 40), "period_yr": (float, 1e-6, 1000.0), "half_life_yr": (float, 1e-6, 1000.0)}


class DeclarationError(ValueError):
    """A declaration file that cannot be used; the message starts with the file name."""


def _read_yaml(path: Path) -> dict:
    """A YAML mapping from `path`, bounded: size limit, no anchors or aliases, safe tags only, finite numbers."""
    size = path.stat().st_size
    if size > MAX_DECLARATION_BYTES:
        raise DeclarationError(f"{path}: {size} bytes, more than the {MAX_DECLARATION_BYTES} a declaration may have")
    try:
        text = path.read_bytes().decode("utf-8")
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise DeclarationError(
                    f"{path}: YAML anchors and aliases are not allowed (line {event.start_mark.line + 1})"
                )
        data = yaml.safe_load(text)
    except UnicodeDecodeError as error:
        raise DeclarationError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise DeclarationError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise DeclarationError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    _check_numbers(path, data, ())
    return data


def _check_numbers(path: Path, value, where: tuple) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(path, item, (*where, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_numbers(path, item, (*where, str(index)))
    elif _is_number(value) and (not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER):
        field = ".".join(where) or "value"
        raise DeclarationError(f"{path}: {field} = {value!r} is not a finite number within +-{MAX_ABS_NUMBER:g}")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalars(path: Path, data: dict, declared: dict, prefix: str = "") -> None:
    """Each declared field present in `data` is a plain scalar of its type, within its range or length."""
    for name, rule in declared.items():
        if data.get(name) is None:
            continue
        value, field = data[name], f"{prefix}{name}"
        kind = rule[0]
        if kind is str:
            if not isinstance(value, str) or len(value) > rule[1]:
                raise DeclarationError(f"{path}: {field} must be a text of at most {rule[1]} characters")
            continue
        if not _is_number(value) or (kind is int and not isinstance(value, int)):
            raise DeclarationError(f"{path}: {field} must be a plain {kind.__name__}, got {value!r}")
        low, high = rule[1], rule[2]
        if not low <= value <= high or (name == "fraction" and value == 0):
            raise DeclarationError(f"{path}: {field} = {value!r} is outside [{low:g}, {high:g}]")


@functools.cache
def factors() -> dict:
    return _read_yaml(FACTORS_FILE)


def factor(source: str, name: str) -> float:
    """The cited value of `name` under `source` in literature/factors.yaml."""
    return float(factors()[source][name]["value"])


def citation(source: str) -> str:
    entry = factors()[source]
    return f"{entry['source']} [{entry['locator']}]"


def potential_parameters() -> PotentialParameters:
    """4p1000 rate and the Zomer et al. (2017) scenario values, with the BD implied by their medium figures."""
    zomer = {name: factor("zomer_2017", name) for name in ("depth_cm", "duration_yr", "reported_rate_medium")}
    increase = {level: factor("zomer_2017", f"delta_soc_content_{level}") for level in ZOMER_LEVELS}
    return PotentialParameters(
        four_per_1000_rate=factor("four_per_1000", "annual_rate"),
        content_increase_pct=increase,
        depth_cm=zomer["depth_cm"],
        duration_yr=zomer["duration_yr"],
        bulk_density_zomer_g_per_cm3=implied_bulk_density(
            zomer["reported_rate_medium"], increase["medium"], zomer["depth_cm"], zomer["duration_yr"]
        ),
    )


def land_use_losses(zone_names: pd.DataFrame) -> dict[str, np.ndarray]:
    """Relative SOC loss per ha (1 - F) of "cropland" and "grazing" land, indexed by climate zone code (columns
    code, name of the zone legend). A zone without factors (code 0, no zone) gets 1 for both: equal losses."""
    table = _read_yaml(LAND_USE_LOSS_FILE)
    losses = {}
    for use in ("cropland", "grazing"):
        lookup = np.ones(int(zone_names["code"].max()) + 1)
        factors_by_zone = table[use]["f_by_zone"]
        for code, name in zip(zone_names["code"], zone_names["name"], strict=True):
            if name in factors_by_zone:
                lookup[code] = 1.0 - float(factors_by_zone[name])
        losses[use] = lookup
    return losses


@functools.cache
def uncertainty_spec() -> dict:
    return _read_yaml(UNCERTAINTY_FILE)


def monte_carlo_parameters() -> dict[str, dict]:
    return uncertainty_spec()["parameters"]


def priority_regions() -> list[dict]:
    return _read_yaml(PRIORITY_REGIONS_FILE)["regions"]


def scenario_ids() -> list[str]:
    """Scenario ids (file stems of `*.yaml`), sorted; these are the scenario partition keys."""
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml"))


def scenario_path(scenario_id: str) -> Path:
    return SCENARIOS_DIR / f"{scenario_id}.yaml"


def load_scenario(scenario_id: str) -> Scenario:
    """A scenario from its file, bounded and range-checked at load time; errors name the file."""
    path = scenario_path(scenario_id)
    data = _read_yaml(path)
    _check_scalars(path, data, SCENARIO_SCALARS)
    if isinstance(data.get("recovery"), dict):
        _check_scalars(path, data["recovery"], RECOVERY_SCALARS, prefix="recovery.")
    try:
        return Scenario.from_dict(scenario_id, data)
    except ValueError as error:
        raise DeclarationError(f"{path}: {error}") from None


def file_inputs(*extra: tuple[str, Path]) -> dict:
    """Provenance entries (name and sha256) for the literature files and any `extra` (role, path) pairs."""
    files = [("literature_factors", FACTORS_FILE), ("monte_carlo_spec", UNCERTAINTY_FILE), *extra]
    inputs = {}
    for role, path in files:
        inputs.update(provenance.file_input(role, path))
    return {"inputs": inputs}
