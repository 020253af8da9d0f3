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
from soil_pipeline.science.scenarios import Scenario

FACTORS_FILE = DATA_DIR / "literature" / "factors.yaml"
UNCERTAINTY_FILE = DATA_DIR / "literature" / "uncertainty.yaml"
LAND_USE_LOSS_FILE = DATA_DIR / "literature" / "land_use_loss.yaml"
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
RECOVERY_SCALARS = {"curve": (str, 40), "period_yr": (float, 1e-6, 1000.0), "half_life_yr": (float, 1e-6, 1000.0)}


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
        raise DeclarationError(path, str(error)) from None


def file_inputs(*extra: tuple[str, Path]) -> dict:
    """Provenance entries (name and sha256) for the literature files and any `extra` (role, path) pairs."""
    files = [("literature_factors", FACTORS_FILE), ("monte_carlo_spec", UNCERTAINTY_FILE), *extra]
    inputs = {}
    for role, path in files:
        inputs.update(provenance.file_input(role, path))
    return {"inputs": inputs}
