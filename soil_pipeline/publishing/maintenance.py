"""Checking and cleaning an output root: `doctor` (read-only) and `gc` (removes only what no reader can reach).

What `gc` may remove, and nothing else: version folders the catalog does not list (a failed run's, or one killed
before its commit), once no live run has staged them; staging leftovers of dead writers; the run folders
(`_runs/<run id>/`: staged entries and intermediates) and Data Docs (`_data_docs/<run id>/`) of committed runs older
than the latest `keep_runs`, except intermediates the catalog still points at; those of failed runs after an hour
(time for a re-execution from failure); and those of runs that never committed within `grace_hours` (killed runs).
A listed version is never removed, and nothing of a live run: a run's processes hold an flock-ed claim in its folder
while they run it (`store.claim_run`), which the kernel drops when they end, even killed; a claimed run is left
alone whatever its age and `grace_hours`. Local roots only.
"""

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from soil_pipeline.publishing.root import LOCK_SUFFIX, TMP_PREFIX, LocalRoot, remove_dead_staging
from soil_pipeline.publishing.store import (
    CATALOG_FILE,
    DATA_FILE,
    FAILED_MARKER,
    MANIFEST_FILE,
    RUNS_DIR,
    STAGED_DIR,
    VersionedParquetStore,
    run_is_live,
    sha256_bytes,
)

DATA_DOCS_DIR = "_data_docs"
ARTIFACTS_DIR = "_artifacts"
LEGACY_INTERMEDIATE_DIR = "_intermediate"
DEFAULT_KEEP_RUNS = 10
DEFAULT_GRACE_HOURS = 24.0
FAILED_GRACE_S = 3600.0


def _local(store: VersionedParquetStore) -> Path:
    if not isinstance(store.backend, LocalRoot):
        raise ValueError(f"{store.root}: doctor and gc work on local roots only")
    return store.backend.dir


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _version_dirs(root: Path) -> list[Path]:
    """Folders `<asset>/<version>` (asset folders are the non-hidden ones not starting with "_")."""
    return sorted(v for a in _version_parents(root) for v in a.iterdir() if v.is_dir() and not v.name.startswith("."))


def _staging_leftovers(root: Path) -> list[Path]:
    leftovers = list(root.glob(f"{TMP_PREFIX}*"))
    for folder in _version_parents(root):
        leftovers += [p for p in folder.glob(f"{TMP_PREFIX}*") if not p.name.endswith(LOCK_SUFFIX)]
    return sorted(leftovers)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    checked: int = 0


def doctor(store: VersionedParquetStore) -> Report:
    """Check every listed version's sha256, find complete versions the catalog does not list, staging leftovers,
    and the size of each kind of content. Writes nothing."""
    root, report = _local(store), Report()
    listed = {row["path"] for row in store.catalog()}
    for row in store.catalog():
        data = root / row["path"] / DATA_FILE
        if not data.is_file():
            report.problems.append(f"{row['path']}: listed in the catalog but {DATA_FILE} is missing")
        elif sha256_bytes(data.read_bytes()) != row["data_sha256"]:
            report.problems.append(f"{row['path']}/{DATA_FILE}: sha256 differs from the catalog's")
        report.checked += 1
    for path, pointer in store.document()["intermediates"].items():
        if not (root / pointer).is_file():
            report.problems.append(f"intermediate {path}: the catalog points at {pointer}, which is missing")
    versions = _version_dirs(root) if root.is_dir() else []
    relative = [p.relative_to(root).as_posix() for p in versions]
    report.unlisted = [r for r in relative if r not in listed and (root / r / MANIFEST_FILE).is_file()]
    report.leftovers = [p.relative_to(root).as_posix() for p in _staging_leftovers(root)] if root.is_dir() else []
    report.sizes = {
        "published versions": sum(_size(p) for p in versions),
        "run folders (staged entries, intermediates)": _size(root / RUNS_DIR),
        "Data Docs": _size(root / DATA_DOCS_DIR),
        "artifacts (maps)": _size(root / ARTIFACTS_DIR),
        "legacy pickles (_intermediate)": _size(root / LEGACY_INTERMEDIATE_DIR),
        "staging leftovers": sum(_size(root / p) for p in report.leftovers),
    }
    return report


def _committed_runs(document: dict) -> list[str]:
    return [row["run_id"] for row in sorted(document["runs"], key=lambda row: row["committed_at"])]


def _abandoned(run_dir: Path, grace_s: float, now: float) -> bool:
    """A run folder never committed, silent for longer than the grace period (its writer was killed), or failed and
    silent for an hour (time for a re-execution from failure, which reads and commits what it staged)."""
    newest = max((p.stat().st_mtime for p in run_dir.rglob("*")), default=run_dir.stat().st_mtime)
    if (run_dir / FAILED_MARKER).exists():
        return now - newest > min(grace_s, FAILED_GRACE_S)
    return now - newest > grace_s


def gc(store: VersionedParquetStore, keep_runs: int = DEFAULT_KEEP_RUNS, grace_hours: float = DEFAULT_GRACE_HOURS):
    """Remove what no reader can reach (see the module docstring); returns (removed paths, bytes freed)."""
    root = _local(store)
    if not root.is_dir():
        return [], 0
    now, grace_s = time.time(), grace_hours * 3600
    with store.backend.lock():
        document = store.document()
        committed = _committed_runs(document)
        pointed = {pointer.split("/")[1] for pointer in document["intermediates"].values()}
        keep = set(committed[-keep_runs:] if keep_runs > 0 else []) | pointed
        removed, gone, protected, live = [], set(), set(), set()
        for run_dir in _children(root / RUNS_DIR):
            if run_is_live(run_dir):
                live.add(run_dir.name)
                protected |= _staged_paths(run_dir)
                continue
            if run_dir.name in keep:
                continue
            if run_dir.name in committed or _abandoned(run_dir, grace_s, now):
                removed.append(run_dir)
                gone.add(run_dir.name)
            else:
                protected |= _staged_paths(run_dir)
        for docs in _children(root / DATA_DOCS_DIR):
            if docs.name in live:
                continue
            old = docs.name not in committed and now - docs.stat().st_mtime > grace_s
            orphan = old and not (root / RUNS_DIR / docs.name).exists()
            if docs.name in gone or (docs.name in committed and docs.name not in keep) or orphan:
                removed.append(docs)
        listed = {row["path"] for row in document["versions"]}
        for version in _version_dirs(root):
            relative = version.relative_to(root).as_posix()
            if relative not in listed and relative not in protected:
                removed.append(version)
        for folder in _version_parents(root):
            removed += [folder / name for name in remove_dead_staging(folder)]
        removed += [p for p in root.glob(f"{TMP_PREFIX}{CATALOG_FILE}-*")]
        removed += [root / LEGACY_INTERMEDIATE_DIR] if (root / LEGACY_INTERMEDIATE_DIR).is_dir() else []
        freed = 0
        for path in removed:
            freed += _size(path)
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return [p.relative_to(root).as_posix() for p in removed], freed


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _version_parents(root: Path) -> list[Path]:
    return [p for p in _children(root) if p.is_dir() and not p.name.startswith(("_", "."))]


def _staged_paths(run_dir: Path) -> set[str]:
    """`asset/version` of each version a run staged."""
    entries = [json.loads(path.read_text()) for path in (run_dir / STAGED_DIR).glob("*.json")]
    return {f"{entry['asset']}/{entry['version']}" for entry in entries}
