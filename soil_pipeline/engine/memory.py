"""Allocator settings for a process that runs the pipeline.

- `return_freed_memory`: memory a step frees goes back to the system instead of staying with Arrow's mimalloc pool
  or with one glibc malloc arena per thread that ever allocated (on the embedded run the peak RSS is about 150 MB
  lower; results are unchanged).
- `keep_window_arrays` / `release_window_arrays`: while streaming passes run, freed window-sized arrays stay in the
  heap for the next window; afterwards glibc's own thresholds return and the memory kept is given back.
- `collect_less_often`: Python's cyclic garbage collector runs on fewer allocations.
"""

import ctypes
import functools
import gc

import pyarrow as pa

ARENAS = 2
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8

# glibc gives every freed array above its mmap threshold (128 kB, adapting up to 32 MB) back to the system, so each
# window's arrays were faulted in afresh (at 1 km: 1.3 M page faults, 4 s of system time in a 7.5 s pass). Arrays
# below 64 MB are kept in the heap instead, and free heap memory is given back only above 128 MB.
MALLOC_MMAP_THRESHOLD = 64 << 20
MALLOC_TRIM_THRESHOLD = 128 << 20
# After the passes: where glibc's own adaptive thresholds settle with large arrays (mmap 32 MB, trim twice that).
GLIBC_MMAP_THRESHOLD_MAX = 32 << 20


@functools.cache
def glibc():
    """glibc through ctypes (for mallopt and malloc_trim), or None on another C library."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def keep_window_arrays() -> None:
    if (libc := glibc()) is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)


def release_window_arrays() -> None:
    if (libc := glibc()) is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * GLIBC_MMAP_THRESHOLD_MAX)
        libc.malloc_trim(0)


# Python collects its youngest objects every 700 allocations of objects that can form cycles, and all of them after
# every 100 such collections. A run allocates millions (Dagster's events, pandas' frames, numba's compiler) beside the
# 300,000 or so the imports keep alive for good, which every full collection walks: in the embedded run the collector
# spent 1.35-1.6 s of CPU, 1.0-1.3 s of it in 9 full collections. Every 10,000 allocations from the start it spends
# about 0.5 s and the run needs no full collection (peak RSS unchanged); later generations keep their thresholds.
GC_YOUNG_THRESHOLD = 10_000


def collect_less_often() -> None:
    """The collector's youngest generation collected every `GC_YOUNG_THRESHOLD` allocations (Python's: 700)."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@functools.cache
def return_freed_memory() -> None:
    pa.set_memory_pool(pa.system_memory_pool())
    if (libc := glibc()) is not None:
        libc.mallopt(_M_ARENA_MAX, ARENAS)
