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
    """Membership by pyarrow hash lookup: pandas' isin on arrow strings converts every allowed value one by one.

    `values` may be a pyarrow array (kept as it is, e.g. millions of site ids) or any iterable."""
    if isinstance(values, pyarrow.Array | pyarrow.ChunkedArray):
        allowed = values.cast(pyarrow.string())
    else:
        allowed = pyarrow.array(sorted(str(v) for v in values), type=pyarrow.string())

    def check(series: pd.Series) -> pd.Series:
        found = pc.is_in(pyarrow.array(series.astype("str"), from_pandas=True), value_set=allowed)
        return pd.Series(found.to_numpy(zero_copy_only=False), index=series.index).fillna(False).astype(bool)

    return pa.Check(check, error=label)


# Dataset rules that look at the whole table (not row by row): checked over all chunks of a large table at once.
WHOLE_TABLE_RULES = ("row_count", "median_between", "null_percent_max", "min_non_null")


def dataset_rule_detail(rule: DatasetRule) -> tuple[str, str]:
    """(column, statement) of a dataset rule, as reported when it is broken."""
    p = rule.params
    if rule.kind == "row_count":
        return "*", f"row count must be within [{p['minimum']}, {p['maximum']}]"
    if rule.kind == "column_less_than":
        return p["column"], f"{p['column']} must be < {p['other']}"
    if rule.kind == "median_between":
        return p["column"], (
            f"median {p['column']} must be within [{p['minimum']}, {p['maximum']}] ({rule.description.strip()})"
        )
    if rule.kind == "null_percent_max":
        return p["column"], f"at most {p['maximum']} % of {p['column']} may be missing ({rule.description.strip()})"
    if rule.kind == "min_non_null":
        return "*", f"at least {p['minimum']} non-missing {p['column']} required ({rule.description.strip()})"
    return "*", ""


def whole_table_rule_holds(rule: DatasetRule, n_rows: int, non_null: int, median: float) -> bool:
    """A whole-table rule from the table's row count and the rule column's non-null count and median."""
    p = rule.params
    if rule.kind == "row_count":
        return p["minimum"] <= n_rows <= p["maximum"]
    if rule.kind == "median_between":
        return median != median or p["minimum"] <= median <= p["maximum"]
    if rule.kind == "null_percent_max":
        return bool(n_rows) and (n_rows - non_null) / n_rows * 100 <= p["maximum"]
    return non_null >= p["minimum"]


def _dataset_check(rule: DatasetRule) -> pa.Check | None:
    p = rule.params
    column, detail = dataset_rule_detail(rule)
    label = rule_label(rule.id, column, detail)
    if rule.kind == "column_less_than":
        return pa.Check(lambda df: df[p["column"]] < df[p["other"]], error=label)
    if rule.kind in WHOLE_TABLE_RULES:

        def holds(df):
            values = df[p["column"]] if "column" in p else df.index.to_series()
            median = values.median() if rule.kind == "median_between" else float("nan")
            return whole_table_rule_holds(rule, len(df), int(values.notna().sum()), median)

        return pa.Check(holds, error=label)
    return None


def to_pandera(
    contract: TableContract, foreign_values: dict | None = None, whole_table_rules: bool = True
) -> pa.DataFrameSchema:
    """Schema with every column rule (row-level) and dataset rule; unknown extra columns are allowed.

    Without `whole_table_rules` the schema checks one chunk of a larger table: the rules in `WHOLE_TABLE_RULES`
    are left to the caller, who evaluates them over all chunks (`whole_table_rule_holds`)."""
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
        checks=[
            check
            for rule in contract.rules
            if (whole_table_rules or rule.kind not in WHOLE_TABLE_RULES) and (check := _dataset_check(rule)) is not None
        ],
        unique=compound[0].params["columns"] if compound else None,
        report_duplicates="all",
        name=contract.label,
    )
