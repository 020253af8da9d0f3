"""Derive a Great Expectations 1.x suite from a table contract and render its validation as Data Docs.

GX is imported inside the functions: it costs seconds at import and only the data-quality checks need it.
"""

from pathlib import Path

import pandas as pd

from soil_pipeline.contracts.model import ColumnSpec, DatasetRule, TableContract
from soil_pipeline.contracts.offline_docs import make_offline

SITE_NAME = "soil_pipeline_data_docs"
# Rules on the drop as a whole or needing reference polygons: checked by contracts.validate, not expressed in GX.
GX_NOT_EXPRESSED = {
    "min_non_null",
    "max_rejected_share",
    "collapse_identical",
    "point_on_land",
    "point_region_excluded",
}


def _column_expectations(gxe, column: ColumnSpec, orphans: dict) -> list:
    found = [gxe.ExpectColumnToExist(column=column.name)]
    if column.required:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=column.name))
    if column.minimum is not None or column.maximum is not None:
        found.append(
            gxe.ExpectColumnValuesToBeBetween(column=column.name, min_value=column.minimum, max_value=column.maximum)
        )
    if column.valid_values:
        found.append(gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=list(column.valid_values)))
    if column.unique:
        found.append(gxe.ExpectColumnValuesToBeUnique(column=column.name))
    if column.foreign_key and column.foreign_key in orphans:
        # The values absent from the referenced table, not the (large) set of those present: the same verdict on
        # the same rows, and GX copies an expectation's arguments at every step of a validation.
        missing = sorted(orphans[column.foreign_key])
        found.append(
            gxe.ExpectColumnValuesToNotBeInSet(
                column=column.name,
                value_set=missing,
                description=f"values of {column.name} must exist in {column.foreign_key}: none of the "
                f"{len(missing)} value(s) of this table that do not may appear",
            )
        )
    return found


def _dataset_expectation(gxe, rule: DatasetRule):
    p = rule.params
    if rule.kind == "row_count":
        return gxe.ExpectTableRowCountToBeBetween(min_value=p["minimum"], max_value=p["maximum"])
    if rule.kind == "compound_unique":
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(p["columns"]))
    if rule.kind == "column_less_than":
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=p["other"], column_B=p["column"], or_equal=False)
    if rule.kind == "median_between":
        return gxe.ExpectColumnMedianToBeBetween(column=p["column"], min_value=p["minimum"], max_value=p["maximum"])
    if rule.kind == "null_percent_max":
        return gxe.ExpectColumnValuesToNotBeNull(column=p["column"], mostly=1 - p["maximum"] / 100)
    if rule.kind in GX_NOT_EXPRESSED:
        return None
    raise ValueError(f"no GX expectation for rule kind {rule.kind}")


def to_gx_suite(contract: TableContract, orphans: dict | None = None):
    """The contract's expectations; `orphans` maps a foreign key to the table's values absent from its target."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=contract.id, meta={"contract": contract.label, "contract_sha256": contract.sha256})
    for column in contract.columns:
        for expectation in _column_expectations(gxe, column, orphans or {}):
            suite.add_expectation(expectation)
    for rule in contract.rules:
        if (expectation := _dataset_expectation(gxe, rule)) is not None:
            suite.add_expectation(expectation)
    return suite


def run_gx(frame: pd.DataFrame, contract: TableContract, docs_dir: Path, orphans: dict | None = None) -> dict:
    """Validate `frame` with the contract's suite in an ephemeral context; write offline Data Docs in `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch_definition = (
        context.data_sources.add_pandas(name=contract.id)
        .add_dataframe_asset(name=contract.id)
        .add_batch_definition_whole_dataframe(contract.id)
    )
    suite = context.suites.add(to_gx_suite(contract, orphans))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=contract.id, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=contract.id,
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE_NAME])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    make_offline(docs_dir)
    run = next(iter(result.run_results.values()))
    failed = {
        f"{r.expectation_config.type}:{r.expectation_config.kwargs.get('column', '*')}": r.result.get(
            "unexpected_count"
        )
        for r in run.results
        if not r.success
    }
    return {
        "success": bool(result.success),
        "evaluated_expectations": run.statistics["evaluated_expectations"],
        "successful_expectations": run.statistics["successful_expectations"],
        "failed_expectations": failed,
    }
