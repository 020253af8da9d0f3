"""The bad-input corpus: each case ends in exact quarantined rows or an exact error, and never touches what was
already published (every file of every earlier version stays byte-identical)."""

import hashlib
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest

from soil_pipeline.cli import failure_text, input_failure_lines, landing_warnings, main
from soil_pipeline.contracts.declaration import DEFAULT_DECLARATION
from soil_pipeline.errors import BrokenRule, DeclarationError, InputError, Remedy
from soil_pipeline.publishing.store import CATALOG_FILE, VersionedParquetStore
from soil_pipeline.resources import InputDatasets
from soil_pipeline.runner import RunOutcome, run_job

CORPUS = Path(__file__).parent / "bad_inputs"
PARTITION = "2024-01"
H, S = "horizons.csv", "sites.csv"
FIELD_DROP = ["field_sites", "field_horizons", "field_sites_rejects", "field_horizons_rejects"]

QUARANTINED = {
    "bd_2p7": [(H, 5, "range", "bulk_density_g_per_cm3", "2.7")],
    "soc_above_600": [(H, 2, "range", "soc_g_per_kg", "650.0")],
    "soc_negative": [(H, 10, "range", "soc_g_per_kg", "-3.0")],
    "inverted_depths": [(H, 8, "depth_order", "upper_depth_cm", "46.0")],
    "duplicated_site_ids": [
        (H, 7, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (H, 8, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (S, 4, "unique", "site_id", "BW SOTER_DI0901"),
        (S, 6, "unique", "site_id", "BW SOTER_DI0901"),
    ],
    "orphan_horizon": [(H, 11, "foreign_key", "site_id", "NOT A SITE")],
    "missing_site_id": [(H, 11, "required", "site_id", None)],
    "non_numeric_soc": [(H, 9, "type", "soc_g_per_kg", "n.d.")],
    "latitude_out_of_range": [
        (H, 5, "foreign_key", "site_id", "BW SOTER_BE0903"),
        (H, 6, "foreign_key", "site_id", "BW SOTER_BE0903"),
        (S, 3, "range", "latitude_deg", "-95.5"),
    ],
    "longitude_out_of_range": [
        (H, 9, "foreign_key", "site_id", "BW SOTER_DU0902"),
        (H, 10, "foreign_key", "site_id", "BW SOTER_DU0902"),
        (S, 5, "range", "longitude_deg", "206.27"),
    ],
    "impossible_date": [
        (H, 2, "foreign_key", "site_id", "BJ wasp_3"),
        (H, 3, "foreign_key", "site_id", "BJ wasp_3"),
        (H, 4, "foreign_key", "site_id", "BJ wasp_3"),
        (S, 2, "type", "sampling_date", "1997-13-45"),
    ],
    "duplicate_horizon": [
        (H, 10, "unique_site_depth", "site_id,upper_depth_cm", "BW SOTER_DU0902, 24.0"),
        (H, 11, "unique_site_depth", "site_id,upper_depth_cm", "BW SOTER_DU0902, 24.0"),
    ],
    "coarse_fragments_above_100": [(H, 2, "range", "coarse_fragments_vol_pct", "120.0")],
    "ph_above_12": [(H, 5, "range", "ph_h2o", "15.2")],
    "missing_latitude": [
        (H, 7, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (H, 8, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (S, 4, "required", "latitude_deg", None),
    ],
    "clay_negative": [(H, 7, "range", "clay_pct", "-5.0")],
    "good_parquet": [],
    "zero_padded_ids": [],
    "blank_site_id": [(S, 4, "required", "site_id", None)],
    "infinity_bd": [(H, 7, "type", "bulk_density_g_per_cm3", "Infinity")],
    "huge_cell": [(H, 10, "type", "soc_g_per_kg", "x" * 100)],
    "missing_lon_and_lat": [
        (H, 7, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (H, 8, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (S, 4, "required", "latitude_deg", None),
        (S, 4, "required", "longitude_deg", None),
    ],
    "quoted_multiline_cell": [
        (H, 9, "foreign_key", "site_id", "BW SOTER_DU0902"),
        (H, 10, "foreign_key", "site_id", "BW SOTER_DU0902"),
        (S, 7, "range", "latitude_deg", "-95.5"),
    ],
    "site_in_atlantic": [
        (H, 7, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (H, 8, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (S, 4, "on_land", "longitude_deg,latitude_deg", "-30.0, 0.0"),
    ],
    "site_in_antarctica": [
        (H, 7, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (H, 8, "foreign_key", "site_id", "BW SOTER_DI0901"),
        (S, 4, "in_configured_regions", "longitude_deg,latitude_deg", "166.67, -77.85"),
        (S, 4, "on_land", "longitude_deg,latitude_deg", "166.67, -77.85"),
    ],
    "deep_broken_horizon": [
        (H, 11, "range", "lower_depth_cm", "1600.0"),
        (H, 11, "range", "upper_depth_cm", "1100.0"),
    ],
    "identical_duplicate_rows": [],
    "bd_2p3_flagged": [],
    "symlink_inside_landing": [],
}

# What else each row-level case must show in the published tables (asset, column, site_id, expected value).
PUBLISHED = {
    "zero_padded_ids": [("field_sites", "site_id", None, ["000001", "000002", "000003", "000004"])],
    "blank_site_id": [("field_horizons", "site_id", None, ["1", "1", "1", "2", "2", "4", "4"])],
    "huge_cell": [("field_horizons_rejects", "value_length", None, [100_000])],
    "identical_duplicate_rows": [("field_horizons", "identical_copies", None, [3, 1, 1, 1, 1, 1, 1, 1, 1])],
    "deep_broken_horizon": [("topsoil_soc_stocks", "exclusion_reason", "BW SOTER_DI0901", [None])],
    "bd_2p3_flagged": [("topsoil_soc_stocks", "bd_above_plausible_max", "BW SOTER_DI0901", [True])],
}

FAILING_DROPS = {
    "header_only_sites": "sites.csv: field_sites v1.0.0 broken:\n"
    "  field_sites v1.0.0: row count must be within [1, 5000000]",
    "empty_horizons_file": "horizons.csv: empty file, no header line",
    "missing_soc_column": "horizons.csv: missing required column(s) by declaration "
    f"{DEFAULT_DECLARATION}: soc_g_per_kg (SOC content, for the 0-30 cm stock) from header 'ORCDRC' "
    "(horizons.columns.soc_g_per_kg)",
    "semicolon_delimiter": "sites.csv: missing required column(s) by declaration "
    f"{DEFAULT_DECLARATION}: site_id (required by the contract) from header 'SOURCEID' (sites.columns.site_id); "
    "longitude_deg (required by the contract) from header 'LONWGS84' (sites.columns.longitude_deg); "
    "latitude_deg (required by the contract) from header 'LATWGS84' (sites.columns.latitude_deg) "
    "(the header has one column with ';' in it: is the delimiter not a comma?)",
    "unclosed_quote": "horizons.csv: malformed CSV",
    "soc_in_percent": "median soc_g_per_kg must be within [1.0, 200.0]",
    "bd_in_kg_per_m3": "median bulk_density_g_per_cm3 must be within [0.5, 2.0]",
    "latin1_encoding": "sites.csv: not UTF-8 text (byte 0xe8 at line 2: invalid continuation byte)",
    "utf16_encoding": "sites.csv: not UTF-8 text (byte 0xff at line 1: invalid start byte)",
    "no_sites_file": "expected exactly one *sites.csv or *sites.parquet file, found 0",
    "two_sites_files": "expected exactly one *sites.csv or *sites.parquet file, found 2",
    "truncated_parquet": "sites.parquet: unreadable table",
    "truncated_csv": "horizons.csv: malformed CSV (CSV parse error: Expected 10 columns, got 3",
    "duplicate_header": "horizons.csv: duplicate column name: 'ORCDRC' and 'ORCDRC' (rename or remove one)",
    "case_whitespace_header": "sites.csv: column names differ only by case or whitespace: 'SOURCEDB' and ' sourcedb'",
    "mostly_quarantined": "horizons.csv: field_horizons v1.0.0 broken:\n"
    "  field_horizons v1.0.0: max_quarantined_share: 66.7 % of rows quarantined (6 of 9), more than the 50 % "
    "allowed; top rules: range:ph_h2o (6 rows)",
    "no_site_with_a_stock": "horizons.csv: min_sites_with_stock: 0 site(s) with a 0-30 cm stock, at least 1 required",
    "latlon_swapped": "sites.csv: field_sites v1.0.0 broken:\n  field_sites v1.0.0: max_quarantined_share: ",
    "symlink_outside_landing": "horizons.csv: symlink to /etc/passwd, outside the landing folder",
    "symlink_to_csv_elsewhere": "horizons.csv: symlink to "
    f"{CORPUS.resolve() / 'field' / 'bd_2p3_flagged' / 'field_samples' / PARTITION / H}, outside the landing folder",
}

NOTHING_LISTED = "Nothing from the failed run was listed; every asset keeps its previous latest version."
FAILING_RASTERS = {
    "truncated.tif": "truncated.tif: unreadable raster",
    "web_mercator.tif": "rule crs: expected EPSG:4326, found EPSG:3857",
    "half_degree.tif": "rule resolutionDeg: expected 0.0833333333333333 deg square cells, found 0.5 x 0.5",
    "two_bands.tif": "rule bandCount: expected 1 band(s), found 2",
    "shifted_third_of_a_cell.tif": "rule extentDeg: west edge at -179.972222, expected -180.0 (0.333 cell off)",
    "no_nodata_tag.tif": "rule nodata: expected a nodata tag of -32767, found None",
    "float_dtype.tif": "rule dtype: expected int16, found float32",
    "scaled.tif": "rule scale/offset: expected 1.0/0.0, found 0.1/0.0",
    "values_out_of_range.tif": "rule valueRange: 6 pixel(s) outside [0, 800] t C/ha in window rows 1000-1002, "
    "cols 2000-2001 (e.g. 5000 at row 1000, col 2000)",
}


def _published_files(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.glob("*/*/*"))
        if path.is_file() and not path.parts[-3].startswith("_")
    }


@pytest.fixture
def published_root(embedded_run, tmp_path):
    """A copy of the embedded run's published versions and committed grids (topsoil stocks reads the climate grid)."""
    _, source = embedded_run
    root = tmp_path / "published"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("_data_docs", ".lock"))
    before = (_published_files(root), (root / CATALOG_FILE).read_bytes())
    yield root, before
    assert {name: digest for name, digest in _published_files(root).items() if name in before[0]} == before[0]


def _materialize(selection, root: Path, inputs: InputDatasets, partition: str | None = PARTITION) -> RunOutcome:
    """Run the main job on `selection` and commit it when it succeeds, as `soil-pipeline run` does."""
    return run_job(root, partition=partition, inputs=inputs, asset_selection=selection)


def _failure_text(outcome: RunOutcome) -> str:
    texts = []
    for event in outcome.result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            texts.append(data.error.to_string() if data.error else "")
            texts.append(data.user_failure_data.description if data.user_failure_data else "")
    return "\n".join(texts)


def _rejects(root: Path, asset: str) -> list[tuple]:
    table = VersionedParquetStore(root).read(asset, partition=PARTITION)
    rows = table[["source_file", "source_line", "rule", "column", "value"]].itertuples(index=False)
    return [(*row[:4], None if pd.isna(row[4]) else row[4]) for row in rows]


@pytest.mark.parametrize("case", sorted(QUARANTINED))
def test_row_level_problems_are_quarantined_and_good_rows_kept(case, published_root):
    root, _ = published_root
    selection = FIELD_DROP + (["topsoil_soc_stocks"] if case in PUBLISHED else [])
    result = _materialize(selection, root, InputDatasets(landing_dir=str(CORPUS / "field" / case)))
    assert result.success, _failure_text(result)
    rejects = sorted(_rejects(root, "field_horizons_rejects") + _rejects(root, "field_sites_rejects"))
    assert rejects == QUARANTINED[case]
    store = VersionedParquetStore(root)
    horizons = store.read("field_horizons", partition=PARTITION)
    sites = store.read("field_sites", partition=PARTITION)
    rejected_lines = {(file, line) for file, line, *_ in QUARANTINED[case]}
    n_horizons = len((CORPUS / "field" / case / "field_samples" / PARTITION / H).read_text().splitlines()) - 1
    collapsed = int((horizons["identical_copies"] - 1).sum())
    assert len(horizons) + collapsed == n_horizons - len({line for file, line in rejected_lines if file == H})
    assert set(horizons["site_id"]) <= set(sites["site_id"])
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.result.get_asset_check_evaluations()}
    assert checks[("field_horizons", "contract")].passed == (not any(f == H for f, *_ in QUARANTINED[case]))
    assert checks[("field_sites", "contract")].passed == (not any(f == S for f, *_ in QUARANTINED[case]))
    for asset, column, site, expected in PUBLISHED.get(case, []):
        table = store.read(asset, partition=PARTITION)
        values = table.loc[table["site_id"] == site, column] if site else table[column]
        assert [None if pd.isna(v) else v for v in values] == expected


def test_a_symlink_inside_the_landing_folder_is_read_and_recorded_resolved(published_root):
    root, _ = published_root
    landing = CORPUS / "field" / "symlink_inside_landing"
    assert _materialize(FIELD_DROP, root, InputDatasets(landing_dir=str(landing))).success
    manifest = VersionedParquetStore(root).manifest(
        "field_horizons", VersionedParquetStore(root).resolve("field_horizons", "latest", PARTITION)
    )
    recorded = manifest["provenance"]["inputs"][f"field_horizons[{PARTITION}]"]
    assert (recorded["file"], recorded["resolved_path"]) == ("horizons.csv", "shared/horizons.csv")


@pytest.mark.parametrize("case", sorted(FAILING_DROPS))
def test_dataset_level_problems_fail_the_run_naming_file_and_rule(case, published_root):
    root, (_, catalog_before) = published_root
    result = _materialize(FIELD_DROP, root, InputDatasets(landing_dir=str(CORPUS / "field" / case)))
    assert not result.success
    assert FAILING_DROPS[case] in _failure_text(result)
    assert str(CORPUS / "field" / case) in _failure_text(result)
    assert (root / CATALOG_FILE).read_bytes() == catalog_before
    # what `soil-pipeline run` prints last, from the failure's metadata: asset, file, rule, remedy, and no Dagster
    # wrapper text
    [failure] = result.failures()
    assert failure.remedy in set(Remedy) - {Remedy.OTHER}
    ending = input_failure_lines(failure)
    publishes = "field_sites, field_horizons, their rejects and topsoil_soc_stocks"
    assert ending[0] == f"FAILED field_drop (publishes {publishes}); nothing of this step was published"
    assert ending[1].startswith(f"  file:   {CORPUS / 'field' / case}")
    assert ending[2] == f"  rule:   {failure.rule.splitlines()[0]}" and failure.rule in _failure_text(result)
    assert ending[-1] == f"  remedy: {failure.remedy}"
    assert "dagster" not in "\n".join(ending).lower()
    assert failure_text(result).splitlines() == [NOTHING_LISTED, *ending]


def test_a_bad_partition_is_one_line_naming_the_form(tmp_path, capsys):
    for partition in ("2013-1", "../x"):
        assert main(["run", "--partition", partition, "--output-root", str(tmp_path)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"soil-pipeline run: --partition '{partition}' is not a drop: use YYYY-MM, e.g. 2012-10, the name of its "
            "folder under <landing>/field_samples/"
        ]


def test_drops_lists_landing_folders_and_warns_about_invalid_ones(tmp_path, capsys):
    for folder in ("2024-01", "2013-1"):
        (tmp_path / "field_samples" / folder).mkdir(parents=True)
    (tmp_path / "field_samples" / "2024-01" / "sites.csv").write_text("SOURCEID\n")
    assert main(["drops", "--landing-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  2024-01  sites.csv",
        "  2013-1  warning: not a partition folder, use YYYY-MM, e.g. 2012-10; ignored",
    ]
    assert landing_warnings(str(tmp_path)) == [
        f"warning: {tmp_path}/field_samples/2013-1/ is not a partition folder (YYYY-MM, e.g. 2012-10); it is ignored"
    ]


def test_a_run_that_fails_after_staging_field_tables_lists_nothing(published_root):
    """A good drop's field tables and stocks are staged, but the cropland raster is unreadable, so another step of
    the run fails: the run lists nothing, and every asset keeps its previous latest version."""
    root, (_, catalog_before) = published_root
    inputs = InputDatasets(
        landing_dir=str(CORPUS / "field" / "bd_2p7"), cropland_raster=str(CORPUS / "rasters" / "truncated.tif")
    )
    result = _materialize([*FIELD_DROP, "topsoil_soc_stocks", "cropland_grid"], root, inputs)
    assert not result.success
    assert "truncated.tif: unreadable raster" in _failure_text(result)
    staged = {m.asset_key.path[0]: m for m in result.result.asset_materializations_for_node("field_drop")}
    for asset in ("field_sites", "topsoil_soc_stocks"):  # staged, written
        assert VersionedParquetStore(root).manifest(asset, staged[asset].metadata["version"].value)
    materialized = {m.asset_key.to_user_string() for m in result.result.get_asset_materialization_events()}
    assert "cropland_grid" not in materialized
    assert (root / CATALOG_FILE).read_bytes() == catalog_before


@pytest.mark.parametrize("raster", sorted(FAILING_RASTERS))
def test_broken_rasters_fail_naming_file_and_rule(raster, published_root):
    root, (_, catalog_before) = published_root
    path = CORPUS / "rasters" / raster
    result = _materialize(["soc_stock_grid"], root, InputDatasets(soc_stock_2010_raster=str(path)), partition=None)
    assert not result.success
    assert FAILING_RASTERS[raster] in _failure_text(result)
    assert str(path) in _failure_text(result)
    assert (root / CATALOG_FILE).read_bytes() == catalog_before
    assert [e.passed for e in result.result.get_asset_check_evaluations()] == [False]
    # the failure's metadata names the file, the pixel window when there is one, and the remedy
    [failure] = result.failures()
    assert failure.file == str(path) and FAILING_RASTERS[raster] in f"{failure.file}: {failure.rule}"
    assert failure.remedy == (Remedy.UNREADABLE if raster == "truncated.tif" else Remedy.RASTER_CONTRACT)
    assert (failure.window is not None) == ("window" in failure.rule)
    assert failure.window is None or f"window {failure.window}" in failure.rule
    assert failure_text(result).splitlines() == [NOTHING_LISTED, *input_failure_lines(failure)]


def test_input_errors_keep_their_fields_across_processes():
    """A window checked on a Dask worker raises there: the error reaches the run with its fields, not rebuilt from
    its message."""
    window = InputError("a.tif", "unreadable raster in window rows 0-9", Remedy.UNREADABLE, window="rows 0-9")
    declaration = DeclarationError("d.yaml", "sites.units.soc_g_per_kg: 'ppm' is not a unit")
    for error in (window, declaration):
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), str(copy), copy.fields()) == (type(error), str(error), error.fields())
    assert declaration.fields()["remedy"] == Remedy.DECLARATION
    rule = pickle.loads(pickle.dumps(BrokenRule("field_horizons v1.0.0: median ...", "median_between")))
    assert (rule, rule.kind, rule.remedy) == ("field_horizons v1.0.0: median ...", "median_between", Remedy.UNITS)
