"""Plausibility of a field drop as a whole, beyond each row's contract rules, whatever its declaration says: the SOC
unit judged by the reference stock map at the sites, by the BD of organic horizons and by the header's name; the
depth unit by the profiles' depths; the coordinates by land, the country the declaration names and a swap of
latitude and longitude (thresholds and their grounds: `science.plausibility`).

What the checks need is gathered while the drop is validated, bucket by bucket, in bounded samples
(`EvidenceTally`), and judged once (`judge`). A check that fails refuses the drop, naming the likely cause and the
numbers, unless the declaration confirms the value the check doubts (`confirm: {soc_unit: ..., reason: ...}`): then
the drop goes on and the finding is recorded as confirmed, in provenance and in the materialization metadata. No
Dagster."""

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from soil_pipeline.contracts.declaration import WGS84, TablePlan
from soil_pipeline.contracts.model import TableContract, load_table_contract
from soil_pipeline.contracts.rules import DATASET_KINDS
from soil_pipeline.contracts.stream import StreamValidation
from soil_pipeline.contracts.validate import LandMask, Regions, Validation
from soil_pipeline.engine.points import sample_points
from soil_pipeline.errors import DeclarationError, InputError, Remedy
from soil_pipeline.publishing.parquet import TableFile
from soil_pipeline.science.plausibility import (
    ORGANIC_SOC_G_PER_KG,
    SiteGeometry,
    Verdict,
    depth_verdict,
    geometry_verdict,
    map_ratio_verdict,
    median_profile_bottom,
    organic_bd_verdict,
)
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG
from soil_pipeline.science.units import organic_matter_unit
from soil_pipeline.science.validation import agreement

# Rows kept by each sample: between this and twice as many, spread evenly over the table.
SAMPLE_ROWS = 20_000
# A SOC header naming organic matter (OM, SOM, MO, MOS, organic matter) rather than organic carbon.
ORGANIC_MATTER_HEADER = re.compile(r"(^|[^a-z])(s?om|mos?|organic[ _.-]?matter|mat[ _.-]?org)([^a-z]|$)", re.I)
SOC, BD, LOWER = "soc_g_per_kg", "bulk_density_g_per_cm3", "lower_depth_cm"
LON, LAT = "longitude_deg", "latitude_deg"
STOCK = "topsoil_soc_stock_t_c_per_ha"
# A contract's unit guard (a median_between rule) on a column whose unit a declaration may confirm.
GUARD_CONFIRMS = {SOC: "soc_unit", BD: "bd_unit"}


class _Sample:
    """Every `stride`-th row of the frames added (the stride doubling whenever more than twice `cap` rows are
    kept): a deterministic sample spread over the whole table, in bounded memory."""

    def __init__(self, cap: int = SAMPLE_ROWS):
        self.cap, self.stride, self.seen, self.parts = cap, 1, 0, []

    def add(self, frame: pd.DataFrame) -> None:
        picks = (self.seen + np.arange(len(frame))) % self.stride == 0
        self.seen += len(frame)
        if picks.any():
            self.parts.append(frame[picks])
        if sum(len(part) for part in self.parts) > 2 * self.cap:
            self.parts, self.stride = [pd.concat(self.parts, ignore_index=True).iloc[::2]], self.stride * 2

    def frame(self, columns: list[str]) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=columns)


class EvidenceTally:
    """What the plausibility checks need of a drop, fed by the validation of each bucket: the located sites, the
    profile bottoms and organic horizons of the valid horizons, and the sites' 0-30 cm stocks."""

    def __init__(self):
        self.sites, self.bottoms, self.organic, self.stocks = _Sample(), _Sample(), _Sample(), _Sample()
        self.located = self.organic_rows = 0
        self.ranges = {"numeric": 0, "out_of_range": 0, "in_range_swapped": 0, "metre_like": 0}

    def add_sites(self, validation: Validation) -> None:
        checked = validation.checked
        lon, lat = checked[LON].astype("float64"), checked[LAT].astype("float64")
        located = lon.between(-180, 180) & lat.between(-90, 90)
        self.located += int(located.sum())
        self.sites.add(pd.DataFrame({LON: lon[located].to_numpy(), LAT: lat[located].to_numpy()}))
        outside = lon.notna() & lat.notna() & ~located
        counts = {
            "numeric": lon.notna() & lat.notna(),
            "out_of_range": outside,
            "in_range_swapped": outside & lat.between(-180, 180) & lon.between(-90, 90),
            "metre_like": outside & ((lon.abs() >= 1000) | (lat.abs() >= 1000)),
        }
        for key, flags in counts.items():
            self.ranges[key] += int(flags.sum())

    def add_horizons(self, validation: Validation, stocks: pd.DataFrame | None) -> None:
        valid = validation.valid
        bottoms = valid.groupby("site_id", sort=False)[LOWER].max()
        self.bottoms.add(pd.DataFrame({"bottom_cm": bottoms.to_numpy(dtype="float64")}))
        organic = valid.loc[(valid[SOC] > ORGANIC_SOC_G_PER_KG) & valid[BD].notna(), BD]
        self.organic_rows += len(organic)
        self.organic.add(pd.DataFrame({BD: organic.to_numpy(dtype="float64")}))
        if stocks is not None:
            found = stocks.loc[stocks[STOCK].notna(), ["site_id", STOCK]]
            self.stocks.add(found.astype({"site_id": "str", STOCK: "float64"}).reset_index(drop=True))


@dataclass(frozen=True)
class Finding:
    """One plausibility check of a drop: the declaration key confirming it (`check`), what it looked at (`name`),
    the table it concerns, its verdict, and the declaration's reason when confirmed."""

    check: str
    name: str
    table: str
    verdict: Verdict
    confirmed: str | None = None

    @property
    def refuses(self) -> bool:
        return not self.verdict.passed and self.confirmed is None

    def record(self) -> dict:
        """For provenance and metadata: outcome, evidence and figures."""
        outcome = "passed" if self.verdict.passed else "confirmed by the declaration" if self.confirmed else "failed"
        record = {"check": self.check, "outcome": outcome, "evidence": self.verdict.text, **self.verdict.figures}
        return record | ({"confirmation_reason": self.confirmed} if self.confirmed else {})

    def line(self) -> str:
        """One line for check-drop and logs."""
        if self.verdict.passed:
            return f"{self.name}: passed ({self.verdict.text})"
        if self.confirmed:
            confirmed = f"CONFIRMED by the declaration ({self.check}; reason: {self.confirmed})"
            return f"{self.name}: {confirmed}: {self.verdict.text}"
        return f"{self.name}: {self.verdict.text}"

    def error(self, path) -> InputError:
        return InputError(
            path,
            f"plausibility {self.name}: {self.verdict.text}. If the values are right, confirm it in the declaration: "
            f"confirm: {{{self.check}: <the declared value>, reason: <why>}}",
            Remedy.PLAUSIBILITY,
        )


def _plan(plans: dict[str, TablePlan] | None, table: str) -> TablePlan | None:
    return (plans or {}).get(table)


def _unit(plan: TablePlan | None, contract: TableContract, column: str) -> str:
    if plan is not None and column in plan.units:
        return plan.units[column][0]
    return contract.column(column).unit


def judge(
    tally: EvidenceTally,
    sites: StreamValidation,
    land: LandMask | None,
    regions: Regions | None,
    plans: dict[str, TablePlan] | None,
) -> list[Finding]:
    """Every plausibility check the drop has enough data for, in the order coordinates, depths, SOC."""
    site_plan, horizon_plan = _plan(plans, "field_sites"), _plan(plans, "field_horizons")
    horizons_contract = load_table_contract("field_horizons")
    findings = []
    if land is not None and tally.ranges["numeric"]:
        crs = site_plan.coordinates_crs if site_plan else WGS84
        country = site_plan.country if site_plan else ()
        declaration = site_plan.declaration if site_plan else "declaration"
        verdict = geometry_verdict(_geometry(tally, sites, land, regions, country, declaration), crs)
        findings.append(Finding("coordinates_crs", "coordinates", "field_sites", verdict))
    bottoms = tally.bottoms.frame(["bottom_cm"])["bottom_cm"]
    depth_unit = _unit(horizon_plan, horizons_contract, LOWER)
    if (verdict := depth_verdict(len(bottoms), median_profile_bottom(bottoms), depth_unit)) is not None:
        findings.append(Finding("depth_unit", "profile_depth", "field_horizons", verdict))
    soc_unit = _unit(horizon_plan, horizons_contract, SOC)
    header = next((s for s, t in horizon_plan.source_columns.items() if t == SOC), SOC) if horizon_plan else SOC
    if ORGANIC_MATTER_HEADER.search(header) and not organic_matter_unit(soc_unit):
        text = (
            f"the SOC column's header {header!r} names organic matter, declared in {soc_unit} of organic carbon; "
            "likely cause: the SOC unit (organic matter is 1.72 x organic carbon: declare '% OM' or 'g/kg OM')"
        )
        findings.append(Finding("soc_unit", "organic_matter_header", "field_horizons", Verdict(False, text, {})))
    organic = tally.organic.frame([BD])[BD]
    if (
        verdict := organic_bd_verdict(tally.organic_rows, float(np.median(organic)) if len(organic) else 0)
    ) is not None:
        findings.append(Finding("soc_unit", "organic_horizon_bd", "field_horizons", verdict))
    if land is not None and (verdict := _map_verdict(tally, sites.valid, land, soc_unit)) is not None:
        findings.append(Finding("soc_unit", "reference_map", "field_horizons", verdict))
    confirmed = {**(site_plan.confirmed if site_plan else {}), **(horizon_plan.confirmed if horizon_plan else {})}
    reason = confirmed.get("reason")
    return [
        Finding(f.check, f.name, f.table, f.verdict, reason if f.check in confirmed and not f.verdict.passed else None)
        for f in findings
    ]


def _geometry(
    tally: EvidenceTally,
    sites: StreamValidation,
    land: LandMask,
    regions: Regions | None,
    country: tuple[str, ...],
    declaration: str,
) -> SiteGeometry:
    """Off land (the per-site rule's count), and over the sample the shares on land and in `country` as given and
    with latitude and longitude exchanged."""
    contract = sites.contract
    rule = next(r for r in contract.rules if r.kind == "point_on_land")
    off_land = int(sites.by_rule.get((rule.id, f"{rule.params['longitude']},{rule.params['latitude']}"), 0))
    sample = tally.sites.frame([LON, LAT])
    lon, lat = sample[LON].to_numpy(dtype="float64"), sample[LAT].to_numpy(dtype="float64")
    cells = rule.params["toleranceCells"]
    swappable = np.abs(lon) <= 90
    on = land.near(lon, lat, cells)
    on_swapped = np.zeros(len(lon), dtype=bool)
    on_swapped[swappable] = land.near(lat[swappable], lon[swappable], cells)
    geometry = {"on_land_pct": _pct(on), "on_land_swapped_pct": _pct(on_swapped)}
    if country and regions is not None:
        if unknown := sorted(set(country) - set(regions.codes)):
            raise DeclarationError(
                declaration, f"country {', '.join(unknown)} is not an ADM0_A3 code of the countries layer"
            )
        given = np.isin(regions.codes_at(lon, lat, COUNTRY_NEAREST_MAX_DEG), country)
        exchanged = np.zeros(len(lon), dtype=bool)
        exchanged[swappable] = np.isin(
            regions.codes_at(lat[swappable], lon[swappable], COUNTRY_NEAREST_MAX_DEG), country
        )
        geometry |= {
            "country": "/".join(country),
            "in_country_pct": _pct(given),
            "in_country_swapped_pct": _pct(exchanged),
        }
    return SiteGeometry(n=tally.located, off_land=off_land, sample=len(lon), **geometry, **tally.ranges)


def _pct(flags: np.ndarray) -> float:
    return 100.0 * float(np.mean(flags)) if len(flags) else float("nan")


def _map_verdict(tally: EvidenceTally, valid_sites: TableFile | None, land: LandMask, soc_unit: str) -> Verdict | None:
    """The sampled sites' 0-30 cm field stocks against the reference map at their cells (`LandMask.source`: the
    stock layer whose cells are land)."""
    stocks = tally.stocks.frame(["site_id", STOCK])
    if not len(stocks) or valid_sites is None:
        return None
    columns = ["site_id", LON, LAT]
    schema = pa.schema([valid_sites.schema.field(name) for name in columns])
    wanted = pa.array(stocks["site_id"].unique(), from_pandas=True).cast(schema.field("site_id").type)
    located = pa.Table.from_batches(
        [batch.filter(pc.is_in(batch.column("site_id"), value_set=wanted)) for batch in valid_sites.batches(columns)],
        schema=schema,
    ).to_pandas()
    joined = stocks.merge(located.drop_duplicates("site_id"), on="site_id", how="inner")
    lon, lat = joined[LON].to_numpy(dtype="float64"), joined[LAT].to_numpy(dtype="float64")
    values = sample_points(land.source, lon, lat, 0).astype("float64")
    mapped = land.is_land(values, None) & (values > 0)
    found = agreement(np.where(mapped, values, np.nan), joined[STOCK].to_numpy(dtype="float64"))
    return map_ratio_verdict(int(found["n"]), found["median_map_to_field_ratio"], soc_unit)


def confirmed_guards(validation: StreamValidation, plan: TablePlan | None) -> list[Finding]:
    """The contract's unit guards whose unit the declaration confirms: a broken one leaves the validation's errors
    and becomes a confirmed finding (recorded, not refusing), e.g. a peat survey's median SOC above 200 g/kg."""
    found = []
    for rule in validation.contract.rules:
        check = GUARD_CONFIRMS.get(rule.params.get("column")) if rule.kind == "median_between" else None
        if plan is None or check not in plan.confirmed:
            continue
        text = f"{validation.contract.label}: {DATASET_KINDS[rule.kind].detail(rule)[1]}"
        if text in validation.batch_errors:
            validation.batch_errors.remove(text)
            verdict = Verdict(False, text, {"rule": rule.id})
            found.append(Finding(check, rule.id, validation.contract.id, verdict, plan.confirmed["reason"]))
    return found


def refusals(findings: list[Finding], paths: dict) -> list[InputError]:
    """The errors of the failed, unconfirmed checks, naming the table each concerns."""
    return [finding.error(paths[finding.table]) for finding in findings if finding.refuses]
