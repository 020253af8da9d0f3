"""Provenance that travels with asset values: input files with their sha256, parameters, code version.

The sha256 recorded is that of the bytes a run read: an input is snapshotted before it is first read (`snapshot`:
its sha256 and its identity, device, inode, size, modification and change times) and checked unchanged after it
was last read (`FileSnapshot.unchanged`); a file that changed meanwhile is refused, naming what changed.

Remote inputs (URLs, GDAL `/vsicurl/` paths) are recorded by address with credentials removed (user info and the
query string, which carries signatures and tokens) and identified by content: ETag, size and last-modified as the
server reports them, so a rotating signature on unchanged data changes nothing, and changed data changes the id.
"""

import base64
import functools
import hashlib
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from soil_pipeline.errors import InputError, Remedy

# Libraries whose version can change the numbers or the bytes of a published file.
KEY_LIBRARIES = ("dagster", "pandas", "numpy", "pyarrow", "rasterio", "shapely", "geopandas", "pyproj")
PACKAGE_DIR = Path(__file__).resolve().parent


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, hashed once per process while its identity (`_identity`) stays the same: a file
    written since, even to the same size and modification time, has a new change time and is hashed again."""
    before = _identity(str(path))
    if before is not None and (known := _HASHED.get(before)) is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if before is not None and _identity(str(path)) == before:  # not written while it was hashed
        _HASHED[before] = digest.hexdigest()
    return digest.hexdigest()


# sha256 by file identity (device, inode, size, modification and change times), for this process.
_HASHED: dict[tuple, str] = {}


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


def _identity(path: str) -> tuple | None:
    """(device, inode, size, modification and change times in ns) of a local file; None for any other address."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


@dataclass(frozen=True)
class FileSnapshot:
    """An input as it was when a run began to read it: `entry` is its provenance entry (`file_input`: a local file's
    sha256, a remote one's content identity) and `identity` what tells a change (local: device, inode, size,
    modification and change times; remote: the content identity)."""

    path: str
    role: str
    entry: dict
    identity: tuple | dict | None

    def inputs(self) -> dict:
        return {self.role: dict(self.entry)}

    def unchanged(self) -> "FileSnapshot":
        """Itself, after checking the file is as it was (call after the last read); InputError naming what
        changed otherwise."""
        if isinstance(self.identity, tuple):
            now = _identity(self.path)
        elif self.identity and "error" not in self.identity:
            now = remote_identity(self.path)
            if "error" in now:  # the server cannot be asked now: what was read cannot be told changed
                return self
        else:
            return self
        if now != self.identity:
            raise changed_input(self.path, self.identity, now)
        return self


def snapshot(role: str, path: str | Path) -> FileSnapshot:
    """The input at `path` before it is read, hashed (`file_input`) while its identity stays the same: a file
    written meanwhile is refused (`changed_input`)."""
    path = str(path)
    before = _identity(path)
    entry = file_input(role, path)[role]
    if before is not None:
        if (after := _identity(path)) != before:
            raise changed_input(path, before, after)
        return FileSnapshot(path, role, entry, before)
    return FileSnapshot(path, role, entry, entry.get("remote"))


def changed_input(path: str, before, after) -> InputError:
    """The error of an input that changed while a run read it."""
    if isinstance(before, tuple) and isinstance(after, tuple):
        then, now = (datetime.fromtimestamp(t[3] / 1e9, UTC).isoformat(timespec="seconds") for t in (before, after))
        what = f"size {before[2]} -> {after[2]} bytes, modified {then} -> {now}"
        if before[:2] != after[:2]:
            what = f"replaced by another file ({what})"
    elif after is None:
        what = "it is gone"
    else:
        what = f"its content identity changed ({before} -> {after})"
    return InputError(
        path,
        f"changed while this run was reading it ({what}): the run would record a sha256 that is not that of the "
        "bytes it read, so nothing of it is published",
        Remedy.INPUT_CHANGED,
    )


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
