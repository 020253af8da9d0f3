"""The compiled per-zone loops of `zonal.window_sums`: sums per zone over the cells of one window, each added in cell
order as `np.bincount` adds them (so every sum is bit-identical to `aggregation.zonal_sum`), releasing the GIL so
that threads overlap them with decoding. Along a run of cells of one zone each sum is carried in a register (loaded
at the start of the run, stored at its end): the same additions in the same order, without a store and a reload per
cell.

- `add_per_zone` / `add_one_per_zone`: quantities given as arrays, four (or one) to a loop.
- `layer_sums`: the sums of one layer's values (the value, the value times a factor per row, the count and the
  factor of its cells with a value) over one or two zonings in one loop: one load and one NaN test per cell for all
  of them. Which sums are kept, and whether the second zoning is there, are part of the compiled types (a row index
  or None), so nothing is computed for a sum not kept.

The array loops for the pipeline's own types (int64 zones, float64 values) are compiled when this module is
imported, in the importing thread; other types, and every `layer_sums`, when first met, in the calling thread (numba
compiles one function at a time, under its global lock). No on-disk cache: processes running side by side (Dask
workers, Dagster run workers) could write it at once (numba/numba#4807).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload


def _read_only(dtype) -> types.Array:
    return types.Array(dtype, 1, "C", readonly=True)


_CELLS, _VALUES = _read_only(types.int64), _read_only(types.float64)


@njit(nogil=True)
def add_per_zone(sums, zones, a, b, c, d):
    """sums[q, z] += value for each cell in order, for the four quantities a-d, skipping zones outside
    0..sums.shape[1]-1 and NaN values; four independent chains of additions instead of one."""
    n = sums.shape[1]
    zone = -1
    sa = sb = sc = sd = 0.0
    for i in range(zones.size):
        z = zones[i]
        if z < 0 or z >= n:
            continue
        if z != zone:
            if zone >= 0:
                sums[0, zone], sums[1, zone], sums[2, zone], sums[3, zone] = sa, sb, sc, sd
            zone = z
            sa, sb, sc, sd = sums[0, z], sums[1, z], sums[2, z], sums[3, z]
        if a[i] == a[i]:  # not NaN
            sa += a[i]
        if b[i] == b[i]:
            sb += b[i]
        if c[i] == c[i]:
            sc += c[i]
        if d[i] == d[i]:
            sd += d[i]
    if zone >= 0:
        sums[0, zone], sums[1, zone], sums[2, zone], sums[3, zone] = sa, sb, sc, sd


@njit(nogil=True)
def add_one_per_zone(sums, zones, values):
    """`add_per_zone` for one quantity."""
    n = sums.size
    zone, total = -1, 0.0
    for i in range(zones.size):
        z = zones[i]
        if z < 0 or z >= n or values[i] != values[i]:
            continue
        if z != zone:
            if zone >= 0:
                sums[zone] = total
            zone, total = z, sums[z]
        total += values[i]
    if zone >= 0:
        sums[zone] = total


@njit(nogil=True)
def cross_zones(a, b, n_b, out):
    """out = a * n_b + b, or -1 where a or b is negative."""
    for i in range(a.size):
        out[i] = a[i] * n_b + b[i] if a[i] >= 0 and b[i] >= 0 else -1


add_per_zone.compile((types.float64[:, ::1], _CELLS, _VALUES, _VALUES, _VALUES, _VALUES))
add_one_per_zone.compile((types.float64[::1], _CELLS, _VALUES))
cross_zones.compile((_CELLS, _CELLS, types.int64, types.int64[::1]))


# ------------------------------------------------------------------------------------------------- layer_sums
# Helpers resolved when `layer_sums` is compiled: each has one body for None (a sum not kept, a zoning absent, a
# plain zoning's second array) and one for an array or a row index.


def _zone(a, b, n_b, i):
    """Zone of cell i: a[i] for a plain zoning (b None), else a[i] * n_b + b[i], -1 where either is negative, and
    -1 for an absent zoning (a None)."""


@overload(_zone, inline="always")
def _zone_typed(a, b, n_b, i):
    if isinstance(a, types.NoneType):
        return lambda a, b, n_b, i: np.int64(-1)
    if isinstance(b, types.NoneType):
        return lambda a, b, n_b, i: np.int64(a[i])

    def crossed(a, b, n_b, i):
        x, y = a[i], b[i]
        if x < 0 or y < 0:
            return np.int64(-1)
        return x * n_b + y

    return crossed


def _zones(sums):
    """Number of zones (0 for an absent zoning)."""


@overload(_zones, inline="always")
def _zones_typed(sums):
    if isinstance(sums, types.NoneType):
        return lambda sums: 0
    return lambda sums: sums.shape[1]


def _factor(per_row, r):
    """Factor of row r (1 without factors)."""


@overload(_factor, inline="always")
def _factor_typed(per_row, r):
    if isinstance(per_row, types.NoneType):
        return lambda per_row, r: 1.0
    return lambda per_row, r: per_row[r]


def _get(sums, row, zone):
    """The running sum kept in sums[row, zone] (None for a sum not kept)."""


@overload(_get, inline="always")
def _get_typed(sums, row, zone):
    if isinstance(row, types.NoneType):
        return lambda sums, row, zone: None
    return lambda sums, row, zone: sums[row, zone]


def _put(sums, row, zone, total):
    """Store a running sum (nothing for a sum not kept)."""


@overload(_put, inline="always")
def _put_typed(sums, row, zone, total):
    if isinstance(row, types.NoneType):
        return lambda sums, row, zone, total: None

    def put(sums, row, zone, total):
        sums[row, zone] = total

    return put


def _plus(total, x):
    """total + x, or total where x is NaN (nothing for a sum not kept)."""


@overload(_plus, inline="always")
def _plus_typed(total, x):
    if isinstance(total, types.NoneType):
        return lambda total, x: None

    def plus(total, x):
        if x == x:
            return total + x
        return total

    return plus


@njit(nogil=True)
def layer_sums(values, per_row, cols, s1, a1, b1, n1, v1, vf1, c1, f1, s2, a2, b2, n2, v2, vf2, c2, f2):
    """Per zone of each of two zonings, over the cells (in order) whose value is not NaN: the sum of the values, of
    the values times their row's factor (`per_row`, or None), their count and the sum of their factors; a product
    that is NaN is not added. Zoning k: sums `sk` of zones `ak` (plain, `bk` None) or ak * nk + bk (-1 where either
    is negative), and the row of `sk` of each of the four sums (`vk`, `vfk`, `ck`, `fk`; None: not kept); the
    second zoning is absent when `s2` and `a2` are None."""
    m1, m2 = _zones(s1), _zones(s2)
    zone1 = zone2 = -1
    sv1, svf1, sc1, sf1 = _get(s1, v1, 0), _get(s1, vf1, 0), _get(s1, c1, 0), _get(s1, f1, 0)
    sv2, svf2, sc2, sf2 = _get(s2, v2, 0), _get(s2, vf2, 0), _get(s2, c2, 0), _get(s2, f2, 0)
    for r in range(values.size // cols if cols else 0):
        f = _factor(per_row, r)
        # unsigned cell indices: no access checks for a negative (wrap-around) index (a third of the loop's time)
        for i in range(np.uint64(r * cols), np.uint64((r + 1) * cols)):
            v = values[i]
            if v != v:  # NaN
                continue
            v = np.float64(v)
            vf = v * f
            z = _zone(a1, b1, n1, i)
            if z >= 0 and z < m1:
                if z != zone1:
                    if zone1 >= 0:
                        _put(s1, v1, zone1, sv1), _put(s1, vf1, zone1, svf1)
                        _put(s1, c1, zone1, sc1), _put(s1, f1, zone1, sf1)
                    zone1 = z
                    sv1, svf1, sc1, sf1 = _get(s1, v1, z), _get(s1, vf1, z), _get(s1, c1, z), _get(s1, f1, z)
                sv1, svf1, sc1, sf1 = _plus(sv1, v), _plus(svf1, vf), _plus(sc1, 1.0), _plus(sf1, f)
            z = _zone(a2, b2, n2, i)
            if z >= 0 and z < m2:
                if z != zone2:
                    if zone2 >= 0:
                        _put(s2, v2, zone2, sv2), _put(s2, vf2, zone2, svf2)
                        _put(s2, c2, zone2, sc2), _put(s2, f2, zone2, sf2)
                    zone2 = z
                    sv2, svf2, sc2, sf2 = _get(s2, v2, z), _get(s2, vf2, z), _get(s2, c2, z), _get(s2, f2, z)
                sv2, svf2, sc2, sf2 = _plus(sv2, v), _plus(svf2, vf), _plus(sc2, 1.0), _plus(sf2, f)
    if zone1 >= 0:
        _put(s1, v1, zone1, sv1), _put(s1, vf1, zone1, svf1), _put(s1, c1, zone1, sc1), _put(s1, f1, zone1, sf1)
    if zone2 >= 0:
        _put(s2, v2, zone2, sv2), _put(s2, vf2, zone2, svf2), _put(s2, c2, zone2, sc2), _put(s2, f2, zone2, sf2)
