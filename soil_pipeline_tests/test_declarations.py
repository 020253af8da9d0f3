"""Field-drop declarations: a survey with its own column names, units, CRS and missing-value markers is ingested by
declaration alone, every row reconciled; the shipped declarations match the embedded drop and the WoSIS layout."""

import functools
import math
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from soil_pipeline.cli import main
from soil_pipeline.contracts.declaration import (
    DECLARATIONS_DIR,
    DEFAULT_DECLARATION,
    apply_declaration,
    find_table_file,
    load_declaration,
    plan_table,
    table_header,
)
from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.errors import DeclarationError, InputError
from soil_pipeline.ingest import validate_drop
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.readers import iter_table_chunks, read_table_file
from soil_pipeline.resources import InputDatasets, RasterEngine
from soil_pipeline.run_config import load_run_config
from soil_pipeline.runner import runner_job
from soil_pipeline_tests.test_bad_inputs import FIELD_DROP, _failure_text, _materialize, published_root  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures"
PARTITION = "2024-01"
TABLES = ("field_sites", "field_horizons")

# What a user writes for a survey like Edgeroi (NSW): other names, GDA94 lon/lat, SOC in %, no BD, no coarse
# fragments, no dates, "NA" for missing values.
EDGEROI_DECLARATION = """\
declaration: 1
name: Edgeroi-like survey (NSW)
missing_values: ["NA"]
sites:
  file: "*profiles.csv"
  coordinates_crs: EPSG:4283          # GDA94, longitude/latitude
  columns:
    site_id: profile
    longitude_deg: lon_gda94
    latitude_deg: lat_gda94
  fixed:
    source_db: edgeroi
    sampling_date: 1985-06-01
horizons:
  file: "*layers.csv"
  columns:
    site_id: profile
    upper_depth_cm: top_cm
    lower_depth_cm: bottom_cm
    soc_g_per_kg: oc_pct
    ph_h2o: ph_water
  units:
    soc_g_per_kg: "%"
"""


def edgeroi_drop(folder: Path) -> Path:
    """An Edgeroi-like drop: 12 profiles near Narrabri, three layers each, with the faults a real survey has."""
    drop = folder / "field_samples" / PARTITION
    drop.mkdir(parents=True)
    sites = pd.DataFrame(
        {
            "profile": [f"ed{n:03d}" for n in range(1, 13)],
            "lon_gda94": [f"{149.70 + 0.02 * n:.4f}" for n in range(12)],
            "lat_gda94": [f"{-30.10 - 0.02 * n:.4f}" for n in range(12)],
            "landform": "plain",
        }
    )
    sites.loc[10, "lat_gda94"] = "NA"  # ed011: no latitude -> quarantined site, orphan layers
    layers = []
    for site in sites["profile"]:
        for top, bottom, oc in ((0, 10, "1.2"), (10, 30, "0.8"), (30, 60, "0.5")):
            layers.append({"profile": site, "top_cm": top, "bottom_cm": bottom, "oc_pct": oc, "ph_water": "7.1"})
    layers = pd.DataFrame(layers)
    layers.loc[(layers["profile"] == "ed005") & (layers["top_cm"] == 0), "oc_pct"] = "NA"  # missing SOC
    layers.loc[(layers["profile"] == "ed009") & (layers["top_cm"] == 10), "oc_pct"] = "trace"  # not a number
    layers.loc[(layers["profile"] == "ed003") & (layers["top_cm"] == 0), "oc_pct"] = "15"  # peat: no PTF BD
    layers = layers[~((layers["profile"] == "ed007") & (layers["top_cm"] >= 10))]  # only 0-10 cm
    sites.to_csv(drop / "edgeroi_profiles.csv", index=False)
    layers.to_csv(drop / "edgeroi_layers.csv", index=False)
    (drop / "declaration.yaml").write_text(EDGEROI_DECLARATION)
    return drop


def _plans(drop: Path, declaration_path: Path):
    declaration = load_declaration(declaration_path)
    contracts = {name: load_table_contract(name) for name in TABLES}
    paths = {name: find_table_file(drop, declaration, name, drop.parent.parent) for name in TABLES}
    plans = {
        name: plan_table(declaration, name, contracts[name], paths[name], table_header(paths[name])) for name in TABLES
    }
    return paths, plans


def test_the_embedded_layout_declaration_is_the_contracts_physical_names():
    drop = InputDatasets().drop_dir("2012-10")
    _, plans = _plans(drop, DEFAULT_DECLARATION)
    for name in TABLES:
        assert plans[name].source_columns == load_table_contract(name).source_columns()
        assert (plans[name].absent, plans[name].units, plans[name].conversions()) == ((), {}, {})


def test_a_declaration_converts_units_crs_markers_and_keeps_the_source_text(tmp_path):
    drop = edgeroi_drop(tmp_path)
    paths, plans = _plans(drop, drop / "declaration.yaml")
    assert plans["field_horizons"].absent == (
        "bulk_density_g_per_cm3",
        "clay_pct",
        "coarse_fragments_vol_pct",
        "sand_pct",
        "silt_pct",
    )
    horizons = apply_declaration(
        read_table_file(paths["field_horizons"], plans["field_horizons"].source_columns), plans["field_horizons"]
    )
    first = horizons.iloc[0]
    assert (first["soc_g_per_kg"], first["source_text:soc_g_per_kg"]) == ("12", "1.2")
    assert horizons["bulk_density_g_per_cm3"].isna().all()
    assert pd.isna(horizons.loc[horizons["site_id"] == "ed005", "soc_g_per_kg"].iloc[0])  # "NA" is missing
    assert horizons.loc[horizons["site_id"] == "ed009", "soc_g_per_kg"].iloc[1] == "trace"  # left for the type rule
    assert horizons.attrs["declared_conversions"]["soc_g_per_kg"] == "declared %, x 10 to g/kg (declaration.yaml)"
    sites = apply_declaration(
        read_table_file(paths["field_sites"], plans["field_sites"].source_columns), plans["field_sites"]
    )
    assert set(sites["sampling_date"]) == {"1985-06-01"} and set(sites["source_db"]) == {"edgeroi"}
    lon, lat = float(sites["longitude_deg"].iloc[0]), float(sites["latitude_deg"].iloc[0])
    assert abs(lon - 149.70) < 1e-4 and abs(lat + 30.10) < 1e-4  # GDA94 and WGS84 differ by about a metre
    operation = plans["field_sites"].describe()["coordinate_operation"]
    assert "GDA94 to WGS 84" in operation["description"] and operation["accuracy_m"] > 0


def test_a_declaration_is_applied_chunk_by_chunk_in_the_bounded_memory_ingest(tmp_path):
    """The chunked reader declares every chunk of a hundred bytes or so as the whole table would be declared, and
    the bucketed validation of the drop with its plans reconciles every row and names the conversions."""
    drop = edgeroi_drop(tmp_path)
    paths, plans = _plans(drop, drop / "declaration.yaml")
    plan = plans["field_horizons"]
    declare = functools.partial(apply_declaration, plan=plan)
    chunks = list(iter_table_chunks(paths["field_horizons"], plan.source_columns, chunk_bytes=128, declare=declare))
    assert len(chunks) > 3
    whole = apply_declaration(read_table_file(paths["field_horizons"], plan.source_columns), plan)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)

    contracts = {name: load_table_contract(name) for name in TABLES}
    checked = validate_drop(paths, contracts, tmp_path / "work", bucket_bytes=128, plans=plans)
    sites, horizons = (v.valid.to_pandas() for v in (checked.sites, checked.horizons))
    assert (len(sites), checked.sites.rejected_rows, len(horizons), checked.horizons.rejected_rows) == (11, 1, 30, 4)
    assert not any(column.startswith("source_text:") for column in [*sites.columns, *horizons.columns])
    assert set(sites["sampling_date"].dt.strftime("%Y-%m-%d")) == {"1985-06-01"}
    first = horizons[horizons["site_id"] == "ed001"].sort_values("upper_depth_cm").iloc[0]
    assert (first["soc_g_per_kg"], pd.isna(first["bulk_density_g_per_cm3"])) == (12.0, True)
    rejects = checked.horizons.rejects.to_pandas()
    trace = rejects[rejects["rule"] == "type"].iloc[0]
    assert (trace["value"], trace["conversion"]) == ("trace", "declared %, x 10 to g/kg (declaration.yaml)")
    assert checked.sites_with_stock == 7
    assert checked.stock_exclusions == {
        "incomplete_depth_coverage": 1,
        "incomplete_depth_coverage;quarantined_horizon": 1,
        "missing_bd_outside_ptf_domain": 1,
        "missing_soc": 1,
    }


def test_units_mass_coarse_fragments_and_date_format_are_converted():
    from soil_pipeline.contracts.declaration import TablePlan

    plan = TablePlan(
        table="field_horizons",
        declaration="d.yaml",
        key="horizons",
        source_columns={"a": "bulk_density_g_per_cm3", "b": "coarse_fragments_vol_pct", "c": "upper_depth_cm"},
        absent=(),
        units={
            "bulk_density_g_per_cm3": ("kg/m3", "g/cm3"),
            "coarse_fragments_vol_pct": ("% mass", "% vol"),
            "upper_depth_cm": ("m", "cm"),
        },
    )
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    frame = pd.DataFrame(
        {
            "bulk_density_g_per_cm3": ["1325", "", "1400"],
            "coarse_fragments_vol_pct": ["20", "20", "x"],
            "upper_depth_cm": ["0.1", "0.25", "1"],
        },
        dtype=text,
    )
    out = apply_declaration(frame, plan)
    assert list(out["bulk_density_g_per_cm3"].iloc[[0, 2]]) == ["1.325", "1.4"]
    # 20 % by mass with BD 1.325 and fragments at 2.65 g/cm3: 7.55/(7.55+60.38) of the volume = 11.1 %
    expected = 100 * (20 / 2.65) / (20 / 2.65 + 80 / 1.325)
    assert math.isclose(float(out["coarse_fragments_vol_pct"].iloc[0]), expected, rel_tol=1e-12)
    assert pd.isna(out["coarse_fragments_vol_pct"].iloc[1])  # no BD: cannot be converted
    assert out["coarse_fragments_vol_pct"].iloc[2] == "x"
    assert list(out["upper_depth_cm"]) == ["10", "25", "100"]
    dated = TablePlan("field_sites", "d.yaml", "sites", {"d": "sampling_date"}, (), date_format="%d/%m/%Y")
    out = apply_declaration(pd.DataFrame({"sampling_date": ["31/12/1985", "45/01/1986"]}, dtype=text), dated)
    assert list(out["sampling_date"]) == ["1985-12-31", "45/01/1986"]


def test_a_column_the_stock_needs_names_the_drop_column_and_declaration_key(tmp_path):
    drop = edgeroi_drop(tmp_path)
    text = (drop / "declaration.yaml").read_text().replace("    soc_g_per_kg: oc_pct\n", "")
    (drop / "declaration.yaml").write_text(text)
    with pytest.raises(InputError) as error:
        _plans(drop, drop / "declaration.yaml")
    assert str(error.value) == (
        f"{drop / 'edgeroi_layers.csv'}: missing required column(s) by declaration {drop / 'declaration.yaml'}: "
        "soc_g_per_kg (SOC content, for the 0-30 cm stock): no header declared (add horizons.columns.soc_g_per_kg: "
        "<header>)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('  units:\n    soc_g_per_kg: "%"', "  units:\n    soc_g_per_kg: ppm"), "horizons.units.soc_g_per_kg: 'ppm'"),
        (("EPSG:4283", "EPSG:999999"), "sites.coordinates_crs 'EPSG:999999' is not a CRS"),
        (("declaration: 1", "declaration: 1\ncolour: red"), "unknown key(s) colour"),
        (("    ph_h2o: ph_water", "    ph: ph_water"), "horizons.columns: ph not in contract field_horizons"),
    ],
)
def test_a_bad_declaration_is_refused_naming_file_and_key(tmp_path, change, message):
    drop = edgeroi_drop(tmp_path)
    path = drop / "declaration.yaml"
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(DeclarationError) as error:
        _plans(drop, path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_the_wosis_declaration_reads_a_file_in_the_wosis_layout(tmp_path):
    drop = tmp_path / "field_samples" / PARTITION
    shutil.copytree(FIXTURES / "wosis_snapshot_drop", drop)
    paths, plans = _plans(drop, DECLARATIONS_DIR / "wosis_snapshot.yaml")
    horizons = apply_declaration(
        read_table_file(paths["field_horizons"], plans["field_horizons"].source_columns), plans["field_horizons"]
    )
    assert plans["field_sites"].absent == ("sampling_date",)
    assert horizons["soc_g_per_kg"].notna().all() and horizons["bulk_density_g_per_cm3"].notna().any()


def test_an_edgeroi_like_survey_is_ingested_by_declaration_alone(published_root, tmp_path):  # noqa: F811
    root, _ = published_root
    landing = tmp_path / "landing"
    drop = edgeroi_drop(landing)
    result = _materialize([*FIELD_DROP, "topsoil_soc_stocks"], root, InputDatasets(landing_dir=str(landing)))
    assert result.success, _failure_text(result)
    store = VersionedParquetStore(root)
    sites, stocks = (store.read(name, partition=PARTITION) for name in ("field_sites", "topsoil_soc_stocks"))
    site_rejects = store.read("field_sites_rejects", partition=PARTITION)
    horizon_rejects = store.read("field_horizons_rejects", partition=PARTITION)
    n_sites = len(pd.read_csv(drop / "edgeroi_profiles.csv"))
    assert n_sites == len(sites) + site_rejects["source_line"].nunique() == 11 + 1
    with_stock = stocks["topsoil_soc_stock_t_c_per_ha"].notna()
    assert len(stocks) == len(sites) and stocks.loc[~with_stock, "exclusion_reason"].notna().all()
    reasons = dict(zip(stocks.loc[~with_stock, "site_id"], stocks.loc[~with_stock, "exclusion_reason"], strict=True))
    assert reasons == {
        "ed003": "missing_bd_outside_ptf_domain",
        "ed005": "missing_soc",
        "ed007": "incomplete_depth_coverage",
        "ed009": "incomplete_depth_coverage;quarantined_horizon",  # the "trace" layer is gone from 10-30 cm
    }
    bad_soc = horizon_rejects[horizon_rejects["rule"] == "type"].iloc[0]
    assert (bad_soc["value"], bad_soc["conversion"]) == ("trace", "declared %, x 10 to g/kg (declaration.yaml)")
    # ed001 by hand: 1.2 % and 0.8 % OC, BD by Manrique & Jones (1991), 10 + 20 cm
    bd = [1.660 - 0.318 * math.sqrt(oc) for oc in (1.2, 0.8)]
    by_hand = 12 * bd[0] * 10 * 0.1 + 8 * bd[1] * 20 * 0.1
    stock = stocks.loc[stocks["site_id"] == "ed001"].iloc[0]
    assert math.isclose(stock["topsoil_soc_stock_t_c_per_ha"], by_hand, rel_tol=1e-9)
    assert stock["bd_source"] == "pedotransfer" and stock["coarse_fragments_assumed_zero"]
    manifest = store.manifest("field_sites", store.resolve("field_sites", "latest", PARTITION))
    declared = manifest["provenance"]["parameters"]["declaration:field_sites"]
    assert declared["conversions"]["latitude_deg"].startswith("declared EPSG:4283, transformed to WGS84")


def test_check_drop_prints_what_would_be_quarantined_without_publishing(tmp_path, capsys):
    drop = edgeroi_drop(tmp_path / "landing")
    assert main(["check-drop", str(drop)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  edgeroi_layers.csv:25 type soc_g_per_kg 'trace': soc_g_per_kg must be a number" in out
    assert "  edgeroi_profiles.csv:12 required latitude_deg (missing): latitude_deg is required" in out
    assert out[-2] == (
        "Reconciliation: sites 12 in = 11 published + 1 rejected; horizons 34 in = 30 published + 4 rejected; "
        "stocks 11 sites = 7 with a 0-30 cm stock + 4 null with a reason (incomplete_depth_coverage 1, "
        "incomplete_depth_coverage;quarantined_horizon 1, missing_bd_outside_ptf_domain 1, missing_soc 1)"
    )
    assert out[-1] == "Would be published (nothing was written)." and not (tmp_path / "soil_pipeline_output").exists()
    percent = drop / "declaration.yaml"
    percent.write_text(percent.read_text().replace('soc_g_per_kg: "%"', "soc_g_per_kg: g/kg"))
    assert main(["check-drop", str(drop)]) == 1
    out = capsys.readouterr().out
    assert "Would be REFUSED (nothing published):" in out and "median soc_g_per_kg must be within [1.0, 200.0]" in out


def test_run_config_sets_inputs_partition_and_output_root(tmp_path, capsys):
    config = tmp_path / "my_inputs.yaml"
    config.write_text(
        "output_root: out\npartition: 2013-1\ninputs:\n  landing_dir: landing\n  soc_stock_2010_raster: /vsicurl/https://x/y.tif\n"
    )
    loaded = load_run_config(config, set(InputDatasets.model_fields))
    assert loaded == {
        "output_root": str(tmp_path / "out"),
        "partition": "2013-1",
        "inputs": {"landing_dir": str(tmp_path / "landing"), "soc_stock_2010_raster": "/vsicurl/https://x/y.tif"},
        "raster_engine": {},
        "refresh": {},
        "docs_url": None,
    }
    assert main(["run", "--config", str(config)]) == 2  # the config's partition is checked before anything runs
    assert "--partition '2013-1' is not a drop" in capsys.readouterr().err
    config.write_text("inputs:\n  soc_raster: a.tif\n")
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: inputs: unknown input(s) soc_raster (line 2); known: climate_zones_raster" in err
    assert main(["run", "--input", "soc_stock_2010_raster"]) == 1
    assert "--input 'soc_stock_2010_raster': use NAME=PATH with NAME one of" in capsys.readouterr().err


def test_run_config_sets_the_raster_engine_and_names_a_wrong_setting(tmp_path, capsys):
    config = tmp_path / "my_inputs.yaml"
    config.write_text("raster_engine:\n  window_cells: 65536\n  threads: 1\n")
    loaded = load_run_config(config, set(InputDatasets.model_fields), set(RasterEngine.model_fields))
    assert loaded["raster_engine"] == {"window_cells": 65536, "threads": 1}
    job = runner_job("soil_pipeline_job", str(tmp_path / "out"), {}, loaded["raster_engine"])
    with dg.build_resources({"raster_engine": job.resource_defs["raster_engine"]}) as resources:
        engine = resources.raster_engine
    assert (engine.window_cells, engine.threads, engine.width) == (65536, 1, 4320)
    config.write_text("raster_engine:\n  window_size: 65536\n")
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: raster_engine: unknown setting(s) window_size (line 2); known: crs" in err
    config.write_text("raster_engine:\n  window_cells: many\n")
    assert main(["run", "--config", str(config)]) == 1
    assert f"{config}: line 2: raster_engine.window_cells: Input should be a valid integer" in capsys.readouterr().err
