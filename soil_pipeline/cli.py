"""`soil-pipeline` command line: run the main job and every restoration scenario in-process, and summarise what
they published."""

import argparse
import os
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from soil_pipeline.definitions import DEFAULT_OUTPUT_ROOT, build_definitions
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.reference_data import scenario_ids
from soil_pipeline.resources import InputDatasets

TOP_COUNTRIES = 10
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _instance() -> dg.DagsterInstance:
    """The DAGSTER_HOME instance when one is set (so runs show in the UI), else an in-memory one."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run_pipeline(output_root: str, partition: str, landing_dir: str | None = None) -> list[dg.ExecuteInProcessResult]:
    """The main job for one drop, then the scenario job for every scenario; stops at the first failed run."""
    inputs = InputDatasets(landing_dir=landing_dir) if landing_dir else InputDatasets()
    definitions = build_definitions(output_root, inputs)
    runs = [("soil_pipeline_job", partition)] + [("restoration_scenarios_job", key) for key in scenario_ids()]
    results = []
    with _instance() as instance:
        for job_name, key in runs:
            job = definitions.resolve_job_def(job_name)
            result = job.execute_in_process(
                run_config=QUIET_LOGS, partition_key=key, instance=instance, raise_on_error=False
            )
            results.append(result)
            if not result.success:
                break
    return results


def _quarantine_line(store: VersionedParquetStore) -> str:
    counts = {}
    for name in ("field_sites", "field_horizons"):
        rejects = pd.concat(
            [
                store.read(f"{name}_rejects", version)
                for version in store.latest_by_partition(f"{name}_rejects").values()
            ]
        )
        counts[name] = len(rejects.drop_duplicates(["source_file", "source_line"]))
    return "Rows quarantined (see *_rejects):       {:8d} site rows, {} horizon rows".format(
        counts["field_sites"], counts["field_horizons"]
    )


def summary(output_root: str) -> str:
    store = VersionedParquetStore(output_root)
    table = store.read("regional_soc_stocks")
    world = table[table["region_type"] == "global"].iloc[0]
    countries = table[(table["region_type"] == "country") & (table["region_id"] != "UNASSIGNED")]
    top = countries.nlargest(TOP_COUNTRIES, "soc_stock_2010_pg_c")[
        ["region_id", "region_name", "soc_stock_2010_pg_c", "cropland_area_mha", "target_4p1000_tg_c_per_yr"]
    ]
    lines = [
        *_stock_lines(world),
        _quarantine_line(store),
        *_potential_lines(store.read("regional_sequestration_potential")),
        *_scenario_lines(store),
        "",
        f"Top {TOP_COUNTRIES} countries by 0-30 cm SOC stock:",
        top.to_string(index=False, float_format=lambda v: f"{v:.2f}"),
        "",
        f"Published Parquet under {store.root}:",
    ]
    latest = pd.DataFrame([row for row in store.catalog() if row["latest"]])
    for row in latest.itertuples():
        partition = f" [{row.partition}]" if isinstance(row.partition, str) else ""
        lines.append(f"  {row.asset}{partition}: {store.root / row.asset / row.version}")
    return "\n".join(lines)


def _stock_lines(world: pd.Series) -> list[str]:
    return [
        "Global SOC stock 0-30 cm, 2010:         {:8.1f} Pg C".format(world["soc_stock_2010_pg_c"]),
        "Global SOC stock 0-30 cm, no land use:  {:8.1f} Pg C".format(world["soc_stock_no_land_use_pg_c"]),
        "Global cropland area (HYDE 3.2, 2016):  {:8.1f} Mha".format(world["cropland_area_mha"]),
        "Global 4 per 1000 target:               {:8.1f} Tg C/yr".format(world["target_4p1000_tg_c_per_yr"]),
        "Field sites with a 0-30 cm stock:       {:8d} (median {:.1f} t C/ha)".format(
            int(world["n_field_sites"]), world["median_field_topsoil_soc_t_c_per_ha"]
        ),
    ]


def _interval(row: pd.Series, name: str, fmt: str) -> str:
    return f"{row[name]:{fmt}} ({row[name + '_p05']:{fmt}}-{row[name + '_p95']:{fmt}})"


def _potential_lines(table: pd.DataFrame) -> list[str]:
    world = table[table["region_type"] == "global"].iloc[0]
    lines = ["", "Sequestration potential, global (5th-95th percentile):"]
    for level in ("medium", "high"):
        lines.append(
            f"  Zomer-style cropland, {level:6s}: {_interval(world, f'zomer_{level}_tg_c_per_yr', '.0f')} Tg C/yr, "
            f"{_interval(world, f'zomer_{level}_t_c_per_ha_per_yr', '.2f')} t C/ha/yr, "
            f"{_interval(world, f'zomer_{level}_share_of_4p1000_pct', '.0f')} % of 4p1000"
        )
    return lines


def _scenario_lines(store: VersionedParquetStore) -> list[str]:
    lines = ["", "Restoration scenarios, global soil (0-30 cm) carbon gain at the horizon (5th-95th percentile):"]
    for key, version in sorted(store.latest_by_partition("restoration_scenario").items()):
        world = store.read("restoration_scenario", version).query("region_type == 'global'").iloc[0]
        lines.append(
            f"  {key:22s} {world['restored_area_mha']:7.1f} Mha restored, "
            f"{_interval(world, 'soc_gain_pg_c', '.2f')} Pg C = {_interval(world, 'soc_gain_gt_co2', '.1f')} Gt CO2"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soil-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize every asset for one field-sample drop and publish Parquet")
    run.add_argument("--output-root", default=DEFAULT_OUTPUT_ROOT, help="where versions are published")
    run.add_argument("--partition", default=EMBEDDED_DROP_PARTITION, help="monthly drop YYYY-MM")
    run.add_argument("--landing-dir", help="folder holding field_samples/YYYY-MM/ (default: embedded data)")
    args = parser.parse_args(argv)

    output_root = str(Path(args.output_root).expanduser().resolve())
    results = run_pipeline(output_root, args.partition, args.landing_dir)
    if not results[-1].success:
        for event in results[-1].all_events:
            if event.is_step_failure:
                print(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
        return 1
    print(summary(output_root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
