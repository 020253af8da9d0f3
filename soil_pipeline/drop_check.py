"""Check a field-sample drop without publishing anything: read it by its declaration, validate it against the
contracts as the `field_drop` asset does, compute the 0-30 cm stocks, judge its plausibility (`drop_evidence`), and
say what would be quarantined or refused, with every row accounted for (`soil-pipeline check-drop`). What the report
quotes from the drop (file names, values) is printed with its control characters escaped, so a file name cannot
forge a line of it. No Dagster."""

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from soil_pipeline.contracts.declaration import (
    FieldDeclaration,
    TablePlan,
    find_table_file,
    plan_table,
    resolve_declaration,
    table_header,
)
from soil_pipeline.contracts.model import load_raster_contract, load_table_contract
from soil_pipeline.contracts.raster import check_raster
from soil_pipeline.contracts.stream import StreamValidation
from soil_pipeline.contracts.validate import LandMask, Regions
from soil_pipeline.drop_evidence import Finding, refusals
from soil_pipeline.ingest import DropValidation, site_references, validate_drop
from soil_pipeline.readers import read_countries

TABLES = ("field_sites", "field_horizons")
SHOWN_REJECTS = 20


@dataclass(frozen=True)
class TableCheck:
    """What validating one table of the drop found (the tables themselves are not kept)."""

    n_in: int
    published: int
    identical_copies: int  # copies collapsed into a published row
    rejected_rows: int
    by_rule: Counter
    first_rejects: pd.DataFrame
    first_copies: pd.DataFrame  # source_file, source_line, copy_of_line
    undeclared_missing: pd.DataFrame  # column, value, rows, first_line

    @classmethod
    def of(cls, validation: StreamValidation) -> "TableCheck":
        validation.reconcile()
        copies = validation.copies.head(SHOWN_REJECTS) if validation.copies is not None else pd.DataFrame()
        return cls(
            n_in=validation.n_checked,
            published=validation.n_valid,
            identical_copies=validation.identical_copies,
            rejected_rows=validation.rejected_rows,
            by_rule=validation.by_rule,
            first_rejects=validation.sample().head(SHOWN_REJECTS),
            first_copies=copies,
            undeclared_missing=validation.undeclared_missing(),
        )


@dataclass
class DropCheck:
    declaration: FieldDeclaration
    paths: dict[str, Path]
    plans: dict[str, TablePlan]
    tables: dict[str, TableCheck]
    sites_with_stock: int | None  # None: refused before the stocks
    stock_exclusions: Counter
    refusals: list[str] = field(default_factory=list)
    evidence: list[Finding] = field(default_factory=list)

    @property
    def publishable(self) -> bool:
        return not self.refusals


def raw_references(soc_stock_2010_raster: str, countries_vector: str) -> tuple[LandMask, Regions]:
    """`ingest.site_references` from the raw inputs: the land mask and regions `field_drop` checks sites against.

    check-drop publishes nothing and may run before the pipeline ever has, so it reads the WHRC 2010 raster itself
    (checked against its contract first, as `soc_stock_grid` does) rather than the grid the pipeline made of it:
    no data is the contract's no-data value there and NaN on the grid, and the one `HasValue` rule of
    `site_references` reads both. With the default inputs the same cells are land: the default common grid is the
    raster's own lattice, and the two WHRC layers (the grid keeps cells both cover) cover the same cells. The
    countries are read by the `countries` asset's reader."""
    checked = check_raster(soc_stock_2010_raster, load_raster_contract("soc_stock_2010_raster"))
    return site_references(read_countries(countries_vector), checked.source)


def check_drop(
    drop_dir: Path,
    declaration: str | None = None,
    land: LandMask | None = None,
    regions: Regions | None = None,
    landing_dir: Path | None = None,
) -> DropCheck:
    """Validate one drop folder as `field_drop` does (the same chunked reading, declaration per chunk and bucketed
    validation, in bounded memory, in a temporary folder); InputError/DeclarationError for a drop that cannot be
    read at all."""
    drop_dir = Path(drop_dir)
    landing_dir = Path(landing_dir) if landing_dir else drop_dir.parent.parent
    found = resolve_declaration(drop_dir, declaration)
    contracts = {name: load_table_contract(name) for name in TABLES}
    paths = {name: find_table_file(drop_dir, found, name, landing_dir) for name in TABLES}
    plans = {name: plan_table(found, name, contracts[name], paths[name], table_header(paths[name])) for name in TABLES}
    with tempfile.TemporaryDirectory(prefix="soil_pipeline_check_drop_") as work:
        drop = validate_drop(paths, contracts, Path(work), land=land, regions=regions, plans=plans)
        tables = {"field_sites": TableCheck.of(drop.sites), "field_horizons": TableCheck.of(drop.horizons)}
    refused = [f"{paths[name]}: {error}" for name, v in _validations(drop).items() for error in v.batch_errors]
    refused += [str(error) for error in refusals(drop.evidence, paths)]
    if any(v.batch_errors for v in _validations(drop).values()):
        return DropCheck(found, paths, plans, tables, None, Counter(), refused, drop.evidence)
    rule = next(r for r in load_table_contract("topsoil_soc_stocks").rules if r.kind == "min_non_null")
    if drop.sites_with_stock < rule.params["minimum"]:
        refused.append(
            f"{paths['field_horizons']}: {rule.id}: {drop.sites_with_stock} site(s) with a 0-30 cm stock, "
            f"at least {rule.params['minimum']} required"
        )
    return DropCheck(found, paths, plans, tables, drop.sites_with_stock, drop.stock_exclusions, refused, drop.evidence)


def _validations(drop: DropValidation) -> dict[str, StreamValidation]:
    return {"field_sites": drop.sites, "field_horizons": drop.horizons}


def reconciliation(check: DropCheck) -> str:
    """in = published + identical copies collapsed into a published row + rejected (rows read; the validation
    raises when they do not add up), and the published sites = with a 0-30 cm stock + null with a reason."""
    parts = []
    for name, label in (("field_sites", "sites"), ("field_horizons", "horizons")):
        t = check.tables[name]
        copies = f" + {t.identical_copies} identical copies" if t.identical_copies else ""
        parts.append(f"{label} {t.n_in} in = {t.published} published{copies} + {t.rejected_rows} rejected")
    if check.sites_with_stock is not None:
        sites = check.tables["field_sites"].published
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(check.stock_exclusions.items()))
        parts.append(
            f"stocks {sites} sites = {check.sites_with_stock} with a 0-30 cm stock + "
            f"{sites - check.sites_with_stock} null with a reason" + (f" ({detail})" if detail else "")
        )
    return "; ".join(parts)


def printable(text: str) -> str:
    """`text` with every control character (newline, carriage return, escape, ...) escaped, so it stays on one line
    and cannot forge another."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def report(check: DropCheck) -> str:
    """What `soil-pipeline check-drop` prints: one line per item, whatever the drop's file names and values hold."""
    return "\n".join(printable(line) for line in _report_lines(check))


def _report_lines(check: DropCheck) -> list[str]:
    lines = [f"Declaration: {check.declaration.path} ({check.declaration.name})"]
    for name in TABLES:
        plan = check.plans[name]
        lines.append(f"{check.paths[name]} -> {name}: {check.tables[name].n_in} rows")
        lines += [f"  converted {column}: {text}" for column, text in plan.conversions().items()]
        if plan.fixed:
            lines.append(f"  fixed: {', '.join(f'{k} = {value}' for k, value in plan.fixed.items())}")
        if plan.absent:
            lines.append(f"  absent, null: {', '.join(plan.absent)}")
    by_rule = sum((check.tables[name].by_rule for name in TABLES), Counter())
    n_rejects = sum(by_rule.values())
    lines.append(f"Would quarantine {n_rejects} reject row(s):")
    lines += [f"  {rule}:{column}: {n}" for (rule, column), n in sorted(by_rule.items())]
    rejects = pd.concat([check.tables[name].first_rejects for name in TABLES], ignore_index=True)
    for row in rejects.head(SHOWN_REJECTS).itertuples(index=False):
        value = "(missing)" if pd.isna(row.value) else repr(row.value)
        lines.append(f"  {row.source_file}:{row.source_line} {row.rule} {row.column} {value}: {row.detail}")
    if n_rejects > SHOWN_REJECTS:
        lines.append(f"  ... and {n_rejects - SHOWN_REJECTS} more")
    for name in TABLES:
        table = check.tables[name]
        if table.identical_copies:
            lines.append(f"Would collapse {table.identical_copies} identical copies into the row they repeat:")
            lines += [
                f"  {row.source_file}:{row.source_line} is a copy of line {row.copy_of_line}"
                for row in table.first_copies.itertuples(index=False)
            ]
            if table.identical_copies > len(table.first_copies):
                lines.append(f"  ... and {table.identical_copies - len(table.first_copies)} more")
        for row in table.undeclared_missing.itertuples(index=False):
            lines.append(
                f"Read as missing: {row.value!r} in {row.column} ({row.rows} row(s), first at "
                f"{check.paths[name].name}:{row.first_line}); declare it (missing_values: [{row.value!r}]) to say so"
            )
    if check.evidence:
        lines.append("Plausibility:")
        lines += [f"  {finding.line()}" for finding in check.evidence]
    lines.append(f"Reconciliation: {reconciliation(check)}")
    if check.refusals:
        lines += ["Would be REFUSED (nothing published):", *(f"  {text}" for text in check.refusals)]
    else:
        lines.append("Would be published (nothing was written).")
    return lines
