"""Provenance that travels with asset values: input files with their sha256, parameters, code version.

Remote inputs (URLs, GDAL `/vsicurl/` paths) are recorded by address with credentials removed (user info and the
query string, which carries signatures and tokens) and identified by content: ETag, size and last-modified as the
server reports them, so a rotating signature on unchanged data changes nothing, and changed data changes the id.
"""

import base64
import functools
import hashlib
import subprocess
import urllib.request
from importlib import metadata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

# Libraries whose version can change the numbers or the bytes of a published file.
KEY_LIBRARIES = ("dagster", "pandas", "numpy", "pyarrow", "rasterio", "shapely", "geopandas", "pyproj")
PACKAGE_DIR = Path(__file__).resolve().parent


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# GDAL virtual file system prefixes that wrap a URL, e.g. `/vsicurl/https://...`.
_VSI_PREFIXES = ("/vsicurl/", "/vsicurl_streaming/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/")
# What identifies a remote file's content in fsspec `info()` results (HTTP headers or object-store fields).
_IDENTITY_KEYS = ("ETag", "Content-Length", "Last-Modified", "size", "LastModified", "mtime", "md5Hash")
REMOTE_TIMEOUT_S = 10


def redact_url(address: str) -> tuple[str, list[str]]:
    """`address` without user info and query string (and fragment); with what was removed, by name only."""
    prefix = next((p for p in _VSI_PREFIXES if address.startswith(p)), "")
    url = address[len(prefix) :]
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return address, []
    removed = []
    if parts.username or parts.password:
        removed.append("userinfo")
    if parts.query:
        removed.append("query")
    if parts.fragment:
        removed.append("fragment")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return prefix + urlunsplit((parts.scheme, netloc, parts.path, "", "")), removed


def remote_identity(address: str) -> dict:
    """ETag / size / last-modified of a remote file (HTTP HEAD, else fsspec `info`); {"error": <exception class>}
    when it cannot be asked (the message could echo the signed address, so it is not kept)."""
    prefix = next((p for p in _VSI_PREFIXES if address.startswith(p)), "")
    url = address[len(prefix) :]
    try:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            request = _head_request(parts)
            with urllib.request.urlopen(request, timeout=REMOTE_TIMEOUT_S) as response:
                info = dict(response.headers.items())
        else:
            import fsspec

            fs, path = fsspec.core.url_to_fs(url)
            info = fs.info(path)
    except Exception as error:  # noqa: BLE001 - any failure to ask means "no content identity", recorded as such
        return {"error": type(error).__name__}
    return {key.lower(): str(info[key]) for key in _IDENTITY_KEYS if info.get(key) is not None}


def _head_request(parts) -> urllib.request.Request:
    """A HEAD request for an http(s) URL; user info in the URL becomes a Basic authorization header, as curl does."""
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    request = urllib.request.Request(urlunsplit((parts.scheme, host, parts.path, parts.query, "")), method="HEAD")
    if parts.username:
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    return request


def file_input(role: str, path: str | Path) -> dict:
    """An input file entry: a local file by name and sha256; a remote one by name and content identity (ETag, size,
    last-modified), with its address, redacted (the store leaves the address out of version ids)."""
    local = Path(path)
    if local.is_file():
        return {role: {"file": local.name, "sha256": file_sha256(local)}}
    address, removed = redact_url(str(path))
    if "://" not in address:
        return {role: {"file": str(path), "sha256": None}}
    entry = {"file": PurePosixPath(urlsplit(address.split("://", 1)[-1]).path).name, "address": address}
    entry.update({"sha256": None, "remote": remote_identity(str(path))})
    if removed:
        entry["redacted"] = removed
    return {role: entry}


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
