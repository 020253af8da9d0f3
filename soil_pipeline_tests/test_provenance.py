"""The per-process sha256 cache of `provenance.file_sha256`: an unchanged file is hashed once, a changed one again."""

import hashlib
import os
import time

import pytest

from soil_pipeline import provenance
from soil_pipeline.errors import InputError


def _rewrite_same_size_and_mtime(path, text: str) -> None:
    """New bytes of the same length, the modification time put back: only the change time tells."""
    stat = os.stat(path)
    time.sleep(0.05)  # past the kernel's coarse timestamp tick, so the change time moves
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_size, now.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns) and now.st_ctime_ns != stat.st_ctime_ns


def test_an_unchanged_file_is_hashed_once_and_a_rewritten_one_again(tmp_path):
    path = tmp_path / "horizons.csv"
    path.write_text("site_id,soc\nA,12\n")
    first = provenance.file_sha256(path)
    assert first == hashlib.sha256(b"site_id,soc\nA,12\n").hexdigest()
    assert provenance._HASHED[provenance._identity(str(path))] == first
    assert provenance.file_sha256(path) == first

    _rewrite_same_size_and_mtime(path, "site_id,soc\nB,15\n")
    assert provenance.file_sha256(path) == hashlib.sha256(b"site_id,soc\nB,15\n").hexdigest()


def test_a_snapshot_still_refuses_a_file_rewritten_to_the_same_size_and_mtime(tmp_path):
    path = tmp_path / "horizons.csv"
    path.write_text("site_id,soc\nA,12\n")
    kept = provenance.snapshot("field_horizons[2024-01]", path)
    _rewrite_same_size_and_mtime(path, "site_id,soc\nB,15\n")
    with pytest.raises(InputError, match="changed while this run was reading it"):
        kept.unchanged()
    again = provenance.snapshot("field_horizons[2024-01]", path)
    assert again.inputs()["field_horizons[2024-01]"]["sha256"] == hashlib.sha256(b"site_id,soc\nB,15\n").hexdigest()
