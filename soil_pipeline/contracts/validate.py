"""Validate a table against its contract: coerce types, run the pandera schema lazily, split good rows from rejects.

Row-level failures (a failure with a row index) send that row to the rejects table, one reject row per broken rule,
with the source file and line. Failures without a row index (missing column, row count, a unit guard on the median)
are dataset-level: they are returned as `batch_errors` and the caller fails the run.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from soil_pipeline.contracts.model import TableContract, load_table_contract
from soil_pipeline.contracts.pandera_schema import parse_label, to_pandera

BUILTIN_RULES = {
    "not_nullable": ("required", "{column} is required"),
    "field_uniqueness": ("unique", "{column} must be unique"),
}
SAMPLE_ROWS = 10
REJECTS_CONTRACT = "field_rejects"


@dataclass
class Validation:
    contract: TableContract
    n_checked: int
    checked: pd.DataFrame
    valid: pd.DataFrame
    rejects: pd.DataFrame
    batch_errors: list[str]

    @property
    def passed(self) -> bool:
        return not self.batch_errors and self.rejects.empty

    def failures_by_rule(self) -> dict[str, int]:
        counts = self.rejects.groupby(["rule", "column"]).size()
        by_rule = {f"{rule}:{column}": int(n) for (rule, column), n in counts.items()}
        return {**by_rule, **{f"dataset:{error.split(':', 1)[0]}": 1 for error in self.batch_errors}}

    def sample(self) -> pd.DataFrame:
        return self.rejects.head(SAMPLE_ROWS)


def _coerce_column(values: pd.Series, logical_type: str) -> pd.Series:
    if logical_type in {"number", "integer"}:
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.astype("float64") if logical_type == "number" else numbers
    if logical_type == "date":
        return pd.to_datetime(values, errors="coerce", format="ISO8601").astype("datetime64[ms]")
    if logical_type == "string":
        return values.astype("str").where(values.notna())
    return values


def coerce(frame: pd.DataFrame, contract: TableContract) -> tuple[pd.DataFrame, list[dict]]:
    """Cast each contract column to its type; values that cannot be cast become missing and are reported."""
    out, failures = frame.copy(), []
    for column in contract.columns:
        if column.name not in out.columns or column.physical_type == "bytes":
            continue
        original = out[column.name]
        cast = _coerce_column(original, column.logical_type)
        if column.logical_type == "integer":
            non_integral = cast.notna() & (cast != np.floor(cast))
            cast = cast.where(~non_integral)
            cast = cast.astype("int64") if cast.notna().all() else cast
        broken = original.notna() & cast.isna()
        for index in original.index[broken]:
            detail = f"{column.name} must be a {column.logical_type}"
            failures.append(
                {"index": index, "rule": "type", "column": column.name, "value": original[index], "detail": detail}
            )
        out[column.name] = cast
    return out, failures


def _row_failures(cases: pd.DataFrame, frame: pd.DataFrame) -> list[dict]:
    failures = []
    for case in cases.drop_duplicates(subset=["index", "check"]).itertuples(index=False):
        check = str(case.check)
        if "|" in check:
            rule, column, detail = parse_label(check)
        elif check in BUILTIN_RULES:
            rule, template = BUILTIN_RULES[check]
            column, detail = case.column, template.format(column=case.column)
        else:
            rule, column, detail = check, str(case.column), f"{case.column}: {check}"
        value = frame.at[case.index, column] if column in frame.columns else case.failure_case
        failures.append({"index": case.index, "rule": rule, "column": column, "value": value, "detail": detail})
    return failures


def _compound_failures(cases: pd.DataFrame, contract: TableContract, frame: pd.DataFrame) -> list[dict]:
    rule = next(rule for rule in contract.rules if rule.kind == "compound_unique")
    columns = rule.params["columns"]
    detail = f"({', '.join(columns)}) must be unique"
    return [
        {
            "index": index,
            "rule": rule.id,
            "column": ",".join(columns),
            "value": ", ".join(str(frame.at[index, c]) for c in columns),
            "detail": detail,
        }
        for index in cases["index"].dropna().unique()
    ]


def _rejects_table(failures: list[dict], frame: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    if not failures:
        columns = load_table_contract(REJECTS_CONTRACT).columns
        return pd.DataFrame({column.name: pd.Series(dtype=column.physical_type) for column in columns})
    table = pd.DataFrame(failures)
    index = table["index"]
    if "source_file" in frame.columns:
        source_file = frame.loc[index, "source_file"].to_numpy()
        source_line = frame.loc[index, "source_line"].to_numpy()
    else:
        source_file = np.full(len(table), contract.id)
        source_line = frame.index.get_indexer(index) + 1
    site = frame.loc[index, "site_id"].to_numpy() if "site_id" in frame.columns else [None] * len(table)
    rejects = pd.DataFrame(
        {
            "source_file": pd.Series(source_file, dtype="str"),
            "source_line": pd.Series(source_line, dtype="int64"),
            "site_id": pd.Series(site, dtype="str"),
            "rule": table["rule"].astype("str"),
            "column": table["column"].astype("str"),
            "value": pd.Series([None if pd.isna(v) else str(v) for v in table["value"]], dtype="str"),
            "detail": table["detail"].astype("str"),
            "contract": contract.label,
        }
    )
    return rejects.sort_values(["source_file", "source_line", "rule", "column"], kind="mergesort").reset_index(
        drop=True
    )


def validate(frame: pd.DataFrame, contract: TableContract, foreign_values: dict | None = None) -> Validation:
    """Coerce, then validate lazily with the contract's pandera schema; nothing is dropped without a reject row."""
    coerced, failures = coerce(frame, contract)
    batch_errors: list[str] = []
    try:
        to_pandera(contract, foreign_values).validate(coerced, lazy=True)
    except pa.errors.SchemaErrors as error:
        cases = error.failure_cases
        row_cases = cases[cases["index"].notna()]
        compound = row_cases["check"].astype("str") == "multiple_fields_uniqueness"
        failures += _row_failures(row_cases[~compound], coerced)
        if compound.any():
            failures += _compound_failures(row_cases[compound], contract, coerced)
        for case in cases[cases["index"].isna()].drop_duplicates(subset=["check"]).itertuples(index=False):
            check = str(case.check)
            detail = parse_label(check)[2] if "|" in check else f"{check}: {case.failure_case}"
            if not detail.startswith(("dtype(", "coerce_dtype(")) or not failures:
                batch_errors.append(f"{contract.label}: {detail}")
    rejected = {failure["index"] for failure in failures}
    valid = coerced.drop(index=list(rejected)).reset_index(drop=True)
    return Validation(contract, len(frame), coerced, valid, _rejects_table(failures, coerced, contract), batch_errors)
