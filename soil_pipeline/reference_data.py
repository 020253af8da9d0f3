"""Reference data shipped with the package: cited literature factors, Monte Carlo specs, priority regions and
restoration scenario definitions (YAML under `data/`). Readers here; the science core receives plain values."""

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.contracts.bounded_yaml import DeclarationError, is_number
from soil_pipeline.contracts.bounded_yaml import read_bounded_yaml as _read_yaml
from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.science.potential import PotentialParameters, implied_bulk_density
from soil_pipeline.science.scenarios import CASES, LandUseFactors, Scenario
from soil_pipeline.science.validation import Bootstrap

FACTORS_FILE = DATA_DIR / "literature" / "factors.yaml"
UNCERTAINTY_FILE = DATA_DIR / "literature" / "uncertainty.yaml"
LAND_USE_LOSS_FILE = DATA_DIR / "literature" / "land_use_loss.yaml"
FIELD_VALIDATION_FILE = DATA_DIR / "literature" / "field_validation.yaml"
PRIORITY_REGIONS_FILE = DATA_DIR / "priority_regions" / "priority_regions_4p1000.yaml"
SCENARIOS_DIR = DATA_DIR / "scenarios"
ZOMER_LEVELS = ("medium", "high")


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
RECOVERY_SCALARS = {
    "curve": (str, 40),
    "period_yr": (float, 1e-6, 1000.0),
    "half_life_yr": (float, 1e-6, 1000.0),
    "rate_t_c_per_ha_per_yr": (float, 1e-6, 100.0),
    "factors": (str, 40),
}


def _check_scalars(path: Path, data: dict, declared: dict, prefix: str = "") -> None:
    """Each declared field present in `data` is a plain scalar of its type, within its range or length."""
    for name, rule in declared.items():
        if data.get(name) is None:
            continue
        value, field = data[name], f"{prefix}{name}"
        kind = rule[0]
        if kind is str:
            if not isinstance(value, str) or len(value) > rule[1]:
                raise DeclarationError(path, f"{field} must be a text of at most {rule[1]} characters")
            continue
        if not is_number(value) or (kind is int and not isinstance(value, int)):
            raise DeclarationError(path, f"{field} must be a plain {kind.__name__}, got {value!r}")
        low, high = rule[1], rule[2]
        if not low <= value <= high or (name == "fraction" and value == 0):
            raise DeclarationError(path, f"{field} = {value!r} is outside [{low:g}, {high:g}]")


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


@functools.cache
def _land_use_table() -> dict:
    return _read_yaml(LAND_USE_LOSS_FILE)


def ipcc_editions() -> dict[str, dict[str, dict[str, dict]]]:
    """Each edition's Table 5.5 factors {edition: {factor: {class: {value, error_pct}}}}, an edition that `inherits`
    taking the other's value for every class and factor it does not list."""
    editions = _land_use_table()["editions"]
    resolved = {}
    for name, entry in editions.items():
        base = editions[entry["inherits"]] if "inherits" in entry else {}
        resolved[name] = {
            factor: {**base.get(factor, {}), **entry.get(factor, {})}
            for factor in ("long_term_cultivated", "set_aside")
        }
    return resolved


def edition_citation(edition: str) -> str:
    entry = _land_use_table()["editions"][edition]
    return f"{entry['source']} [{entry['locator']}]"


def _grazing_loss(rule: dict, cropland_loss: np.ndarray, class_of_code: np.ndarray, classes) -> np.ndarray:
    """Loss per ha of grazing land per zone code under one rule: a multiple of cropland's loss, a flat loss, or
    1 - F per climate class; 1 (equal losses) where a code has no class."""
    no_class = class_of_code == len(classes)
    if "relative_to_cropland" in rule:
        loss = float(rule["relative_to_cropland"]) * cropland_loss
    elif "loss" in rule:
        loss = np.full(cropland_loss.shape, float(rule["loss"]))
    else:
        by_class = np.array([1.0 - float(rule["f_by_class"][name]) for name in classes] + [1.0])
        loss = by_class[class_of_code]
    return np.where(no_class, 1.0, loss)


def land_use_factors(zone_names: pd.DataFrame) -> LandUseFactors:
    """The IPCC factors of literature/land_use_loss.yaml on the zone codes of the legend (columns code, name): the
    central edition's cropland loss 1 - F_LU(long-term cultivated), the grazing losses, and every edition's table."""
    table = _land_use_table()
    classes = tuple(table["climate_classes"])
    class_of_code = np.full(int(zone_names["code"].max()) + 1, len(classes))
    for code, name in zip(zone_names["code"], zone_names["name"], strict=True):
        for index, members in enumerate(table["climate_classes"].values()):
            if name in members:
                class_of_code[code] = index
    editions = ipcc_editions()
    f_lu = editions[table["central_edition"]]["long_term_cultivated"]
    by_class = np.array([1.0 - float(f_lu[name]["value"]) for name in classes] + [1.0])
    cropland_loss = by_class[class_of_code]
    grazing = table["grazing"]
    return LandUseFactors(
        classes=classes,
        class_of_code=class_of_code,
        cropland_loss=cropland_loss,
        grazing_loss=_grazing_loss(grazing["central"], cropland_loss, class_of_code, classes),
        grazing_label=grazing["central"]["label"],
        grazing_alternatives={
            rule["label"]: _grazing_loss(rule, cropland_loss, class_of_code, classes)
            for rule in grazing["alternatives"]
        },
        editions=editions,
    )


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
    for name in ("recovery", *CASES):
        if isinstance(data.get(name), dict):
            _check_scalars(path, data[name], RECOVERY_SCALARS, prefix=f"{name}.")
    for i, curve in enumerate(data.get("alternative_recovery") or []):
        if isinstance(curve, dict):
            _check_scalars(path, curve, RECOVERY_SCALARS, prefix=f"alternative_recovery[{i}].")
    try:
        return Scenario.from_dict(scenario_id, data)
    except ValueError as error:
        raise DeclarationError(path, str(error)) from None


@functools.cache
def field_validation_spec() -> dict:
    """Settings of the map validation and the field calibration, with their grounds (field_validation.yaml)."""
    return _read_yaml(FIELD_VALIDATION_FILE)


def bootstrap_settings(seed: int | None = None, n_resamples: int | None = None) -> Bootstrap:
    """The spatial block bootstrap of field_validation.yaml, with the run's seed and resamples when given."""
    spec = field_validation_spec()["bootstrap"]
    return Bootstrap(
        block_deg=float(spec["block_deg"]),
        n_resamples=int(n_resamples if n_resamples is not None else spec["n_resamples"]),
        seed=int(seed if seed is not None else spec["seed"]),
    )


def stock_error_fallback() -> float:
    """Relative stock error (1 sd) of cells without an error-layer value (uncertainty.yaml, stock_error)."""
    return float(uncertainty_spec()["stock_error"]["fallback_relative_sd"])


def file_inputs(*extra: tuple[str, Path]) -> dict:
    """Provenance entries (name and sha256) for the literature files and any `extra` (role, path) pairs."""
    files = [("literature_factors", FACTORS_FILE), ("monte_carlo_spec", UNCERTAINTY_FILE), *extra]
    inputs = {}
    for role, path in files:
        inputs.update(provenance.file_input(role, path))
    return {"inputs": inputs}
