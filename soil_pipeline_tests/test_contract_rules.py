"""The registry of contract rule kinds: a misspelt kind or key refuses the contract at load, naming file and word;
every kind, through its pandera, streaming and Great Expectations implementations, judges the same small tables
(built on the real contracts) alike, with the rows and errors worked out by hand below; the verdicts computed on
whole columns (what validation runs) are pandera's, row for row, missing values included."""

import itertools
import shutil
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute
import pytest
import rasterio
import shapely
from affine import Affine

from soil_pipeline.contracts import rules
from soil_pipeline.contracts.model import CONTRACTS_DIR, ContractError, load_raster_contract, load_table_contract
from soil_pipeline.contracts.stream import Buckets, validate_buckets
from soil_pipeline.contracts.validate import (
    MISSING_TOKENS,
    NUMBER_PATTERN,
    NUMERAL_BYTES,
    Failures,
    LandMask,
    Regions,
    _pandera_failures,
    _typed_as_coerced,
    coerce,
    collapse_identical,
    rule_failures,
    validate,
)
from soil_pipeline.engine.points import HasValue
from soil_pipeline.engine.raster import RasterSource

# --- refused at load -------------------------------------------------------------------------------------------

SOC_GUARD = "{rule: median_between, column: soc_g_per_kg, minimum: 1.0, maximum: 200.0}"
REFUSED = {
    "kind misspelt": (
        "field_horizons",
        SOC_GUARD,
        SOC_GUARD.replace("median_between", "median_betwen"),
        [
            "dataset rule soc_units_guard: unknown rule kind 'median_betwen' (did you mean 'median_between'?)",
            "known rule kinds: collapse_identical, column_less_than, compound_unique, max_rejected_share, "
            "median_between, min_non_null, null_percent_max, point_on_land, point_region_excluded, row_count",
        ],
    ),
    "key misspelt": (
        "field_horizons",
        "{rule: max_rejected_share, maximumPct: 50}",
        "{rule: max_rejected_share, maximumPercent: 50}",
        [
            "dataset rule max_quarantined_share (max_rejected_share): unknown key 'maximumPercent' "
            "(did you mean 'maximumPct'?); known keys: maximumPct"
        ],
    ),
    "unknown key beside the right ones": (
        "field_horizons",
        SOC_GUARD,
        SOC_GUARD.replace("}", ", severity_pct: 5}"),
        ["dataset rule soc_units_guard (median_between): unknown key 'severity_pct'; known keys: column, maximum, "],
    ),
    "key missing": (
        "field_horizons",
        SOC_GUARD,
        SOC_GUARD.replace(", maximum: 200.0", ""),
        ["dataset rule soc_units_guard (median_between): missing key(s) maximum; required: column, minimum, maximum"],
    ),
    "column of a rule misspelt": (
        "field_horizons",
        SOC_GUARD,
        SOC_GUARD.replace("column: soc_g_per_kg", "column: soc_g_per_kgg"),
        ["dataset rule soc_units_guard (median_between) column: unknown column 'soc_g_per_kgg' (did you mean "],
    ),
    "ODCS metric not supported": (
        "countries",
        "metric: rowCount",
        "metric: missingValues",
        [
            "dataset rule row_count: unknown metric 'missingValues'",
            "; known metrics: duplicateValues, nullValues, rowCount",
        ],
    ),
    "ODCS operator not supported": (
        "countries",
        "mustBeBetween:",
        "mustNotBeBetween:",
        ["dataset rule row_count (rowCount): unknown key 'mustNotBeBetween' (did you mean 'mustBeBetween'?)"],
    ),
    "column property misspelt": (
        "field_horizons",
        "property: plausibleMaximum",
        "property: plausibleMaximun",
        [
            "column bulk_density_g_per_cm3: unknown customProperties key 'plausibleMaximun' (did you mean "
            "'plausibleMaximum'?); known customProperties keys: derived, plausibleMaximum, rangeSource, unit"
        ],
    ),
    "column option valid in ODCS but not checked": (
        "field_horizons",
        "logicalTypeOptions: {minimum: 0.1, maximum: 2.65}",
        "logicalTypeOptions: {minimum: 0.1, exclusiveMaximum: 2.65}",
        [
            "column bulk_density_g_per_cm3: unknown logicalTypeOptions key 'exclusiveMaximum'; known "
            "logicalTypeOptions keys: maximum, minimum"
        ],
    ),
    "raster property misspelt": (
        "soc_stock_2010_raster",
        "property: medianBetween",
        "property: medianBetwen",
        ["band band_1: unknown customProperties key 'medianBetwen' (did you mean 'medianBetween'?)"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_misspelt_or_unknown_rule_refuses_the_contract_naming_file_and_word(case, tmp_path):
    name, old, new, expected = REFUSED[case]
    shutil.copytree(CONTRACTS_DIR, tmp_path, dirs_exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    load = load_raster_contract if name.endswith("_raster") else load_table_contract
    with pytest.raises(ContractError) as refused:
        load(name, tmp_path)
    assert str(refused.value).startswith(f"{path}: ")
    for part in expected:
        assert part in str(refused.value)


def test_two_rules_of_a_kind_allowed_once_refuse_the_contract(tmp_path):
    shutil.copytree(CONTRACTS_DIR, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "field_sites.yaml"
    text = path.read_text()
    share = text[text.index("      - id: max_quarantined_share") : text.index("      - id: on_land")]
    path.write_text(text.replace(share, share + share.replace("max_quarantined_share", "second_share")))
    with pytest.raises(ContractError, match="max_quarantined_share, second_share: at most one max_rejected_share"):
        load_table_contract("field_sites", tmp_path)


# --- every kind judged alike by pandera, the streaming check and GX ---------------------------------------------

SITES = [("S1", 25.0, -25.0), ("S2", 26.0, -24.0), ("S3", 24.0, -26.0), ("S4", 27.0, -23.0)]
KNOWN_SITES = {"field_sites.site_id": {site for site, *_ in SITES}}


def _text(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows as a reader gives them: text cells (missing when blank), the source file and physical line."""
    frame = pd.DataFrame(rows, columns=columns).astype("str")
    frame.insert(0, "source_file", "drop.csv")
    frame.insert(1, "source_line", np.arange(2, len(frame) + 2, dtype="int64"))
    return frame


def sites(changes: dict | None = None, rows=SITES) -> pd.DataFrame:
    columns = ["site_id", "source_db", "longitude_deg", "latitude_deg", "sampling_date"]
    table = [dict(zip(columns, (site, "AfSPDB", lon, lat, "2010-06-01"), strict=True)) for site, lon, lat in rows]
    for i, values in (changes or {}).items():
        table[i] |= values
    return _text(table, columns)


def horizons(changes: dict | None = None, extra: list[dict] | None = None) -> pd.DataFrame:
    """Two horizons (0-15, 15-30 cm) per site, each plausible; `changes` by row, `extra` rows appended."""
    table = [
        {
            "site_id": site,
            "upper_depth_cm": upper,
            "lower_depth_cm": upper + 15,
            "soc_g_per_kg": 12.0 + i,
            "bulk_density_g_per_cm3": 1.3,
            "coarse_fragments_vol_pct": 5.0,
            "ph_h2o": 6.5,
            "clay_pct": 20.0,
            "silt_pct": 30.0,
            "sand_pct": 50.0,
        }
        for i, (site, upper) in enumerate((site, upper) for site, *_ in SITES for upper in (0, 15))
    ]
    for i, values in (changes or {}).items():
        table[i] |= values
    return _text(table + (extra or []), list(table[0]))


def stocks(changes: dict | None = None) -> pd.DataFrame:
    table = [
        {
            "site_id": site,
            "longitude_deg": lon,
            "latitude_deg": lat,
            "topsoil_soc_stock_t_c_per_ha": 45.0,
            "depth_top_cm": 0.0,
            "depth_bottom_cm": 30.0,
            "depth_coverage_cm": 30.0,
            "n_horizons": 2,
            "bd_source": "measured",
            "bd_pedotransfer_function": None,
            "coarse_fragments_assumed_zero": False,
            "bd_above_plausible_max": False,
            "country_adm0_a3": "BWA",
            "country_assignment": "within",
            "climate_zone_code": 4,
            "exclusion_reason": None,
        }
        for site, lon, lat in SITES
    ]
    for i, values in (changes or {}).items():
        table[i] |= values
    frame = pd.DataFrame(table)
    frame.insert(0, "source_file", "topsoil_soc_stocks")
    frame.insert(1, "source_line", np.arange(1, len(frame) + 1, dtype="int64"))
    return frame


@dataclass
class Case:
    contract: str
    frame: pd.DataFrame
    target: str  # the column (column kinds) or rule id (dataset kinds) the case breaks
    rejects: set = field(default_factory=set)  # (source_line, rule, column) expected
    errors: list = field(default_factory=list)  # dataset-level errors expected


LABEL = {"field_sites": "field_sites v1.0.0", "field_horizons": "field_horizons v1.0.0"}
ONE_SITE_ON_THE_ATLANTIC = {2: {"longitude_deg": -30.0, "latitude_deg": 0.0}}
CASES = {
    # column kinds
    "required": Case(
        "field_sites", sites({2: {"latitude_deg": None}}), "latitude_deg", {(4, "required", "latitude_deg")}
    ),
    "range": Case(
        "field_horizons",
        horizons({3: {"bulk_density_g_per_cm3": 2.7}}),
        "bulk_density_g_per_cm3",
        {(5, "range", "bulk_density_g_per_cm3")},
    ),
    "allowed_values": Case(
        "topsoil_soc_stocks", stocks({1: {"bd_source": "guessed"}}), "bd_source", {(2, "allowed_values", "bd_source")}
    ),
    "unique": Case(
        "field_sites",
        sites(rows=[*SITES, ("S2", 26.5, -24.5)]),
        "site_id",
        {(3, "unique", "site_id"), (6, "unique", "site_id")},
    ),
    "foreign_key": Case(
        "field_horizons",
        horizons({6: {"site_id": "NOT A SITE"}}),
        "site_id",
        {(8, "foreign_key", "site_id")},
    ),
    # dataset kinds
    "row_count": Case(
        "field_sites",
        sites(rows=[]),
        "row_count",
        errors=["field_sites v1.0.0: row count must be within [1, 5000000]"],
    ),
    "compound_unique": Case(
        "field_horizons",
        horizons(extra=[{"site_id": "S2", "upper_depth_cm": 15, "lower_depth_cm": 25, "soc_g_per_kg": 9.0}]),
        "unique_site_depth",
        {(5, "unique_site_depth", "site_id,upper_depth_cm"), (10, "unique_site_depth", "site_id,upper_depth_cm")},
    ),
    "column_less_than": Case(
        "field_horizons",
        horizons({5: {"upper_depth_cm": 40.0}}),
        "depth_order",
        {(7, "depth_order", "upper_depth_cm")},
    ),
    "median_between": Case(
        "field_horizons",
        horizons({i: {"soc_g_per_kg": 0.8} for i in range(5)}),  # SOC in percent on 5 of 8 rows
        "soc_units_guard",
        errors=[
            "field_horizons v1.0.0: median soc_g_per_kg must be within [1.0, 200.0] (Median SOC must be 1-200 g/kg"
        ],
    ),
    "null_percent_max": Case(
        "topsoil_soc_stocks",
        stocks({0: {"country_adm0_a3": None}}),  # 25 % > 10 %
        "sites_on_land",
        errors=["topsoil_soc_stocks v1.0.0: at most 10 % of country_adm0_a3 may be missing (At most 10 % of sites"],
    ),
    "min_non_null": Case(
        "topsoil_soc_stocks",
        stocks({i: {"topsoil_soc_stock_t_c_per_ha": None} for i in range(4)}),
        "min_sites_with_stock",
        errors=["topsoil_soc_stocks v1.0.0: at least 1 non-missing topsoil_soc_stock_t_c_per_ha required (Drop-level"],
    ),
    "max_rejected_share": Case(
        "field_horizons",
        horizons({i: {"ph_h2o": 15.2} for i in range(5)}),
        "max_quarantined_share",
        {(line, "range", "ph_h2o") for line in range(2, 7)},
        [
            "field_horizons v1.0.0: max_quarantined_share: 62.5 % of rows quarantined (5 of 8), more than the 50 % "
            "allowed; top rules: range:ph_h2o (5 rows)"
        ],
    ),
    "collapse_identical": Case(
        "field_horizons",
        horizons(extra=[horizons().drop(columns=["source_file", "source_line"]).iloc[4].to_dict()] * 2),
        "identical_copies",
    ),
    "point_on_land": Case(
        "field_sites", sites(ONE_SITE_ON_THE_ATLANTIC), "on_land", {(4, "on_land", "longitude_deg,latitude_deg")}
    ),
    "point_region_excluded": Case(
        "field_sites",
        sites({1: {"longitude_deg": 166.67, "latitude_deg": -77.85}}),
        "in_configured_regions",
        {(3, "in_configured_regions", "longitude_deg,latitude_deg")},
    ),
}


NOT_IN_GX = ("min_non_null", "max_rejected_share", "collapse_identical", "point_on_land", "point_region_excluded")


def test_every_rule_kind_has_a_case():
    assert set(CASES) == {kind.name for kind in rules.COLUMN_KINDS} | set(rules.DATASET_KINDS)


@pytest.fixture(scope="module")
def land_and_regions(tmp_path_factory):
    """A 1-degree land mask: land in southern Africa (20-30 E, 30-20 S) and Antarctica (south of 70 S); the
    polygons of Botswana's box (BWA) and Antarctica (ATA)."""
    values = np.full((180, 360), np.nan, dtype="float32")
    values[110:120, 200:210] = values[160:, :] = 1.0
    path = tmp_path_factory.mktemp("land") / "land.tif"
    profile = {"driver": "GTiff", "width": 360, "height": 180, "count": 1, "dtype": "float32", "crs": "EPSG:4326"}
    with rasterio.open(path, "w", transform=Affine(1, 0, -180, 0, -1, 90), **profile) as dataset:
        dataset.write(values, 1)
    boxes = np.array([shapely.box(20, -30, 30, -20), shapely.box(-180, -90, 180, -70)])
    return LandMask(RasterSource(str(path)), "test land", HasValue()), Regions(boxes, np.array(["BWA", "ATA"]))


@pytest.fixture(scope="module")
def gx_batch():
    """Validate one expectation on a frame in an ephemeral GX context: (success, source lines of unexpected rows)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(name="cases").add_dataframe_asset(name="cases")
    batches = asset.add_batch_definition_whole_dataframe("cases")

    def run(frame: pd.DataFrame, expectation, name: str) -> tuple[bool, set]:
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=[expectation]))
        result = batches.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format="COMPLETE")
        (outcome,) = result.results
        index = outcome.result.get("unexpected_index_list") or []
        return outcome.success, set(frame.loc[index, "source_line"])

    return run


def _streamed(case: Case, contract, folder, land, regions):
    """The case through contracts.stream: rows spilled by site into 3 buckets, validated bucket by bucket."""
    buckets = Buckets(folder / "buckets", 3, "site_id")
    buckets.add(case.frame)
    foreign = (lambda i: KNOWN_SITES) if case.contract == "field_horizons" else None
    return validate_buckets(
        buckets.frames(), contract, folder / "out", foreign_values=foreign, land=land, regions=regions, empty=case.frame
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_rule_kind_judges_alike_in_pandera_streaming_and_gx(name, tmp_path, land_and_regions, gx_batch):
    import great_expectations.expectations as gxe

    case, (land, regions) = CASES[name], land_and_regions
    contract = load_table_contract(case.contract)
    foreign = KNOWN_SITES if case.contract == "field_horizons" else None
    whole = validate(case.frame, contract, foreign, land=land, regions=regions)
    found = set(whole.rejects[["source_line", "rule", "column"]].itertuples(index=False, name=None))
    assert found == case.rejects
    assert len(whole.batch_errors) == len(case.errors)
    for error, expected in zip(whole.batch_errors, case.errors, strict=True):
        assert error.startswith(expected)

    streamed = _streamed(case, contract, tmp_path, land, regions)
    pd.testing.assert_frame_equal(streamed.rejects.to_pandas(), whole.rejects)
    pd.testing.assert_frame_equal(streamed.valid.to_pandas(), whole.valid)
    assert streamed.batch_errors == whole.batch_errors

    if name in rules.DATASET_KINDS:
        kind = rules.DATASET_KINDS[name]
        rule = next(rule for rule in contract.rules if rule.id == case.target)
        assert rule.kind == name
        expectation = kind.gx(gxe, rule)
    else:
        kind = next(kind for kind in rules.COLUMN_KINDS if kind.name == name)
        column = contract.column(case.target)
        assert kind.applies(column)
        orphans = {key: set(whole.checked["site_id"]) - known for key, known in (foreign or {}).items()}
        expectation = kind.gx(gxe, column, orphans)
    if expectation is None:  # on the drop as a whole or on reference data: pandera's and contracts.validate's alone
        assert name in NOT_IN_GX
        return
    success, lines = gx_batch(whole.checked, expectation, name)
    assert success == (not case.rejects and not case.errors)
    if not getattr(kind, "whole_table", False):
        assert lines == {line for line, *_ in case.rejects}


def test_identical_copies_collapse_into_the_first_counting_them():
    case = CASES["collapse_identical"]
    whole = validate(case.frame, load_table_contract(case.contract), KNOWN_SITES)
    copies = whole.valid.set_index("source_line")["identical_copies"]
    assert copies[6] == 3 and (copies.drop(6) == 1).all() and len(copies) == 8


# --- the vectorised verdicts are pandera's -----------------------------------------------------------------------

# Horizons pandera judges in its own ways: a repeated (site, depth) whose values are all missing is no repeat, a
# missing depth breaks "upper < lower", a check ignores missing values, a row missing every value is no row.
AWKWARD_HORIZONS = horizons(
    {0: {"lower_depth_cm": None}, 1: {"soc_g_per_kg": "700", "ph_h2o": None}, 2: {"site_id": "S9"}},
    extra=[
        {"site_id": None, "upper_depth_cm": None, "lower_depth_cm": "15"},
        {"site_id": None, "upper_depth_cm": None, "lower_depth_cm": "20"},
        {"site_id": None, "upper_depth_cm": "40", "lower_depth_cm": "30"},
        {"site_id": None, "upper_depth_cm": "40", "lower_depth_cm": "50"},
        {"site_id": "S1", "upper_depth_cm": "60", "lower_depth_cm": "60", "bulk_density_g_per_cm3": "0.01"},
    ],
)


def _sorted(failures: Failures) -> pd.DataFrame:
    table = failures.table().astype({"index": "int64"})
    return table.sort_values(["index", "rule", "column"]).reset_index(drop=True)


@pytest.mark.parametrize("name", [*sorted(CASES), "awkward horizons"])
def test_rules_on_whole_columns_find_the_rows_pandera_finds(name):
    case = CASES.get(name) or Case("field_horizons", AWKWARD_HORIZONS, "site_id", set())
    contract = load_table_contract(case.contract)
    foreign = KNOWN_SITES if case.contract == "field_horizons" else {}
    coerced, _ = coerce(collapse_identical(case.frame, contract)[0], contract)
    if not _typed_as_coerced(coerced, contract):  # a column left untyped (e.g. integers with a gap): pandera judges
        assert name != "awkward horizons"
        return
    ours, pandera = Failures(), Failures()
    rule_failures(coerced, contract, foreign, ours)
    assert not _pandera_failures(coerced, contract, foreign, False, pandera)
    pd.testing.assert_frame_equal(_sorted(ours), _sorted(pandera))
    if name == "awkward horizons":
        assert len(_sorted(ours)) >= 6


def test_the_plain_drops_columns_are_judged_on_whole_columns():
    for frame, name in ((sites(), "field_sites"), (horizons(), "field_horizons")):
        contract = load_table_contract(name)
        assert _typed_as_coerced(coerce(collapse_identical(frame, contract)[0], contract)[0], contract)


def test_a_cell_of_number_bytes_arrow_parses_is_a_number_by_the_pattern():
    """Every text of up to 4 of the bytes a number can hold (digits stand for one another): where Arrow's cast to
    float64 accepts it once trimmed, NUMBER_PATTERN matches it too, so a column of such cells needs no regex."""
    alphabet = "05+-.eE \t"
    assert set(NUMERAL_BYTES.decode()) - set("12346789") <= set(alphabet)  # every byte the cast is given, but blanks
    texts = ["".join(t) for n in range(1, 5) for t in itertools.product(alphabet, repeat=n)]
    matches = pa.compute.match_substring_regex(pa.array(texts), NUMBER_PATTERN).to_pylist()
    for text, match in zip(texts, matches, strict=True):
        trimmed = text.strip(" \t")
        if not trimmed or trimmed in MISSING_TOKENS or match:
            continue
        with pytest.raises(pa.ArrowInvalid):
            pa.compute.cast(pa.array([trimmed]), pa.float64())


@pytest.mark.parametrize(
    ("parts", "median", "as_counts"),
    [
        ([[2.5, 1.0, 2.5, 1.0, 2.5], [9.0, 9.0, 9.0]], 2.5, True),  # repeated values: distinct values with counts
        ([[2.5, 1.0, 2.5, 2.5], [9.0, 1.0, 1.0, 1.0]], 1.75, True),  # even count: the mean of the two middle values
        ([[0.3, 0.1], [0.7, 0.2, 0.9]], 0.3, False),  # all distinct: the values themselves
        ([[], []], float("nan"), True),
    ],
)
def test_a_median_over_chunks_is_the_median_of_all_values(parts, median, as_counts):
    values = rules.MedianValues()
    for part in parts:
        values.add(np.array(part, dtype="float64"))
    assert values.median() == pytest.approx(median, nan_ok=True)
    assert (values.counts is not None) == as_counts
