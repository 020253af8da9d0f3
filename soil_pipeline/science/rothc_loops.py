"""The compiled loops of `rothc.annual_map` and `rothc.run_years`: the same operations in the same order on each
cell's values as the array code they replace (so every value is bit-identical to it), each cell's values carried in
registers through all the months or years, instead of a pass over all cells' arrays per operation. The exponentials
stay in numpy (`rothc.remaining_fraction`): only additions and multiplications are compiled, which IEEE 754 rounds
alike everywhere (numba contracts nothing into fused multiply-adds without `fastmath`).

Compiled when this module is imported, in the importing thread (as `engine.zone_loops`), for C-contiguous float64
arrays; no on-disk cache."""

import numpy as np
from numba import njit, types

N_POOLS = 4


@njit(nogil=True, inline="always")
def _decompose(s0, s1, s2, s3, r0, r1, r2, r3, to_bio, to_hum):
    """One column of `rothc._decompose`: pools s0-s3 keep the shares r0-r3 of themselves, the decomposed carbon goes
    to BIO and HUM."""
    total = s0 + s1 + s2 + s3
    k0, k1, k2, k3 = s0 * r0, s1 * r1, s2 * r2, s3 * r3
    decomposed = total - (k0 + k1 + k2 + k3)
    return k0, k1, k2 + decomposed * to_bio, k3 + decomposed * to_hum


@njit(nogil=True)
def annual_state(remaining, to_bio, to_hum, split, shares, year, from_inputs):
    """The year as an affine map of each cell's pools (`rothc.annual_map`): into `year` (4, 4, n) the pools from the
    identity columns, into `from_inputs` (4, n) those from empty pools and the inputs, through the months m of
    `remaining` (4, months, n), each `rothc._decompose` of the five columns, then split[:, c] x shares[m] added to
    the last. The five columns of a cell are independent chains, carried side by side in registers."""
    for c in range(remaining.shape[2]):
        bio, hum = to_bio[c], to_hum[c]
        a0, a1, a2, a3 = 1.0, 0.0, 0.0, 0.0
        b0, b1, b2, b3 = 0.0, 1.0, 0.0, 0.0
        d0, d1, d2, d3 = 0.0, 0.0, 1.0, 0.0
        e0, e1, e2, e3 = 0.0, 0.0, 0.0, 1.0
        u0, u1, u2, u3 = 0.0, 0.0, 0.0, 0.0
        for m in range(remaining.shape[1]):
            r0, r1, r2, r3 = remaining[0, m, c], remaining[1, m, c], remaining[2, m, c], remaining[3, m, c]
            a0, a1, a2, a3 = _decompose(a0, a1, a2, a3, r0, r1, r2, r3, bio, hum)
            b0, b1, b2, b3 = _decompose(b0, b1, b2, b3, r0, r1, r2, r3, bio, hum)
            d0, d1, d2, d3 = _decompose(d0, d1, d2, d3, r0, r1, r2, r3, bio, hum)
            e0, e1, e2, e3 = _decompose(e0, e1, e2, e3, r0, r1, r2, r3, bio, hum)
            u0, u1, u2, u3 = _decompose(u0, u1, u2, u3, r0, r1, r2, r3, bio, hum)
            share = shares[m]
            u0, u1 = u0 + split[0, c] * share, u1 + split[1, c] * share
            u2, u3 = u2 + split[2, c] * share, u3 + split[3, c] * share
        year[0, 0, c], year[1, 0, c], year[2, 0, c], year[3, 0, c] = a0, a1, a2, a3
        year[0, 1, c], year[1, 1, c], year[2, 1, c], year[3, 1, c] = b0, b1, b2, b3
        year[0, 2, c], year[1, 2, c], year[2, 2, c], year[3, 2, c] = d0, d1, d2, d3
        year[0, 3, c], year[1, 3, c], year[2, 3, c], year[3, 3, c] = e0, e1, e2, e3
        from_inputs[0, c], from_inputs[1, c], from_inputs[2, c], from_inputs[3, c] = u0, u1, u2, u3


# Which pools' terms a year adds to each pool: DPM and RPM keep a share of themselves only, BIO and HUM take from all.
CANONICAL_TERMS = np.array([[True, False, False, False], [False, True, False, False], [True] * 4, [True] * 4])


@njit(nogil=True)
def year_runs(pools, year, added, years, out):
    """Pools (runs, 4, n) after `years` repetitions of the year map `year` (4, 4, n) into `out`: each year pool i
    becomes added[run, i] + year[i, j] x pools[j] for j = i and each j whose coefficient is not zero in every cell,
    added in the order j = 0..3."""
    out[:] = pools
    terms = _terms(year)
    if (terms == CANONICAL_TERMS).all():
        _canonical_runs(year, added, years, out)
        return
    for r in range(added.shape[0]):
        for c in range(added.shape[2]):
            for _ in range(years):
                new = added[r, :, c].copy()
                for i in range(N_POOLS):
                    for j in range(N_POOLS):
                        if terms[i, j]:
                            new[i] = new[i] + year[i, j, c] * out[r, j, c]
                out[r, :, c] = new


@njit(nogil=True)
def _terms(year):
    """terms[i, j]: i == j, or year[i, j] is not zero in some cell."""
    terms = np.zeros((N_POOLS, N_POOLS), dtype=np.bool_)
    for i in range(N_POOLS):
        for j in range(N_POOLS):
            if i == j:
                terms[i, j] = True
                continue
            for c in range(year.shape[2]):
                if year[i, j, c] != 0.0:
                    terms[i, j] = True
                    break
    return terms


@njit(nogil=True)
def _canonical_runs(year, added, years, pools):
    """`year_runs` with CANONICAL_TERMS, in place in `pools`: each cell's coefficients loaded once, each run's
    pools carried in registers through the years."""
    for c in range(added.shape[2]):
        a00, a11 = year[0, 0, c], year[1, 1, c]
        a20, a21, a22, a23 = year[2, 0, c], year[2, 1, c], year[2, 2, c], year[2, 3, c]
        a30, a31, a32, a33 = year[3, 0, c], year[3, 1, c], year[3, 2, c], year[3, 3, c]
        for r in range(added.shape[0]):
            d0, d1, d2, d3 = added[r, 0, c], added[r, 1, c], added[r, 2, c], added[r, 3, c]
            x0, x1, x2, x3 = pools[r, 0, c], pools[r, 1, c], pools[r, 2, c], pools[r, 3, c]
            for _ in range(years):
                x0, x1, x2, x3 = (
                    d0 + a00 * x0,
                    d1 + a11 * x1,
                    d2 + a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3,
                    d3 + a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3,
                )
            pools[r, 0, c], pools[r, 1, c], pools[r, 2, c], pools[r, 3, c] = x0, x1, x2, x3


_F1, _F2, _F3 = types.float64[::1], types.float64[:, ::1], types.float64[:, :, ::1]
annual_state.compile((_F3, _F1, _F1, _F2, _F1, _F3, _F2))
year_runs.compile((_F3, _F3, _F3, types.int64, _F3))
