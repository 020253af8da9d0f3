"""Restoration scenarios as streaming passes of the raster engine: no global array, no global sort.

Pass 1 adds per-window histograms of the priority (per scope zone, weighted by converted land), pass 2 gathers the
cells of each zone's threshold bin, pass 3 restores each window's cells and sums the scenario's quantities per
region, building the restored-share map block by block (see `science/ranking.py`). With a pasture raster, the
cropland-only variant is ranked the same way on its own.

Several scenarios on one grid share the passes: each window's land cells are read and derived once (`LandCells`),
then ranked, restored and summed by each scenario (`ScenarioRanking`) in turn; a scenario's parts are keyed by its
id, and each sum adds the same values in the same window order as a pass of its own would.
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
class LandCells:
    """One window's land cells (those with a 2010 stock or converted land) and their land use, the same for every
    scenario on the grid; picklable."""

    layers: zonal.ZonalTask
    factors: scenarios.LandUseFactors  # losses per ha and Table 5.5 class, indexed by climate zone code
    with_pasture: bool

    @property
    def variants(self) -> tuple[str, ...]:
        return (CONVERTED, CROPLAND_ONLY) if self.with_pasture else (CONVERTED,)

    def ranking_cells(self, window, zoned: bool) -> dict:
        """What ranking needs of a window's land cells (read from `RANKING_LAYERS` and, when `zoned`, the zone layers
        and their zones): position, stocks and the converted area of each variant (`ScenarioRanking.inputs`)."""
        cells = self._land_cells(window, [*RANKING_LAYERS, *(ZONE_LAYERS if zoned else ())])
        layers = cells.pop("layers")
        cells["zones"] = self.layers.zonings(layers) if zoned else None
        cropland, pasture = self._areas(cells)
        cells["converted"] = {CONVERTED: cropland + pasture}
        if self.with_pasture:
            cells["converted"][CROPLAND_ONLY] = cropland + np.zeros_like(pasture)
        return cells

    def cells(self, window) -> dict:
        """Every layer of a window's land cells, their zones, land uses (`_land_use`) and debt (`CellDebt`)."""
        cells = self._land_cells(window, list(self.layers.sources))
        layers = cells.pop("layers")
        climate = layers["climate_zone"].astype("int64")
        cells |= {
            "stock_error": layers["soc_stock_error"].astype("float64"),
            "climate_class": self.factors.class_of_code[climate],
            "zones": self.layers.zonings(layers),
        }
        cells["land_use"], cells["grazing"] = self._land_use(cells, climate)
        cells["converted"] = {variant: land.converted_ha for variant, land in cells["land_use"].items()}
        cells["debt"] = scenarios.CellDebt.of(cells["soc_2010"], cells["soc_no_land_use"], cells["area_ha"])
        return cells

    def _land_cells(self, window, names: list[str]) -> dict:
        """The window's land cells: grid position, stocks, areas (ha), `layers` (each other layer of `names` at
        those cells), `keys` (rank keys by priority criterion) and `scopes` (scope zones by region type), both
        filled as scenarios ask for them."""
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
            "keys": {},
            "scopes": {},
        }

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


@dataclass(frozen=True)
class ScenarioRanking:
    """How one scenario ranks land cells: by its priority criterion, within its scope zones; picklable."""

    scenario: scenarios.Scenario
    scope_sizes: int | None  # zones of the scope region type, for within_region scenarios

    @property
    def zoned(self) -> bool:
        return self.scenario.scope == "within_region"

    @property
    def n_zones(self) -> int:
        return (self.scope_sizes + 1) if self.scope_sizes is not None else 1

    def inputs(self, cells: dict, variant: str):
        """(rank key, grid position, scope zone, converted ha) of the cells, for `ranking`."""
        priority = self.scenario.priority
        if priority not in cells["keys"]:
            criterion = scenarios.PRIORITY_CRITERIA[priority]
            cells["keys"][priority] = ranking.rank_key(criterion(cells["soc_2010"], cells["soc_no_land_use"]))
        key = cells["keys"][priority]
        if self.zoned:  # cells outside every region of the scope are a zone of their own, the last
            region_type = self.scenario.scope_region_type
            if region_type not in cells["scopes"]:
                zone = cells["zones"][region_type]
                cells["scopes"][region_type] = np.where(zone < 0, self.scope_sizes, zone)
            zone = cells["scopes"][region_type]
        else:
            zone = np.zeros(key.shape, "int64")
        return key, cells["position"], zone, cells["converted"][variant]


def _part(scenario_id: str, name: str) -> str:
    """The name of a scenario's part of a pass's output (`_split` takes it apart)."""
    return f"{scenario_id}/{name}"


@dataclass(frozen=True)
class HistogramPass:
    land: LandCells
    rankings: tuple[ScenarioRanking, ...]

    def __call__(self, window) -> dict:
        cells = self.land.ranking_cells(window, any(r.zoned for r in self.rankings))
        out = {}
        for r in self.rankings:
            for variant in cells["converted"]:
                key, _, zone, area = r.inputs(cells, variant)
                out[_part(r.scenario.id, f"hist/{variant}")] = ranking.window_histogram(key, zone, area)
        return out


@dataclass(frozen=True)
class ThresholdPass:
    """The cells of each variant's threshold bins, read only in the windows (top-left (row, column) offsets) of
    each scenario whose histograms have any (`ranking.Thresholds.in_histogram`); any other window gives nothing."""

    land: LandCells
    rankings: tuple[ScenarioRanking, ...]
    states: tuple[dict[str, ranking.Thresholds], ...]  # per ranking
    windows: tuple[frozenset[tuple[int, int]], ...]  # per ranking

    def __call__(self, window) -> dict:
        chosen = [k for k, windows in enumerate(self.windows) if _offset(window) in windows]
        if not chosen:
            return {}
        cells = self.land.ranking_cells(window, any(self.rankings[k].zoned for k in chosen))
        return {
            _part(self.rankings[k].scenario.id, f"bin/{variant}"): ranking.threshold_cells(
                *self.rankings[k].inputs(cells, variant), state
            )
            for k in chosen
            for variant, state in self.states[k].items()
        }


@dataclass(frozen=True)
class SumPass:
    land: LandCells
    rankings: tuple[ScenarioRanking, ...]
    states: tuple[dict[str, ranking.Thresholds], ...]  # per ranking
    shares: tuple[dict[str, ranking.BinShares], ...]  # per ranking
    region_types: tuple[str, ...]

    def __call__(self, window) -> dict:
        cells = self.land.cells(window)
        part = {}
        for r, states, shares in zip(self.rankings, self.states, self.shares, strict=True):
            part.update(
                {
                    _part(r.scenario.id, name): value
                    for name, value in self._one(window, cells, r, states, shares).items()
                }
            )
        return part

    def _one(self, window, cells: dict, r: ScenarioRanking, states: dict, shares: dict) -> dict:
        """One scenario's sums per region of the window and its map blocks (`map`)."""
        part = {}
        for variant in states:
            restored = ranking.restored_in_window(*r.inputs(cells, variant), states[variant], shares[variant])
            values = scenarios.cell_quantities(
                r.scenario,
                cells["soc_2010"],
                cells["soc_no_land_use"],
                cells["land_use"][variant],
                cells["climate_class"],
                len(self.land.factors.classes),
                restored=restored,
                grazing=cells["grazing"] if variant == CONVERTED else None,
                split_classes=False,
                debt=cells["debt"],
            )
            values |= scenarios.stock_error_quantities(
                cells["soc_2010"], cells["stock_error"], cells["area_ha"], restored
            )
            kinds = self.region_types if variant == CONVERTED else ("global",)
            part.update({f"{variant}/{name}": v for name, v in self._sums(values, cells, kinds).items()})
            if variant == CONVERTED:
                part["map"] = _map_blocks(window, cells, restored, map_block(self.land.layers.grid))
        return part

    def _sums(self, values: dict, cells: dict, kinds: tuple[str, ...]) -> dict:
        """`{region type}/{quantity}`: the window's sums of `values` per region of each of `kinds` (the grazing
        alternatives for the world only). A set-aside gain's cropland part (`scenarios.BY_CLASS`) is summed per
        region and climate class in one loop over the cells (a cross zoning) and split into its per-class sums."""
        n_classes = len(self.land.factors.classes)
        zones, sizes, names, wanted = {}, {}, {}, {}
        everywhere = _not_global_only(values, cells["grazing"])
        for kind in kinds:
            wanted[kind] = list(values) if kind == "global" else everywhere
            zones[kind], sizes[kind] = cells["zones"][kind], self.land.layers.sizes[kind]
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


def run(land: LandCells, rankings: tuple[ScenarioRanking, ...], window_list, executor, threads: int, region_types):
    """{scenario id: (sums keyed `{variant}/{region type}/{quantity}`, restored-share and land map blocks, pass
    reports)}. Restoring all converted land (a fraction of 1) needs no ranking: such a scenario joins only the last
    pass."""
    ranked = tuple(r for r in rankings if r.scenario.fraction < 1.0)
    states, shares, reports = _rank(land, ranked, window_list, executor, threads) if ranked else ({}, {}, [])
    for r in rankings:
        if r.scenario.fraction >= 1.0:
            states[r.scenario.id] = {variant: ranking.restore_all(r.n_zones) for variant in land.variants}
            shares[r.scenario.id] = {variant: ranking.BinShares.none() for variant in land.variants}
    ids = [r.scenario.id for r in rankings]
    task = SumPass(land, rankings, tuple(states[i] for i in ids), tuple(shares[i] for i in ids), region_types)
    sums, maps, last = _restore(task, window_list, executor, threads)
    return {
        r.scenario.id: (sums.get(r.scenario.id, {}), maps[r.scenario.id], [*(reports if r in ranked else []), last])
        for r in rankings
    }


def _split(part: dict) -> dict[str, dict]:
    """{scenario id: {name: value}} of a pass's output keyed `{scenario id}/{name}`."""
    out: dict[str, dict] = {}
    for name, value in part.items():
        scenario_id, rest = name.split("/", 1)
        out.setdefault(scenario_id, {})[rest] = value
    return out


def _rank(land: LandCells, ranked: tuple[ScenarioRanking, ...], window_list, executor, threads: int):
    """Passes 1 and 2 of the ranked scenarios: ({id: {variant: thresholds}}, {id: {variant: bin shares}}, reports)."""
    histograms: dict[str, dict[str, ranking.HistogramSum]] = {r.scenario.id: {} for r in ranked}
    window_ids: dict[tuple[int, int], dict] = {}  # a few kB a window: each scenario's (zone, bin) ids

    def keep_histograms(window, part):
        for scenario_id, names in _split(part).items():
            for name, value in names.items():
                variant = name.split("/", 1)[1]
                histograms[scenario_id].setdefault(variant, ranking.HistogramSum()).add(value)
                window_ids.setdefault(_offset(window), {}).setdefault(scenario_id, {})[variant] = value[0]
        return {}

    _, first = engine.run_pass(
        HistogramPass(land, ranked), window_list, executor, threads, "ranking histograms", consume=keep_histograms
    )
    states = {
        r.scenario.id: {
            variant: ranking.thresholds(*histogram.result(), r.n_zones, r.scenario.fraction)
            for variant, histogram in histograms[r.scenario.id].items()
        }
        for r in ranked
    }
    windows = tuple(
        frozenset(
            offset
            for offset, ids in window_ids.items()
            if any(
                states[r.scenario.id][variant].in_histogram(variant_ids).any()
                for variant, variant_ids in ids.get(r.scenario.id, {}).items()
            )
        )
        for r in ranked
    )
    gathered: dict[str, dict[str, list]] = {
        r.scenario.id: {variant: [] for variant in states[r.scenario.id]} for r in ranked
    }

    def keep_cells(window, part):
        for scenario_id, names in _split(part).items():
            for name, value in names.items():
                gathered[scenario_id][name.split("/", 1)[1]].append(value)
        return {}

    task = ThresholdPass(land, ranked, tuple(states[r.scenario.id] for r in ranked), windows)
    _, second = engine.run_pass(task, window_list, executor, threads, "threshold cells", consume=keep_cells)
    shares = {
        scenario_id: {
            variant: ranking.BinShares.from_cells(parts, states[scenario_id][variant])
            if parts
            else ranking.BinShares.none()
            for variant, parts in variants.items()
        }
        for scenario_id, variants in gathered.items()
    }
    return states, shares, [first, second]


def _offset(window) -> tuple[int, int]:
    return int(window.row_off), int(window.col_off)


def _restore(task: SumPass, window_list, executor, threads):
    """The last pass: each window's cells restored, each scenario's sums per region and its map blocks
    ({id: sums}, {id: (share map, land map)}, report)."""
    grid = task.land.layers.grid
    block = map_block(grid)
    shape = (-(-grid.height // block), -(-grid.width // block))
    maps = {r.scenario.id: (np.zeros(shape), np.zeros(shape)) for r in task.rankings}

    def keep_map(window, part):
        r0, c0 = int(window.row_off) // block, int(window.col_off) // block
        for scenario_id, (share_map, land_map) in maps.items():
            share, land = part.pop(_part(scenario_id, "map"))
            share_map[r0 : r0 + share.shape[0], c0 : c0 + share.shape[1]] = share
            land_map[r0 : r0 + land.shape[0], c0 : c0 + land.shape[1]] = land
        return part

    sums, report = engine.run_pass(task, window_list, executor, threads, "scenario sums", consume=keep_map)
    return _split(sums), maps, report
