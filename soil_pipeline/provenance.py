"""Provenance that travels with asset values: input files with their sha256, parameters, code version."""

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

# Libraries whose version can change the numbers or the bytes of a published file.
KEY_LIBRARIES = ("dagster", "pandas", "numpy", "pyarrow", "rasterio", "shapely", "geopandas", "pyproj")
PACKAGE_DIR = Path(__file__).resolve().parent


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_input(role: str, path: str | Path) -> dict:
    """An input file entry; URLs and other non-local paths are recorded without a checksum."""
    local = Path(path)
    if local.is_file():
        return {role: {"file": local.name, "sha256": file_sha256(local)}}
    return {role: {"file": str(path), "sha256": None}}


def combine(*parts: dict) -> dict:
    """Merge provenance dicts: inputs and parameters are unioned key by key."""
    merged = {"inputs": {}, "parameters": {}}
    for part in parts:
        merged["inputs"].update(part.get("inputs", {}))
        merged["parameters"].update(part.get("parameters", {}))
    return merged


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def source_sha256() -> str:
    """sha256 over the package's Python sources (path and content): the code itself, with or without git."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


@functools.cache
def code_version() -> dict:
    """Package version, git commit when run from a checkout, sha256 of the sources, key library and GDAL versions."""
    import rasterio

    return {
        "package": metadata.version("soil_pipeline"),
        "git_commit": _git_commit(),
        "source_sha256": source_sha256(),
        "libraries": {**{name: metadata.version(name) for name in KEY_LIBRARIES}, "gdal": rasterio.__gdal_version__},
    }


def contract_input(dataset: str) -> dict:
    """The data contract of `dataset` (`data_contracts/<dataset>.yaml`) as an input entry, when there is one."""
    from soil_pipeline.contracts.model import CONTRACTS_DIR

    path = CONTRACTS_DIR / f"{dataset}.yaml"
    return file_input(f"contract:{dataset}", path) if path.is_file() else {}
