"""Issue 21's corpus for tables and drops: each case is a drop with one mistake a new user makes, mostly built from
the embedded Africa Soil Profiles data (200 Kenyan sites, unless said), checked by check-drop's functions (the
pipeline's own ingest without Dagster) and ending in an exact outcome: published (with what), refused (with which
message) or quarantined (with which rule). Every case that is read accounts for every row of its files; two cases
run the pipeline to show a refusal failing the run and a confirmation recorded in provenance and metadata."""

import os
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyproj import Transformer

from soil_pipeline.cli import main
from soil_pipeline.contracts.declaration import resolve_declaration
from soil_pipeline.drop_check import DropCheck, check_drop, raw_references, report
from soil_pipeline.errors import DeclarationError, InputError, Remedy
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.resources import InputDatasets
from soil_pipeline_tests.test_bad_inputs import FIELD_DROP, _failure_text, _materialize, published_root  # noqa: F401
from soil_pipeline_tests.test_declarations import edgeroi_drop

PARTITION = "2024-01"
EMBEDDED = Path(InputDatasets().drop_dir(EMBEDDED_DROP_PARTITION))
SITES = pd.read_csv(EMBEDDED / "afsp_sites.csv", dtype=str, keep_default_na=False)
HORIZONS = pd.read_csv(EMBEDDED / "afsp_horizons.csv", dtype=str, keep_default_na=False)
AFSP_DECLARATION = """\
declaration: 1
name: {name}
sites:
  columns: {{site_id: SOURCEID, source_db: SOURCEDB, longitude_deg: LONWGS84, latitude_deg: LATWGS84,
            sampling_date: TIMESTRR}}
horizons:
  columns: {{site_id: SOURCEID, upper_depth_cm: UHDICM, lower_depth_cm: LHDICM, soc_g_per_kg: {soc},
            bulk_density_g_per_cm3: BLD, coarse_fragments_vol_pct: CRFVOL, ph_h2o: PHIHOX}}
"""
CONFIRM_HINT = (
    "If the values are right, confirm it in the declaration: confirm: {{{0}: <the declared value>, reason: <why>}}"
)


@pytest.fixture(scope="module")
def references():
    """The land mask (WHRC 2010 stock) and country polygons check-drop checks sites against."""
    inputs = InputDatasets()
    return raw_references(inputs.soc_stock_2010_raster, inputs.countries_vector)


def _scaled(values: pd.Series, factor: float) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce") * factor
    return numbers.map(lambda v: "" if pd.isna(v) else f"{v:.10g}")


def afsp_drop(folder: Path, prefix="KE", n=200, sites=None, horizons=None, declaration=None, names=None) -> Path:
    """A drop of the first `n` AfSP sites whose id starts with `prefix`, and their horizons, each table changed by
    its function; `declaration` written beside them as declaration.yaml (or as `names["declaration"]`)."""
    names = {"sites": "sites.csv", "horizons": "horizons.csv", "declaration": "declaration.yaml", **(names or {})}
    drop = folder / "field_samples" / PARTITION
    drop.mkdir(parents=True)
    site_rows = SITES[SITES["SOURCEID"].str.startswith(prefix)].head(n)
    horizon_rows = HORIZONS[HORIZONS["SOURCEID"].isin(site_rows["SOURCEID"])]
    site_rows = sites(site_rows.copy()) if sites else site_rows
    horizon_rows = horizons(horizon_rows.copy()) if horizons else horizon_rows
    site_rows.to_csv(drop / names["sites"], index=False)
    horizon_rows.to_csv(drop / names["horizons"], index=False)
    if declaration:
        (drop / names["declaration"]).write_text(declaration)
    return drop


def checked(drop: Path, references, declaration: str | None = None) -> DropCheck:
    """check-drop's verdict; every row of each file is published, an identical copy, or rejected."""
    land, regions = references
    check = check_drop(drop, declaration, land=land, regions=regions)
    for name, path in check.paths.items():
        rows = pq.read_metadata(path).num_rows if path.suffix == ".parquet" else _csv_records(path)
        t = check.tables[name]
        assert rows == t.n_in == t.published + t.identical_copies + t.rejected_rows, name
    return check


def _csv_records(path: Path) -> int:
    return len(pd.read_csv(path, dtype=str, keep_default_na=False))


def refused(check: DropCheck) -> list[str]:
    """The refusals, each without the drop folder's path."""
    folder = str(next(iter(check.paths.values())).parent) + "/"
    return [text.replace(folder, "") for text in check.refusals]


def outcomes(check: DropCheck) -> dict[str, str]:
    return {finding.name: finding.record()["outcome"] for finding in check.evidence}


# ---- class 1: units of SOC and depth, whatever the declaration says ----------------------------------------------


def test_soc_in_g_per_kg_declared_percent_is_refused_by_the_map_and_the_organic_bd(tmp_path, references):
    drop = afsp_drop(
        tmp_path, declaration=AFSP_DECLARATION.format(name="kenya", soc="ORCDRC") + '  units: {soc_g_per_kg: "%"}\n'
    )
    check = checked(drop, references)
    assert refused(check) == [
        "horizons.csv: plausibility organic_horizon_bd: 86 horizons above 120 g/kg SOC with a measured BD, median BD "
        "1.2 g/cm3: organic horizons are lighter than 1 g/cm3 (the pedotransfer function gives 0.56 at 120 g/kg; "
        "AfSP's have 0.31); likely cause: SOC is too high for its BD, the SOC unit (% declared for g/kg or permille "
        f"values?). {CONFIRM_HINT.format('soc_unit')}",
        "horizons.csv: plausibility reference_map: median map/field stock ratio 0.157 over 98 sites (field stocks are "
        "6.38 x the map's), beyond a factor of 4 (real surveys: 0.57-3.69 by 2-degree block of AfSP); likely cause: "
        "the SOC unit (SOC declared in %: if the values are 10 x smaller units (g/kg or permille, not %), the ratio "
        "would be 1.57); else the depth unit, or coordinates swapped or in another CRS than declared, placing sites "
        f"on other cells. {CONFIRM_HINT.format('soc_unit')}",
    ]
    assert outcomes(check) == {
        "coordinates": "passed",
        "profile_depth": "passed",
        "organic_horizon_bd": "failed",
        "reference_map": "failed",
    }


def test_soc_in_percent_read_as_g_per_kg_is_refused_by_the_map_once_the_median_guard_passes(tmp_path, references):
    """'Bo' sites have a median SOC of 12.9 g/kg: in % (1.29) the contract's median guard (1-200 g/kg) passes."""
    drop = afsp_drop(tmp_path, prefix="Bo", horizons=lambda h: h.assign(ORCDRC=_scaled(h["ORCDRC"], 0.1)))
    check = checked(drop, references)
    assert refused(check) == [
        "horizons.csv: plausibility reference_map: median map/field stock ratio 5.04 over 186 sites (the map's stocks "
        "are 5.04 x the field's), beyond a factor of 4 (real surveys: 0.57-3.69 by 2-degree block of AfSP); likely "
        "cause: the SOC unit (SOC declared in g/kg: if the values are 10 x larger units (%, not g/kg or permille), the "
        "ratio would be 0.504); else the depth unit, or coordinates swapped or in another CRS than declared, placing "
        f"sites on other cells. {CONFIRM_HINT.format('soc_unit')}"
    ]


def test_soc_in_permille_declared_permille_is_published(tmp_path, references):
    drop = afsp_drop(
        tmp_path,
        declaration=AFSP_DECLARATION.format(name="kenya", soc="ORCDRC") + "  units: {soc_g_per_kg: permille}\n",
    )
    check = checked(drop, references)
    assert check.publishable and set(outcomes(check).values()) == {"passed"}
    assert (
        check.plans["field_horizons"].conversions()["soc_g_per_kg"]
        == "declared permille, x 1 to g/kg (declaration.yaml)"
    )
    assert check.sites_with_stock == 124


def test_depths_in_mm_without_a_declaration_are_refused_as_millimetres(tmp_path, references):
    deeper = lambda h: h.assign(UHDICM=_scaled(h["UHDICM"], 10), LHDICM=_scaled(h["LHDICM"], 10))  # noqa: E731
    check = checked(afsp_drop(tmp_path, horizons=deeper), references)
    assert refused(check) == [
        "horizons.csv: plausibility profile_depth: median profile bottom 1060 cm over 200 sites (depths declared in "
        "cm), outside [5, 500] cm (AfSP: 90 cm, 99 % of profiles within 264 cm); likely cause: the depth unit: the "
        f"depths look like millimetres (106 cm if they were). {CONFIRM_HINT.format('depth_unit')}"
    ]
    # horizons deeper than the contract's ranges (10 m top, 15 m bottom) are quarantined as well
    assert check.tables["field_horizons"].by_rule == {("range", "upper_depth_cm"): 61, ("range", "lower_depth_cm"): 51}


def test_depths_in_mm_declared_mm_are_published_with_the_same_stocks(tmp_path, references):
    deeper = lambda h: h.assign(UHDICM=_scaled(h["UHDICM"], 10), LHDICM=_scaled(h["LHDICM"], 10))  # noqa: E731
    declaration = AFSP_DECLARATION.format(name="kenya mm", soc="ORCDRC")
    declaration += "  units: {upper_depth_cm: mm, lower_depth_cm: mm}\n"
    check = checked(afsp_drop(tmp_path, horizons=deeper, declaration=declaration), references)
    assert check.publishable and set(outcomes(check).values()) == {"passed"}
    [depth] = [f for f in check.evidence if f.name == "profile_depth"]
    assert depth.verdict.figures["median_profile_bottom_cm"] == 120.0 and check.sites_with_stock == 124


def test_depths_in_m_without_a_declaration_are_refused_as_metres(tmp_path, references):
    shallower = lambda h: h.assign(UHDICM=_scaled(h["UHDICM"], 0.01), LHDICM=_scaled(h["LHDICM"], 0.01))  # noqa: E731
    check = checked(afsp_drop(tmp_path, horizons=shallower), references)
    assert refused(check) == [
        "horizons.csv: plausibility profile_depth: median profile bottom 1.2 cm over 200 sites (depths declared in "
        "cm), outside [5, 500] cm (AfSP: 90 cm, 99 % of profiles within 264 cm); likely cause: the depth unit: the "
        f"depths look like metres (120 cm if they were). {CONFIRM_HINT.format('depth_unit')}",
        "horizons.csv: min_sites_with_stock: 0 site(s) with a 0-30 cm stock, at least 1 required",
    ]


def _organic_matter(h: pd.DataFrame) -> pd.DataFrame:
    """SOC (g/kg) as organic matter in % under an OM header (x 1.724 / 10)."""
    return h.assign(ORCDRC=_scaled(h["ORCDRC"], 0.1724)).rename(columns={"ORCDRC": "OM_pct"})


def test_organic_matter_declared_as_organic_carbon_is_refused_by_its_header(tmp_path, references):
    declaration = AFSP_DECLARATION.format(name="om", soc="OM_pct") + '  units: {soc_g_per_kg: "%"}\n'
    check = checked(afsp_drop(tmp_path, horizons=_organic_matter, declaration=declaration), references)
    assert refused(check) == [
        "horizons.csv: plausibility organic_matter_header: the SOC column's header 'OM_pct' names organic matter, "
        "declared in % of organic carbon; likely cause: the SOC unit (organic matter is 1.72 x organic carbon: "
        f"declare '% OM' or 'g/kg OM'). {CONFIRM_HINT.format('soc_unit')}"
    ]


def test_organic_matter_declared_as_such_is_converted_with_the_van_bemmelen_factor(tmp_path, references):
    declaration = AFSP_DECLARATION.format(name="om", soc="OM_pct") + '  units: {soc_g_per_kg: "% OM"}\n'
    check = checked(afsp_drop(tmp_path, horizons=_organic_matter, declaration=declaration), references)
    assert check.publishable and set(outcomes(check).values()) == {"passed"}
    assert check.plans["field_horizons"].conversions()["soc_g_per_kg"] == (
        "declared % OM (organic matter), x 5.8 to g/kg of organic carbon (van Bemmelen factor 0.58) (declaration.yaml)"
    )


def test_a_confirmed_soc_unit_is_published_and_the_evidence_kept(tmp_path, references):
    declaration = AFSP_DECLARATION.format(name="kenya", soc="ORCDRC") + '  units: {soc_g_per_kg: "%"}\n'
    declaration += 'confirm: {soc_unit: "%", reason: "checked against the laboratory sheets of the 1980 survey"}\n'
    check = checked(afsp_drop(tmp_path, declaration=declaration), references)
    assert check.publishable
    assert outcomes(check)["reference_map"] == outcomes(check)["organic_horizon_bd"] == "confirmed by the declaration"
    lines = report(check).splitlines()
    assert (
        "  reference_map: CONFIRMED by the declaration (soc_unit; reason: checked against the laboratory sheets of the "
        "1980 survey): median map/field stock ratio 0.157 over 98 sites" in "\n".join(lines)
    )
    assert check.plans["field_horizons"].describe()["confirmed"] == {
        "soc_unit": "%",
        "reason": "checked against the laboratory sheets of the 1980 survey",
    }


def test_a_peat_survey_breaks_the_contracts_unit_guards_unless_its_units_are_confirmed(tmp_path, references):
    """Every horizon 400 g/kg SOC with a BD of 0.2 g/cm3: real for peat, beyond the contract's median guards."""
    peat = lambda h: h.assign(ORCDRC="400", BLD="0.2")  # noqa: E731
    declaration = AFSP_DECLARATION.format(name="peat", soc="ORCDRC")
    refused_drop = checked(afsp_drop(tmp_path / "a", horizons=peat, declaration=declaration), references)
    assert [text.split(" (")[0] for text in refused(refused_drop)] == [
        "horizons.csv: field_horizons v1.0.0: median soc_g_per_kg must be within [1.0, 200.0]",
        "horizons.csv: field_horizons v1.0.0: median bulk_density_g_per_cm3 must be within [0.5, 2.0]",
    ]
    declaration += 'confirm: {soc_unit: g/kg, bd_unit: g/cm3, reason: "a peatland survey: 40 % SOC, BD 0.2, checked"}\n'
    check = checked(afsp_drop(tmp_path / "b", horizons=peat, declaration=declaration), references)
    assert check.publishable and check.sites_with_stock == 195
    assert outcomes(check) == {
        "coordinates": "passed",
        "profile_depth": "passed",
        "organic_horizon_bd": "passed",
        "reference_map": "passed",
        "soc_units_guard": "confirmed by the declaration",
        "bd_units_guard": "confirmed by the declaration",
    }


@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        (
            'confirm: {soc_unit: g/kg, reason: "the values are right, I checked"}',
            "confirm.soc_unit is 'g/kg' but the declaration states %: a confirmation must name the declared value",
        ),
        ('confirm: {soc_unit: "%"}', "confirm.reason is required"),
        ('confirm: {ph_unit: pH, reason: "the values are right, I checked"}', "confirm: unknown key(s) ph_unit"),
    ],
)
def test_a_confirmation_must_name_the_declared_value_and_a_reason(tmp_path, references, confirm, message):
    declaration = AFSP_DECLARATION.format(name="kenya", soc="ORCDRC") + '  units: {soc_g_per_kg: "%"}\n' + confirm
    drop = afsp_drop(tmp_path, declaration=declaration)
    with pytest.raises(DeclarationError) as error:
        checked(drop, references)
    assert str(error.value).startswith(f"{drop / 'declaration.yaml'}: ") and message in str(error.value)


# ---- class 2: geometry ---------------------------------------------------------------------------------------------


def _swapped(s: pd.DataFrame) -> pd.DataFrame:
    return s.assign(LONWGS84=s["LATWGS84"], LATWGS84=s["LONWGS84"])


def test_latitude_and_longitude_swapped_are_refused_naming_the_swap(tmp_path, references):
    """40.5 % off land: under the contract's 50 % share gate, which published such a drop before."""
    check = checked(afsp_drop(tmp_path, sites=_swapped), references)
    assert refused(check) == [
        "sites.csv: plausibility coordinates: 81 of 200 sites off land (40.5 %) as given; with latitude and longitude "
        "exchanged 100.0 % on land (of a sample of 200); likely cause: latitude and longitude swapped (exchange the "
        f"two columns in the declaration). {CONFIRM_HINT.format('coordinates_crs')}"
    ]


def test_latitude_and_longitude_swapped_beyond_the_degree_ranges_are_named(tmp_path, references):
    """Australian sites swapped have latitudes near 150: all quarantined by the range rule, the cause named."""
    drop = edgeroi_drop(tmp_path)
    declaration = drop / "declaration.yaml"
    declaration.write_text(
        declaration.read_text().replace(
            "longitude_deg: lon_gda94\n    latitude_deg: lat_gda94",
            "longitude_deg: lat_gda94\n    latitude_deg: lon_gda94",
        )
    )
    check = checked(drop, references)
    assert refused(check)[-1] == (
        "edgeroi_profiles.csv: plausibility coordinates: 11 of 11 sites outside longitude [-180, 180] / latitude "
        "[-90, 90]; likely cause: latitude and longitude swapped (11 would be within with the two exchanged). "
        f"{CONFIRM_HINT.format('coordinates_crs')}"
    )
    assert refused(check)[0].startswith("edgeroi_profiles.csv: field_sites v1.0.0: max_quarantined_share: 100.0 %")


def test_projected_metres_read_as_degrees_are_named(tmp_path, references):
    metres = lambda s: s.assign(  # noqa: E731
        LONWGS84=_scaled(s["LONWGS84"], 111_000), LATWGS84=_scaled(s["LATWGS84"], 111_000)
    )
    check = checked(afsp_drop(tmp_path, sites=metres), references)
    assert refused(check)[-1] == (
        "sites.csv: plausibility coordinates: 200 of 200 sites outside longitude [-180, 180] / latitude [-90, 90]; "
        "likely cause: projected coordinates (metres) read as degrees (200 beyond 1000): declare coordinates_crs. "
        f"{CONFIRM_HINT.format('coordinates_crs')}"
    )


def test_a_tenth_of_the_sites_at_sea_refuses_the_drop(tmp_path, references):
    def at_sea(s):
        s.iloc[::10, s.columns.get_loc("LONWGS84")] = "45.0"  # the Indian Ocean east of Kenya
        return s

    check = checked(afsp_drop(tmp_path, sites=at_sea), references)
    assert check.tables["field_sites"].by_rule == {("on_land", "longitude_deg,latitude_deg"): 20}
    assert refused(check) == [
        "sites.csv: plausibility coordinates: 20 of 200 sites off land (10.0 %), more than 5 % (AfSP: 0 %); likely "
        "cause: the coordinates are not in the declared CRS (EPSG:4326), or are swapped or shifted. "
        f"{CONFIRM_HINT.format('coordinates_crs')}"
    ]


def test_one_site_at_sea_is_quarantined_and_the_drop_published(tmp_path, references):
    def one_at_sea(s):
        s.iloc[0, s.columns.get_loc("LONWGS84")] = "45.0"
        return s

    check = checked(afsp_drop(tmp_path, sites=one_at_sea), references)
    assert check.publishable and check.tables["field_sites"].rejected_rows == 1
    assert outcomes(check)["coordinates"] == "passed"


def test_the_country_a_survey_names_is_checked(tmp_path, references):
    name = AFSP_DECLARATION.format(name="kenya", soc="ORCDRC")
    wrong = checked(afsp_drop(tmp_path / "a", declaration="country: TZA\n" + name), references)
    assert refused(wrong) == [
        "sites.csv: plausibility coordinates: 0 of 200 sites off land (0.0 %), 0.0 % in TZA: 100.0 % outside it "
        "(within 0.5 deg), more than 5 %; likely cause: the coordinates are not in the declared CRS (EPSG:4326), or "
        f"the survey's country is not TZA. {CONFIRM_HINT.format('coordinates_crs')}"
    ]
    right = checked(afsp_drop(tmp_path / "b", declaration="country: KEN\n" + name), references)
    assert right.publishable
    [coordinates] = [f for f in right.evidence if f.name == "coordinates"]
    assert coordinates.verdict.text == "0 of 200 sites off land (0.0 %), 100.0 % in KEN"


def test_a_country_code_the_countries_layer_lacks_is_refused(tmp_path, references):
    drop = afsp_drop(tmp_path, declaration="country: XKX\n" + AFSP_DECLARATION.format(name="kenya", soc="ORCDRC"))
    with pytest.raises(DeclarationError, match="declaration.yaml: country XKX is not an ADM0_A3 code of the countries"):
        checked(drop, references)


@pytest.mark.parametrize(
    ("crs", "message"),
    [
        ("EPSG:5703", "sites.coordinates_crs 'EPSG:5703' is a vertical CRS (NAVD88 height): coordinates need a 2D"),
        ("EPSG:9518", "sites.coordinates_crs 'EPSG:9518' is a compound CRS (WGS 84 + EGM2008 height)"),
        ("EPSG:4978", "sites.coordinates_crs 'EPSG:4978' is a Geocentric CRS (WGS 84): coordinates need a 2D"),
        ("EPSG:4979", "sites.coordinates_crs 'EPSG:4979' is a Geographic 3D CRS (WGS 84): coordinates need a 2D"),
        ("IAU_2015:49900", "sites.coordinates_crs 'IAU_2015:49900' (Mars (2015) - Sphere / Ocentric) is not a CRS of"),
        ("EPSG:999999", "sites.coordinates_crs 'EPSG:999999' is not a CRS pyproj knows"),
    ],
)
def test_only_a_2d_earth_crs_is_accepted(tmp_path, crs, message):
    declaration = AFSP_DECLARATION.format(name="kenya", soc="ORCDRC").replace(
        "sites:\n", f"sites:\n  coordinates_crs: {crs!r}\n"
    )
    drop = afsp_drop(tmp_path, n=5, declaration=declaration)
    with pytest.raises(DeclarationError) as error:
        resolve_declaration(drop)
    assert str(error.value).startswith(f"{drop / 'declaration.yaml'}: {message}")


def test_projected_coordinates_declared_in_their_crs_are_transformed_and_published(tmp_path, references):
    utm = Transformer.from_crs("EPSG:4326", "EPSG:32737", always_xy=True)  # UTM zone 37S

    def projected(s):
        x, y = utm.transform(s["LONWGS84"].astype(float).to_numpy(), s["LATWGS84"].astype(float).to_numpy())
        return s.assign(LONWGS84=[f"{v:.2f}" for v in x], LATWGS84=[f"{v:.2f}" for v in y])

    declaration = AFSP_DECLARATION.format(name="utm", soc="ORCDRC").replace(
        "sites:\n", "sites:\n  coordinates_crs: EPSG:32737\n"
    )
    check = checked(afsp_drop(tmp_path, sites=projected, declaration=declaration), references)
    assert check.publishable and outcomes(check)["coordinates"] == "passed"


# ---- class 4: readers never crash or hang, and name file, line and column ------------------------------------------

SITES_HEADER = "SOURCEID,SOURCEDB,LONWGS84,LATWGS84,TIMESTRR"


def _small_drop(folder: Path, sites: bytes, horizons: bytes | None = None) -> Path:
    """Two Kenyan AfSP sites with their horizons, the sites file as given."""
    drop = folder / "field_samples" / PARTITION
    drop.mkdir(parents=True)
    (drop / "sites.csv").write_bytes(sites)
    rows = HORIZONS[HORIZONS["SOURCEID"].isin([KE1.SOURCEID, KE2.SOURCEID])]
    (drop / "horizons.csv").write_bytes(horizons if horizons is not None else rows.to_csv(index=False).encode())
    return drop


def _sites(*rows: str, end: str = "\n") -> bytes:
    return (end.join([SITES_HEADER, *rows]) + end).encode()


def _with_topsoil_soc(ids: pd.Series) -> pd.Series:
    """Sites whose every horizon has a SOC value, the first from the surface."""
    rows = HORIZONS[HORIZONS["SOURCEID"].isin(ids)]
    full = rows.groupby("SOURCEID").agg(soc=("ORCDRC", lambda v: (v != "").all()), top=("UHDICM", "first"))
    return ids.isin(full.index[full["soc"] & (full["top"] == "0.0")])


KENYA = SITES[SITES["SOURCEID"].str.startswith("KE")]
KE1, KE2 = (row for _, row in KENYA[_with_topsoil_soc(KENYA["SOURCEID"])].head(2).iterrows())


def _site(row, db="AfSPDB", date=None) -> str:
    return f"{row.SOURCEID},{db},{row.LONWGS84},{row.LATWGS84},{date or row.TIMESTRR}"


def _published_sites(check: DropCheck, tmp_path: Path) -> pd.DataFrame:
    """The sites the check would publish, from a second validation kept on disk."""
    from soil_pipeline.contracts.model import load_table_contract
    from soil_pipeline.ingest import validate_drop

    contracts = {name: load_table_contract(name) for name in check.paths}
    drop = validate_drop(check.paths, contracts, tmp_path / "work", plans=check.plans)
    return drop.sites.valid.to_pandas()


def test_dates_with_a_time_zone_keep_their_local_date(tmp_path, references):
    sites = _sites(_site(KE1, date="1997-12-17T23:30:00-05:00"), _site(KE2, date="1997-12-18 01:15Z"))
    check = checked(_small_drop(tmp_path, sites), references)
    assert check.publishable and check.tables["field_sites"].rejected_rows == 0
    published = _published_sites(check, tmp_path)
    assert list(published["sampling_date"].dt.strftime("%Y-%m-%d %H:%M")) == ["1997-12-17 23:30", "1997-12-18 01:15"]


def test_a_parquet_timestamp_with_a_time_zone_and_nan_floats_are_read(tmp_path, references):
    drop = _small_drop(tmp_path, _sites(_site(KE1), _site(KE2)))
    (drop / "sites.csv").unlink()
    table = pa.table(
        {
            "SOURCEID": [KE1.SOURCEID, KE2.SOURCEID],
            "SOURCEDB": ["AfSPDB", None],
            "LONWGS84": [float(KE1.LONWGS84), float(KE2.LONWGS84)],
            "LATWGS84": [float(KE1.LATWGS84), float(KE2.LATWGS84)],
            # 1997-12-17 20:30 UTC, 23:30 in Nairobi: stored as the instant (microseconds since 1970, UTC)
            "TIMESTRR": pa.array([882390600000000, None], pa.timestamp("us", tz="Africa/Nairobi")),
        }
    )
    pq.write_table(table, drop / "sites.parquet")
    horizons = pd.read_csv(drop / "horizons.csv", dtype=str, keep_default_na=False)
    (drop / "horizons.csv").unlink()
    numbers = {  # as numpy writes a missing float: NaN, not null
        c: pa.array(pd.to_numeric(horizons[c], errors="coerce").to_numpy(dtype="float64"))
        for c in horizons.columns
        if c != "SOURCEID"
    }
    pq.write_table(pa.table({"SOURCEID": horizons["SOURCEID"].tolist(), **numbers}), drop / "horizons.parquet")
    assert pq.read_table(drop / "horizons.parquet").column("BLD").null_count == 0  # NaN, not null
    check = checked(drop, references)
    assert check.publishable and not check.tables["field_horizons"].by_rule
    published = _published_sites(check, tmp_path)
    assert published["sampling_date"].iloc[0] == pd.Timestamp("1997-12-17 23:30")
    assert pd.isna(published["sampling_date"].iloc[1]) and pd.isna(published["source_db"].iloc[1])


def test_cr_only_line_ends_are_read_with_physical_lines(tmp_path, references):
    sites = _sites(_site(KE1), f"{KE2.SOURCEID},AfSPDB,1.0,95.0,1997-12-17", end="\r")
    check = checked(_small_drop(tmp_path, sites), references)
    assert [(r.source_line, r.rule, r.column) for r in check.tables["field_sites"].first_rejects.itertuples()] == [
        (3, "range", "latitude_deg")
    ]


def test_an_unquoted_inch_mark_in_free_text_is_text(tmp_path, references):
    sites = _sites(_site(KE1, db='pit 12" deep'), _site(KE2, db='auger 4"'))
    check = checked(_small_drop(tmp_path, sites), references)
    assert check.publishable
    assert list(_published_sites(check, tmp_path)["source_db"]) == ['pit 12" deep', 'auger 4"']


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (
            _sites(_site(KE1), f"{KE2.SOURCEID},AfSPDB,37.1"),
            "sites.csv: malformed CSV (CSV parse error: Expected 5 columns, got 3) at line 3: 3 cell(s) where the "
            "header has 5 (after column 'LONWGS84')",
            3,
        ),
        (
            _sites(_site(KE1), _site(KE2) + ",surplus"),
            "sites.csv: malformed CSV (CSV parse error: Expected 5 columns, got 6) at line 3: 6 cell(s) where the "
            "header has 5 (past the header)",
            3,
        ),
        (
            _sites(_site(KE1), f"{KE2.SOURCEID},Af\xe8SPDB,37.1,-0.5,1997-12-17").replace("\xe8".encode(), b"\xe8"),
            "sites.csv: not UTF-8 text (byte 0xe8 at line 3: invalid continuation byte), column 'SOURCEDB'",
            3,
        ),
    ],
    ids=["record_cut_short", "record_too_long", "latin1_byte"],
)
def test_a_broken_csv_names_its_line_and_column(tmp_path, references, content, message, line):
    drop = _small_drop(tmp_path, content)
    with pytest.raises(InputError) as error:
        checked(drop, references)
    assert str(error.value) == f"{drop}/{message}"
    assert error.value.line == line and "\n" not in str(error.value)


def test_a_quote_never_closed_names_where_it_opened(tmp_path, references):
    drop = _small_drop(tmp_path, _sites(_site(KE1, db='"AfSPDB'), _site(KE2)))
    with pytest.raises(InputError) as error:
        checked(drop, references)
    assert str(error.value) == (
        f"{drop / 'sites.csv'}: malformed CSV (a quoted cell is never closed: the '\"' at line 2, column 'SOURCEDB' "
        "opens a cell that no '\"' closes)"
    )


@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_record_lines_match_the_csv_module_on_tricky_text(tmp_path, monkeypatch, block_bytes):
    """Random records of quoted cells with delimiters, line ends and doubled quotes, inch marks in unquoted cells,
    blank lines and CR, LF or CRLF line ends, scanned in blocks as small as 7 bytes: the physical line of every
    record is the csv module's, and pyarrow parses as many records."""
    import csv
    import io
    import random

    import pyarrow.csv as pa_csv

    from soil_pipeline import readers

    monkeypatch.setattr(readers, "LINE_SCAN_BYTES", block_bytes)
    rng = random.Random(21)
    cells = [
        "plain",
        '"quoted, with comma"',
        '"two\nlines"',
        '"say ""hi"""',
        'pit 12" deep',
        '4"',
        '""',
        '"a\r\nb"',
        "x",
    ]
    for end in ("\n", "\r\n", "\r"):
        records = ["a,b,c"] + [",".join(rng.choice(cells) for _ in range(3)) for _ in range(300)]
        text = end.join(record + (end if rng.random() < 0.1 else "") for record in records) + end
        path = tmp_path / f"t{len(end)}{end == chr(13)}.csv"
        path.write_bytes(text.encode())
        expected, reader = [], csv.reader(io.StringIO(text, newline=""))
        line = 0
        for row in reader:
            if row:
                expected.append(line + 1)
            line = reader.line_num
        assert readers.record_lines(path).tolist() == expected
        parsed = pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(newlines_in_values=True))
        assert parsed.num_rows == len(expected) - 1


def _in_thread(function, timeout_s: float = 60.0):
    """`function()`'s exception (None if none), failing the test if it does not return within `timeout_s`."""
    outcome = {}

    def target():
        try:
            function()
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "check-drop hung"
    return outcome.get("error")


def test_a_named_pipe_called_sites_csv_is_refused_without_waiting(tmp_path, references):
    drop = _small_drop(tmp_path, b"")
    (drop / "sites.csv").unlink()
    os.mkfifo(drop / "sites.csv")
    error = _in_thread(lambda: checked(drop, references))
    assert isinstance(error, InputError) and error.remedy == Remedy.NOT_A_FILE
    assert str(error) == f"{drop / 'sites.csv'}: a named pipe (FIFO), not a regular file: a drop table must be a file"


def test_a_directory_called_horizons_csv_is_refused(tmp_path, references):
    drop = _small_drop(tmp_path, _sites(_site(KE1)))
    (drop / "horizons.csv").unlink()
    (drop / "horizons.csv").mkdir()
    with pytest.raises(InputError) as error:
        checked(drop, references)
    assert str(error.value) == f"{drop / 'horizons.csv'}: a directory, not a regular file: a drop table must be a file"


# ---- class 5: every row accounted for -------------------------------------------------------------------------------


def test_identical_copies_of_a_rejected_horizon_are_rejected_at_their_own_lines(tmp_path, references):
    """Three identical copies of a horizon, and a fourth with another SOC at the same depth: all four rejected
    (unique_site_depth), none lost; an identical copy of a kept horizon is listed (with the 7 these sites have)."""

    def copies(h):
        first = h.iloc[[0]]
        other = first.assign(ORCDRC="99")
        return pd.concat([first, first, first, other, h.iloc[1:], h.iloc[[5]]], ignore_index=True)

    check = checked(afsp_drop(tmp_path, n=20, horizons=copies), references)
    horizons = check.tables["field_horizons"]
    assert (horizons.n_in, horizons.published, horizons.identical_copies, horizons.rejected_rows) == (78, 66, 8, 4)
    rejected = [(r.source_line, r.rule) for r in horizons.first_rejects.itertuples()]
    assert rejected == [(line, "unique_site_depth") for line in (2, 3, 4, 5)]
    assert [(r.source_line, r.copy_of_line) for r in horizons.first_copies.itertuples()] == [
        (33, 32),
        (35, 34),
        (37, 36),
        (39, 38),
        (70, 69),
        (72, 71),
        (74, 73),
        (79, 10),
    ]
    assert "  horizons.csv:79 is a copy of line 10" in report(check).splitlines()


def test_the_embedded_drop_accounts_for_every_horizon(references):
    """87,693 horizons = 86,183 published + 75 identical copies + 1,435 rejected (of which 300 identical copies of
    rejected horizons, in neither table before)."""
    check = checked(EMBEDDED, references)
    assert check.publishable
    horizons = check.tables["field_horizons"]
    assert (horizons.n_in, horizons.published, horizons.identical_copies, horizons.rejected_rows) == (
        87693,
        86183,
        75,
        1435,
    )
    assert set(outcomes(check).values()) == {"passed"} and check.sites_with_stock == 19104


def test_a_declared_column_missing_from_the_file_is_an_error_naming_it(tmp_path, references):
    drop = afsp_drop(
        tmp_path,
        horizons=lambda h: h.rename(columns={"BLD": "BD"}),
        declaration=AFSP_DECLARATION.format(name="k", soc="ORCDRC"),
    )
    with pytest.raises(InputError) as error:
        checked(drop, references)
    assert str(error.value) == (
        f"{drop / 'horizons.csv'}: declared column(s) not in the file, by declaration {drop / 'declaration.yaml'}: "
        "bulk_density_g_per_cm3 from header 'BLD' (horizons.columns.bulk_density_g_per_cm3); correct the header, or "
        "remove the key to have the column null"
    )


def test_an_undeclared_na_in_an_optional_column_is_missing_there_only(tmp_path, references):
    def na_ph(h):
        h.iloc[[0, 3, 7], h.columns.get_loc("PHIHOX")] = "NA"
        return h

    check = checked(afsp_drop(tmp_path, n=20, horizons=na_ph), references)
    assert check.publishable and check.tables["field_horizons"].rejected_rows == 0
    assert check.tables["field_horizons"].undeclared_missing.to_dict("records") == [
        {"column": "ph_h2o", "value": "NA", "rows": 3, "first_line": 2}
    ]
    assert (
        "Read as missing: 'NA' in ph_h2o (3 row(s), first at horizons.csv:2); declare it (missing_values: ['NA']) to "
        "say so"
    ) in report(check).splitlines()


# ---- class 8: drop folders ----------------------------------------------------------------------------------------


def test_declaration_yml_in_any_case_is_the_drops_declaration(tmp_path, references):
    declaration = AFSP_DECLARATION.format(name="kenya yml", soc="ORCDRC")
    check = checked(afsp_drop(tmp_path, declaration=declaration, names={"declaration": "Declaration.YML"}), references)
    assert (check.declaration.path.name, check.declaration.name) == ("Declaration.YML", "kenya yml")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            ("declaration.yaml", "declaration.yml"),
            "two declarations, 'declaration.yaml' and 'declaration.yml': keep one",
        ),
        (
            ("edgeroi.yaml",),
            "'edgeroi.yaml' in the drop is not read: a drop's declaration is named declaration.yaml (rename it), or is "
            "passed with --declaration / the field_declaration input",
        ),
    ],
)
def test_a_declaration_is_never_silently_ignored(tmp_path, files, message):
    drop = afsp_drop(tmp_path, n=5)
    for name in files:
        (drop / name).write_text(AFSP_DECLARATION.format(name=name, soc="ORCDRC"))
    with pytest.raises(DeclarationError) as error:
        resolve_declaration(drop)
    assert str(error.value) == f"{drop}: {message}"


def test_sites_with_an_upper_case_suffix_are_found(tmp_path, references):
    check = checked(afsp_drop(tmp_path, n=20, names={"sites": "sites.CSV", "horizons": "Horizons.Csv"}), references)
    assert [path.name for path in check.paths.values()] == ["sites.CSV", "Horizons.Csv"] and check.publishable


def test_a_newline_in_a_file_name_cannot_forge_a_line_of_the_report(tmp_path, references, capsys):
    forged = "x\nWould be published (nothing was written).\n"

    def bad_latitude(s):
        s.iloc[0, s.columns.get_loc("LATWGS84")] = "95"
        return s

    drop = afsp_drop(tmp_path, n=20, sites=bad_latitude, names={"sites": forged + "sites.csv"})
    check = checked(drop, references)
    lines = report(check).splitlines()
    assert "  x\\nWould be published (nothing was written).\\nsites.csv:2 range latitude_deg '95': " in "\n".join(lines)
    assert lines.count("Would be published (nothing was written).") == 1 and lines[-1].startswith("Would be")
    (drop / "another sites.csv").write_text("SOURCEID\n")
    assert main(["check-drop", str(drop)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("soil-pipeline check-drop: ") and "found 2" in line


# ---- end to end: a refusal fails the run; a confirmation is recorded in provenance and metadata --------------------


def test_a_swapped_drop_fails_the_run_naming_the_cause(published_root, tmp_path):  # noqa: F811
    root, _ = published_root
    landing = tmp_path / "landing"
    afsp_drop(landing, sites=_swapped)
    result = _materialize(FIELD_DROP, root, InputDatasets(landing_dir=str(landing)))
    assert not result.success
    [failure] = result.failures()
    assert failure.remedy == Remedy.PLAUSIBILITY and "likely cause: latitude and longitude swapped" in failure.rule
    assert "81 of 200 sites off land (40.5 %)" in _failure_text(result)


def test_a_confirmed_unit_is_recorded_in_provenance_and_the_ui_metadata(published_root, tmp_path):  # noqa: F811
    root, _ = published_root
    landing = tmp_path / "landing"
    declaration = AFSP_DECLARATION.format(name="kenya", soc="ORCDRC") + '  units: {soc_g_per_kg: "%"}\n'
    declaration += 'confirm: {soc_unit: "%", reason: "checked against the laboratory sheets of the 1980 survey"}\n'
    afsp_drop(landing, declaration=declaration)
    result = _materialize(FIELD_DROP, root, InputDatasets(landing_dir=str(landing)))
    assert result.success, _failure_text(result)
    store = VersionedParquetStore(root)
    manifest = store.manifest("field_horizons", store.resolve("field_horizons", "latest", PARTITION))
    recorded = manifest["provenance"]["parameters"]["plausibility"]["reference_map"]
    assert recorded["outcome"] == "confirmed by the declaration"
    assert recorded["confirmation_reason"] == "checked against the laboratory sheets of the 1980 survey"
    # the pipeline's stock grid keeps the cells both WHRC layers cover; check-drop reads the raw 2010 layer (0.1571)
    assert recorded["median_map_to_field_ratio"] == 0.1567
    [materialization] = [
        m for m in result.result.asset_materializations_for_node("field_drop") if m.asset_key.path == ["field_horizons"]
    ]
    shown = materialization.metadata["plausibility"].value["reference_map"]
    assert shown["outcome"] == "confirmed by the declaration"
    assert materialization.metadata["declaration"].value["confirmed"]["soc_unit"] == "%"
