"""Restoring a share of land in priority order without a global sort: per-window histograms of the priority.

`scenarios.restore` sorts every cell of the globe by priority. Here the same result comes from streaming passes:
(1) each window adds, per zone, the converted area falling in each histogram bin of the priority (the top 16 bits
of its order-preserving integer key: 2^16 bins, kept sparse); the bins, ordered, give each zone's threshold bin,
where the restored share is reached, and the area of all better bins; (2) only the cells of the threshold bins
are gathered and sorted exactly (priority, then grid position, as the stable sort does); (3) each window restores
its cells whole above the threshold bin, not at all below it, and from that short sorted list inside it.
"""

from dataclasses import dataclass

import numpy as np

BIN_SHIFT = np.uint64(48)  # 64-bit key >> 48: 2^16 bins


def rank_key(priority: np.ndarray) -> np.ndarray:
    """uint64 keys ordering cells as `scenarios.priority_order`: high priority first, NaN last."""
    key = -np.where(np.isnan(priority), -np.inf, np.asarray(priority, dtype="float64")) + 0.0  # no -0.0
    bits = key.view("uint64") if key.flags.c_contiguous else np.ascontiguousarray(key).view("uint64")
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


def window_histogram(key: np.ndarray, zone: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse per-(zone, bin) sums of `area`: (combined ids zone << 16 | bin, sums); zones < 0 are left out."""
    keep = (zone >= 0) & (area > 0)
    combined = (zone[keep].astype("uint64") << np.uint64(16)) | (key[keep] >> BIN_SHIFT)
    ids, inverse = np.unique(combined, return_inverse=True)
    return ids, np.bincount(inverse, weights=area[keep], minlength=len(ids))


def _zone_and_bin(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (zone, bin) of each combined id of `window_histogram`."""
    return (ids >> np.uint64(16)).astype("int64"), (ids & np.uint64(0xFFFF)).astype("int64")


def merge_histograms(parts) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, "uint64")
    sums = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    merged, inverse = np.unique(ids, return_inverse=True)
    return merged, np.bincount(inverse, weights=sums, minlength=len(merged))


# Window histograms held before they are merged into one (ids and sums, 16 bytes an entry: 64 MB).
PENDING_ENTRIES = 1 << 22


class HistogramSum:
    """Window histograms added in window order, merged whenever those pending hold more than `PENDING_ENTRIES`
    entries, so memory stays bounded by the distinct (zone, bin) pairs however many windows the grid has. Below
    that (the 5' grid's 36 windows) everything is merged once, at the end."""

    def __init__(self):
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.entries = 0

    def add(self, part: tuple[np.ndarray, np.ndarray]) -> None:
        self.pending.append(part)
        self.entries += len(part[0])
        if self.entries > PENDING_ENTRIES:
            self.pending = [merge_histograms(self.pending)]
            self.entries = len(self.pending[0][0])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return merge_histograms(self.pending)


@dataclass(frozen=True)
class Thresholds:
    """Per zone (index = zone): the threshold bin, the area in better bins, and the area to restore."""

    bin: np.ndarray
    area_before: np.ndarray
    target: np.ndarray

    def in_histogram(self, ids: np.ndarray) -> np.ndarray:
        """Whether each (zone, bin) id of a `window_histogram` is its zone's threshold bin: a window holds cells of
        `threshold_cells` if and only if one of its ids is."""
        zone, bins = _zone_and_bin(ids)
        return bins == self.bin[zone]

    def window_state(self, key: np.ndarray, zone: np.ndarray):
        """(in the threshold bin, above it) masks of a window's cells."""
        z = np.maximum(zone, 0)
        cell_bin = (key >> BIN_SHIFT).astype("int64")
        valid = zone >= 0
        return valid & (cell_bin == self.bin[z]), valid & (cell_bin < self.bin[z])


def thresholds(ids: np.ndarray, sums: np.ndarray, n_zones: int, fraction: float) -> Thresholds:
    zone, bins = _zone_and_bin(ids)
    totals = np.bincount(zone, weights=sums, minlength=n_zones)
    target = fraction * totals
    threshold = np.full(n_zones, 1 << 16, dtype="int64")  # past every bin: zone restores everything it has
    before = np.zeros(n_zones)
    start = 0
    for z in np.unique(zone):  # ids are sorted by zone, then bin (best first)
        end = start + int(np.searchsorted(zone[start:], z, side="right"))
        cumulative = np.cumsum(sums[start:end])
        crossing = int(np.searchsorted(cumulative, target[z], side="left"))
        if crossing < end - start:
            threshold[z] = bins[start + crossing]
            before[z] = cumulative[crossing - 1] if crossing else 0.0
        start = end
    return Thresholds(threshold, before, target)


def restore_all(n_zones: int) -> Thresholds:
    """The thresholds of a fraction of 1: every zone's threshold is past its last bin, so every cell is restored
    whole and no histogram or threshold cells are needed (restore with `BinShares.none()`)."""
    return Thresholds(np.full(n_zones, 1 << 16, dtype="int64"), np.zeros(n_zones), np.full(n_zones, np.inf))


def threshold_cells(key, position, zone, area, state: Thresholds):
    """The cells of one window inside their zone's threshold bin: (key, grid position, zone, area)."""
    inside, _ = state.window_state(key, zone)
    inside &= area > 0
    return key[inside], position[inside], zone[inside], area[inside]


@dataclass(frozen=True)
class BinShares:
    """Restored area of every cell in a threshold bin, looked up by grid position."""

    position: np.ndarray
    restored: np.ndarray

    @classmethod
    def from_cells(cls, parts, state: Thresholds) -> "BinShares":
        key, position, zone, area = (np.concatenate([p[i] for p in parts]) for i in range(4))
        order = np.lexsort((position, key, zone))
        key, position, zone, area = key[order], position[order], zone[order], area[order]
        starts = np.r_[0, np.flatnonzero(zone[1:] != zone[:-1]) + 1] if len(zone) else np.zeros(0, int)
        offsets = np.zeros(len(zone))
        cumulative = np.cumsum(area)
        for s in starts:
            offsets[s:] = cumulative[s - 1] if s else 0.0
        before = cumulative - area - offsets + state.area_before[zone]
        restored = np.clip(state.target[zone] - before, 0.0, area)
        by_position = np.argsort(position)
        return cls(position[by_position], restored[by_position])

    @classmethod
    def none(cls) -> "BinShares":
        return cls(np.zeros(0, "int64"), np.zeros(0))

    def lookup(self, position: np.ndarray) -> np.ndarray:
        return self.restored[np.searchsorted(self.position, position)]


def restored_in_window(key, position, zone, area, state: Thresholds, shares: BinShares) -> np.ndarray:
    """Hectares restored per cell of a window (as `scenarios.restore` would give them)."""
    inside, above = state.window_state(key, zone)
    inside &= area > 0
    restored = np.where(above, area, 0.0)
    restored[inside] = shares.lookup(position[inside])
    return restored
