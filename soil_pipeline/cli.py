"""`soil-pipeline` command line: run the main job and every restoration scenario in-process and summarise what
they published; list, pull and show published versions.

Dagster is imported only by `run`, so the read-only commands start fast.
"""

import argparse
import json
import os
import sys
import warnings

import pandas as pd

from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT, normalise_root
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.science.aggregation import global_row

TOP_COUNTRIES = 10
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
PROGRESS_LOGS = {"loggers": {**QUIET_LOGS["loggers"], "progress": {}}}


def _instance():
    """The DAGSTER_HOME instance when one is set (so runs show in the UI), else an in-memory one."""
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run_pipeline(output_root: str, partition: str | None = None, landing_dir: str | None = None) -> list:
    """The main job for one drop, then the scenario job (every scenario); stops at the first failed run."""
    # The observable source assets are a Dagster beta API; its notice is for developers, not for every run.
    warnings.filterwarnings("ignore", message=r".* is currently in beta")
    from soil_pipeline.definitions import build_definitions
    from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
    from soil_pipeline.resources import InputDatasets

    partition = partition or EMBEDDED_DROP_PARTITION
    inputs = InputDatasets(landing_dir=landing_dir) if landing_dir else InputDatasets()
    definitions = with_progress(build_definitions(output_root, inputs))
    results = []
    with _instance() as instance:
        for job_name, key in (("soil_pipeline_job", partition), ("restoration_scenarios_job", None)):
            job = definitions.resolve_job_def(job_name)
            result = job.execute_in_process(
                run_config=PROGRESS_LOGS, partition_key=key, instance=instance, raise_on_error=False
            )
            results.append(result)
            if not result.success:
                break
    return results


def with_progress(definitions):
    """The definitions with a `progress` logger beside the console one: one line on stderr per finished step."""
    import logging

    import dagster as dg

    class StepLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
            if event is not None and (event.is_step_success or event.is_step_failure or event.is_step_skipped):
                outcome = "done" if event.is_step_success else "FAILED" if event.is_step_failure else "skipped"
                print(f"[{record.dagster_meta['job_name']}] {outcome:7s} {event.step_key}", file=sys.stderr, flush=True)

    @dg.logger(description="One line per finished step, for `soil-pipeline run`.")
    def progress(_):
        logger = logging.getLogger("soil_pipeline.progress")
        logger.setLevel(logging.DEBUG)
        if not logger.handlers:
            logger.addHandler(StepLines())
        return logger

    loggers = {"console": dg.colored_console_logger, "progress": progress}
    return dg.Definitions.merge(definitions, dg.Definitions(loggers=loggers))


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
    world = global_row(table)
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
        lines.append(f"  {row.asset}{partition}: {store.backend.display(row.asset, row.version)}")
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
    world = global_row(table)
    lines = ["", "Sequestration potential, global (5th-95th percentile):"]
    for level in ("medium", "high"):
        for variant in ("reproduction", "independent"):
            name, area = f"zomer_{level}_{variant}", f"zomer_{variant}_cropland_area_mha"
            bd = f"zomer_{variant}_bd_g_per_cm3"
            lines.append(
                f"  Zomer-style cropland, {level:6s} {variant:12s}: {world[name + '_tg_c_per_yr']:.0f} Tg C/yr, "
                f"{world[name + '_t_c_per_ha_per_yr']:.2f} t C/ha/yr on {world[area]:.0f} Mha (BD {world[bd]:.4f}), "
                f"{_interval(world, name + '_share_of_4p1000_all_land_pct', '.0f')} % of 4p1000 (all land)"
            )
    return lines


def _scenario_lines(store: VersionedParquetStore) -> list[str]:
    lines = ["", "Restoration scenarios, global soil (0-30 cm) carbon gain at the horizon (5th-95th percentile):"]
    for key, version in sorted(store.latest_by_partition("restoration_scenario").items()):
        table = store.read("restoration_scenario", version)
        world = global_row(table[table["estimate"] == "central"])
        lines.append(
            f"  {key:22s} {world['restored_area_mha']:7.1f} Mha restored, "
            f"{_interval(world, 'soc_gain_pg_c', '.2f')} Pg C = {_interval(world, 'soc_gain_gt_co2', '.1f')} Gt CO2; "
            f"bounds {world['soc_gain_lower_bound_pg_c']:.2f}-{world['soc_gain_upper_bound_pg_c']:.2f} Pg C"
        )
    return lines


def versions_table(store: VersionedParquetStore, asset: str | None) -> str:
    rows = store.versions(asset)
    if not rows:
        return f"no published versions{f' of {asset}' if asset else ''} under {store.root}"
    table = pd.DataFrame(rows)[["asset", "partition", "version", "created_at", "row_count", "latest"]]
    table["latest"] = table["latest"].map({True: "*", False: ""})
    return table.fillna("").to_string(index=False)


def show_text(store: VersionedParquetStore, asset: str, version: str, partition: str | None, rows: int) -> str:
    version = store.resolve(asset, version, partition)
    manifest = store.manifest(asset, version)
    head = store.read(asset, version).head(rows)
    summary = {key: manifest[key] for key in ("asset", "version", "partition", "created_at", "row_count", "files")}
    return "\n".join(
        [
            json.dumps(summary, indent=2),
            "",
            head.to_string(index=False, max_colwidth=40),
            "",
            "provenance:",
            json.dumps({"provenance": manifest["provenance"], "run": manifest["run"]}, indent=2, sort_keys=True),
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soil-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize every asset for one field-sample drop and publish Parquet")
    run.add_argument("--partition", help="monthly drop YYYY-MM (default: the embedded drop, 2012-10)")
    run.add_argument("--landing-dir", help="folder holding field_samples/YYYY-MM/ (default: embedded data)")
    versions = commands.add_parser("versions", help="list published versions (of one asset)")
    versions.add_argument("asset", nargs="?")
    pull = commands.add_parser("pull", help="copy a version's data.parquet and manifest.json to DIR/ASSET/VERSION/")
    pull.add_argument("asset")
    pull.add_argument("--to", required=True, metavar="DIR")
    show = commands.add_parser("show", help="print a version's first rows and its provenance")
    show.add_argument("asset")
    show.add_argument("--rows", type=int, default=10)
    for command in (pull, show):
        command.add_argument("--version", default="latest", help="version id (default: latest)")
        command.add_argument("--partition", help="partition, when the asset has a latest version for several")
    docs = commands.add_parser("docs", help="serve the output root (Data Docs, scenario maps) on 127.0.0.1 for the UI")
    docs.add_argument("--port", type=int, default=8765, help="the port the UI's links and maps point at (8765)")
    for command in (run, versions, pull, show, docs):
        command.add_argument("--output-root", default=DEFAULT_OUTPUT_ROOT, help="local path or fsspec URL")
    return parser


def serve_docs(output_root: str, port: int) -> int:
    """Serve a local output root read-only over HTTP until interrupted: the Data Docs links and scenario map images
    in the Dagster UI point here."""
    import contextlib
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    root = Path(output_root)
    if not root.is_dir():
        print(f"soil-pipeline docs: {output_root} is not a local folder", file=sys.stderr)
        return 1
    pages = sorted(root.glob("_data_docs/*/*/index.html"), key=lambda page: page.stat().st_mtime)[-2:]
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"Serving {root.resolve()} at http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True)
        for page in pages:
            print(f"  latest Data Docs: http://127.0.0.1:{port}/{page.relative_to(root).as_posix()}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


def _run(args) -> int:
    results = run_pipeline(args.output_root, args.partition, args.landing_dir)
    if not results[-1].success:
        for event in results[-1].all_events:
            if event.is_step_failure:
                print(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
        return 1
    print(summary(args.output_root))
    return 0


def _access(args) -> int:
    store = VersionedParquetStore(args.output_root)
    if args.command == "versions":
        print(versions_table(store, args.asset))
    elif args.command == "pull":
        version = store.resolve(args.asset, args.version, args.partition)
        print(store.pull(args.asset, version, args.to))
    else:
        print(show_text(store, args.asset, args.version, args.partition, args.rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.output_root = normalise_root(args.output_root)
    if args.command == "run":
        return _run(args)
    if args.command == "docs":
        return serve_docs(args.output_root, args.port)
    try:
        return _access(args)
    except (KeyError, ValueError, OSError) as error:
        print(f"soil-pipeline {args.command}: {error.args[0] if error.args else error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
