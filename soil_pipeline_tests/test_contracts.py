"""Contracts are the one source of truth: valid ODCS, and pandera and GX both follow them; AfSP anomalies rules."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from soil_pipeline.contracts import gx_worker
from soil_pipeline.contracts.gx_suite import run_gx
from soil_pipeline.contracts.model import CONTRACTS_DIR, load_raster_contract, load_table_contract, odcs_schema
from soil_pipeline.contracts.validate import validate
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.readers import read_table_file
from soil_pipeline.resources import InputDatasets

AFSP_HORIZONS = Path(InputDatasets().drop_dir("2012-10")) / "afsp_horizons.csv"


def _horizons(contract):
    return read_table_file(AFSP_HORIZONS, contract.source_columns())


def test_every_contract_is_valid_odcs():
    for path in sorted(CONTRACTS_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        loader = load_raster_contract if document["schema"][0]["physicalType"] == "raster" else load_table_contract
        assert loader(path.stem).id == path.stem


def test_the_shipped_odcs_schema_is_a_valid_json_schema():
    # Checked here, not at every run (check_schema takes ~0.3 s): contracts are validated against it.
    schema = odcs_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_an_edited_contract_is_read_again_in_the_same_process(tmp_path):
    shutil.copy(CONTRACTS_DIR / "field_sites.yaml", tmp_path)
    path = tmp_path / "field_sites.yaml"
    first = load_table_contract("field_sites", tmp_path)
    assert load_table_contract("field_sites", tmp_path) is first  # parsed and validated once
    stat = path.stat()
    path.write_text(path.read_text().replace("version: ", "version: 9", 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same modification time: the content decides
    edited = load_table_contract("field_sites", tmp_path)
    assert edited.version == f"9{first.version}"
    assert edited.sha256 != first.sha256
    path.write_text("apiVersion: v3.1.0\nkind: DataContract\nid: field_sites\n")
    with pytest.raises(ValueError, match="not a valid ODCS v3 contract"):
        load_table_contract("field_sites", tmp_path)


def test_pandera_and_gx_agree_on_the_real_horizons(tmp_path):
    contract = load_table_contract("field_horizons")
    validation = validate(_horizons(contract), contract)
    report = run_gx(validation.checked, contract, tmp_path / "docs")
    # GX sees the rows after identical copies collapsed; the 300 copies of rejected rows are rejected at their own
    # lines too (every row accounted for), so they are left out of the comparison
    kept = validation.rejects["source_line"].isin(validation.checked["source_line"])
    assert (~kept).sum() == 300
    counts = validation.rejects[kept].groupby(["rule", "column"]).size().to_dict()
    assert report["failed_expectations"] == {
        "expect_column_values_to_be_between:bulk_density_g_per_cm3": counts[("range", "bulk_density_g_per_cm3")],
        "expect_column_values_to_be_between:upper_depth_cm": counts[("range", "upper_depth_cm")],
        "expect_column_values_to_be_between:lower_depth_cm": counts[("range", "lower_depth_cm")],
        "expect_compound_columns_to_be_unique:*": counts[("unique_site_depth", "site_id,upper_depth_cm")],
        "expect_column_pair_values_a_to_be_greater_than_b:*": counts[("depth_order", "upper_depth_cm")],
    }
    assert "field_horizons" in (tmp_path / "docs" / "index.html").read_text()


def test_validation_results_carry_the_tables_attrs_as_copies():
    """validate works without the attrs (pandas would deep-copy them into every result) and hands them on: pyarrow
    writes a frame's attrs into the published pandas metadata."""
    contract = load_table_contract("field_horizons")
    horizons = _horizons(contract).head(2000)
    provenance = {"inputs": {"field_horizons": {"file": "afsp_horizons.csv", "sha256": "0" * 64}}}
    horizons.attrs.update({"provenance": provenance, "declared_conversions": {}})
    validation = validate(horizons, contract)
    assert len(validation.rejects) > 0 and len(validation.valid) > 0
    for result in (validation.checked, validation.valid):
        assert result.attrs == horizons.attrs
        assert result.attrs["provenance"] is not provenance  # a copy: editing one table's attrs leaves the other's
    assert horizons.attrs["provenance"] is provenance


def test_pandera_and_gx_agree_on_horizons_of_unknown_sites(tmp_path):
    contract = load_table_contract("field_horizons")
    horizons = _horizons(contract)
    key = contract.column("site_id").foreign_key
    known = set(horizons["site_id"]) - {horizons["site_id"].iloc[0], horizons["site_id"].iloc[-1]}
    validation = validate(horizons, contract, {key: known})
    orphans = {key: set(horizons["site_id"]) - known}
    report = run_gx(validation.checked, contract, tmp_path / "docs", orphans)
    orphan_rows = int(horizons["site_id"].isin(orphans[key]).sum())
    assert orphan_rows >= 2
    assert (validation.rejects["rule"] == "foreign_key").sum() == orphan_rows
    assert report["failed_expectations"]["expect_column_values_to_not_be_in_set:site_id"] == orphan_rows


def test_the_gx_worker_process_reports_as_gx_in_process_and_names_its_failures(tmp_path):
    contract = load_table_contract("field_horizons")
    checked = validate(_horizons(contract), contract).checked
    assert gx_worker.run_gx(checked, contract, tmp_path / "worker") == run_gx(checked, contract, tmp_path / "here")
    assert (tmp_path / "worker" / "index.html").exists()
    with pytest.raises(RuntimeError, match="Great Expectations failed in its worker process"):
        gx_worker.run_gx("not a table", contract, tmp_path / "bad")
    worker = gx_worker._worker()
    gx_worker.stop()
    assert worker.process.poll() is not None  # ended, not left running
    assert gx_worker._worker() is not worker  # the next call starts a new one
    gx_worker.stop()


def test_the_gx_worker_loads_what_gx_imports_but_our_suites_never_use_only_when_used():
    # As in the worker (a process of its own, so this one's imports stay as they are): GX imported with the lazy
    # finder leaves scipy.stats unloaded, and the module works in full on first use.
    code = (
        "import sys; from soil_pipeline.contracts import gx_worker; sys.meta_path.insert(0, gx_worker._LazyFinder()); "
        "import great_expectations; before = type(sys.modules['scipy.stats']).__name__; import scipy.stats; "
        "print(before, scipy.stats.norm.cdf(0.0), type(sys.modules['scipy.stats']).__name__)"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert printed == ["_LazyModule", "0.5", "module"]


def test_the_gx_worker_imports_gx_without_its_sql_and_aws_extras():
    # As in the worker: GX imported with SQLAlchemy, boto3 and botocore found absent loads none of them, where it
    # loads all three as installed here; the worker's reports equal GX's in this process, which has them (above).
    def loaded(finders: str) -> list[str]:
        code = (
            f"import sys; from soil_pipeline.contracts import gx_worker; sys.meta_path[:0] = [{finders}]; "
            "import great_expectations, great_expectations.expectations; "
            "print(sorted({name.partition('.')[0] for name in sys.modules} & {'sqlalchemy', 'boto3', 'botocore'}))"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()

    assert loaded("gx_worker._LazyFinder()") == ["['boto3',", "'botocore',", "'sqlalchemy']"]
    assert loaded("gx_worker._AbsentFinder(), gx_worker._LazyFinder()") == ["[]"]


def _data_docs_pages(folder: Path) -> dict[str, str]:
    """The HTML pages of a Data Docs site by path, with what differs between two renderings of the same validation
    (run times, element ids) blanked."""
    run_time = re.compile(r"\d{8}T\d{6}\.\d+Z|20\d\d-\d\d-\d\d[T ][\d:.]+(?:\+00:00|Z)?|'_run_time_sort': [\d.]+")
    element_id = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    return {
        run_time.sub("T", str(page.relative_to(folder))): element_id.sub("U", run_time.sub("T", page.read_text()))
        for page in sorted(folder.rglob("*.html"))
    }


def test_the_gx_worker_compiles_each_data_docs_template_once_and_renders_the_same_pages(tmp_path):
    # In a process of its own, as in the worker: a site rendered by GX as installed, then twice with the compiled
    # templates shared. The first shared rendering compiles each template once (GX's views compile some twice),
    # the second none, and the pages are those GX renders without the sharing.
    printed = subprocess.run(
        [sys.executable, "-m", "soil_pipeline_tests.gx_template_compiles", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    compiles = json.loads(printed.splitlines()[-1])
    assert compiles["plain"] > compiles["shared_0"] > 0
    assert compiles["shared_1"] == 0
    plain = _data_docs_pages(tmp_path / "plain")
    assert len(plain) >= 3  # the index, the suite's page and the validation's
    assert _data_docs_pages(tmp_path / "shared_0") == plain
    assert _data_docs_pages(tmp_path / "shared_1") == plain


def test_changing_a_range_in_the_contract_changes_pandera_and_gx(tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    path = contracts / "field_horizons.yaml"
    path.write_text(path.read_text().replace("{minimum: 0.1, maximum: 2.65}", "{minimum: 0.1, maximum: 2.0}"))
    for directory, expected_bd_rejects in ((CONTRACTS_DIR, 1), (contracts, 65)):
        contract = load_table_contract("field_horizons", directory)
        validation = validate(_horizons(contract), contract)
        report = run_gx(validation.checked, contract, tmp_path / f"docs-{expected_bd_rejects}")
        assert (validation.rejects["column"] == "bulk_density_g_per_cm3").sum() == expected_bd_rejects
        gx_failures = report["failed_expectations"].get("expect_column_values_to_be_between:bulk_density_g_per_cm3")
        assert gx_failures == (expected_bd_rejects or None)


def test_invalid_contract_is_refused(tmp_path):
    (tmp_path / "broken.yaml").write_text("apiVersion: v3.1.0\nkind: DataContract\nid: broken\n")
    with pytest.raises(ValueError, match="not a valid ODCS v3 contract"):
        load_table_contract("broken", tmp_path)


@pytest.fixture(scope="module")
def afsp(embedded_run):
    _, root = embedded_run
    store = VersionedParquetStore(root)
    return {name: store.read(name, partition="2012-10") for name in ("field_horizons", "field_horizons_rejects")} | {
        "stocks": store.read("topsoil_soc_stocks", partition="2012-10").set_index("site_id")
    }


def test_afsp_negative_upper_depths_are_kept_as_organic_layers(afsp):
    organic = afsp["field_horizons"][afsp["field_horizons"]["upper_depth_cm"] < 0]
    assert len(organic) == 39
    assert organic["upper_depth_cm"].min() == -30


def test_afsp_inverted_intervals_are_quarantined_and_their_sites_excluded(afsp):
    rejects = afsp["field_horizons_rejects"]
    inverted = rejects[rejects["rule"] == "depth_order"]
    assert sorted(inverted["site_id"]) == ["SO 28564_17", "SO 28564_H29"]
    assert set(inverted["value"]) == {"145.0", "80.0"}
    for site in inverted["site_id"]:
        assert "quarantined_horizon" in afsp["stocks"].loc[site, "exclusion_reason"]


def test_afsp_bulk_density_above_2p65_is_quarantined_and_above_2_flagged(afsp):
    rejects = afsp["field_horizons_rejects"]
    bd = rejects[(rejects["rule"] == "range") & (rejects["column"] == "bulk_density_g_per_cm3")]
    assert list(bd["value"]) == ["2.7"]
    row = bd.iloc[0]
    assert (row["site_id"], row["source_file"], row["source_line"]) == ("ZW wasp_18", "afsp_horizons.csv", 86663)
    kept = afsp["field_horizons"]["bulk_density_g_per_cm3"]
    assert kept.max() <= 2.65
    assert ((kept > 2.0) & (kept <= 2.65)).sum() == 64
    stocks = afsp["stocks"]
    flagged = stocks[stocks["bd_above_plausible_max"]]
    assert len(flagged) > 0 and flagged["topsoil_soc_stock_t_c_per_ha"].notna().any()


def test_afsp_quarantine_blocks_a_stock_only_in_0_30_cm(afsp):
    """The two sites whose only rejects are depths of 11-20 m keep their stock; identical copies collapse."""
    rejects, stocks = afsp["field_horizons_rejects"], afsp["stocks"]
    deep = rejects[rejects["column"].isin(["upper_depth_cm", "lower_depth_cm"]) & (rejects["rule"] == "range")]
    assert len(deep) > 0 and (deep["upper_depth_cm"] >= 30).all()
    assert stocks.loc[deep["site_id"].unique(), "topsoil_soc_stock_t_c_per_ha"].notna().all()
    horizons = afsp["field_horizons"]
    assert (horizons["identical_copies"] > 1).sum() == 51
    assert int((horizons["identical_copies"] - 1).sum()) == 75
    assert stocks["topsoil_soc_stock_t_c_per_ha"].notna().sum() == 19104


def test_afsp_peat_soc_570_is_kept_but_gets_no_invented_bulk_density(afsp):
    peat = afsp["field_horizons"][afsp["field_horizons"]["soc_g_per_kg"] == 570]
    assert list(peat["site_id"]) == ["ZM W3_0008"]
    site = afsp["stocks"].loc["ZM W3_0008"]
    assert pd.isna(site["topsoil_soc_stock_t_c_per_ha"])
    assert site["exclusion_reason"] == "missing_bd_outside_ptf_domain"


def test_failures_by_rule_render_as_a_markdown_table_whole_table_rules_without_a_count():
    from soil_pipeline.checks import failures_table

    table = failures_table({"range:bulk_density_g_per_cm3": 65, "expect_table_row_count_to_be_between:*": None})
    assert table.splitlines() == [
        "| rule | column | failures |",
        "| --- | --- | ---: |",
        "| range | bulk_density_g_per_cm3 | 65 |",
        "| expect_table_row_count_to_be_between | * | - |",
    ]
    assert failures_table({}) == "none"
