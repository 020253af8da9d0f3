"""Field SOC samples: monthly drops of site and horizon tables, validated against their contracts, and the topsoil
(0-30 cm) SOC stock per site, all from one reading of the drop.

Source: `<landing_dir>/field_samples/YYYY-MM/` holding one `*sites.csv|parquet` and one `*horizons.csv|parquet`.
The embedded default is the Africa Soil Profiles database (Leenaars 2014) as the 2012-10 drop. Rows that break the
contract go to `field_sites_rejects` / `field_horizons_rejects` with the rule, column, value, file and line.
"""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from soil_pipeline import provenance
from soil_pipeline.assets.sources import ABSENT, observe_drop, retried_on_transient_io
from soil_pipeline.checks import (
    broken_contract,
    contract_check_spec,
    contract_result,
    contract_specs,
    data_quality_check_spec,
    gx_result,
)
from soil_pipeline.contracts.declaration import find_table_file, plan_table, resolve_declaration, table_header
from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.contracts.stream import StreamValidation, validate_buckets
from soil_pipeline.contracts.validate import REJECTS_CONTRACT
from soil_pipeline.drop_evidence import refusals
from soil_pipeline.errors import InputError, Remedy
from soil_pipeline.failures import reported
from soil_pipeline.ingest import (
    TOPSOIL_BOTTOM_CM,
    TOPSOIL_TOP_CM,
    DropValidation,
    Placement,
    site_references,
    validate_drop,
)
from soil_pipeline.io_managers import GEOPARQUET_POINTS
from soil_pipeline.partitions import field_drops
from soil_pipeline.publishing.grids import stored
from soil_pipeline.publishing.parquet import TableFile
from soil_pipeline.readers import DROP_FOLDER_FORM, drop_folders
from soil_pipeline.resources import InputDatasets, QualityReports
from soil_pipeline.science.grid import Layer
from soil_pipeline.science.pedotransfer import MANRIQUE_JONES_1991
from soil_pipeline.science.regions import COUNTRY_NEAREST_MAX_DEG

POINT_COLUMNS = ["longitude_deg", "latitude_deg"]
TABLES = ["field_sites", "field_horizons", "field_horizons_rejects", "field_sites_rejects"]
STOCKS = "topsoil_soc_stocks"
DROP_INPUTS = ["field_sample_drop", "countries", "soc_stock_grid"]
PLAUSIBILITY_CHECK = "plausibility"


def _keys(*names: str) -> set[dg.AssetKey]:
    return {dg.AssetKey(name) for name in names}


def _out(description: str, metadata: dict | None = None, code_version: str = "5") -> dg.AssetOut:
    return dg.AssetOut(
        io_manager_key="published_io_manager",
        group_name="field_samples",
        code_version=code_version,
        description=description,
        metadata=metadata,
        is_required=False,
    )


@dg.multi_asset(
    partitions_def=field_drops,
    outs={
        "field_sites": _out(
            "Sites of one drop that meet the contract: id, WGS84 lon/lat (deg), sampling date. GeoParquet points.",
            metadata={GEOPARQUET_POINTS: POINT_COLUMNS},
        ),
        "field_horizons": _out(
            "Horizons of one drop that meet the contract: depths (cm), SOC (g/kg), BD (g/cm3), coarse fragments (%)."
        ),
        "field_sites_rejects": _out("Quarantined site rows: rule, column, value, source file and line."),
        "field_horizons_rejects": _out("Quarantined horizon rows (incl. orphans): rule, column, value, file and line."),
        STOCKS: _out(
            "SOC stock 0-30 cm per valid site (t C/ha), with bulk density filled by Manrique & Jones (1991) where "
            "missing, or why it has none; country (ADM0_A3) and IPCC climate zone. GeoParquet points.",
            metadata={GEOPARQUET_POINTS: POINT_COLUMNS},
            code_version="4",
        ),
    },
    # what each output is made from (by default every output would depend on every input)
    internal_asset_deps={
        **{name: _keys(*DROP_INPUTS) for name in TABLES},
        STOCKS: _keys(*DROP_INPUTS, "climate_zone_grid", "field_sites", "field_horizons", "field_horizons_rejects"),
    },
    check_specs=[
        spec
        for asset in ("field_sites", "field_horizons")
        for spec in (
            contract_check_spec(asset, blocking=False),
            data_quality_check_spec(asset),
            contract_check_spec(f"{asset}_rejects", blocking=True),
            dg.AssetCheckSpec(
                PLAUSIBILITY_CHECK,
                asset=asset,
                blocking=True,
                description="The drop as a whole is physically plausible (units, depths, coordinates against land, "
                "the named country and the reference stock map); a failed check refuses the drop naming the cause.",
            ),
        )
    ]
    + contract_specs(STOCKS),
    deps=["field_sample_drop"],
    # Subsettable, so every output and check is optional: a month without a drop materializes nothing.
    can_subset=True,
)
def field_drop(
    context: dg.AssetExecutionContext,
    inputs: InputDatasets,
    quality_reports: QualityReports,
    countries: pd.DataFrame,
    soc_stock_grid: Layer,
    climate_zone_grid: Layer,
):
    """Read one monthly drop, validate sites then horizons (a horizon must belong to a valid site), quarantine,
    and compute the topsoil SOC stock of every valid site.

    Sites are also checked for plausibility: on land (the WHRC stock grid as land mask), and not in an excluded
    region (by `countries` polygon). The drop-level gates of the contracts (share of rows quarantined, sites with
    a stock) fail the run before anything is published. Files are read in chunks and validated in buckets of
    sites (see `soil_pipeline.ingest`), so memory stays bounded whatever the size of the drop; each bucket's stocks
    are computed as its horizons are validated.

    Stocks: sites that do not cover 0-30 cm, lack SOC, lack BD outside the pedotransfer domain, or had a horizon
    quarantined keep a null stock and an `exclusion_reason`. Each site is placed in its country (Natural Earth
    ADM0_A3) and IPCC 2019 climate zone.
    """
    with reported():
        for event in _ingest(context, inputs, quality_reports, countries, soc_stock_grid, climate_zone_grid):
            if _selected(context, event):
                yield event


def _selected(context: dg.AssetExecutionContext, event: dg.Output | dg.AssetCheckResult) -> bool:
    if isinstance(event, dg.Output):
        return dg.AssetKey(event.output_name) in context.selected_asset_keys  # output names are the asset names
    key = dg.AssetCheckKey(dg.AssetKey.from_coercible(event.asset_key), event.check_name)
    return key in context.selected_asset_check_keys


def _ingest(
    context: dg.AssetExecutionContext,
    inputs: InputDatasets,
    quality_reports: QualityReports,
    countries: pd.DataFrame,
    soc_stock_grid: Layer,
    climate_zone_grid: Layer,
):
    drop_dir, partition = inputs.drop_dir(context.partition_key), context.partition_key
    if observe_drop(context, inputs, partition) == ABSENT:
        context.log.info(f"no field-sample drop folder {drop_dir} for {partition}: nothing to ingest")
        return
    contracts = {name: load_table_contract(name) for name in ("field_sites", "field_horizons")}
    landing = Path(inputs.landing_dir)
    for name in drop_folders(landing)[1]:
        context.log.warning(f"{landing}/field_samples/{name}/ is not a partition folder ({DROP_FOLDER_FORM}); ignored")
    declaration = resolve_declaration(drop_dir, inputs.field_declaration)
    paths = {name: find_table_file(drop_dir, declaration, name, landing) for name in contracts}
    # hashed before they are read, checked unchanged after: the sha256 recorded is that of the bytes read
    snapshots = {name: provenance.snapshot(f"{name}[{partition}]", paths[name]) for name in contracts}
    with retried_on_transient_io():
        plans = {
            name: plan_table(declaration, name, contracts[name], paths[name], table_header(paths[name]))
            for name in contracts
        }
    for plan in plans.values():
        if plan.absent:
            context.log.warning(
                f"{paths[plan.table]}: no column for {', '.join(plan.absent)}: null ({declaration.path})"
            )
    land, regions = site_references(countries, stored(soc_stock_grid).source("soc_stock"))
    with tempfile.TemporaryDirectory(prefix="soil_pipeline_ingest_") as work:
        with retried_on_transient_io():
            placement = Placement.of(regions, climate_zone_grid)
            drop = validate_drop(
                paths, contracts, Path(work), land=land, regions=regions, plans=plans, placement=placement
            )
        validations = {"field_sites": drop.sites, "field_horizons": drop.horizons}
        reports = {}
        for name, validation in validations.items():
            severity = dg.AssetCheckSeverity.ERROR if validation.batch_errors else dg.AssetCheckSeverity.WARN
            yield contract_result(name, validation, severity)
            orphans = _gx_orphans(name, validation, drop)
            reports[name] = quality_reports.submit(
                validation.gx_sample, contracts[name], context.run.run_id, name, partition, orphans
            )
        broken = [broken_contract(v, paths[name]) for name, v in validations.items() if v.batch_errors]
        broken += refusals(drop.evidence, paths)
        yield from _plausibility(drop.evidence)
        if broken:
            yield from _data_quality(reports, validations)
            raise InputError.joined(broken)
        for finding in drop.evidence:
            if finding.confirmed:
                context.log.warning(f"{paths[finding.table]}: plausibility {finding.line()}")
        _gate_sites_with_stock(drop, paths)
        if dg.AssetKey(STOCKS) in context.selected_asset_keys:
            yield from _checked_stocks(drop.stocks_check)
        plausibility = {finding.name: finding.record() for finding in drop.evidence}

        for name, validation in validations.items():
            rejects_contract = yield from _checked_rejects(f"{name}_rejects", validation.rejects, Path(work) / name)
            drop_file = snapshots[name].unchanged().inputs()
            # the resolved file (a symlink inside the landing folder is recorded as what it points to)
            drop_file[f"{name}[{partition}]"]["resolved_path"] = paths[name].relative_to(landing.resolve()).as_posix()
            checked = {
                **drop_file,
                **provenance.file_input(f"contract:{name}", contracts[name].path),
                **provenance.file_input(f"declaration:{name}[{partition}]", declaration.path),
            }
            declared = {f"declaration:{name}": plans[name].describe(), "plausibility": plausibility}
            missing = validation.undeclared_missing()
            for row in missing.itertuples(index=False):
                context.log.warning(
                    f"{paths[name]}: {row.value!r} in {row.column} read as missing ({row.rows} row(s), first at line "
                    f"{row.first_line}); declare it in missing_values to say so ({declaration.path})"
                )
            validation.valid.attrs["provenance"] = {"inputs": checked, "parameters": declared}
            validation.rejects.attrs["provenance"] = {
                "inputs": {**checked, **provenance.file_input(f"contract:{REJECTS_CONTRACT}", rejects_contract.path)},
                "parameters": declared,
            }
            metadata = {
                "rows_rejected_from_drop": validation.rejects.num_rows,
                "declaration": dg.MetadataValue.json(plans[name].describe()),
                "plausibility": dg.MetadataValue.json(plausibility),
                "accounting": dg.MetadataValue.json(_accounting(validation)),
                "undeclared_missing_values": dg.MetadataValue.json(missing.to_dict("records")),
            }
            for output, table in ((name, validation.valid), (f"{name}_rejects", validation.rejects)):
                yield dg.Output(table, output_name=output, metadata=metadata)
        drop.stocks.attrs["provenance"] = _stocks_provenance(drop, countries, climate_zone_grid)
        yield dg.Output(drop.stocks, output_name=STOCKS, metadata={"contract": drop.stocks_check.contract.label})
        yield from _data_quality(reports, validations)


def _plausibility(findings):
    """The blocking plausibility check of each table: its findings, failed when one refuses the drop."""
    for name in ("field_sites", "field_horizons"):
        mine = [finding for finding in findings if finding.table == name]
        yield dg.AssetCheckResult(
            asset_key=name,
            check_name=PLAUSIBILITY_CHECK,
            passed=not any(finding.refuses for finding in mine),
            metadata={
                "findings": dg.MetadataValue.json({f.name: f.record() for f in mine}),
                "refusals": dg.MetadataValue.md("\n".join(f"- {f.line()}" for f in mine if f.refuses) or "none"),
            },
        )


def _data_quality(reports: dict, validations: dict):
    """The GX check of each table, once its report (made in the background meanwhile) is done."""
    for name, pending in reports.items():
        report, index, link = pending.result()
        yield gx_result(name, report, index, link, validations[name].gx_sample_note)


# Identical copies listed in the metadata, at most (all are counted).
LISTED_COPIES = 100


def _accounting(validation: StreamValidation) -> dict:
    """Every row read: published, identical copies collapsed into a published row (listed: file, line, line kept),
    rejected; the validation raised if they did not add up."""
    copies = validation.copies.head(LISTED_COPIES) if validation.copies is not None else None
    return {
        "rows_read": validation.n_checked,
        "published": validation.n_valid,
        "identical_copies": validation.identical_copies,
        "rejected": validation.rejected_rows,
        "identical_copies_listed": [] if copies is None else copies.astype({"source_line": int}).to_dict("records"),
    }


def _gx_orphans(name: str, validation: StreamValidation, drop: DropValidation) -> dict | None:
    """Foreign keys for the GX sample: its site ids that are not among the valid sites (the same verdict as all)."""
    if name != "field_horizons" or drop.sites.valid is None:
        return None
    key = validation.contract.column("site_id").foreign_key
    missing = set(validation.gx_sample["site_id"].dropna())
    for batch in drop.sites.valid.batches(["site_id"]):
        missing -= set(batch.column("site_id").to_pylist())
    return {key: missing}


def _gate_sites_with_stock(drop: DropValidation, paths: dict) -> None:
    """The topsoil_soc_stocks contract's minimum of sites with a stock, checked before anything is published."""
    rule = next(r for r in load_table_contract("topsoil_soc_stocks").rules if r.kind == "min_non_null")
    found = drop.sites_with_stock
    if found < rule.params["minimum"]:
        horizons = drop.horizons
        top = pd.Series(horizons.by_rule, dtype="int64").sort_index().sort_values(ascending=False).head(3)
        rules = ", ".join(f"{r}:{c} ({n} rows)" for (r, c), n in top.items()) or "none"
        raise InputError(
            paths["field_horizons"],
            f"{rule.id}: {found} site(s) with a 0-30 cm stock, at least {rule.params['minimum']} required; "
            f"{horizons.rejects.num_rows} horizon reject row(s), top rules: {rules}",
            Remedy.NO_STOCK,
        )


def _checked_rejects(asset: str, rejects: TableFile, folder: Path):
    """The quarantine table is itself a published output with a contract (field_rejects); returns that contract."""
    contract = load_table_contract(REJECTS_CONTRACT)
    validation = validate_buckets(enumerate(rejects.frames()), contract, folder / "rejects_check", keep_valid=False)
    yield contract_result(asset, validation, dg.AssetCheckSeverity.ERROR)
    if not validation.passed:
        raise broken_contract(validation)
    return validation.contract


def _checked_stocks(validation: StreamValidation):
    """The stock table's contract check, made before anything of the drop is published (when the stocks are)."""
    yield contract_result(STOCKS, validation, dg.AssetCheckSeverity.ERROR)
    if not validation.passed:
        raise broken_contract(validation)


def _stocks_provenance(drop: DropValidation, countries: pd.DataFrame, climate_zone_grid: Layer) -> dict:
    """The inputs of the tables the stocks are made from (the drop's files, contracts and declaration), the
    upstream assets' and the stock computation's parameters."""
    tables = (drop.sites.valid, drop.horizons.valid, drop.horizons.rejects)
    return provenance.combine(
        *({"inputs": table.attrs["provenance"]["inputs"]} for table in tables),
        countries.attrs.get("provenance", {}),
        climate_zone_grid.provenance,
        {
            "parameters": {
                "topsoil_depth_cm": [TOPSOIL_TOP_CM, TOPSOIL_BOTTOM_CM],
                "bd_pedotransfer_function": MANRIQUE_JONES_1991.name,
                "bd_pedotransfer_citation": MANRIQUE_JONES_1991.citation,
                "country_nearest_max_deg": COUNTRY_NEAREST_MAX_DEG,
            }
        },
    )
