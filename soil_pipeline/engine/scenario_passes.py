"""A restoration scenario as streaming passes of the raster engine: no global array, no global sort.

Pass 1 adds per-window histograms of the priority (per scope zone, weighted by converted land), pass 2 gathers the
cells of each zone's threshold bin, pass 3 restores each window's cells and sums the scenario's quantities per
region, building the restored-share map block by block (see `science/ranking.py`). With a pasture raster, the
cropland-only variant is ranked the same way on its own.
"""

from dataclasses import dataclass

import numpy as np

from soil_pipeline.engine import raster as engine
from soil_pipeline.engine import zonal
from soil_pipeline.science import ranking, scenarios
from soil_pipeline.science.aggregation import capped_land_ha, ratio
from soil_pipeline.science.grid import map_block, row_areas_ha

CONVERTED, CROPLAND_ONLY = "converted", "cropland_only"


# The layers ranking reads (passes 1 and 2), besides the zone layers of a within_region scope.
RANKING_LAYERS = ("soc_stock", "converted_land", "cropland")
ZONE_LAYERS = ("country", "climate_zone")


@dataclass(frozen=True)
class ScenarioWindow:
    """One window's land cells (those with a 2010 stock or converted land) and their land use; picklable."""

    layers: zonal.ZonalTask
    scenario: scenarios.Scenario
    factors: scenarios.LandUseFactors  # losses per ha and Table 5.5 class, indexed by climate zone code
    with_pasture: bool
    scope_sizes: int | None  # zones of the scope region type, for within_region scenarios

    def ranking_cells(self, window) -> dict:
        """What ranking needs of a window's land cells (read from `RANKING_LAYERS` and, for a within_region scope,
        the zone layers): position, scope zone and the converted area of each variant (`ranking_inputs`)."""
        scoped = self.scenario.scope == "within_region"
        cells = self._land_cells(window, [*RANKING_LAYERS, *(ZONE_LAYERS if scoped else ())])
        cells["scope"] = self._scope(self.layers.zonings(cells["layers"])) if scoped else None
        cropland, pasture = self._areas(cells)
        cells["converted"] = {CONVERTED: cropland + pasture}
        if self.with_pasture:
            cells["converted"][CROPLAND_ONLY] = cropland + np.zeros_like(pasture)
        return cells

    def cells(self, window) -> dict:
        """Every layer of a window's land cells, their zones and land uses (`_land_use`)."""
        cells = self._land_cells(window, list(self.layers.sources))
        layers = cells.pop("layers")
        climate = layers["climate_zone"].astype("int64")
        zones = self.layers.zonings(layers)
        cells |= {
            "stock_error": layers["soc_stock_error"].astype("float64"),
            "climate_class": self.factors.class_of_code[climate],
            "zones": zones,
            "scope": self._scope(zones),
        }
        cells["land_use"], cells["grazing"] = self._land_use(cells, climate)
        cells["converted"] = {variant: land.converted_ha for variant, land in cells["land_use"].items()}
        return cells

    def _land_cells(self, window, names: list[str]) -> dict:
        """The window's land cells: grid position, stocks, areas (ha), and `layers`, each other layer of `names` at
        those cells."""
        grid, read = self.layers.grid, self.layers.layers(window, names)
        soc = read.pop("soc_stock")
        converted = read.pop("converted_land")
        keep = np.flatnonzero(~np.isnan(soc[0]).ravel() | (converted.ravel() > 0))
        rows, cols = np.divmod(keep, soc.shape[2])
        area = row_areas_ha(grid, window)[rows, 0]
        return {
            "position": (rows + int(window.row_off)) * grid.width + cols + int(window.col_off),
            "soc_2010": soc[0].ravel()[keep].astype("float64"),
            "soc_no_land_use": soc[1].ravel()[keep].astype("float64"),
            "area_ha": area,
            "land_ha": capped_land_ha(converted.ravel()[keep].astype("float64"), area),
            "cropland_ha": read.pop("cropland").ravel()[keep].astype("float64"),
            "layers": {name: layer.ravel()[keep] for name, layer in read.items()},
            "keep": keep,
        }

    def _scope(self, zones: dict) -> np.ndarray | None:
        if self.scenario.scope != "within_region":
            return None
        cells = zones[self.scenario.scope_region_type]
        return np.where(cells < 0, self.scope_sizes, cells)

    @staticmethod
    def _areas(cells: dict) -> tuple[np.ndarray, np.ndarray]:
        """(cropland, pasture) ha of each cell: cropland capped at the land, the rest of the land taken as pasture."""
        cropland = np.minimum(capped_land_ha(cells["cropland_ha"], cells["area_ha"]), cells["land_ha"])
        return cropland, cells["land_ha"] - cropland

    def _land_use(self, cells: dict, climate: np.ndarray):
        """({variant: LandUse}: the converted land and, with pasture, the cropland-only variant; {grazing<j>:
        LandUse}: the converted land under each alternative grazing loss, in the factors' order). Without a pasture
        raster the land of a cell that is not cropland takes the grazing loss (possibly grazed); with one, land that
        is neither is never converted."""
        area = cells["area_ha"]
        cropland, pasture = self._areas(cells)
        crop_loss = self.factors.cropland_loss[climate]
        no_loss = np.zeros(climate.shape)

        def land(grazing_loss):
            other_loss = no_loss if self.with_pasture else grazing_loss
            return scenarios.LandUse(area, cropland, pasture, crop_loss, grazing_loss, other_loss)

        grazing_loss = self.factors.grazing_loss[climate]
        variants = {CONVERTED: land(grazing_loss)}
        if self.with_pasture:
            rest = area - cropland
            rest_loss = ratio(pasture * grazing_loss, rest)
            variants[CROPLAND_ONLY] = scenarios.LandUse(
                area, cropland, np.zeros_like(pasture), crop_loss, grazing_loss, np.nan_to_num(rest_loss)
            )
        alternatives = self.factors.grazing_alternatives.values()
        grazing = {f"grazing{j}": land(loss[climate]) for j, loss in enumerate(alternatives)}
        return variants, grazing

    def ranking_inputs(self, cells: dict, variant: str):
        """(rank key, grid position, scope zone, converted ha) of the cells, for `ranking`."""
        if "key" not in cells:
            priority = scenarios.PRIORITY_CRITERIA[self.scenario.priority]
            cells["key"] = ranking.rank_key(priority(cells["soc_2010"], cells["soc_no_land_use"]))
        key = cells["key"]
        zone = np.zeros(key.shape, "int64") if cells["scope"] is None else cells["scope"]
        return key, cells["position"], zone, cells["converted"][variant]


@dataclass(frozen=True)
class HistogramPass:
    window_task: ScenarioWindow

    def __call__(self, window) -> dict:
        cells = self.window_task.ranking_cells(window)
        out = {}
        for variant in cells["converted"]:
            key, _, zone, area = self.window_task.ranking_inputs(cells, variant)
            out[f"hist/{variant}"] = ranking.window_histogram(key, zone, area)
        return out


@dataclass(frozen=True)
class ThresholdPass:
    """The cells of each variant's threshold bins, read only in `windows` (top-left (row, column) offsets): those
    whose histograms have any (`ranking.Thresholds.in_histogram`); any other window gives nothing."""

    window_task: ScenarioWindow
    states: dict[str, ranking.Thresholds]
    windows: frozenset[tuple[int, int]]

    def __call__(self, window) -> dict:
        if _offset(window) not in self.windows:
            return {}
        cells = self.window_task.ranking_cells(window)
        return {
            f"bin/{variant}": ranking.threshold_cells(*self.window_task.ranking_inputs(cells, variant), state)
            for variant, state in self.states.items()
        }


@dataclass(frozen=True)
class SumPass:
    window_task: ScenarioWindow
    states: dict[str, ranking.Thresholds]
    shares: dict[str, ranking.BinShares]
    region_types: tuple[str, ...]

    def __call__(self, window) -> dict:
        task = self.window_task
        cells = task.cells(window)
        part = {}
        for variant in self.states:
            restored = ranking.restored_in_window(
                *task.ranking_inputs(cells, variant), self.states[variant], self.shares[variant]
            )
            values = scenarios.cell_quantities(
                task.scenario,
                cells["soc_2010"],
                cells["soc_no_land_use"],
                cells["land_use"][variant],
                cells["climate_class"],
                len(task.factors.classes),
                restored=restored,
                grazing=cells["grazing"] if variant == CONVERTED else None,
                split_classes=False,
            )
            values |= scenarios.stock_error_quantities(
                cells["soc_2010"], cells["stock_error"], cells["area_ha"], restored
            )
            kinds = self.region_types if variant == CONVERTED else ("global",)
            part.update({f"{variant}/{name}": v for name, v in self._sums(values, cells, kinds).items()})
            if variant == CONVERTED:
                part["map"] = _map_blocks(window, cells, restored, map_block(task.layers.grid))
        return part

    def _sums(self, values: dict, cells: dict, kinds: tuple[str, ...]) -> dict:
        """`{region type}/{quantity}`: the window's sums of `values` per region of each of `kinds` (the grazing
        alternatives for the world only). A set-aside gain's cropland part (`scenarios.BY_CLASS`) is summed per
        region and climate class in one loop over the cells (a cross zoning) and split into its per-class sums."""
        task = self.window_task
        n_classes = len(task.factors.classes)
        zones, sizes, names, wanted = {}, {}, {}, {}
        everywhere = _not_global_only(values, cells["grazing"])
        for kind in kinds:
            wanted[kind] = list(values) if kind == "global" else everywhere
            zones[kind], sizes[kind] = cells["zones"][kind], task.layers.sizes[kind]
            names[kind] = [name for name in wanted[kind] if not name.endswith(scenarios.BY_CLASS)]
            by_class = [name for name in wanted[kind] if name.endswith(scenarios.BY_CLASS)]
            if by_class:
                crossed = f"{kind}{scenarios.BY_CLASS}"
                zones[crossed] = zonal.CrossZones(zones[kind], cells["climate_class"], n_classes + 1)
                sizes[crossed], names[crossed] = sizes[kind] * (n_classes + 1), by_class
        sums = zonal.window_sums(values, zones, sizes, names)
        out = {}
        for kind in kinds:
            for name in wanted[kind]:
                if not name.endswith(scenarios.BY_CLASS):
                    out[f"{kind}/{name}"] = sums[f"{kind}/{name}"]
                    continue
                per_class = sums[f"{kind}{scenarios.BY_CLASS}/{name}"].reshape(sizes[kind], n_classes + 1)
                class_names = scenarios.class_names(name.removesuffix(scenarios.BY_CLASS), n_classes)[:-1]
                out.update({f"{kind}/{c}": np.ascontiguousarray(per_class[:, k]) for k, c in enumerate(class_names)})
        return out


def _not_global_only(names, grazing: dict) -> list[str]:
    """The quantities of `names` summed for every region type, not for the world only (as the gains under
    alternative grazing losses are, which are published as global sensitivity rows)."""
    global_only = tuple(scenarios.gain_name("central", grazing=key) + "." for key in grazing)
    return [name for name in names if not name.startswith(global_only)]


def _map_blocks(window, cells: dict, restored: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(restored share, land) of the window averaged over `block` x `block` cell blocks (a window at the grid's
    last row or column padded with cells of neither). The land share is each block's count of land cells / its
    cells: the mean of its ones and zeros, exactly."""
    rows, cols = int(window.height), int(window.width)
    shape = (-(-rows // block), -(-cols // block))
    share = np.zeros((shape[0] * block, shape[1] * block))
    r, c = np.divmod(cells["keep"], cols)
    share[r, c] = restored / cells["area_ha"]
    land = np.bincount((r // block) * shape[1] + c // block, minlength=shape[0] * shape[1]) / (block * block)
    return share.reshape(shape[0], block, shape[1], block).mean(axis=(1, 3)), land.reshape(shape)


def run(window_task: ScenarioWindow, window_list, executor, threads: int, region_types: tuple[str, ...]):
    """(sums keyed `{variant}/{region type}/{quantity}`, restored-share and land map blocks, pass reports).
    Restoring all converted land (a fraction of 1) needs no ranking: only the last pass runs."""
    if window_task.scenario.fraction >= 1.0:
        variants = (CONVERTED, CROPLAND_ONLY) if window_task.with_pasture else (CONVERTED,)
        states = {variant: ranking.restore_all(_n_zones(window_task)) for variant in variants}
        shares = {variant: ranking.BinShares.none() for variant in variants}
        return _restore(window_task, window_list, executor, threads, region_types, states, shares)
    histograms: dict[str, ranking.HistogramSum] = {}
    window_ids: dict[tuple[int, int], dict[str, np.ndarray]] = {}  # a few kB a window: its (zone, bin) ids

    def keep_histograms(window, part):
        for name, value in part.items():
            histograms.setdefault(name.split("/", 1)[1], ranking.HistogramSum()).add(value)
            window_ids.setdefault(_offset(window), {})[name.split("/", 1)[1]] = value[0]
        return {}

    _, first = engine.run_pass(
        HistogramPass(window_task), window_list, executor, threads, "ranking histograms", consume=keep_histograms
    )
    fraction = window_task.scenario.fraction
    states = {
        variant: ranking.thresholds(*histogram.result(), _n_zones(window_task), fraction)
        for variant, histogram in histograms.items()
    }
    gathered: dict[str, list] = {variant: [] for variant in states}
    windows = frozenset(
        offset
        for offset, ids in window_ids.items()
        if any(states[variant].in_histogram(variant_ids).any() for variant, variant_ids in ids.items())
    )

    def keep_cells(window, part):
        for name, value in part.items():
            gathered[name.split("/", 1)[1]].append(value)
        return {}

    _, second = engine.run_pass(
        ThresholdPass(window_task, states, windows),
        window_list,
        executor,
        threads,
        "threshold cells",
        consume=keep_cells,
    )
    shares = {
        variant: ranking.BinShares.from_cells(parts, states[variant]) if parts else ranking.BinShares.none()
        for variant, parts in gathered.items()
    }
    sums, maps, reports = _restore(window_task, window_list, executor, threads, region_types, states, shares)
    return sums, maps, [first, second, *reports]


def _offset(window) -> tuple[int, int]:
    return int(window.row_off), int(window.col_off)


def _n_zones(window_task: ScenarioWindow) -> int:
    return (window_task.scope_sizes + 1) if window_task.scope_sizes is not None else 1


def _restore(window_task: ScenarioWindow, window_list, executor, threads, region_types, states, shares):
    """The last pass: each window's cells restored, the scenario's sums per region and the map blocks."""
    grid = window_task.layers.grid
    block = map_block(grid)
    shape = (-(-grid.height // block), -(-grid.width // block))
    share_map, land_map = np.zeros(shape), np.zeros(shape)

    def keep_map(window, part):
        share, land = part.pop("map")
        r0, c0 = int(window.row_off) // block, int(window.col_off) // block
        share_map[r0 : r0 + share.shape[0], c0 : c0 + share.shape[1]] = share
        land_map[r0 : r0 + land.shape[0], c0 : c0 + land.shape[1]] = land
        return part

    sums, report = engine.run_pass(
        SumPass(window_task, states, shares, region_types),
        window_list,
        executor,
        threads,
        "scenario sums",
        consume=keep_map,
    )
    return sums, (share_map, land_map), [report]
