"""Check a field-sample drop without publishing anything: read it by its declaration, validate it against the
contracts as the `field_drop` asset does, compute the 0-30 cm stocks, and say what would be quarantined or refused,
with every row accounted for (`soil-pipeline check-drop`). No Dagster."""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from soil_pipeline.contracts.declaration import (
    FieldDeclaration,
    TablePlan,
    apply_declaration,
    find_table_file,
    plan_table,
    resolve_declaration,
    table_header,
)
from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.contracts.validate import LandMask, Regions, Validation, validate
from soil_pipeline.readers import read_table_file
from soil_pipeline.science.stocks import blocking_sites, flag_quarantined_horizons, topsoil_stocks

TABLES = ("field_sites", "field_horizons")
SHOWN_REJECTS = 20


@dataclass
class DropCheck:
    declaration: FieldDeclaration
    paths: dict[str, Path]
    plans: dict[str, TablePlan]
    validations: dict[str, Validation]
    stocks: pd.DataFrame | None
    refusals: list[str] = field(default_factory=list)

    @property
    def publishable(self) -> bool:
        return not self.refusals


def check_drop(
    drop_dir: Path,
    declaration: str | None = None,
    land: LandMask | None = None,
    regions: Regions | None = None,
    landing_dir: Path | None = None,
) -> DropCheck:
    """Validate one drop folder; InputError/DeclarationError for a drop that cannot be read at all."""
    drop_dir = Path(drop_dir)
    landing_dir = Path(landing_dir) if landing_dir else drop_dir.parent.parent
    found = resolve_declaration(drop_dir, declaration)
    contracts = {name: load_table_contract(name) for name in TABLES}
    paths = {name: find_table_file(drop_dir, found, name, landing_dir) for name in TABLES}
    plans = {name: plan_table(found, name, contracts[name], paths[name], table_header(paths[name])) for name in TABLES}
    raw = {
        name: apply_declaration(read_table_file(paths[name], plans[name].source_columns), plans[name])
        for name in TABLES
    }
    sites = validate(raw["field_sites"], contracts["field_sites"], land=land, regions=regions)
    site_key = contracts["field_horizons"].column("site_id").foreign_key
    horizons = validate(raw["field_horizons"], contracts["field_horizons"], {site_key: set(sites.valid["site_id"])})
    validations = {"field_sites": sites, "field_horizons": horizons}
    refusals = [f"{paths[name]}: {error}" for name, v in validations.items() for error in v.batch_errors]
    stocks = None
    if not refusals:
        bd_max = contracts["field_horizons"].column("bulk_density_g_per_cm3").plausible_maximum
        stocks = topsoil_stocks(sites.valid["site_id"], horizons.valid, bd_plausible_max_g_per_cm3=bd_max)
        stocks = flag_quarantined_horizons(stocks, blocking_sites(horizons.rejects))
        rule = next(r for r in load_table_contract("topsoil_soc_stocks").rules if r.kind == "min_non_null")
        if (found_stocks := int(stocks[rule.params["column"]].notna().sum())) < rule.params["minimum"]:
            refusals.append(
                f"{paths['field_horizons']}: {rule.id}: {found_stocks} site(s) with a 0-30 cm stock, "
                f"at least {rule.params['minimum']} required"
            )
    return DropCheck(found, paths, plans, validations, stocks, refusals)


def reconciliation(check: DropCheck) -> str:
    """in = published + rejected (source rows; horizons also count identical copies collapsed into one), and the
    published sites = with a 0-30 cm stock + null with a reason."""
    parts = []
    for name, label in (("field_sites", "sites"), ("field_horizons", "horizons")):
        v = check.validations[name]
        rejected = v.rejects[["source_file", "source_line"]].drop_duplicates().shape[0]
        collapsed = int((v.valid["identical_copies"] - 1).sum()) if "identical_copies" in v.valid else 0
        copies = f" + {collapsed} identical copies" if collapsed else ""
        parts.append(f"{label} {v.n_checked} in = {len(v.valid)} published{copies} + {rejected} rejected")
    if check.stocks is not None:
        with_stock = check.stocks["topsoil_soc_stock_t_c_per_ha"].notna()
        reasons = check.stocks.loc[~with_stock, "exclusion_reason"].value_counts().sort_index()
        detail = ", ".join(f"{reason} {n}" for reason, n in reasons.items())
        parts.append(
            f"stocks {len(check.stocks)} sites = {int(with_stock.sum())} with a 0-30 cm stock + "
            f"{int((~with_stock).sum())} null with a reason" + (f" ({detail})" if detail else "")
        )
    return "; ".join(parts)


def report(check: DropCheck) -> str:
    """What `soil-pipeline check-drop` prints."""
    lines = [f"Declaration: {check.declaration.path} ({check.declaration.name})"]
    for name in TABLES:
        plan, v = check.plans[name], check.validations[name]
        lines.append(f"{check.paths[name]} -> {name}: {v.n_checked} rows")
        lines += [f"  converted {column}: {text}" for column, text in plan.conversions().items()]
        if plan.fixed:
            lines.append(f"  fixed: {', '.join(f'{k} = {value}' for k, value in plan.fixed.items())}")
        if plan.absent:
            lines.append(f"  absent, null: {', '.join(plan.absent)}")
    rejects = pd.concat([check.validations[name].rejects for name in TABLES], ignore_index=True)
    lines.append(f"Would quarantine {len(rejects)} reject row(s):")
    for (rule, column), n in rejects.groupby(["rule", "column"]).size().items():
        lines.append(f"  {rule}:{column}: {n}")
    for row in rejects.head(SHOWN_REJECTS).itertuples(index=False):
        value = "(missing)" if pd.isna(row.value) else repr(row.value)
        lines.append(f"  {row.source_file}:{row.source_line} {row.rule} {row.column} {value}: {row.detail}")
    if len(rejects) > SHOWN_REJECTS:
        lines.append(f"  ... and {len(rejects) - SHOWN_REJECTS} more")
    lines.append(f"Reconciliation: {reconciliation(check)}")
    if check.refusals:
        lines += ["Would be REFUSED (nothing published):", *(f"  {text}" for text in check.refusals)]
    else:
        lines.append("Would be published (nothing was written).")
    return "\n".join(lines)
