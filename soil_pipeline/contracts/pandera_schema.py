"""Derive a pandera DataFrameSchema from a table contract. Each check's `error` text names its contract rule."""

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from soil_pipeline.contracts.model import DatasetRule, TableContract

# Columns of raw bytes (WKB geometry) have no pandera dtype: pandas keeps them as objects.
UNTYPED_PHYSICAL_TYPES = {"bytes"}


def rule_label(rule: str, column: str, detail: str) -> str:
    """The text pandera reports as the failed check: 'rule|column|detail' (split again by `parse_label`)."""
    return f"{rule}|{column}|{detail}"


def parse_label(label: str) -> tuple[str, str, str]:
    rule, column, detail = label.split("|", 2)
    return rule, column, detail


def _column_checks(column, foreign_values: dict) -> list[pa.Check]:
    checks = []
    if column.minimum is not None or column.maximum is not None:
        label = rule_label("range", column.name, column.range_text())
        if column.maximum is None:
            checks.append(pa.Check.ge(column.minimum, error=label))
        elif column.minimum is None:
            checks.append(pa.Check.le(column.maximum, error=label))
        else:
            checks.append(pa.Check.in_range(column.minimum, column.maximum, error=label))
    if column.valid_values:
        detail = f"{column.name} must be one of {list(column.valid_values)}"
        checks.append(pa.Check.isin(column.valid_values, error=rule_label("allowed_values", column.name, detail)))
    if column.foreign_key and column.foreign_key in foreign_values:
        detail = f"{column.name} must exist in {column.foreign_key}"
        checks.append(_in_set(foreign_values[column.foreign_key], rule_label("foreign_key", column.name, detail)))
    return checks


def _in_set(values, label: str) -> pa.Check:
    """Membership by pyarrow hash lookup: pandas' isin on arrow strings converts every allowed value one by one."""
    allowed = pyarrow.array(sorted(str(v) for v in values), type=pyarrow.string())

    def check(series: pd.Series) -> pd.Series:
        found = pc.is_in(pyarrow.array(series.astype("str"), from_pandas=True), value_set=allowed)
        return pd.Series(found.to_numpy(zero_copy_only=False), index=series.index).fillna(False).astype(bool)

    return pa.Check(check, error=label)


def _dataset_check(rule: DatasetRule) -> pa.Check | None:
    p = rule.params
    if rule.kind == "row_count":
        detail = f"row count must be within [{p['minimum']}, {p['maximum']}]"
        return pa.Check(lambda df: p["minimum"] <= len(df) <= p["maximum"], error=rule_label(rule.id, "*", detail))
    if rule.kind == "column_less_than":
        detail = f"{p['column']} must be < {p['other']}"
        return pa.Check(lambda df: df[p["column"]] < df[p["other"]], error=rule_label(rule.id, p["column"], detail))
    if rule.kind == "median_between":
        detail = f"median {p['column']} must be within [{p['minimum']}, {p['maximum']}] ({rule.description.strip()})"

        def median_ok(df):
            median = df[p["column"]].median()
            return median != median or p["minimum"] <= median <= p["maximum"]

        return pa.Check(median_ok, error=rule_label(rule.id, p["column"], detail))
    if rule.kind == "null_percent_max":
        detail = f"at most {p['maximum']} % of {p['column']} may be missing ({rule.description.strip()})"
        return pa.Check(
            lambda df: df[p["column"]].isna().mean() * 100 <= p["maximum"],
            error=rule_label(rule.id, p["column"], detail),
        )
    if rule.kind == "min_non_null":
        detail = f"at least {p['minimum']} non-missing {p['column']} required ({rule.description.strip()})"
        label = rule_label(rule.id, "*", detail)
        return pa.Check(lambda df: df[p["column"]].notna().sum() >= p["minimum"], error=label)
    return None


def to_pandera(contract: TableContract, foreign_values: dict | None = None) -> pa.DataFrameSchema:
    """Schema with every column rule (row-level) and dataset rule; unknown extra columns are allowed."""
    foreign_values = foreign_values or {}
    columns = {
        column.name: pa.Column(
            None if column.physical_type in UNTYPED_PHYSICAL_TYPES else column.physical_type,
            nullable=not column.required,
            unique=column.unique,
            report_duplicates="all",
            checks=_column_checks(column, foreign_values),
        )
        for column in contract.columns
    }
    compound = [rule for rule in contract.rules if rule.kind == "compound_unique"]
    return pa.DataFrameSchema(
        columns,
        checks=[check for rule in contract.rules if (check := _dataset_check(rule)) is not None],
        unique=compound[0].params["columns"] if compound else None,
        report_duplicates="all",
        name=contract.label,
    )
