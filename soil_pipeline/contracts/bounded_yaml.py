"""Bounded reading of small hand-written YAML declarations (scenarios, literature factors, input declarations)."""

import math
from pathlib import Path

import yaml

from soil_pipeline.errors import DeclarationError

# Declaration files are small, hand-written YAML: anything bigger, or using anchors/aliases (which let a few lines
# expand to gigabytes, the "billion laughs"), or holding a number beyond these bounds, is refused before use.
MAX_DECLARATION_BYTES = 256 * 1024
MAX_ABS_NUMBER = 1e12
# libyaml's parser where PyYAML was built with it (several times faster than PyYAML's own, same constructors).
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_bounded_yaml(path: Path) -> dict:
    """A YAML mapping from `path`, bounded: size limit, no anchors or aliases, safe tags only, finite numbers."""
    size = path.stat().st_size
    if size > MAX_DECLARATION_BYTES:
        raise DeclarationError(path, f"{size} bytes, more than the {MAX_DECLARATION_BYTES} a declaration may have")
    try:
        text = path.read_bytes().decode("utf-8")
        for event in _parse(text):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1
                raise DeclarationError(path, f"YAML anchors and aliases are not allowed (line {line})", line=line)
        data = safe_load(text)
    except UnicodeDecodeError as error:
        raise DeclarationError(path, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise DeclarationError(path, f"not valid YAML{yaml_problem(error)}") from None
    if not isinstance(data, dict):
        raise DeclarationError(path, f"expected a mapping of fields, got {type(data).__name__}")
    _check_numbers(path, data, ())
    return data


def safe_load(text: str):
    """`yaml.safe_load(text)`, parsed by libyaml when available; invalid YAML raises PyYAML's own error (its
    parser's words and position)."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


def _parse(text: str):
    """The parser events of `text`; of invalid YAML, PyYAML's own parser's, lazily (events before the error first)."""
    try:
        return list(yaml.parse(text, Loader=_FAST_LOADER))
    except yaml.YAMLError:
        return yaml.parse(text, Loader=yaml.SafeLoader)


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what, without PyYAML's quote of the offending line (it may hold a signed URL or a password)."""
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(error, "problem", None)
    return f"{where}: {problem}" if problem else where


def key_line(path: Path, keys: tuple[str, ...]) -> int | None:
    """The line (from 1) of the key reached by `keys` through nested mappings of the YAML file (e.g. ("inputs",
    "landing_dir")), the last found when a key is missing; None when not even the first is there."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        found = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        if found is None:
            break
        line, node = found[0].start_mark.line + 1, found[1]
    return line


def _check_numbers(path: Path, value, where: tuple) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(path, item, (*where, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_numbers(path, item, (*where, str(index)))
    elif is_number(value) and (not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER):
        field = ".".join(where) or "value"
        raise DeclarationError(path, f"{field} = {value!r} is not a finite number within +-{MAX_ABS_NUMBER:g}")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
