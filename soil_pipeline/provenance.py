"""Provenance that travels with asset values: input files with their sha256, parameters, code version."""

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

KEY_LIBRARIES = ("dagster", "pandas", "numpy", "pyarrow", "rasterio", "shapely")


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


@functools.cache
def code_version() -> dict:
    """Package version, git commit when the package runs from a checkout, and the key libraries' versions."""
    package_dir = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "package": metadata.version("soil_pipeline"),
        "git_commit": commit,
        "libraries": {name: metadata.version(name) for name in KEY_LIBRARIES},
    }
