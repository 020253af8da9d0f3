"""Cells with the same inputs, found once so that what depends on those inputs alone is computed once per distinct
set (e.g. RothC's spin-up for the cells of one climate pixel and soil): a compiled hash table over each cell's bits,
every match checked bit for bit. Compiled when imported, in the importing thread (as `engine.zone_loops`)."""

import numpy as np
from numba import njit, types


def distinct_cells(inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """(the first cell of each distinct set of `inputs`, in cell order; the index into those of each cell), where a
    cell's inputs are its values (the last axis) of every array, compared bit for bit (float64). (None, None) when
    no two cells share their inputs, or all cells do (numpy sums a one-cell array along another axis in another
    order, so a single set would not give the same values as its cells)."""
    n = inputs[0].shape[-1]
    rows = np.concatenate([np.asarray(v, dtype="float64").reshape(-1, n).T for v in inputs], axis=1)
    first, inverse = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    count = _distinct(rows.view(np.uint64), first, inverse)
    if count < 2 or count == n:
        return None, None
    return first[:count], inverse


HASH_STEP = 4  # a cell's values hashed: enough to tell sets apart, fewer to compute (a match is checked on all)


@njit(nogil=True)
def _distinct(bits, first, inverse):
    """Open addressing over the cells' rows of `bits` (n, k), hashed on every `HASH_STEP`th value and compared on
    all: first[g] is the first cell of set g, inverse[c] the set of cell c; returns the number of sets."""
    n, k = bits.shape
    size = 1
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, dtype=np.int64)
    count = 0
    for c in range(n):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(0, k, HASH_STEP):
            h = (h ^ bits[c, j]) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        slot = h & mask
        while True:
            g = table[slot]
            if g < 0:
                table[slot] = count
                first[count] = c
                inverse[c] = count
                count += 1
                break
            rep = first[g]
            same = True
            for j in range(k):
                if bits[c, j] != bits[rep, j]:
                    same = False
                    break
            if same:
                inverse[c] = g
                break
            slot = (slot + np.uint64(1)) & mask
    return count


_distinct.compile((types.uint64[:, ::1], types.int64[::1], types.int64[::1]))
