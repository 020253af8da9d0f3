"""Derive a pandera DataFrameSchema from a table contract: each rule's part comes from its kind (contracts.rules),
and each check's `error` text names its contract rule ('rule|column|detail', `rules.parse_label`)."""

import pandera.pandas as pa

from soil_pipeline.contracts.model import UNTYPED_PHYSICAL_TYPES, ColumnSpec, TableContract
from soil_pipeline.contracts.rules import COLUMN_KINDS, DATASET_KINDS


def _joined(options: dict, part: dict) -> dict:
    """`options` with a rule kind's part added: its checks after the others, its other options set."""
    return options | part | {"checks": options["checks"] + part.get("checks", [])}


def _column(column: ColumnSpec, foreign_values: dict) -> pa.Column:
    options = {"nullable": True, "unique": False, "checks": []}
    for kind in COLUMN_KINDS:
        if kind.applies(column):
            options = _joined(options, kind.pandera(pa, column, foreign_values))
    dtype = None if column.physical_type in UNTYPED_PHYSICAL_TYPES else column.physical_type
    return pa.Column(dtype, report_duplicates="all", **options)


def to_pandera(
    contract: TableContract, foreign_values: dict | None = None, whole_table_rules: bool = True
) -> pa.DataFrameSchema:
    """Schema with every column rule (row-level) and dataset rule; unknown extra columns are allowed.

    Without `whole_table_rules` the schema checks one chunk of a larger table: the whole-table kinds are left to
    the caller, who tallies them over all chunks (contracts.stream)."""
    columns = {column.name: _column(column, foreign_values or {}) for column in contract.columns}
    options = {"checks": [], "unique": None}
    for rule in contract.rules:
        kind = DATASET_KINDS[rule.kind]
        if whole_table_rules or not kind.whole_table:
            options = _joined(options, kind.pandera(pa, rule))
    return pa.DataFrameSchema(columns, report_duplicates="all", name=contract.label, **options)
