"""Cells with the same inputs, found once so that what depends on those inputs alone is computed once per distinct
set (e.g. RothC's spin-up for the cells of one climate pixel and soil): cells grouped by a 64-bit hash of their
values, every cell then checked bit for bit against the first of its group."""

import numpy as np


def distinct_cells(inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """(the first cell of each distinct set of `inputs`, the index into those of each cell), where a cell's inputs
    are its values (the last axis) of every array, compared bit for bit as float64. (None, None) when no two cells
    share their inputs, when all do (numpy sums a one-cell array along another axis in another order, so a single
    set would not give the values of its cells) or when two cells of different inputs share a hash (never seen)."""
    n = inputs[0].shape[-1]
    bits = [np.asarray(v, dtype="float64").reshape(-1, n).view(np.uint64) for v in inputs]
    key = np.zeros(n, dtype=np.uint64)
    for row in (row for values in bits for row in values):
        key = (key ^ row) * np.uint64(0x100000001B3)  # FNV-1a over 64-bit words
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if first.size < 2 or first.size == n:
        return None, None
    of_cell = first[inverse]
    if not all((values == values[:, of_cell]).all() for values in bits):
        return None, None
    return first, inverse
