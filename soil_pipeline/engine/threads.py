"""The threads the raster engine runs GDAL in, arranged so that no GDAL or PROJ object is ever shared.

Why: GDAL datasets, and the PROJ objects behind every CRS and coordinate transformation, belong to the thread that
made them (each thread has its own PROJ context, destroyed when the thread ends). The engine crashed now and then
(segmentation faults inside PROJ, freeing a CRS of a reprojection transformer; once under a warp lock) while it
created a thread pool per pass, warped in any of its threads and let the threads end after each pass. So:

- Pass threads are long-lived (`pass_pool`): one pool per thread count, for the life of the process. A thread never
  ends while a dataset or CRS made in it exists, and each thread opens, reads and closes its own datasets (the
  per-thread cache in `raster_engine.opened`); when the last pass ends each thread closes what it opened, in itself
  (`close_thread_datasets`).
- Every warp runs on one long-lived warp thread (`on_warp_thread`): only that thread ever creates, uses or destroys
  the CRS objects and transformers of a warp. The reading threads hand it plain arrays, affine transforms and CRS
  text, and get arrays back. Warps were already serialised (one at a time), so this costs no parallelism.

A forked child starts with no threads: the pools are forgotten there and made again on first use.
"""

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pools: dict[int, ThreadPoolExecutor] = {}
_warp: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_WARP_THREAD_NAME = "soil-pipeline-gdal-warp"


def pass_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of `threads` pass threads (made on first use, never shut down before exit)."""
    with _lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix=f"soil-pipeline-pass{threads}")
        return pool


def on_warp_thread(fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)` run on the warp thread (directly when called from it), its result or its exception."""
    global _warp
    if threading.current_thread().name.startswith(_WARP_THREAD_NAME):
        return fn(*args, **kwargs)
    with _lock:
        if _warp is None:
            _warp = ThreadPoolExecutor(1, thread_name_prefix=_WARP_THREAD_NAME)
        warp = _warp
    return warp.submit(fn, *args, **kwargs).result()


def each_pass_thread(fn: Callable[[], None], timeout_s: float = 60.0) -> None:
    """Run `fn()` once on every thread of every pass pool (when no pass is running): each of a pool's tasks waits
    at a barrier until all have started, so they cannot share a thread."""
    with _lock:
        pools = list(_pools.items())
    for threads, pool in pools:
        barrier = threading.Barrier(threads)

        def task(barrier=barrier):
            try:
                barrier.wait(timeout_s)
            except threading.BrokenBarrierError:
                return  # a thread busy elsewhere: its datasets are closed at its next use or at exit
            fn()

        for future in [pool.submit(task) for _ in range(threads)]:
            future.result()


def _forget_after_fork() -> None:
    global _warp, _lock
    _pools.clear()
    _warp = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
