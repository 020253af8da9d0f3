"""The compiled loop of `rothc.run_years`: each cell's pools carried in registers through the years, with the same
operations in the same order as the array code (so every value is bit-identical to it), instead of a pass over all
cells' arrays per operation. Only additions and multiplications are compiled, which IEEE 754 rounds alike everywhere
(numba contracts nothing into fused multiply-adds without `fastmath`).

Compiled at its first call (about 0.4 s of CPU), in the calling thread under numba's global lock, so that processes
that never run RothC do not pay for it; the caller passes C-contiguous float64 arrays (int64 `maps`), so it is
compiled once. No on-disk cache (as `engine.zone_loops`)."""

from numba import njit


@njit(nogil=True)
def year_runs(pools, year, from_inputs, annual_input, maps, years, out):
    """Pools (runs, 4, n) after `years` repetitions of a year into `out`: cell c follows the year map `year`
    (4, 4, maps), `from_inputs` (4, maps) of its map maps[c]; each year pool i becomes from_inputs[i] x
    annual_input[run, c] + year[i, j] x pools[j], added in the order j = 0..3, for j = i only for DPM and RPM (which
    receive nothing from the other pools) and for every j for BIO and HUM."""
    for c in range(annual_input.shape[1]):
        k = maps[c]
        a00, a11 = year[0, 0, k], year[1, 1, k]
        a20, a21, a22, a23 = year[2, 0, k], year[2, 1, k], year[2, 2, k], year[2, 3, k]
        a30, a31, a32, a33 = year[3, 0, k], year[3, 1, k], year[3, 2, k], year[3, 3, k]
        for r in range(annual_input.shape[0]):
            annual = annual_input[r, c]
            d0, d1 = from_inputs[0, k] * annual, from_inputs[1, k] * annual
            d2, d3 = from_inputs[2, k] * annual, from_inputs[3, k] * annual
            x0, x1, x2, x3 = pools[r, 0, c], pools[r, 1, c], pools[r, 2, c], pools[r, 3, c]
            for _ in range(years):
                y0 = d0 + a00 * x0
                y1 = d1 + a11 * x1
                y2 = d2 + a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                y3 = d3 + a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
                x0, x1, x2, x3 = y0, y1, y2, y3
            out[r, 0, c], out[r, 1, c], out[r, 2, c], out[r, 3, c] = x0, x1, x2, x3
