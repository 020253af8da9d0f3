"""The output root: a local folder or an fsspec URL, parsed once (`OutputRoot`), and the only place the store writes.

Every path below the root is built from validated names (`safe_name`), so nothing can be written outside it. The
backends share the reading side (fsspec) and differ in how a version is written whole and how the catalog is
changed (`update`: read, change, write back) without losing another writer's change:

- `LocalRoot` (local paths and `file://` URLs, the default) writes a version into a staging folder and renames it
  into place in one step, and updates the catalog under an `fcntl` lock, replacing it with `os.replace`. A staging
  folder is claimed by an `flock`-ed sibling `<staging>.lock` file: the kernel drops the lock when its process dies
  (even on `kill -9`), which is how the next publish tells a dead writer's leftovers (removed) from a live writer's
  work in progress (left alone).
- `S3Root` (s3://) has no rename or lock. A version's files are written with the manifest last, by a PUT that only
  creates (`If-None-Match: *`): a version folder without a manifest is incomplete and never read, and a complete one
  is never overwritten. The catalog is replaced by a conditional PUT (`If-Match` the ETag read, `If-None-Match: *`
  when there is none yet): when another run committed in between, the PUT is refused and the change is made again
  on the new catalog, up to `COMMIT_ATTEMPTS` times, then the commit fails with the catalog intact. The server is
  checked once per process to refuse conditional PUTs that do not hold (AWS S3 does since 2024).
- `MemoryRoot` (memory://, one process's in-memory filesystem): like S3, with a process lock for the catalog.
- `RemoteRoot` (any other fsspec filesystem, e.g. gs://): read-only for the store. Nothing there makes a conditional
  write, so a commit is refused rather than risk losing another run's catalog entries.
"""

import errno
import fcntl
import os
import posixpath
import re
import resource
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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
# Conditional catalog writes on S3: tries before a commit gives up, and the wait after the first refused one
# (doubled after each, up to the cap).
COMMIT_ATTEMPTS = 12
COMMIT_BACKOFF_S = 0.05
COMMIT_BACKOFF_MAX_S = 2.0
# S3 answers for a conditional PUT that did not hold: 412 (the ETag changed, or the key exists), 409 (another
# conditional write to the key in flight), 404 (If-Match on a key deleted meanwhile).
_CONDITION_FAILED = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}
_CONDITION_FAILED_STATUS = {409, 412}
Result = TypeVar("Result")
# `update`'s `change`: the current bytes (None when the file does not exist) -> (new bytes or None to leave the file
# as it is, the result to return).
Change = Callable[[bytes | None], tuple[bytes | None, Result]]


class CatalogConflict(RuntimeError):
    """Other writers changed the file between every read and conditional write: nothing was written."""


def safe_name(value: str, what: str) -> str:
    """`value` if it is a single, non-hidden path segment; ValueError otherwise."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"invalid {what} {value!r}: expected letters, digits and _ . = | - (no path separators)")
    return value


@dataclass(frozen=True)
class OutputRoot:
    """An output root, parsed once from what the user wrote (`OutputRoot.parse`).

    `url` is its canonical text: the absolute path of a local folder (`file://` URLs are local folders too), else the
    normalised fsspec URL. It is what Dagster resources carry as configuration and also the display form (`str()`);
    `OutputRoot(url)` takes a canonical `url` as it is. `open()` gives the storage backend.
    """

    url: str

    @classmethod
    def parse(cls, root: "str | os.PathLike | OutputRoot") -> "OutputRoot":
        if isinstance(root, OutputRoot):
            return root
        text = os.fspath(root)
        if "://" not in text:
            return cls(str(Path(text).expanduser().resolve()))
        fs, path = fsspec.core.url_to_fs(text)
        if isinstance(fs, LocalFileSystem):
            return cls(str(Path(path).resolve()))
        return cls(fs.unstrip_protocol(posixpath.normpath(path)))

    def __str__(self) -> str:
        return self.url

    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    @property
    def protocol(self) -> str:
        return self.url.partition("://")[0] if not self.is_local else "file"

    def child(self, name: str) -> "OutputRoot":
        """The folder `name` directly below this root (e.g. `_data_docs`), as a root of its own."""
        return OutputRoot(f"{self.url}/{safe_name(name, 'folder name')}")

    def open(self) -> "RemoteRoot":
        if self.is_local:
            return LocalRoot(self.url)
        return {"s3": S3Root, "s3a": S3Root, "memory": MemoryRoot}.get(self.protocol, RemoteRoot)(self.url)

    def check(self, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        """Before a run: a local root must be (or become) a folder we can write to, with `min_free_bytes` free, and a
        remote one must take commits (see `RemoteRoot.check_commits`).

        A local problem raises the OSError subclass that names it, with the path as its filename.
        """
        if not self.is_local:
            self.open().check_commits()
            return
        path = Path(self.url)
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
    """Any fsspec filesystem; also the reading side of the other backends. Takes no commit (nothing here makes a
    conditional write)."""

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

    def check_commits(self) -> None:
        """Raise unless a catalog update here can never lose another writer's change."""
        raise self._no_commits()

    def update(self, name: str, change: Change) -> Result:
        """Read the file `name` at the root (None if absent), write back what `change` makes of it (unless None) and
        return `change`'s result, without losing a change another writer makes meanwhile."""
        raise self._no_commits()

    def _no_commits(self) -> ValueError:
        return ValueError(
            f"{self.url}: the store does not commit to {self.url.partition('://')[0]}:// roots: this filesystem "
            "offers no conditional write, so two runs committing at once could lose catalog entries; publish to a "
            "local folder or an s3:// root, or only read this root"
        )

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
        """Write `files` (bytes, or a local file to copy; the last one, the manifest, as bytes and only if absent)
        unless the version is complete already; True if this call completed it."""
        *_, marker = files
        if self.exists(asset, version, marker):
            return False
        for name, data in files.items():
            if name == marker:
                try:
                    self.fs.pipe_file(self.path(asset, version, name), data, mode="create")
                except FileExistsError:
                    return False  # another writer completed the same (content-addressed) version meanwhile
            else:
                self.write_file((asset, version, name), data)
        return True


class MemoryRoot(RemoteRoot):
    """memory://: one process's filesystem, so a process lock serialises catalog updates."""

    _lock = threading.Lock()

    def check_commits(self) -> None:
        return None

    def update(self, name: str, change: Change) -> Result:
        with self._lock:
            try:
                current = self.read_bytes(name)
            except FileNotFoundError:
                current = None
            new, result = change(current)
            if new is not None:
                self.fs.pipe_file(self.path(name), new)
            return result


def _condition_failed(error: BaseException) -> bool:
    """Whether an S3 error (as s3fs raises it, the botocore error as its cause) says a conditional PUT did not hold."""
    cause = error.__cause__ if error.__cause__ is not None else error
    response = getattr(cause, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return response.get("Error", {}).get("Code") in _CONDITION_FAILED or status in _CONDITION_FAILED_STATUS


class S3Root(RemoteRoot):
    """s3://: the catalog is replaced by a conditional PUT, retried on a conflict (see the module docstring)."""

    # Roots whose server was seen to refuse conditional PUTs that do not hold, in this process.
    _checked: set[str] = set()

    def _put(self, name: str, data: bytes, **condition: str) -> None:
        """One PUT of `data` (never a multipart upload, which would drop the condition)."""
        path = self.path(name)
        bucket, key, _ = self.fs.split_path(path)
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        finally:
            self.fs.invalidate_cache(path)

    def _refused(self, name: str, **condition: str) -> bool:
        try:
            self._put(name, b"", **condition)
        except OSError as error:
            if _condition_failed(error):
                return True
            raise
        return False

    def check_commits(self) -> None:
        """Raise unless the server refuses a PUT whose `If-None-Match: *` or `If-Match` does not hold (checked on a
        probe object at the root, once per process); a missing bucket or no write access raise here too."""
        if self.url in self._checked:
            return
        probe = f"{TMP_PREFIX}conditional-write-probe-{uuid.uuid4().hex}"
        self._put(probe, b"", IfNoneMatch="*")
        try:
            honoured = self._refused(probe, IfNoneMatch="*") and self._refused(probe, IfMatch='"0"')
        finally:
            self.fs.rm_file(self.path(probe))
        if not honoured:
            raise ValueError(
                f"{self.url}: this S3 server ignores conditional PUTs (If-None-Match / If-Match), so two runs "
                "committing at once could lose catalog entries; use a server that honours them (AWS S3 does) or a "
                "local folder"
            )
        self._checked.add(self.url)

    def update(self, name: str, change: Change) -> Result:
        self.check_commits()
        path = self.path(name)
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                etag = self.fs.info(path, refresh=True)["ETag"]
                current = self.fs.cat_file(path)  # newer than `etag` if changed meanwhile: then the PUT is refused
            except FileNotFoundError:
                etag, current = None, None
            new, result = change(current)
            if new is None:
                return result
            try:
                self._put(name, new, **({"IfMatch": etag} if etag else {"IfNoneMatch": "*"}))
                return result
            except OSError as error:
                if not _condition_failed(error):
                    raise
            time.sleep(min(COMMIT_BACKOFF_S * 2**attempt, COMMIT_BACKOFF_MAX_S))
        raise CatalogConflict(
            f"{self.display(name)}: another writer changed it between each of {COMMIT_ATTEMPTS} reads and conditional "
            "writes; nothing was written"
        )


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

    def check_commits(self) -> None:
        return None

    def update(self, name: str, change: Change) -> Result:
        with self.lock():
            target = self.dir / name
            new, result = change(target.read_bytes() if target.exists() else None)
            if new is not None:
                self.write_atomic(name, new)
            return result

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
        """Replace `name` at the root in one step; call under `lock()` (as `update` does). Leftover temp files of
        dead writers go."""
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
        claim_path = Path(f"{staging}{LOCK_SUFFIX}")
        with self.lock():
            remove_dead_staging(parent)
            descriptor = claim(claim_path)
        try:
            staging.mkdir()
            for name, data in files.items():
                _write_synced(staging / name, data)
            return self._move_into_place(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            claim_path.unlink(missing_ok=True)
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


def file_size_limit() -> int | None:
    """The process's file size limit in bytes (RLIMIT_FSIZE, `ulimit -f`), None when there is none."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if limit == resource.RLIM_INFINITY else limit


def check_written_whole(path: Path) -> None:
    """OSError (EFBIG) naming the limit when the file at `path` stopped at the process's file size limit: a writer
    that does not report a failed write (GDAL) leaves a truncated file behind, which a reader would then call an
    unsupported format."""
    limit = file_size_limit()
    if limit is not None and os.path.getsize(path) >= limit:
        raise OSError(
            errno.EFBIG,
            f"File too large: writing stopped at the process's file size limit of {limit} bytes (ulimit -f); raise "
            "or lift the limit and run again",
            str(path),
        )


def claim(path: Path) -> int:
    """Create `path` and hold an exclusive flock on it (the descriptor): the kernel drops it when the process ends,
    even on kill -9. Call under the store lock."""
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def claim_held(path: Path) -> bool:
    """Whether a live process holds the claim at `path`."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
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
        claim_path = entry if entry.name.endswith(LOCK_SUFFIX) else Path(f"{entry}{LOCK_SUFFIX}")
        if claim_held(claim_path):
            continue
        shutil.rmtree(claim_path.with_name(claim_path.name.removesuffix(LOCK_SUFFIX)), ignore_errors=True)
        claim_path.unlink(missing_ok=True)
        removed.append(entry.name)
    return removed
