"""Immutable, content-addressed Parquet versions under one output root: `<root>/<asset>/<version>/`.

A version folder holds `data.parquet` and `manifest.json` (what was published, from what, by which code and run,
and the sha256 of each file). The version id is the first 16 hex digits of the sha256 of the asset name, the
partition, the reproducible provenance (input sha256s, parameters, code and library versions, definition files) and
the sha256 of the data bytes, which embed that same provenance. The data bytes are deterministic, so unchanged inputs,
code and parameters give the same id: a rerun finds the version already there, writes nothing, and only marks it
the latest again. Anything tied to one run (Dagster run id, wall-clock time) stays in the manifest, outside the id.

A version becomes visible only when complete (see `root.py` for how each backend guarantees it), and `catalog.json`
at the root is updated last, atomically, under the store lock. The catalog, not the folder listing, is what
readers use: one row per (asset, version) with its partition, created time, row count, data sha256 and whether it is
the latest of its (asset, partition). It is JSON rather than Parquet because it is small, is rewritten whole on
every publish, and must stay readable without pyarrow (e.g. `soil-pipeline versions`, `jq`, a text editor).
"""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from soil_pipeline.publishing.parquet import GEOMETRY_COLUMN, to_geoparquet_bytes, to_parquet_bytes
from soil_pipeline.publishing.root import TMP_PREFIX, LocalRoot, open_root, safe_name

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
CATALOG_FILE = "catalog.json"
VERSION_ID_LENGTH = 16


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


def with_entry(catalog: list[dict], entry: dict) -> list[dict]:
    """`catalog` with `entry` added (or replaced) as the latest of its (asset, partition)."""
    key = (entry["asset"], entry["partition"])
    rows = [row for row in catalog if (row["asset"], row["version"]) != (entry["asset"], entry["version"])]
    rows = [{**row, "latest": row["latest"] and (row["asset"], row["partition"]) != key} for row in rows]
    rows.append({**entry, "latest": True})
    return sorted(rows, key=lambda row: (row["asset"], row["partition"] or "", row["created_at"], row["version"]))


class VersionedParquetStore:
    def __init__(self, root: str | os.PathLike):
        self.backend = open_root(root)
        self.root = self.backend.url

    def publish(
        self,
        asset: str,
        frame: pd.DataFrame,
        provenance: dict,
        partition: str | None = None,
        run: dict | None = None,
        points: tuple[str, str] | None = None,
    ) -> PublishedVersion:
        """Publish `frame` unless an identical version exists; either way mark it the latest for its partition.

        `points` = (lon column, lat column) writes GeoParquet with a point geometry column. `run` (e.g. the Dagster
        run id) goes into the manifest only.
        """
        safe_name(asset, "asset name")
        if partition is not None:
            safe_name(partition, "partition")
        embedded = {"asset": asset, "partition": partition, **provenance}
        data = to_geoparquet_bytes(frame, *points, embedded) if points else to_parquet_bytes(frame, embedded)
        version = version_id(asset, partition, provenance, sha256_bytes(data))
        manifest = self._manifest(asset, version, partition, frame, data, provenance, run, points)
        files = {DATA_FILE: data, MANIFEST_FILE: json.dumps(manifest, indent=2, sort_keys=True).encode()}
        newly = self.backend.write_version(asset, version, files)
        manifest = self.manifest(asset, version)
        self._record(manifest)
        return PublishedVersion(asset, version, partition, self.backend.display(asset, version), newly, manifest)

    @staticmethod
    def _manifest(asset, version, partition, frame, data, provenance, run, points) -> dict:
        manifest = {
            "asset": asset,
            "version": version,
            "partition": partition,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "row_count": len(frame),
            "columns": [{"name": str(name), "type": str(dtype)} for name, dtype in frame.dtypes.items()],
            "files": {DATA_FILE: sha256_bytes(data)},
            "provenance": provenance,
            "run": run or {},
        }
        if points:
            manifest["geometry"] = {"column": GEOMETRY_COLUMN, "type": "Point", "from_columns": list(points)}
        return manifest

    def _record(self, manifest: dict) -> None:
        with self.backend.lock():
            catalog = with_entry(self.catalog(), _catalog_entry(manifest))
            self.backend.write_atomic(CATALOG_FILE, json.dumps(catalog, indent=2).encode())

    def catalog(self) -> list[dict]:
        if not self.backend.exists(CATALOG_FILE):
            return []
        return json.loads(self.backend.read_bytes(CATALOG_FILE))

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

    def read(self, asset: str, version: str = "latest", partition: str | None = None) -> pd.DataFrame:
        """The table as its asset produced it: a GeoParquet `geometry` column, derived at publication, is left out
        (read the file with `geopandas.read_parquet` to get it)."""
        version = self.resolve(asset, version, partition)
        columns = [column["name"] for column in self.manifest(asset, version)["columns"]]
        with self.backend.parquet_source(asset, version, DATA_FILE) as source:
            return pd.read_parquet(source, columns=columns)

    def pull(self, asset: str, version: str, destination: str | os.PathLike) -> Path:
        """Copy a version's data and manifest to `<destination>/<asset>/<version>/`, checking the data's sha256."""
        manifest = self.manifest(asset, version)
        target = Path(destination).expanduser().resolve() / asset / version
        staging = target.with_name(f"{TMP_PREFIX}{version}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in (DATA_FILE, MANIFEST_FILE):
            (staging / name).write_bytes(self.backend.read_bytes(asset, version, name))
        if sha256_bytes((staging / DATA_FILE).read_bytes()) != manifest["files"][DATA_FILE]:
            shutil.rmtree(staging)
            raise OSError(f"{asset}/{version}: copied data does not match the manifest's sha256")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target
