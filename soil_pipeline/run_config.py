"""The one configuration file: every input, the declarations, the drop partition, the output root and the raster
engine's settings in one place, read by `soil-pipeline run --config my_inputs.yaml` and by the Dagster code location
when the environment variable SOIL_PIPELINE_CONFIG names it (the partition is then picked in the UI). Also
`--input NAME=PATH`. No Dagster: the input and setting names are the resources' fields, passed in.

    output_root: ./my_output          # local path or fsspec URL
    docs_url: https://soil.example.org/output   # where the output root is served (Data Docs links; code location)
    partition: 2024-01                # the monthly drop to ingest
    inputs:                           # any InputDatasets field; relative paths are relative to this file
      landing_dir: ./landing
      field_declaration: ./edgeroi.yaml
      soc_stock_2010_raster: ./rasters/soc_2010.tif
    raster_engine:                    # any RasterEngine field: the common grid, threads, window size, Dask address
      window_cells: 262144
    refresh:                          # the landing-folder sensor (code location only)
      first_tick: unmaterialized      # drops already there when the sensor starts: unmaterialized | all | none
      settle_seconds: 60              # a drop folder written less than this ago waits for a later tick
      interval_seconds: 60            # the least time between two ticks of the sensor
"""

from pathlib import Path

import pydantic

from soil_pipeline.contracts.bounded_yaml import DeclarationError, key_line, read_bounded_yaml

CONFIG_KEYS = {"output_root", "partition", "inputs", "raster_engine", "refresh", "docs_url"}


def _resolved(value: str, base: Path) -> str:
    """A relative local path against `base`; URLs and GDAL virtual paths (`/vsicurl/...`) as given."""
    if "://" in value or value.startswith("/vsi") or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def at(path: Path, *keys: str) -> str:
    """`line <n>: <key.key>`: where a key of a config file is, for an error (naming the file) that never quotes the
    key's value (it may be a signed URL or a password)."""
    line = key_line(Path(path), keys)
    return f"{f'line {line}: ' if line else ''}{'.'.join(keys)}"


def load_run_config(
    path: str | Path, input_names: set[str], engine_names: set[str] = frozenset(), refresh_names=frozenset()
) -> dict:
    """{"output_root", "partition", "inputs": {name: value}, "raster_engine": {setting: value}, "refresh": {...}}
    from a run config file; DeclarationError names the file, the line and the key."""
    path = Path(path)
    data = read_bounded_yaml(path)
    _known(path, data, (), CONFIG_KEYS, "key")
    inputs = _section(path, data, "inputs", input_names, "input")
    engine = _section(path, data, "raster_engine", engine_names, "setting")
    refresh = _section(path, data, "refresh", refresh_names, "setting")
    for key in ("output_root", "partition", "docs_url"):
        _text(path, data.get(key), key)
    for name, value in inputs.items():
        _text(path, value, "inputs", name)
    base = path.parent
    root = data.get("output_root")
    return {
        "output_root": _resolved(root, base) if root else None,
        "partition": data.get("partition"),
        "docs_url": data.get("docs_url"),
        "inputs": {name: _resolved(value, base) if value else None for name, value in inputs.items()},
        "raster_engine": engine,
        "refresh": refresh,
    }


def _text(path: Path, value, *keys: str) -> None:
    if value is not None and not isinstance(value, str):
        raise DeclarationError(path, f"{at(path, *keys)}: must be text (a path or URL), got a {type(value).__name__}")


def _known(path: Path, mapping: dict, keys: tuple[str, ...], known: set[str], entry: str) -> None:
    """DeclarationError naming each key of `mapping` (at `keys` in the file) that is not `known`, with its line."""
    if unknown := sorted(set(mapping) - known, key=str):
        where = [f"{name} (line {key_line(path, (*keys, str(name))) or '?'})" for name in unknown]
        section = f"{'.'.join(keys)}: " if keys else ""
        raise DeclarationError(
            path, f"{section}unknown {entry}(s) {', '.join(where)}; known: {', '.join(sorted(known))}"
        )


def _section(path: Path, data: dict, key: str, known: set[str], entry: str) -> dict:
    """The mapping under `key` (empty when absent); DeclarationError when it is not one or names an unknown entry."""
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise DeclarationError(path, f"{at(path, key)}: must be a mapping of {entry} -> value")
    _known(path, section, (key,), known, entry)
    return section


def configured(model: type[pydantic.BaseModel], values: dict, path: str | Path | None, section: str):
    """`model(**values)` (e.g. the RasterEngine resource from the `raster_engine` section of the config file at
    `path`); a wrong value raises DeclarationError naming the file, line and key and what was expected, never the
    value. Without a file (`path` None) the key is named as given, e.g. `--input NAME=...`."""
    try:
        return model(**values)
    except pydantic.ValidationError as error:
        problems = []
        for problem in error.errors(include_input=False, include_url=False):
            keys = (section, *map(str, problem["loc"]))
            where = at(path, *keys) if path else ".".join(keys)
            problems.append(f"{where}: {problem['msg']}")
        raise DeclarationError(path, "; ".join(problems)) from None


def parse_inputs(pairs: list[str], input_names: set[str]) -> dict[str, str]:
    """`NAME=PATH` pairs from the command line (paths as given, relative to the current folder)."""
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in input_names:
            raise ValueError(f"--input {name!r}: use NAME=PATH with NAME one of {', '.join(sorted(input_names))}")
        inputs[name] = _resolved(value, Path.cwd()) if value else None
    return inputs
