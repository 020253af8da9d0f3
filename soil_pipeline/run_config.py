"""`soil-pipeline run --config my_inputs.yaml` and `--input NAME=PATH`: every input, the declarations, the drop
partition and the output root in one place. No Dagster: the input names are the fields of `InputDatasets`, passed in.

    output_root: ./my_output          # local path or fsspec URL
    partition: 2024-01                # the monthly drop to ingest
    inputs:                           # any InputDatasets field; relative paths are relative to this file
      landing_dir: ./landing
      field_declaration: ./edgeroi.yaml
      soc_stock_2010_raster: ./rasters/soc_2010.tif
    raster_engine:                    # any RasterEngine field: the common grid, threads, window size, Dask address
      window_cells: 262144
"""

from pathlib import Path

from soil_pipeline.contracts.bounded_yaml import DeclarationError, read_bounded_yaml

CONFIG_KEYS = {"output_root", "partition", "inputs", "raster_engine"}


def _resolved(value: str, base: Path) -> str:
    """A relative local path against `base`; URLs and GDAL virtual paths (`/vsicurl/...`) as given."""
    if "://" in value or value.startswith("/vsi") or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def load_run_config(path: str | Path, input_names: set[str], engine_names: set[str] = frozenset()) -> dict:
    """{"output_root", "partition", "inputs": {name: value}, "raster_engine": {setting: value}} from a run config
    file; DeclarationError names the file and the key."""
    path = Path(path)
    data = read_bounded_yaml(path)
    if unknown := sorted(set(data) - CONFIG_KEYS):
        raise DeclarationError(path, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(CONFIG_KEYS))}")
    inputs = _section(path, data, "inputs", input_names, ("input name -> path", "input"))
    engine = _section(path, data, "raster_engine", engine_names, ("setting -> value", "setting"))
    for key in ("output_root", "partition"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise DeclarationError(path, f"{key} must be a text, got {data[key]!r}")
    base = path.parent
    root = data.get("output_root")
    return {
        "output_root": _resolved(root, base) if root else None,
        "partition": data.get("partition"),
        "inputs": {name: _resolved(str(value), base) if value else None for name, value in inputs.items()},
        "raster_engine": engine,
    }


def _section(path: Path, data: dict, key: str, known: set[str], words: tuple[str, str]) -> dict:
    """The mapping under `key` (empty when absent); DeclarationError when it is not one or names an unknown entry.
    `words`: what the mapping maps (e.g. "setting -> value") and what one entry is called (e.g. "setting")."""
    section = data.get(key) or {}
    mapping, entry = words
    if not isinstance(section, dict):
        raise DeclarationError(path, f"{key} must be a mapping of {mapping}")
    if unknown := sorted(set(section) - known):
        raise DeclarationError(
            path, f"{key}: unknown {entry}(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return section


def parse_inputs(pairs: list[str], input_names: set[str]) -> dict[str, str]:
    """`NAME=PATH` pairs from the command line (paths as given, relative to the current folder)."""
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in input_names:
            raise ValueError(f"--input {pair!r}: use NAME=PATH with NAME one of {', '.join(sorted(input_names))}")
        inputs[name] = _resolved(value, Path.cwd()) if value else None
    return inputs
