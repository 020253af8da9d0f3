"""Transient I/O errors on inputs: the reading step is retried by Dagster; a missing file fails at once."""

import dagster as dg
import pytest

from soil_pipeline.assets import sources


def _reader(tmp_path, error: OSError, failures: int):
    """An asset that reads a file, failing with `error` on its first `failures` attempts (counted on disk)."""
    attempts = tmp_path / "attempts"

    @dg.asset
    def read_input(context: dg.AssetExecutionContext) -> int:
        count = int(attempts.read_text()) + 1 if attempts.exists() else 1
        attempts.write_text(str(count))
        with sources.retried_on_transient_io():
            if count <= failures:
                raise error
            return count

    return read_input, attempts


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(sources, "TRANSIENT_IO_WAIT_SECONDS", 0)


def test_a_transient_io_error_is_retried_until_the_read_succeeds(tmp_path):
    asset, attempts = _reader(tmp_path, OSError(5, "Input/output error"), failures=2)
    result = dg.materialize([asset], instance=dg.DagsterInstance.ephemeral())
    assert result.success and result.output_for_node("read_input") == 3
    assert attempts.read_text() == "3"


def test_a_missing_input_fails_at_once(tmp_path):
    asset, attempts = _reader(tmp_path, FileNotFoundError(2, "No such file", "sites.csv"), failures=1)
    result = dg.materialize([asset], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success and attempts.read_text() == "1"


def test_retries_stop_after_the_limit(tmp_path):
    asset, attempts = _reader(tmp_path, TimeoutError("stale NFS handle"), failures=99)
    result = dg.materialize([asset], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success and attempts.read_text() == str(1 + sources.TRANSIENT_IO_RETRIES)
