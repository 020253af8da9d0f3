"""A separate process that publishes into a store, for the crash and concurrency tests.

python -m soil_pipeline_tests.publish_worker large ROOT ROWS
    publish one large frame as asset `large` (the crash test kills it mid-write)
python -m soil_pipeline_tests.publish_worker many ROOT WRITER COUNT START_FILE [STOP_FILE MAX_COUNT]
    say it is ready (`ready_file`), wait for START_FILE, then publish COUNT distinct frames as asset `shared` and,
    each time, the same frame as asset `common`; with STOP_FILE, go on after COUNT until STOP_FILE appears (at most
    MAX_COUNT frames). Print how many frames it published.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from soil_pipeline.publishing.store import VersionedParquetStore

START_WAIT_STEPS = 3000
START_WAIT_STEP_S = 0.01


def large_frame(rows: int) -> pd.DataFrame:
    """Random (incompressible) floats, so the Parquet bytes are about 8 bytes per row."""
    return pd.DataFrame({"value": np.random.default_rng(0).random(rows)})


def shared_frame(writer: str, index: int) -> pd.DataFrame:
    return pd.DataFrame({"writer": [writer] * 100, "index": np.full(100, index), "value": np.arange(100.0)})


def common_frame() -> pd.DataFrame:
    return pd.DataFrame({"value": np.arange(1000.0)})


def wait_for(path: Path) -> None:
    for _ in range(START_WAIT_STEPS):
        if path.exists():
            return
        time.sleep(START_WAIT_STEP_S)
    raise TimeoutError(f"{path} never appeared")


def ready_file(start: Path, writer: str) -> Path:
    return start.with_name(f"{start.name}.{writer}.ready")


def start_together(start: Path, writers: dict) -> None:
    """Release the writer processes ({name: Popen}) at once, once every one has imported and opened its store (they
    take seconds to); a writer that ends before it is ready fails the test with what it printed on stderr."""
    for _ in range(START_WAIT_STEPS):
        if all(ready_file(start, name).exists() for name in writers):
            start.touch()
            return
        for name, process in writers.items():
            if process.poll() is not None:
                raise RuntimeError(f"writer {name} ended (exit {process.returncode}): {process.stderr.read().decode()}")
        time.sleep(START_WAIT_STEP_S)
    raise TimeoutError(f"the writers {list(writers)} were not all ready")


def publish_many(store: VersionedParquetStore, writer: str, count: int, stop: Path | None, max_count: int) -> int:
    index = 0
    while index < count or (stop is not None and index < max_count and not stop.exists()):
        store.publish("shared", shared_frame(writer, index), {"inputs": {}, "parameters": {"writer": writer}})
        store.publish("common", common_frame(), {"inputs": {}, "parameters": {}})
        index += 1
    return index


def main(argv: list[str]) -> None:
    mode, root = argv[0], argv[1]
    store = VersionedParquetStore(root)
    if mode == "large":
        store.publish("large", large_frame(int(argv[2])), {"inputs": {}, "parameters": {"rows": int(argv[2])}})
        return
    writer, count, start = argv[2], int(argv[3]), Path(argv[4])
    stop, max_count = (Path(argv[5]), int(argv[6])) if len(argv) > 5 else (None, count)
    ready_file(start, writer).touch()
    wait_for(start)
    print(publish_many(store, writer, count, stop, max_count))


if __name__ == "__main__":
    main(sys.argv[1:])
