"""A local directory of immutable, content-addressed Parquet versions: `<root>/<asset>/<version>/`.

A version folder holds `data.parquet` and `manifest.json`. It is written under a temporary name and renamed into
place in one step, so readers see either no version or a complete one; an existing version is never rewritten.
`catalog.json` at the root lists every publication and which version of each asset (and partition) is the latest;
it is rewritten atomically under a lock, after the version folder exists.
"""

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from soil_pipeline.publishing.parquet import to_parquet_bytes

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
CATALOG_FILE = "catalog.json"
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class PublishedVersion:
    asset: str
    version: str
    partition: str | None
    path: Path
    newly_published: bool
    manifest: dict


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class VersionedParquetStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def _asset_dir(self, asset: str) -> Path:
        if not asset or "/" in asset or asset.startswith("."):
            raise ValueError(f"invalid asset name {asset!r}")
        return self.root / asset

    @contextmanager
    def _lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def publish(
        self, asset: str, frame: pd.DataFrame, provenance: dict, partition: str | None = None, run: dict | None = None
    ) -> PublishedVersion:
        """Publish `frame` unless an identical version exists; either way mark it the latest for its partition.

        The version id hashes the asset, partition, the reproducible part of `provenance` (inputs, parameters,
        code) and the data bytes, so an unchanged rerun maps to the same id and writes nothing new. `run` (e.g.
        the Dagster run id) goes into the manifest only, never into the data or the id.
        """
        data = to_parquet_bytes(frame, provenance)
        identity = {"asset": asset, "partition": partition, "provenance": provenance, "data_sha256": sha256_bytes(data)}
        version = sha256_bytes(json.dumps(identity, sort_keys=True).encode())[:16]
        final = self._asset_dir(asset) / version
        manifest = {
            "asset": asset,
            "version": version,
            "partition": partition,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "row_count": len(frame),
            "columns": {name: str(dtype) for name, dtype in frame.dtypes.items()},
            "files": {DATA_FILE: sha256_bytes(data)},
            "provenance": provenance,
            "run": run or {},
        }
        newly = not final.exists()
        if newly:
            newly = self._write_version(final, data, manifest)
        manifest = json.loads((final / MANIFEST_FILE).read_text())
        self._record(manifest)
        return PublishedVersion(asset, version, partition, final, newly, manifest)

    def _write_version(self, final: Path, data: bytes, manifest: dict) -> bool:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            _write_synced(staging / DATA_FILE, data)
            _write_synced(staging / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True).encode())
            try:
                os.rename(staging, final)
            except OSError:
                if (final / MANIFEST_FILE).exists():
                    return False
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def _record(self, manifest: dict) -> None:
        entry = {key: manifest[key] for key in ("asset", "version", "partition", "created_at", "row_count")}
        with self._lock():
            catalog = self.catalog()
            for row in catalog:
                if row["asset"] == entry["asset"] and row["partition"] == entry["partition"]:
                    row["latest"] = False
            catalog = [row for row in catalog if (row["asset"], row["version"]) != (entry["asset"], entry["version"])]
            catalog.append({**entry, "latest": True})
            catalog.sort(key=lambda row: (row["asset"], row["partition"] or "", row["created_at"], row["version"]))
            staging = self.root / f"{TMP_PREFIX}{CATALOG_FILE}-{uuid.uuid4().hex}"
            _write_synced(staging, json.dumps(catalog, indent=2).encode())
            os.replace(staging, self.root / CATALOG_FILE)

    def catalog(self) -> list[dict]:
        path = self.root / CATALOG_FILE
        return json.loads(path.read_text()) if path.exists() else []

    def latest(self, asset: str, partition: str | None = None) -> str | None:
        for row in self.catalog():
            if row["asset"] == asset and row["partition"] == partition and row["latest"]:
                return row["version"]
        return None

    def latest_by_partition(self, asset: str) -> dict[str | None, str]:
        return {row["partition"]: row["version"] for row in self.catalog() if row["asset"] == asset and row["latest"]}

    def version_path(self, asset: str, version: str) -> Path:
        path = self._asset_dir(asset) / version
        if not (path / MANIFEST_FILE).exists():
            raise KeyError(f"no published version {version!r} of {asset!r} under {self.root}")
        return path

    def read(self, asset: str, version: str = "latest", partition: str | None = None) -> pd.DataFrame:
        if version == "latest":
            found = self.latest(asset, partition)
            if found is None:
                raise KeyError(f"nothing published for {asset!r} (partition {partition!r}) under {self.root}")
            version = found
        return pd.read_parquet(self.version_path(asset, version) / DATA_FILE)
