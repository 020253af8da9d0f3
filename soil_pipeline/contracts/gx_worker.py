"""Great Expectations in a worker process of its own.

Importing GX takes seconds and about 150 MB that the pipeline process would otherwise keep. The worker is started
once per process (`warm_up`: by a run's resources, `soil-pipeline run` even before it imports Dagster), so GX is
imported while the rest runs, and it serves every later run of the process; it ends with the process. `run_gx`
validates there; `in_background` runs such a call on a thread of its own, so the step that asked goes on. The
worker is `python -m soil_pipeline.contracts.gx_worker`, requests and replies pickled over its stdin and stdout.
"""

import atexit
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pickle
import subprocess
import sys
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from soil_pipeline.contracts import gx_suite
from soil_pipeline.contracts.model import TableContract


class _Worker:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()

    def call(self, *args):
        with self.lock:
            try:
                pickle.dump(args, self.process.stdin)
                self.process.stdin.flush()
                ok, value = pickle.load(self.process.stdout)
            except (EOFError, BrokenPipeError, pickle.UnpicklingError) as error:
                raise RuntimeError(
                    f"the Great Expectations worker process ended (exit {self.process.poll()})"
                ) from error
        if not ok:
            raise RuntimeError(f"Great Expectations failed in its worker process:\n{value}")
        return value

    def close(self) -> None:
        """End the worker now: it holds nothing to save, and may still be importing GX, which would take seconds."""
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


@functools.cache
def _worker() -> _Worker:
    return _Worker()


def warm_up() -> None:
    """Start the worker (it imports GX in the background); returns at once."""
    _worker()


@atexit.register
def stop() -> None:
    """End the worker, if one runs; the next `warm_up` or `run_gx` starts a new one."""
    if _worker.cache_info().currsize:
        _worker().close()
        _worker.cache_clear()


@functools.cache
def _background() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="soil-pipeline-gx")


def in_background(fn, *args) -> Future:
    """`fn(*args)` on the one background thread that talks to the worker (calls run in submission order)."""
    return _background().submit(fn, *args)


os.register_at_fork(after_in_child=lambda: (_background.cache_clear(), _worker.cache_clear()))


def run_gx(frame: pd.DataFrame, contract: TableContract, docs_dir: Path, orphans: dict | None = None) -> dict:
    """`gx_suite.run_gx` in the worker."""
    worker = _worker()
    try:
        return worker.call(frame, contract, docs_dir, orphans)
    except RuntimeError:
        if worker.process.poll() is not None:
            _worker.cache_clear()  # the next call starts a new worker
        raise


# GX's package imports every expectation, metric and renderer it has, and with them scipy.stats and altair (about a
# third of its import time), which only the distribution expectations (KS test, KL divergence) and their charts use;
# the suites built from our contracts have none. The worker loads those two modules lazily: on first use, if any.
LAZY_MODULES = frozenset({"scipy.stats", "altair"})


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds the `LAZY_MODULES` as the path finder does, with a loader that runs each module on first attribute use."""

    def find_spec(self, name, path, target=None):
        if name not in LAZY_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


# GX's SQL data sources and its S3 stores are optional extras (SQLAlchemy, boto3), which GX imports when they are
# installed (Dagster and s3fs install them here): about 0.7 s of CPU at each worker's start. The worker validates
# pandas frames and writes Data Docs to a local folder, so it runs GX as installed without those extras.
ABSENT_PACKAGES = frozenset({"sqlalchemy", "boto3", "botocore"})


class _AbsentFinder(importlib.abc.MetaPathFinder):
    """Makes the `ABSENT_PACKAGES` (and their modules) not found, as if they were not installed."""

    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in ABSENT_PACKAGES:
            raise ModuleNotFoundError(f"No module named {name!r} (not used by the GX worker)", name=name)
        return None


def share_compiled_templates() -> None:
    """Give every Jinja environment of GX's Data Docs views one in-memory cache of compiled templates.

    GX makes a new environment for each view, and so compiles the some fifty templates of a Data Docs site again for
    every page of every validation (about 0.2 s of CPU each time). A template's compiled code depends only on its
    name and source and on the environment's settings, the same for every view: kept per name and source, each
    template is compiled once per worker, and the pages are the same."""
    import jinja2
    from great_expectations.render.view.view import DefaultJinjaView

    class CompiledTemplates(jinja2.BytecodeCache):
        def __init__(self):
            self.code = {}

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            bucket.code = self.code.get((bucket.key, bucket.checksum))

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            self.code[bucket.key, bucket.checksum] = bucket.code

    compiled, make_view = CompiledTemplates(), DefaultJinjaView.__init__

    @functools.wraps(make_view)
    def with_shared_templates(view, *args, **kwargs):
        make_view(view, *args, **kwargs)
        view.env.bytecode_cache = compiled

    DefaultJinjaView.__init__ = with_shared_templates


def _serve() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever GX prints goes to stderr, not into the replies
    sys.meta_path[:0] = [_AbsentFinder(), _LazyFinder()]
    import great_expectations  # noqa: F401
    import great_expectations.expectations  # noqa: F401

    share_compiled_templates()
    while True:
        try:
            args = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            reply = (True, gx_suite.run_gx(*args))
        except Exception:  # noqa: BLE001 - reported to the parent, which raises
            reply = (False, traceback.format_exc())
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    _serve()
