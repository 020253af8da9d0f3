"""Immutable, content-addressed Parquet versions under one output root: `<root>/<asset>/<version>/`.

A version folder holds `data.parquet` and `manifest.json` (what was published, from what, by which code and run,
and the sha256 of each file). The version id is the first 16 hex digits of the sha256 of the asset name, the
partition, the reproducible provenance (input sha256s or remote content identities, parameters, code and library
versions, definition files; not the address of a remote input) and
the sha256 of the data bytes, which embed that same provenance. The data bytes are deterministic, so unchanged inputs,
code and parameters give the same id: a rerun finds the version already there, writes nothing, and only marks it
the latest again. Anything tied to one run (Dagster run id, wall-clock time) stays in the manifest, outside the id.

A version folder is written whole (see `root.py` for how each backend guarantees it), but it is listed only by
`catalog.json`, which is what readers use. A pipeline run publishes in two steps: each output is *staged* (its
version folder written, plus a small entry under `_runs/<run id>/staged/`), then `commit_run` lists everything the
run staged, and points at the grids it wrote, in one atomic replacement of the catalog that loses no other run's
commit (see `root.py`). A run that fails is never committed: its versions stay unlisted (and are removed by `gc`),
and readers never see a mix of a failed run's outputs with older ones. `publish` stages and commits one table at once.

The catalog is JSON rather than Parquet because it is small, is rewritten whole on every commit, and must stay
readable without pyarrow (e.g. `soil-pipeline versions`, `jq`, a text editor): `{"versions": [one row per (asset,
version) with partition, created time, row count, data sha256 and whether it is the latest of its (asset,
partition)], "intermediates": {asset: path of the latest committed grid}, "runs": [committed runs, oldest first]}`.
"""

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from soil_pipeline.publishing.parquet import (
    GEOMETRY_COLUMN,
    TableFile,
    to_geoparquet_bytes,
    to_parquet_bytes,
    write_table_file,
)
from soil_pipeline.publishing.root import (
    LOCK_SUFFIX,
    TMP_PREFIX,
    CatalogConflict,
    LocalRoot,
    OutputRoot,
    claim,
    claim_held,
    safe_name,
)

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
CATALOG_FILE = "catalog.json"
VERSION_ID_LENGTH = 16
# Per-run area: `_runs/<run id>/staged/<key>.json` (what the run will list), `_runs/<run id>/intermediate/<key>.<ext>`
# (its grids and tables between steps) and a `failed` marker once the run is known to have failed.
RUNS_DIR = "_runs"
STAGED_DIR = "staged"
INTERMEDIATE_DIR = "intermediate"
# Intermediates of other runs a run reads, hard-linked into its own folder (see `intermediate_location`).
INPUTS_DIR = "inputs"
FAILED_MARKER = "failed"
INTERMEDIATE_SUFFIXES = (".tif", ".parquet")
# `_runs/<run id>/live/<pid>-<uuid>.lock`: flock-ed by each process running the run, for as long as it does (see
# `claim_run`); `gc` removes nothing of a run whose claim a live process holds.
LIVE_DIR = "live"


class RunFolderRemoved(RuntimeError):
    """The folder of a run in progress was removed from under it (by hand, or by a `gc` that could not see it was
    live): what it staged is gone, so it cannot be committed."""


# This process's claims on runs: (root, run id) -> (descriptor, claim file).
_run_claims: dict[tuple[str, str], tuple[int, Path]] = {}
_run_claims_lock = threading.Lock()


def run_is_live(run_dir: Path) -> bool:
    """Whether a live process holds a claim on the run whose folder is `run_dir` (`claim_run`)."""
    return any(claim_held(path) for path in (run_dir / LIVE_DIR).glob(f"*{LOCK_SUFFIX}"))


@dataclass(frozen=True)
class PublishedVersion:
    asset: str
    version: str
    partition: str | None
    path: str
    newly_published: bool
    manifest: dict


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_id(asset: str, partition: str | None, provenance: dict, data_sha256: str) -> str:
    identity = {"asset": asset, "partition": partition, "provenance": provenance, "data_sha256": data_sha256}
    return sha256_bytes(json.dumps(identity, sort_keys=True).encode())[:VERSION_ID_LENGTH]


def _check_version(version: str) -> str:
    if not (len(version) == VERSION_ID_LENGTH and all(c in "0123456789abcdef" for c in version)):
        raise ValueError(f"invalid version id {version!r}: expected {VERSION_ID_LENGTH} lowercase hex digits")
    return version


def _catalog_entry(manifest: dict) -> dict:
    entry = {key: manifest[key] for key in ("asset", "version", "partition", "created_at", "row_count")}
    return {**entry, "data_sha256": manifest["files"][DATA_FILE], "path": f"{manifest['asset']}/{manifest['version']}"}


def without_addresses(provenance: dict) -> dict:
    """`provenance` without the `address` of remote inputs: a remote file is identified by its content (name, ETag,
    size, last-modified), so the same data read from another host or through a new signed URL is the same version.
    The address stays in the manifest."""
    inputs = {
        role: {key: value for key, value in entry.items() if key != "address"} if isinstance(entry, dict) else entry
        for role, entry in provenance.get("inputs", {}).items()
    }
    return {**provenance, "inputs": inputs} if "inputs" in provenance else provenance


def output_key(asset: str, partition: str | None) -> str:
    """One path segment naming an output: `asset` or `asset=partition`."""
    safe_name(asset, "asset name")
    return f"{asset}={safe_name(partition, 'partition')}" if partition is not None else asset


def empty_catalog() -> dict:
    return {"versions": [], "intermediates": {}, "runs": []}


def with_entry(catalog: list[dict], entry: dict) -> list[dict]:
    """`catalog` with `entry` added (or replaced) as the latest of its (asset, partition)."""
    key = (entry["asset"], entry["partition"])
    rows = [row for row in catalog if (row["asset"], row["version"]) != (entry["asset"], entry["version"])]
    rows = [{**row, "latest": row["latest"] and (row["asset"], row["partition"]) != key} for row in rows]
    rows.append({**entry, "latest": True})
    return sorted(rows, key=lambda row: (row["asset"], row["partition"] or "", row["created_at"], row["version"]))


class VersionedParquetStore:
    def __init__(self, root: OutputRoot | str | os.PathLike):
        """The store under `root`: an `OutputRoot`, or what a user wrote (a local path or an fsspec URL)."""
        self.output_root = OutputRoot.parse(root)
        self.backend = self.output_root.open()
        self.root = str(self.output_root)

    def publish(
        self,
        asset: str,
        frame: pd.DataFrame,
        provenance: dict,
        partition: str | None = None,
        run: dict | None = None,
        points: tuple[str, str] | None = None,
    ) -> PublishedVersion:
        """Stage `frame` and commit it at once, as a one-table run: the version is written unless an identical one
        exists, and either way it becomes the latest for its partition. `run` (e.g. the Dagster run id) goes into
        the manifest only; `points` = (lon column, lat column) writes GeoParquet with a point geometry column."""
        self.backend.check_commits()
        run_id = f"publish-{uuid.uuid4().hex}"
        output_key(asset, partition)  # a name that would leave the root is refused before anything is written
        self.claim_run(run_id)
        try:
            published = self.stage(run_id, asset, frame, provenance, partition, points, run)
            self.commit_run(run_id)
        finally:
            self.release_run(run_id)
        self.backend.fs.rm(self.backend.path(RUNS_DIR, run_id), recursive=True)
        return published

    def stage(
        self,
        run_id: str,
        asset: str,
        frame: pd.DataFrame | TableFile,
        provenance: dict,
        partition: str | None = None,
        points: tuple[str, str] | None = None,
        run: dict | None = None,
    ) -> PublishedVersion:
        """Write `frame` as a version (unless an identical one exists) and stage it for `commit_run(run_id)`.

        A `TableFile` is re-encoded batch by batch through a local temporary file, so its size is not bounded by
        memory. The staged entry is written before the version folder, so `gc` never removes a version a live run
        staged.
        """
        identity = without_addresses(provenance)
        embedded = {"asset": asset, "partition": partition, **identity}
        run = run or {"dagster_run_id": run_id}
        if isinstance(frame, TableFile):
            with tempfile.TemporaryDirectory(prefix="soil_pipeline_stage_") as folder:
                data = Path(folder) / DATA_FILE
                digest = write_table_file(frame, data, embedded, points)
                columns = (frame.num_rows, frame.dtypes())
                return self._stage(run_id, asset, partition, identity, data, digest, columns, provenance, run, points)
        data = to_geoparquet_bytes(frame, *points, embedded) if points else to_parquet_bytes(frame, embedded)
        columns = (len(frame), frame.dtypes)
        return self._stage(
            run_id, asset, partition, identity, data, sha256_bytes(data), columns, provenance, run, points
        )

    def _stage(self, run_id, asset, partition, identity, data, digest, columns, provenance, run, points):
        key = output_key(asset, partition)
        version = version_id(asset, partition, identity, digest)
        manifest = self._manifest(asset, version, partition, columns, digest, provenance, run, points)
        files = {DATA_FILE: data, MANIFEST_FILE: json.dumps(manifest, indent=2, sort_keys=True).encode()}
        staged = {"asset": asset, "version": version, "partition": partition}
        self.backend.write_file(
            (RUNS_DIR, safe_name(run_id, "run id"), STAGED_DIR, f"{key}.json"), json.dumps(staged).encode()
        )
        newly = self.backend.write_version(asset, version, files)
        manifest = self.manifest(asset, version)
        return PublishedVersion(asset, version, partition, self.backend.display(asset, version), newly, manifest)

    def claim_run(self, run_id: str) -> None:
        """Mark `run_id` live on a local root while this process runs it: `gc` removes nothing of it until the claim
        is released (`release_run`, which `commit_run` and `mark_failed` do) or the process ends (even killed). The
        claim is made under the store lock, before the run writes anything; once per process and run."""
        if not isinstance(self.backend, LocalRoot):
            return
        key = (self.root, run_id)
        with _run_claims_lock:
            if key in _run_claims:
                return
            path = self.backend.dir / RUNS_DIR / safe_name(run_id, "run id") / LIVE_DIR
            path = path / f"{os.getpid()}-{uuid.uuid4().hex}{LOCK_SUFFIX}"
            with self.backend.lock():
                path.parent.mkdir(parents=True, exist_ok=True)
                _run_claims[key] = (claim(path), path)

    def release_run(self, run_id: str) -> None:
        """Release this process's claim on `run_id`, if it holds one."""
        with _run_claims_lock:
            descriptor, path = _run_claims.pop((self.root, run_id), (None, None))
        if descriptor is not None:
            path.unlink(missing_ok=True)
            os.close(descriptor)
            for folder in (path.parent, path.parent.parent):  # a run that wrote nothing leaves no folder
                with contextlib.suppress(OSError):
                    folder.rmdir()

    def check_run(self, run_id: str) -> None:
        """RunFolderRemoved when this process claimed `run_id` and its folder has been removed since."""
        held = _run_claims.get((self.root, run_id))
        if held is not None and not held[1].exists():
            raise RunFolderRemoved(
                f"the folder of run {run_id} ({self.backend.display(RUNS_DIR, run_id)}) was removed while the run "
                "was in progress (by hand, or by a gc that could not see the run was live): what it staged is "
                "gone, so nothing of this run is listed; run it again. Your inputs are not the cause."
            )

    def staged(self, run_id: str, asset: str, partition: str | None = None) -> str | None:
        """The version `run_id` staged for (asset, partition), if it staged one."""
        parts = (RUNS_DIR, safe_name(run_id, "run id"), STAGED_DIR, f"{output_key(asset, partition)}.json")
        return json.loads(self.backend.read_bytes(*parts))["version"] if self.backend.exists(*parts) else None

    def _staged_entries(self, run_id: str) -> list[dict]:
        pattern = self.backend.path(RUNS_DIR, run_id, STAGED_DIR, "*.json")
        return [json.loads(self.backend.fs.cat_file(path)) for path in sorted(self.backend.fs.glob(pattern))]

    def _run_intermediates(self, run_id: str) -> dict[str, str]:
        found = {}
        for suffix in INTERMEDIATE_SUFFIXES:
            for path in self.backend.fs.glob(self.backend.path(RUNS_DIR, run_id, INTERMEDIATE_DIR, f"*{suffix}")):
                name = posixpath.basename(path)
                found[name.removesuffix(suffix)] = f"{RUNS_DIR}/{run_id}/{INTERMEDIATE_DIR}/{name}"
        return found

    def commit_run(self, run_id: str, ancestors: tuple[str, ...] = ()) -> list[dict]:
        """List everything `run_id` staged as the latest, and point at its intermediates, in one catalog write.

        `ancestors` (oldest first) are the runs a re-execution continues: what they staged and the re-execution did
        not redo is committed with it. Returns one row per staged output with `status` "new" (it became the latest)
        or "unchanged" (it already was). Committing a run twice, or one that staged nothing here, does nothing.
        """
        self.check_run(run_id)
        staged, grids = {}, {}
        for run in (*ancestors, safe_name(run_id, "run id")):
            staged.update(
                {output_key(e["asset"], e["partition"]): e for e in self._staged_entries(safe_name(run, "run id"))}
            )
            grids.update(self._run_intermediates(run))
        staged = list(staged.values())
        if not staged and not grids:
            self.release_run(run_id)
            return []  # the run wrote nothing under this root (e.g. a run of another root seen by the sensor)

        def add_run(catalog: bytes | None) -> tuple[bytes | None, list[dict]]:
            document = self._parse_catalog(catalog)
            if any(row["run_id"] == run_id for row in document["runs"]):
                return None, []
            before = {(r["asset"], r["partition"]): r["version"] for r in document["versions"] if r["latest"]}
            versions, outcome = document["versions"], []
            for entry in staged:
                versions = with_entry(versions, _catalog_entry(self.manifest(entry["asset"], entry["version"])))
                unchanged = before.get((entry["asset"], entry["partition"])) == entry["version"]
                outcome.append({**entry, "status": "unchanged" if unchanged else "new"})
            document["versions"] = versions
            document["intermediates"].update(grids)
            committed_at = datetime.now(UTC).isoformat(timespec="seconds")
            outputs = sorted([output_key(e["asset"], e["partition"]) for e in staged] + list(grids))
            document["runs"].append({"run_id": run_id, "committed_at": committed_at, "outputs": outputs})
            return json.dumps(document, indent=2).encode(), outcome

        try:
            committed = self.backend.update(CATALOG_FILE, add_run)
            self.release_run(run_id)
            return committed
        except CatalogConflict as conflict:
            raise CatalogConflict(
                f"{conflict}; run {run_id} is not committed (none of its outputs is listed; the catalog is intact). "
                "Other runs kept committing to this root: once they are done, commit it again with "
                f"soil_pipeline.run_commit.commit_run({self.root!r}, {run_id!r})"
            ) from None

    def mark_failed(self, run_id: str) -> None:
        """Record that `run_id` failed, if it wrote under this root: `gc` then removes what it wrote sooner."""
        if self.backend.exists(RUNS_DIR, safe_name(run_id, "run id")):
            self.backend.write_file((RUNS_DIR, run_id, FAILED_MARKER), b"")
        self.release_run(run_id)

    def write_intermediate(
        self, run_id: str, asset: str, partition: str | None, suffix: str, data: bytes | Path
    ) -> str:
        """Write one run-scoped intermediate (GeoTIFF grid or Parquet table; bytes or a local file to copy);
        `commit_run` makes it the latest."""
        if suffix not in INTERMEDIATE_SUFFIXES:
            raise ValueError(f"intermediate suffix {suffix!r} is not one of {INTERMEDIATE_SUFFIXES}")
        name = f"{output_key(asset, partition)}{suffix}"
        return self.backend.write_file((RUNS_DIR, safe_name(run_id, "run id"), INTERMEDIATE_DIR, name), data)

    def read_intermediate(self, run_id: str, asset: str, partition: str | None) -> tuple[str, bytes]:
        """(suffix, bytes) of the intermediate `run_id` wrote, else of the latest committed one."""
        return self._intermediate(run_id, asset, partition, self.backend.read_bytes)

    def intermediate_location(
        self, run_id: str, asset: str, partition: str | None, reader: str
    ) -> tuple[str, str | bytes]:
        """`read_intermediate`, but on a local root a path to read the file in place (never whole) instead of its
        bytes. A file another run wrote is hard-linked into the reading run's `inputs/` folder first, so `gc`
        removing that run's folder meanwhile (a newer commit, `keep_runs`) leaves the reading run's copy whole."""
        own = (RUNS_DIR, safe_name(reader, "run id"))

        def locate(*parts: str) -> str | bytes:
            path = self.backend.local_file(*parts)
            if path is None:
                return self.backend.read_bytes(*parts)
            if parts[:2] == own:
                if not os.path.isfile(path):
                    raise FileNotFoundError(path)
                return path
            held = Path(self.backend.local_file(*own, INPUTS_DIR, parts[-1]))
            held.parent.mkdir(parents=True, exist_ok=True)
            linking = held.with_name(f"{TMP_PREFIX}{held.name}-{uuid.uuid4().hex}")
            try:
                os.link(path, linking)
            except OSError as error:
                if isinstance(error, FileNotFoundError):
                    raise  # gc removed it meanwhile: `_intermediate` looks the pointer up again
                return path  # no hard links on this filesystem: read in place
            os.replace(linking, held)  # another step of the run reading it meanwhile keeps a whole file
            return str(held)

        return self._intermediate(run_id, asset, partition, locate)

    def has_intermediate(self, run_id: str, asset: str, partition: str | None) -> bool:
        """Whether `run_id` wrote the intermediate of (asset, partition) (still there)."""
        key = output_key(asset, partition)
        return any(
            self.backend.exists(RUNS_DIR, safe_name(run_id, "run id"), INTERMEDIATE_DIR, f"{key}{suffix}")
            for suffix in INTERMEDIATE_SUFFIXES
        )

    def _intermediate(self, run_id: str, asset: str, partition: str | None, read):
        key = output_key(asset, partition)
        for suffix in INTERMEDIATE_SUFFIXES:
            parts = (RUNS_DIR, safe_name(run_id, "run id"), INTERMEDIATE_DIR, f"{key}{suffix}")
            if self.backend.exists(*parts):
                return suffix, read(*parts)
        # A newer run's commit (and its gc) may move the pointer between reading it and opening the file: retry once.
        for _ in range(2):
            path = self.document()["intermediates"].get(key)
            if path is None:
                raise KeyError(f"no intermediate {key!r} under {self.root}: materialize {asset} first")
            try:
                return posixpath.splitext(path)[1], read(*path.split("/"))
            except FileNotFoundError:
                continue
        raise FileNotFoundError(f"intermediate {key!r} under {self.root} vanished twice while being read")

    @staticmethod
    def _manifest(asset, version, partition, columns, digest, provenance, run, points) -> dict:
        rows, dtypes = columns
        manifest = {
            "asset": asset,
            "version": version,
            "partition": partition,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "row_count": rows,
            "columns": [{"name": str(name), "type": str(dtype)} for name, dtype in dtypes.items()],
            "files": {DATA_FILE: digest},
            "provenance": provenance,
            "run": run or {},
        }
        if points:
            manifest["geometry"] = {"column": GEOMETRY_COLUMN, "type": "Point", "from_columns": list(points)}
        return manifest

    def document(self) -> dict:
        """The whole catalog (versions, intermediates, runs); a catalog written as a bare list holds versions only."""
        try:
            data = self.backend.read_bytes(CATALOG_FILE)
        except FileNotFoundError:
            data = None
        return self._parse_catalog(data)

    def _parse_catalog(self, data: bytes | None) -> dict:
        if data is None:
            return empty_catalog()
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.backend.display(CATALOG_FILE)}: not a valid catalog (JSON: {error})") from None
        if isinstance(document, list):
            document = {"versions": document}
        if not isinstance(document, dict) or not isinstance(document.get("versions", []), list):
            raise ValueError(f"{self.backend.display(CATALOG_FILE)}: not a valid catalog (no list of versions)")
        return {**empty_catalog(), **document}

    def catalog(self) -> list[dict]:
        """Every listed version, one row per (asset, version)."""
        return self.document()["versions"]

    def versions(self, asset: str | None = None) -> list[dict]:
        return [row for row in self.catalog() if asset is None or row["asset"] == asset]

    def latest(self, asset: str, partition: str | None = None) -> str | None:
        for row in self.catalog():
            if row["asset"] == asset and row["partition"] == partition and row["latest"]:
                return row["version"]
        return None

    def latest_by_partition(self, asset: str) -> dict[str | None, str]:
        return {row["partition"]: row["version"] for row in self.catalog() if row["asset"] == asset and row["latest"]}

    def resolve(self, asset: str, version: str = "latest", partition: str | None = None) -> str:
        """A concrete version id; "latest" needs `partition` only when several partitions have one."""
        safe_name(asset, "asset name")
        if version != "latest":
            return _check_version(version)
        latest = self.latest_by_partition(asset)
        if partition is not None:
            latest = {partition: latest[partition]} if partition in latest else {}
        if not latest:
            raise KeyError(f"nothing published for {asset!r} (partition {partition!r}) under {self.root}")
        if len(latest) > 1:
            raise ValueError(f"{asset!r} has a latest version per partition ({', '.join(sorted(latest))}): pick one")
        return next(iter(latest.values()))

    def manifest(self, asset: str, version: str) -> dict:
        parts = (safe_name(asset, "asset name"), _check_version(version), MANIFEST_FILE)
        if not self.backend.exists(*parts):
            raise KeyError(f"no published version {version!r} of {asset!r} under {self.root}")
        return json.loads(self.backend.read_bytes(*parts))

    def version_path(self, asset: str, version: str) -> Path:
        """The folder of a published version on a local root."""
        self.manifest(asset, version)
        if not isinstance(self.backend, LocalRoot):
            raise ValueError(f"{self.root} is not a local folder; use data_path() or pull()")
        return Path(self.backend.path(asset, version))

    def data_path(self, asset: str, version: str) -> str:
        self.manifest(asset, version)
        return self.backend.display(asset, version, DATA_FILE)

    def table_file(self, asset: str, version: str) -> TableFile:
        """A published version's data as a `TableFile`, read batch by batch where it lies."""
        self.manifest(asset, version)
        if isinstance(self.backend, LocalRoot):
            return TableFile(self.backend.path(asset, version, DATA_FILE))
        return TableFile(self.backend.path(asset, version, DATA_FILE), filesystem=self.backend.fs)

    def read(self, asset: str, version: str = "latest", partition: str | None = None) -> pd.DataFrame:
        """The table as its asset produced it: a GeoParquet `geometry` column, derived at publication, is left out
        (read the file with `geopandas.read_parquet` to get it)."""
        version = self.resolve(asset, version, partition)
        columns = [column["name"] for column in self.manifest(asset, version)["columns"]]
        with self.backend.parquet_source(asset, version, DATA_FILE) as source:
            return pd.read_parquet(source, columns=columns)

    def pull(self, asset: str, version: str, destination: str | os.PathLike) -> Path:
        """Copy a version's data and manifest to `<destination>/<asset>/<version>/`, checking the data's sha256.

        The destination must lie outside a local output root: the store is never written by a copy.
        """
        manifest = self.manifest(asset, version)
        base = Path(destination).expanduser().resolve()
        if isinstance(self.backend, LocalRoot) and base.is_relative_to(self.backend.dir):
            raise ValueError(f"{base} is inside the output root {self.root}: pull copies versions out of the store")
        target = base / asset / version
        if target.is_dir() and _same_data(target, manifest):
            return target
        staging = target.with_name(f"{TMP_PREFIX}{version}-{uuid.uuid4().hex}")
        staging.mkdir(parents=True)
        try:
            for name in (DATA_FILE, MANIFEST_FILE):
                (staging / name).write_bytes(self.backend.read_bytes(asset, version, name))
            if not _same_data(staging, manifest):
                raise ValueError(f"{asset}/{version}: copied data does not match the manifest's sha256")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def _same_data(folder: Path, manifest: dict) -> bool:
    data = folder / DATA_FILE
    return data.is_file() and sha256_bytes(data.read_bytes()) == manifest["files"][DATA_FILE]
