"""Asset checks derived from data contracts: specs, results with metadata, and the publish-only-if-valid gate."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from soil_pipeline.contracts.model import RasterContract, load_table_contract
from soil_pipeline.contracts.stream import GX_SAMPLE_ROWS, StreamValidation
from soil_pipeline.contracts.validate import Validation, validate
from soil_pipeline.errors import BrokenRule, InputError, Remedy
from soil_pipeline.failures import as_failure

CONTRACT_CHECK = "contract"
DATA_QUALITY_CHECK = "data_quality_gx"


def contract_check_spec(asset: str, blocking: bool, key: dg.AssetKey | None = None) -> dg.AssetCheckSpec:
    """The contract check of `asset`'s contract, on asset `key` (default: the asset of that name)."""
    what = "blocks publication when broken" if blocking else "quarantines rows that break it"
    return dg.AssetCheckSpec(
        CONTRACT_CHECK, asset=key or asset, blocking=blocking, description=f"Data contract; {what}."
    )


def data_quality_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        DATA_QUALITY_CHECK,
        asset=asset,
        description=(
            "Great Expectations suite derived from the contract, as Data Docs. It runs on the whole drop up to "
            f"{GX_SAMPLE_ROWS:,} rows, beyond that on a sample (metadata rows_validated says which)."
        ),
    )


def failures_table(failures: dict[str, int | None]) -> str:
    """Markdown table of failure counts by rule and column ("none" when nothing failed; "-" for a whole-table rule
    that has no count)."""
    if not failures:
        return "none"
    ordered = sorted(failures.items(), key=lambda item: -(item[1] or 0))
    rows = [key.split(":", 1) + ["-" if n is None else str(n)] for key, n in ordered]
    lines = ["| rule | column | failures |", "| --- | --- | ---: |"] + [f"| {r} | {c} | {n} |" for r, c, n in rows]
    return "\n".join(lines)


def contract_result(
    asset: str,
    validation: Validation | StreamValidation,
    severity: dg.AssetCheckSeverity,
    key: dg.AssetKey | None = None,
) -> dg.AssetCheckResult:
    sample = validation.sample()
    return dg.AssetCheckResult(
        asset_key=key or asset,
        check_name=CONTRACT_CHECK,
        passed=validation.passed,
        severity=severity,
        metadata={
            "contract": validation.contract.label,
            "contract_sha256": validation.contract.sha256,
            "rows_checked": validation.n_checked,
            "rows_rejected": validation.rows_rejected(),
            "failures_by_rule": dg.MetadataValue.md(failures_table(validation.failures_by_rule())),
            "dataset_errors": dg.MetadataValue.json(validation.batch_errors),
            "failing_rows_sample": dg.MetadataValue.md(sample.to_markdown(index=False) if len(sample) else "none"),
        },
    )


def raster_contract_result(asset: str, contracts: list[RasterContract], error: str | None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CONTRACT_CHECK,
        passed=error is None,
        metadata={
            "contracts": dg.MetadataValue.json({c.label: c.sha256 for c in contracts}),
            "error": error or "none",
        },
    )


def gx_result(
    asset: str, report: dict, docs_index: str, docs_url: str | None, rows_validated: str = ""
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=DATA_QUALITY_CHECK,
        passed=report["success"],
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "evaluated_expectations": report["evaluated_expectations"],
            "successful_expectations": report["successful_expectations"],
            "failed_expectations": dg.MetadataValue.md(failures_table(report["failed_expectations"])),
            "data_docs": dg.MetadataValue.path(docs_index),
            **({"data_docs_url": dg.MetadataValue.url(docs_url)} if docs_url else {}),
            **({"rows_validated": rows_validated} if rows_validated else {}),
        },
    )


def broken_contract(validation: Validation | StreamValidation, file=None) -> InputError:
    """The error of a table (from `file`, when it is read from one) breaking its contract: the first broken rule
    (a dataset rule, whose kind names the remedy, else a rejected row), the others and a sample of rejected rows as
    details."""
    samples = [
        f"{row.source_file} line {row.source_line}: {row.detail} (found {row.value!r})"
        for row in validation.sample().itertuples(index=False)
    ]
    rule, *details = [*validation.batch_errors, *samples]
    first = validation.batch_errors[0] if validation.batch_errors else None
    text = "\n".join([f"{validation.contract.label} broken:", *(f"  {line}" for line in (rule, *details))])
    remedy = first.remedy if isinstance(first, BrokenRule) else Remedy.OTHER
    return InputError(file, rule, remedy, details=details, text=text)


def publish_if_valid(
    asset: str,
    table: pd.DataFrame,
    metadata: dict | None = None,
    key: dg.AssetKey | None = None,
    output_name: str = "result",
) -> Iterator:
    """Yield the blocking contract check, then the output (Dagster's one output of an asset, or `output_name` of a
    multi-asset's) only if the table meets `asset`'s contract, else fail."""
    contract = load_table_contract(asset)
    validation = validate(table, contract)
    yield contract_result(asset, validation, dg.AssetCheckSeverity.ERROR, key)
    if not validation.passed:
        raise as_failure(broken_contract(validation))
    yield dg.Output(table, output_name=output_name, metadata={"contract": contract.label, **(metadata or {})})


def contract_specs(asset: str, key: dg.AssetKey | None = None) -> list[dg.AssetCheckSpec]:
    return [contract_check_spec(asset, blocking=True, key=key)]
