"""The output root: a local folder or any fsspec URL, and the only place the store writes.

Every path below the root is built from validated names (`safe_name`), so nothing can be written outside it. Two
backends share the reading side (fsspec):

- `LocalRoot` (local paths and `file://` URLs, the default and the tested one) writes a version into a staging
  folder and renames it into place in one step, replaces the catalog with `os.replace`, and serialises catalog
  updates with an `fcntl` lock. A staging folder is claimed by an `flock`-ed sibling `<staging>.lock` file: the kernel
  drops the lock when its process dies (even on `kill -9`), which is how the next publish tells a dead writer's
  leftovers (removed) from a live writer's work in progress (left alone).
- `RemoteRoot` (s3://, gs://, ... via fsspec) has no rename or lock: it writes a version's files with the manifest
  last (a version folder without a manifest is incomplete and never read), and the catalog with one PUT, which object
  stores apply atomically. Without a lock, two runs updating the catalog of the same remote root at the same moment
  can lose one entry (never corrupt it); publish to remote roots from one run at a time.
"""

import errno
import fcntl
import os
import posixpath
import re
import shutil
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

DEFAULT_OUTPUT_ROOT = "soil_pipeline_output"
TMP_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
STORE_LOCK = ".lock"
# Free space a run needs on a local root (intermediate grids, Data Docs and new versions of every asset).
MIN_FREE_BYTES = 1 << 30
# Asset names, partition keys and version ids: one path segment, no separators, never "." or "..", never hidden.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=|-]{0,199}")


def safe_name(value: str, what: str) -> str:
    """`value` if it is a single, non-hidden path segment; ValueError otherwise."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"invalid {what} {value!r}: expected letters, digits and _ . = | - (no path separators)")
    return value


def normalise_root(root: str | os.PathLike) -> str:
    """An absolute local path, or a normalised URL for any other fsspec filesystem."""
    text = os.fspath(root)
    if "://" not in text:
        return str(Path(text).expanduser().resolve())
    fs, path = fsspec.core.url_to_fs(text)
    if isinstance(fs, LocalFileSystem):
        return str(Path(path).resolve())
    return fs.unstrip_protocol(posixpath.normpath(path))


def check_output_root(root: str, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Before a run: a local root must be (or become) a folder we can write to, with `min_free_bytes` free.

    Raises the OSError subclass that names the problem, with the path as its filename. Remote roots are checked by
    their first write.
    """
    if "://" in root:
        return
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the output root is a file, not a folder", str(path))
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f"{TMP_PREFIX}probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        raise PermissionError(errno.EACCES, "the output root is not writable", str(path)) from None
    finally:
        probe.unlink(missing_ok=True)
    free = shutil.disk_usage(path).free
    if free < min_free_bytes:
        message = f"{free / 1e6:.0f} MB free in the output root, a run needs {min_free_bytes / 1e6:.0f} MB"
        raise OSError(errno.ENOSPC, message, str(path))


def open_root(root: str | os.PathLike) -> "RemoteRoot":
    normalised = normalise_root(root)
    return RemoteRoot(normalised) if "://" in normalised else LocalRoot(normalised)


def _write_synced(path: Path, data: bytes | Path) -> None:
    """Write bytes, or copy a local file, and sync to disk."""
    with open(path, "wb") as handle:
        if isinstance(data, Path):
            with open(data, "rb") as source:
                shutil.copyfileobj(source, handle, 1 << 24)
        else:
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class RemoteRoot:
    """Any fsspec filesystem; also the reading side of `LocalRoot`."""

    def __init__(self, url: str):
        self.url = url
        self.fs, self.base = fsspec.core.url_to_fs(url)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    def display(self, *parts: str) -> str:
        return self.fs.unstrip_protocol(self.path(*parts)) if parts else self.url

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.path(*parts))

    def parquet_source(self, *parts: str):
        """What `pandas.read_parquet` reads a file from: an fsspec file object here, a plain path locally."""
        return self.fs.open(self.path(*parts), "rb")

    def lock(self):
        return nullcontext()

    def write_atomic(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self.path(name), data)

    def write_file(self, parts: tuple[str, ...], data: bytes | Path) -> str:
        """Write one file (bytes, or a local file to copy) below the root (a single PUT on object stores); returns
        where it went."""
        if isinstance(data, Path):
            self.fs.put_file(str(data), self.path(*parts))
        else:
            self.fs.pipe_file(self.path(*parts), data)
        return self.display(*parts)

    def local_file(self, *parts: str) -> str | None:
        """The local path of a file below the root, to be read in place; None on object stores."""
        return None

    def upload_dir(self, local: Path, parts: tuple[str, ...]) -> str:
        """Copy a local folder (e.g. rendered HTML) below the root; returns where it went."""
        self.fs.put(str(local), self.path(*parts), recursive=True)
        return self.display(*parts)

    def write_version(self, asset: str, version: str, files: dict[str, bytes | Path]) -> bool:
        """Write `files` (bytes, or a local file to copy; the manifest last) unless the version is complete
        already; True if written."""
        *_, marker = files
        if self.exists(asset, version, marker):
            return False
        for name, data in files.items():
            if isinstance(data, Path):
                self.fs.put_file(str(data), self.path(asset, version, name))
            else:
                self.fs.pipe_file(self.path(asset, version, name), data)
        return True


class LocalRoot(RemoteRoot):
    """A local folder: atomic renames, an fcntl lock for the catalog, cleanup of dead writers' staging folders."""

    def __init__(self, path: str):
        super().__init__(path)
        self.dir = Path(path)

    def display(self, *parts: str) -> str:
        return self.path(*parts)

    def parquet_source(self, *parts: str):
        return nullcontext(self.path(*parts))

    @contextmanager
    def lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / STORE_LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def local_file(self, *parts: str) -> str | None:
        return self.path(*parts)

    def write_file(self, parts: tuple[str, ...], data: bytes | Path) -> str:
        final = self.dir.joinpath(*parts)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.with_name(f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex}")
        _write_synced(staging, data)
        os.replace(staging, final)
        return str(final)

    def upload_dir(self, local: Path, parts: tuple[str, ...]) -> str:
        final = self.dir.joinpath(*parts)
        if local.resolve() != final.resolve():
            shutil.copytree(local, final, dirs_exist_ok=True)
        return str(final)

    def write_atomic(self, name: str, data: bytes) -> None:
        """Replace `name` at the root in one step; call under `lock()`. Leftover temp files of dead writers go."""
        for leftover in self.dir.glob(f"{TMP_PREFIX}{name}-*"):
            leftover.unlink(missing_ok=True)
        staging = self.dir / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex}"
        _write_synced(staging, data)
        os.replace(staging, self.dir / name)
        _fsync_dir(self.dir)

    def write_version(self, asset: str, version: str, files: dict[str, bytes | Path]) -> bool:
        """Write `files` (bytes, or a local file to copy) into a claimed staging folder and rename it to
        `<asset>/<version>`; True if this call did."""
        parent, final = self.dir / asset, self.dir / asset / version
        if final.exists():
            return False
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex}"
        claim = Path(f"{staging}{LOCK_SUFFIX}")
        with self.lock():
            remove_dead_staging(parent)
            descriptor = _claim(claim)
        try:
            staging.mkdir()
            for name, data in files.items():
                _write_synced(staging / name, data)
            return self._move_into_place(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            claim.unlink(missing_ok=True)
            os.close(descriptor)

    @staticmethod
    def _move_into_place(staging: Path, final: Path) -> bool:
        _fsync_dir(staging)
        try:
            os.rename(staging, final)
        except OSError:
            if final.exists():
                return False
            raise
        _fsync_dir(final.parent)
        return True


def _claim(path: Path) -> int:
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def _owner_alive(claim: Path) -> bool:
    try:
        descriptor = os.open(claim, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def remove_dead_staging(parent: Path) -> list[str]:
    """Remove staging folders (and claims) under `parent` whose writer is gone; call under the store lock.

    Claims are only created under the same lock, so every claim seen here is either held by a live writer or dead.
    """
    removed = []
    for entry in sorted(parent.glob(f"{TMP_PREFIX}*")):
        claim = entry if entry.name.endswith(LOCK_SUFFIX) else Path(f"{entry}{LOCK_SUFFIX}")
        if _owner_alive(claim):
            continue
        shutil.rmtree(claim.with_name(claim.name.removesuffix(LOCK_SUFFIX)), ignore_errors=True)
        claim.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed
