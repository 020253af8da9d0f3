"""`soil-pipeline` command line: run the main job and every restoration scenario in-process and summarise what
they published; list, pull and show published versions; check (`doctor`) and clean (`gc`) an output root.

Dagster is imported only by `run`, so the read-only commands start fast. The read-only commands (versions, show,
pull, doctor) never write under the output root. Every error ends with one line naming its cause.
"""

import argparse
import functools
import json
import os
import re
import sys
import warnings
from pathlib import Path

import pandas as pd

from soil_pipeline.publishing.maintenance import DEFAULT_GRACE_HOURS, DEFAULT_KEEP_RUNS, doctor, gc
from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT, OutputRoot
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.science.aggregation import global_row

TOP_COUNTRIES = 10
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# `soil-pipeline run` reports failures itself, one line per failed step naming the cause: no Dagster tracebacks;
# the `progress` logger prints one line per finished step.
PROGRESS_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}, "progress": {}}}


def _instance():
    """The DAGSTER_HOME instance when one is set (so runs show in the UI), else an in-memory one."""
    import dagster as dg

    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run_pipeline(
    output_root: OutputRoot,
    partition: str | None = None,
    landing_dir: str | None = None,
    keep_runs: int | None = None,
    inputs: dict | None = None,
    raster_engine: dict | None = None,
) -> tuple[list, list[dict]]:
    """The main job for one drop, then the scenario job (every scenario); stops at the first failed run.

    Each successful run is committed (its outputs listed as the latest together); a failed one is marked failed and
    lists nothing. Returns the run results and the committed outputs with their status ("new" or "unchanged").
    """
    from soil_pipeline.contracts import gx_worker

    gx_worker.warm_up()  # GX imports in its worker while Dagster and the definitions import here
    # The observable source assets are a Dagster beta API; its notice is for developers, not for every run.
    warnings.filterwarnings("ignore", message=r".* is currently in beta")
    import dagster as dg

    from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
    from soil_pipeline.run_commit import commit_run

    partition = partition or EMBEDDED_DROP_PARTITION
    settings = {**(inputs or {}), **({"landing_dir": landing_dir} if landing_dir else {})}
    results, committed = [], []
    with _instance() as instance:
        for job_name, key in (("soil_pipeline_job", partition), ("restoration_scenarios_job", None)):
            job = dg.build_reconstructable_job(
                "soil_pipeline.cli",
                cli_job.__name__,
                reconstructable_args=(job_name, output_root.url, settings, raster_engine or {}),
            )
            tags = {"dagster/partition": key} if key else None
            # Not opened as a context manager: that would set up every resource again to load outputs, unused here.
            result = dg.execute_job(job, instance, run_config=PROGRESS_LOGS, tags=tags)
            results.append(result)
            if not result.success:
                VersionedParquetStore(output_root).mark_failed(result.run_id)
                break
            committed += commit_run(output_root, result.run_id, keep_runs)
    return results, committed


def cli_job(job_name: str, output_root: str, settings: dict, engine_settings: dict):
    """The job `soil-pipeline run` executes, built from plain values: `dg.execute_job` runs it from this recipe and,
    unlike `execute_in_process`, keeps no step's output in memory until the run ends."""
    as_text = functools.partial(json.dumps, sort_keys=True, default=str)
    definitions = _cli_definitions(output_root, as_text(settings), as_text(engine_settings))
    return definitions.resolve_job_def(job_name)


@functools.lru_cache(maxsize=2)
def _cli_definitions(output_root: str, settings: str, engine_settings: str):
    """The definitions of `cli_job`, built once per process for the same values (Dagster reconstructs the job
    several times per run)."""
    from soil_pipeline.definitions import build_definitions
    from soil_pipeline.resources import InputDatasets, RasterEngine

    inputs, engine = InputDatasets(**json.loads(settings)), RasterEngine(**json.loads(engine_settings))
    return with_progress(build_definitions(output_root, inputs, engine))


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


def summary(output_root: OutputRoot, committed: list[dict] | None = None) -> str:
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
    status = {(row["asset"], row["partition"]): row["status"] for row in committed or []}
    latest = pd.DataFrame([row for row in store.catalog() if row["latest"]])
    for row in latest.itertuples():
        partition = row.partition if isinstance(row.partition, str) else None
        label = f" [{partition}]" if partition else ""
        note = {"new": " (new)", "unchanged": " (unchanged)"}.get(status.get((row.asset, partition)), "")
        lines.append(f"  {row.asset}{label}: {store.backend.display(row.asset, row.version)}{note}")
    return "\n".join(lines)


def _stock_lines(world: pd.Series) -> list[str]:
    regional = [] if world["region_name"] == "World" else [f"REGIONAL stock layers: {world['region_name']}"]
    scope = "Global" if not regional else "Region"
    return [
        *regional,
        "{} SOC stock 0-30 cm, 2010:         {:8.1f} Pg C".format(scope, world["soc_stock_2010_pg_c"]),
        "{} SOC stock 0-30 cm, no land use:  {:8.1f} Pg C".format(scope, world["soc_stock_no_land_use_pg_c"]),
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
    lines = [
        "",
        "Restoration scenarios, global soil (0-30 cm) carbon gain at the horizon (5th-95th percentile); central =",
        "IPCC Tier 1 set-aside, low = Post & Kwon 0.33 t C/ha/yr, eventual = whole attributed debt repaid:",
    ]
    for key, version in sorted(store.latest_by_partition("restoration_scenario").items()):
        table = store.read("restoration_scenario", version)
        world = table[table["region_type"] == "global"].set_index("estimate")
        central = world.loc[["central"]].iloc[0]
        lines.append(
            f"  {key:22s} {central['restored_area_mha']:7.1f} Mha restored "
            f"({central['restored_area_with_soc_mha']:.1f} Mha with a SOC value)"
        )
        for estimate in ("central", "low", "eventual_recovery"):
            if estimate not in world.index:
                continue
            row = world.loc[[estimate]].iloc[0]
            bounds = (
                f"; bounds {row['soc_gain_lower_bound_pg_c']:.2f}-{row['soc_gain_upper_bound_pg_c']:.2f} Pg C"
                if estimate == "central"
                else ""
            )
            lines.append(
                f"    {estimate:17s} {_interval(row, 'soc_gain_pg_c', '.2f')} Pg C = "
                f"{_interval(row, 'soc_gain_gt_co2', '.1f')} Gt CO2, "
                f"{row['implied_rate_t_c_per_ha_per_yr']:.2f} t C/ha/yr{bounds}"
            )
    return lines


def versions_table(store: VersionedParquetStore, asset: str | None) -> str:
    """The catalog as a table; KeyError naming the known assets when `asset` has no version."""
    rows = store.versions(asset)
    if asset and not rows:
        known = sorted({row["asset"] for row in store.catalog()})
        raise KeyError(f"no versions of {asset!r} under {store.root}; assets: {', '.join(known) or 'none yet'}")
    if not rows:
        return f"no published versions under {store.root}"
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


def doctor_text(report, list_unlisted: bool) -> str:
    lines = [f"checked {report.checked} listed versions (sha256 of data.parquet against the catalog)"]
    lines += [f"PROBLEM {problem}" for problem in report.problems]
    hint = "" if list_unlisted or not report.unlisted else " (list them with --list-unlisted; gc removes them)"
    lines.append(f"complete versions not in the catalog: {len(report.unlisted)}{hint}")
    lines += [f"  {path}" for path in report.unlisted] if list_unlisted else []
    lines.append(f"staging leftovers: {len(report.leftovers)}")
    lines += [f"  {path}" for path in report.leftovers]
    lines.append("size by kind:")
    lines += [f"  {kind:45s} {size / 1e6:10.1f} MB" for kind, size in report.sizes.items()]
    clean = not (report.problems or report.unlisted or report.leftovers)
    lines.append("clean" if clean else f"not clean: {len(report.problems)} problems")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soil-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize every asset for one field-sample drop and publish Parquet")
    run.add_argument("--partition", help="monthly drop YYYY-MM (default: the embedded drop, 2012-10)")
    run.add_argument("--landing-dir", help="folder holding field_samples/YYYY-MM/ (default: embedded data)")
    run.add_argument("--config", help="YAML setting the inputs, declarations, partition and output root (README)")
    run.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="set one input (e.g. soc_stock_2010_raster=my.tif, field_declaration=decl.yaml); repeatable, "
        "overrides --config",
    )
    run.add_argument(
        "--keep-runs",
        type=int,
        default=DEFAULT_KEEP_RUNS,
        help="after each run, keep this many runs' Data Docs and "
        f"intermediates and collect failed runs' leftovers (default {DEFAULT_KEEP_RUNS})",
    )
    check_drop = commands.add_parser(
        "check-drop", help="validate a field-sample drop folder and print what would be quarantined or refused"
    )
    check_drop.add_argument("drop_dir", metavar="DIR", help="the drop folder, e.g. landing/field_samples/2024-01")
    check_drop.add_argument("--declaration", help="declaration YAML (default: DIR/declaration.yaml, else AfSP)")
    drops = commands.add_parser("drops", help="list the landing folders: monthly drops and folders that are not")
    drops.add_argument("--landing-dir", help="folder holding field_samples/YYYY-MM/ (default: embedded data)")
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
    check = commands.add_parser("doctor", help="check listed versions' sha256, unlisted versions, leftovers, sizes")
    check.add_argument("--list-unlisted", action="store_true", help="list complete versions the catalog omits")
    clean = commands.add_parser("gc", help="remove unlisted versions, leftovers and old runs' Data Docs/intermediates")
    clean.add_argument("--keep-runs", type=int, default=DEFAULT_KEEP_RUNS, help="committed runs to keep")
    clean.add_argument(
        "--grace-hours",
        type=float,
        default=DEFAULT_GRACE_HOURS,
        help="age after which a run that never "
        f"committed nor failed counts as killed (default {DEFAULT_GRACE_HOURS:g})",
    )
    docs = commands.add_parser("docs", help="serve the output root (Data Docs, scenario maps) on 127.0.0.1 for the UI")
    docs.add_argument("--port", type=int, default=8765, help="the port the UI's links and maps point at (8765)")
    for command in (run, versions, pull, show, check, clean, docs):
        default = None if command is run else DEFAULT_OUTPUT_ROOT  # run: --config may set it
        command.add_argument("--output-root", default=default, help="local path or fsspec URL")
    return parser


def _root_cause(error) -> str:
    """The innermost cause of a Dagster error (e.g. the OSError under DagsterExecutionHandleOutputError)."""
    while error.cause is not None:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[-1] if lines else error.cls_name


def _step_failures(result) -> list[tuple[str, str]]:
    """(step, cause) per failed step: the user-facing failure description, else the innermost error."""
    failures = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            failures.append((event.step_key, data.user_failure_data.description.strip()))
        else:
            failures.append((event.step_key, _root_cause(data.error)))
    return failures


def _one_line(cause: str) -> str:
    """A cause on one line: a heading ending in ":" is joined with the line that follows it."""
    lines = [line.strip() for line in cause.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else "failed"


def _input_names() -> set[str]:
    from soil_pipeline.resources import InputDatasets

    return set(InputDatasets.model_fields)


def _apply_config(args) -> None:
    """Fold --config and --input into the run's arguments: command-line options win over the config file."""
    from soil_pipeline.resources import RasterEngine
    from soil_pipeline.run_config import configured, load_run_config, parse_inputs

    names = _input_names()
    from soil_pipeline.refresh import RefreshSettings  # the file's sensor section is the UI's, accepted here

    fields = (names, set(RasterEngine.model_fields), set(RefreshSettings.model_fields))
    config = load_run_config(args.config, *fields) if args.config else {"inputs": {}}
    args.inputs = {**config["inputs"], **parse_inputs(args.input, names)}
    args.raster_engine = config.get("raster_engine") or {}
    configured(RasterEngine, args.raster_engine, args.config, "raster_engine")  # a wrong value fails here, named
    args.partition = args.partition or config.get("partition")
    args.output_root = args.output_root or config.get("output_root") or DEFAULT_OUTPUT_ROOT


def serve_docs(output_root: OutputRoot, port: int) -> int:
    """Serve a local output root read-only over HTTP until interrupted: the Data Docs links and scenario map images
    in the Dagster UI point here."""
    import contextlib
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    root = Path(output_root.url)
    if not output_root.is_local or not root.is_dir():
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
    if (problem := partition_problem(args.partition)) is not None:
        print(problem, file=sys.stderr)
        return 2
    args.output_root.check()
    landing_dir = args.landing_dir or args.inputs.get("landing_dir")
    for warning in landing_warnings(landing_dir):
        print(warning, file=sys.stderr)
    results, committed = run_pipeline(
        args.output_root, args.partition, landing_dir, args.keep_runs, args.inputs, args.raster_engine
    )
    if results[-1].success:
        print(summary(args.output_root, committed))
        return 0
    failed_steps = [event for event in results[-1].all_events if event.is_step_failure]
    ingest = [text for event in failed_steps if (text := ingest_failure_text(event)) is not None]
    failures = _step_failures(results[-1]) or [("run", results[-1].dagster_run.status.value)]
    for step, cause in failures:
        if step not in INGEST_STEPS:
            print(f"FAILED {step}: {cause}", file=sys.stderr)
    print("Nothing from the failed run was listed; every asset keeps its previous latest version.", file=sys.stderr)
    if ingest:
        print(ingest[-1], file=sys.stderr)
    else:
        step, cause = failures[0]
        print(f"soil-pipeline run: {step} failed: {_one_line(cause)}", file=sys.stderr)
    return 1


INGEST_STEPS = {
    "field_drop": "field_sites, field_horizons and their rejects",
    "topsoil_soc_stocks": "topsoil_soc_stocks",
}
# (words in the message, what to do): the first match names the remedy of an ingest error.
REMEDIES = (
    ("not UTF-8", "save the file as UTF-8 text"),
    ("delimiter", "write the file with commas as the delimiter"),
    ("symlink", "copy the file into the drop folder instead of linking to it"),
    ("column name", "rename or remove one of the two columns in the header"),
    (
        "missing required column",
        "add the column, or declare its header in the drop's declaration.yaml (README: Bring your own data)",
    ),
    ("declaration", "correct the declaration file (README: Bring your own data)"),
    ("median", "convert the column to the unit the contract states"),
    ("max_quarantined_share", "the drop is wrong as a whole (truncated, shifted columns?): compare it with its source"),
    ("min_sites_with_stock", "no site has a 0-30 cm stock: check depths and SOC/BD columns against the source"),
    ("expected exactly one", "put exactly one *sites and one *horizons table (.csv or .parquet) in the drop folder"),
    ("no field-sample drop folder", "create <landing>/field_samples/YYYY-MM/ or pick a partition that has one"),
    ("malformed CSV", "re-export the complete file (every record with every column, quotes closed)"),
    ("empty file", "re-export the file with its header and rows"),
    ("unreadable", "re-export the file; it cannot be parsed"),
)


def _user_error(error):
    """The exception the asset raised, below Dagster's wrappers (not what that exception was raised from)."""
    while error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error


def ingest_failure_text(event) -> str | None:
    """The last lines for a failed ingest step: asset, file, rule and remedy, without Dagster's wrapper text."""
    if event.step_key not in INGEST_STEPS:
        return None
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        text = data.user_failure_data.description
    else:
        cause = _user_error(data.error)
        text = cause.message.strip().removeprefix(f"{cause.cls_name}: ")
        text = re.sub(r"^[\w.]+Error: ", "", text)
    first, _, rest = text.partition("\n")
    file, sep, rule = first.partition(": ")
    if not sep or "/" not in file:
        file, rule = "(see rule)", first
    details = [line.strip() for line in rest.splitlines() if line.strip()][:5]
    if rule.endswith(" broken:") and details:  # a contract's dataset rules: name the first broken one
        rule, details = f"{rule} {details[0]}", details[1:]
    remedy = next((fix for words, fix in REMEDIES if words in text), "correct the input and rerun")
    return "\n".join(
        [
            f"FAILED {event.step_key} (publishes {INGEST_STEPS[event.step_key]}); nothing of this step was published",
            f"  file:   {file}",
            f"  rule:   {rule}",
            *(f"          {line}" for line in details),
            f"  remedy: {remedy}",
        ]
    )


def partition_problem(partition: str | None) -> str | None:
    """One line when `--partition` is not a monthly drop of this pipeline, else None."""
    from soil_pipeline.partitions import FIELD_DROP_START, monthly_drops
    from soil_pipeline.readers import DROP_FOLDER_FORM

    if partition is None or partition in monthly_drops.get_partition_keys():
        return None
    return (
        f"soil-pipeline run: --partition {partition!r} is not a monthly drop: use {DROP_FOLDER_FORM}, "
        f"from {FIELD_DROP_START} to the current month"
    )


def landing_warnings(landing_dir: str | None) -> list[str]:
    from soil_pipeline.readers import DROP_FOLDER_FORM, drop_folders
    from soil_pipeline.resources import InputDatasets

    landing = landing_dir or InputDatasets().landing_dir
    _, invalid = drop_folders(landing)
    return [
        f"warning: {landing}/field_samples/{name}/ is not a partition folder ({DROP_FOLDER_FORM}); it is ignored"
        for name in invalid
    ]


def drops_text(landing_dir: str | None) -> str:
    """Every folder of the landing area: a valid monthly drop with its table files, or why it is not one."""
    from soil_pipeline.readers import DROP_FOLDER_FORM, TABLE_SUFFIXES, drop_folders
    from soil_pipeline.resources import InputDatasets

    landing = Path(landing_dir or InputDatasets().landing_dir)
    valid, invalid = drop_folders(landing)
    lines = [f"Field-sample drops under {landing / 'field_samples'}:"]
    for name in valid:
        files = sorted(p.name for p in (landing / "field_samples" / name).iterdir() if p.suffix in TABLE_SUFFIXES)
        lines.append(f"  {name}  {', '.join(files) or '(no table files)'}")
    lines += [f"  {name}  warning: not a partition folder, use {DROP_FOLDER_FORM}; ignored" for name in invalid]
    return "\n".join(lines if valid or invalid else [*lines, "  (none)"])


def _access(args) -> int:
    store = VersionedParquetStore(args.output_root)
    if args.command == "versions":
        print(versions_table(store, args.asset))
    elif args.command == "pull":
        version = store.resolve(args.asset, args.version, args.partition)
        print(store.pull(args.asset, version, args.to))
    elif args.command == "doctor":
        report = doctor(store)
        print(doctor_text(report, args.list_unlisted))
        return 1 if report.problems else 0
    elif args.command == "gc":
        removed, freed = gc(store, keep_runs=args.keep_runs, grace_hours=args.grace_hours)
        print("\n".join([*(f"removed {path}" for path in removed), f"{len(removed)} removed, {freed / 1e6:.1f} MB"]))
    else:
        print(show_text(store, args.asset, args.version, args.partition, args.rows))
    return 0


def error_line(error: BaseException) -> str:
    """One line naming the cause: the OS error by name with its file, or the message of a rule/lookup error."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{type(error).__name__}: {error.strerror}{where}"
    message = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
    return message if isinstance(error, KeyError | ValueError) else f"{type(error).__name__}: {message}"


def check_drop_text(drop_dir: str, declaration: str | None) -> tuple[str, bool]:
    """The check-drop report and whether the drop would be published; land and regions from the default inputs."""
    import geopandas as gpd

    from soil_pipeline.contracts.model import load_raster_contract
    from soil_pipeline.contracts.raster import check_raster
    from soil_pipeline.contracts.validate import LandMask, Regions
    from soil_pipeline.drop_check import check_drop, report
    from soil_pipeline.engine.points import OtherThan
    from soil_pipeline.resources import InputDatasets

    inputs = InputDatasets()
    contract = load_raster_contract("soc_stock_2010_raster")
    # Checked in one streaming pass; the land lookups read only the blocks around the sites.
    checked = check_raster(inputs.soc_stock_2010_raster, contract)
    land = LandMask(checked.source, "WHRC SOC stock 2010", OtherThan(contract.nodata))
    countries = gpd.read_file(inputs.countries_vector)
    regions = Regions(countries.geometry.to_numpy(), countries["ADM0_A3"].to_numpy(dtype=object))
    check = check_drop(Path(drop_dir), declaration, land=land, regions=regions)
    return report(check), check.publishable


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "drops":
            print(drops_text(args.landing_dir))
            return 0
        if args.command == "check-drop":
            text, publishable = check_drop_text(args.drop_dir, args.declaration)
            print(text)
            return 0 if publishable else 1
        if args.command == "run":
            _apply_config(args)
        args.output_root = OutputRoot.parse(args.output_root)
        if args.command == "docs":
            return serve_docs(args.output_root, args.port)
        return _run(args) if args.command == "run" else _access(args)
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped reading: not an error. Keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        print(f"soil-pipeline {args.command}: {error_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
