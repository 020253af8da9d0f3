"""Derive a Great Expectations 1.x suite from a table contract and render its validation as Data Docs.

GX is imported inside the functions: it costs seconds at import and only the data-quality checks need it.
"""

from pathlib import Path

import pandas as pd

from soil_pipeline.contracts.model import TableContract
from soil_pipeline.contracts.offline_docs import make_offline
from soil_pipeline.contracts.rules import COLUMN_KINDS, DATASET_KINDS

SITE_NAME = "soil_pipeline_data_docs"


def to_gx_suite(contract: TableContract, orphans: dict | None = None):
    """The contract's expectations, each from its rule's kind (contracts.rules); a kind GX cannot express (on the
    drop as a whole, or needing reference polygons) gives none and is left to pandera and contracts.validate.
    `orphans` maps a foreign key to the table's values absent from its target."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=contract.id, meta={"contract": contract.label, "contract_sha256": contract.sha256})
    for column in contract.columns:
        suite.add_expectation(gxe.ExpectColumnToExist(column=column.name))
        for kind in COLUMN_KINDS:
            if kind.applies(column) and (expectation := kind.gx(gxe, column, orphans or {})) is not None:
                suite.add_expectation(expectation)
    for rule in contract.rules:
        if (expectation := DATASET_KINDS[rule.kind].gx(gxe, rule)) is not None:
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
