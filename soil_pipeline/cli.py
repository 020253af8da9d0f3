"""`soil-pipeline` command line: run the main job and every restoration scenario in-process (`runner.run_pipeline`)
and summarise what they published or why a run failed; list, pull and show published versions; check (`doctor`)
and clean (`gc`) an output root; check a field-sample drop (`check-drop`).

Dagster is imported only by `run`, so the read-only commands start fast. The read-only commands (versions, show,
pull, doctor) never write under the output root. Every error ends with one line naming its cause.
"""

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from soil_pipeline.embedded import COUNTRIES_VECTOR, LANDING_DIR
from soil_pipeline.publishing.maintenance import DEFAULT_GRACE_HOURS, DEFAULT_KEEP_RUNS, doctor, gc
from soil_pipeline.publishing.root import DEFAULT_OUTPUT_ROOT, OutputRoot, file_size_limit
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.science.aggregation import WORLD, global_row

TOP_COUNTRIES = 10


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


def _scope(world: pd.Series) -> str:
    """ "Global" for the World's row, "Region" for the all-region row of a regional run (named by its extent)."""
    return "Global" if world["region_name"] == WORLD else "Region"


def _stock_lines(world: pd.Series) -> list[str]:
    scope = _scope(world)
    regional = [] if scope == "Global" else [f"REGIONAL extent: {world['region_name']}"]
    return [
        *regional,
        "{} SOC stock 0-30 cm, 2010:         {:8.1f} Pg C".format(scope, world["soc_stock_2010_pg_c"]),
        "{} SOC stock 0-30 cm, no land use:  {:8.1f} Pg C".format(scope, world["soc_stock_no_land_use_pg_c"]),
        "{} cropland area (HYDE 3.2, 2016):  {:8.1f} Mha".format(scope, world["cropland_area_mha"]),
        "{} 4 per 1000 target:               {:8.1f} Tg C/yr".format(scope, world["target_4p1000_tg_c_per_yr"]),
        "Field sites with a 0-30 cm stock:       {:8d} (median {:.1f} t C/ha)".format(
            int(world["n_field_sites"]), world["median_field_topsoil_soc_t_c_per_ha"]
        ),
    ]


def _interval(row: pd.Series, name: str, fmt: str) -> str:
    return f"{row[name]:{fmt}} ({row[name + '_p05']:{fmt}}-{row[name + '_p95']:{fmt}})"


def _potential_lines(table: pd.DataFrame) -> list[str]:
    world = global_row(table)
    lines = ["", f"Sequestration potential, {_scope(world).lower()} (5th-95th percentile):"]
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
    latest = sorted(store.latest_by_partition("restoration_scenario").items())
    tables = {key: store.read("restoration_scenario", version) for key, version in latest}
    regional = any(_scope(global_row(table)) == "Region" for table in tables.values())
    lines = [
        "",
        f"Restoration scenarios, {'regional' if regional else 'global'} soil (0-30 cm) carbon gain at the horizon "
        "(5th-95th percentile); central =",
        "IPCC Tier 1 set-aside, low = Post & Kwon 0.33 t C/ha/yr, eventual = whole attributed debt repaid:",
    ]
    for key, table in tables.items():
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
    run.add_argument(
        "--config", help="YAML setting the inputs, declarations, partition and output root (docs/deployment.md)"
    )
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
    if not output_root.is_local:
        print(f"soil-pipeline docs: {output_root} is not a local folder", file=sys.stderr)
        return 1
    root.mkdir(parents=True, exist_ok=True)  # before the first run, an empty site: the runs fill it
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
    if (missing := missing_drop(landing_dir, args.partition)) is not None:
        print(missing, file=sys.stderr)
        return 2
    from soil_pipeline.contracts import gx_worker
    from soil_pipeline.engine import memory

    memory.collect_less_often()  # from the imports on (a run's resources set it too, once imported)
    gx_worker.warm_up()  # GX imports in its worker process while Dagster and the definitions import here
    from soil_pipeline.runner import run_pipeline

    inputs = {**args.inputs, **({"landing_dir": landing_dir} if landing_dir else {})}
    outcomes = run_pipeline(args.output_root, args.partition, inputs, args.raster_engine, args.keep_runs)
    if outcomes[-1].success:
        print(summary(args.output_root, [row for outcome in outcomes for row in outcome.committed]))
        return 0
    print(failure_text(outcomes[-1]), file=sys.stderr)
    return 1


# What each ingest step publishes, named when it fails.
PUBLISHES = {
    "field_drop": "field_sites, field_horizons, their rejects and topsoil_soc_stocks",
}


def failure_text(outcome) -> str:
    """What `soil-pipeline run` prints for a failed run (a `runner.RunOutcome`): one line per step that failed for
    another reason than an input, that nothing was listed, then file, rule and remedy of each step that failed on an
    input, else the first cause on one line."""
    failures = outcome.failures()
    lines = [
        f"FAILED {failure.step}: {failure.cause}{_size_limit_note(failure.cause)}"
        for failure in failures
        if failure.remedy is None
    ]
    lines.append("Nothing from the failed run was listed; every asset keeps its previous latest version.")
    on_inputs = [failure for failure in failures if failure.remedy is not None]
    if on_inputs:
        return "\n".join(lines + [line for failure in on_inputs for line in input_failure_lines(failure)])
    step, cause = (
        (failures[0].step, failures[0].cause) if failures else ("run", outcome.result.dagster_run.status.value)
    )
    return "\n".join([*lines, f"soil-pipeline run: {step} failed: {_one_line(cause)}{_size_limit_note(cause)}"])


def input_failure_lines(failure) -> list[str]:
    """A step that failed on an input (a `runner.StepFailure` with its typed fields): file, rule, up to five
    details (further rules, example rows) and remedy."""
    publishes = f" (publishes {PUBLISHES[failure.step]})" if failure.step in PUBLISHES else ""
    rule, *more = failure.rule.splitlines() or [""]  # a parser's message may quote lines of the file
    details = [line.strip() for line in (*more, *failure.details) if line.strip()][:5]
    return [
        f"FAILED {failure.step}{publishes}; nothing of this step was published",
        f"  file:   {failure.file or '(see rule)'}",
        f"  rule:   {rule}",
        *(f"          {line}" for line in details),
        f"  remedy: {failure.remedy}",
    ]


def partition_problem(partition: str | None) -> str | None:
    """One line when `--partition` cannot name a drop (a `field_samples/YYYY-MM/` folder), else None."""
    from soil_pipeline.readers import DROP_FOLDER_FORM, DROP_FOLDER_PATTERN

    if partition is None or DROP_FOLDER_PATTERN.fullmatch(partition):
        return None
    return (
        f"soil-pipeline run: --partition {partition!r} is not a drop: use {DROP_FOLDER_FORM}, the name of its folder "
        "under <landing>/field_samples/"
    )


def missing_drop(landing_dir: str | None, partition: str | None) -> str | None:
    """One line when `--partition` names a drop whose folder is not in the landing folder, else None."""
    from soil_pipeline.errors import Remedy

    if partition is None:
        return None
    folder = Path(landing_dir or LANDING_DIR) / "field_samples" / partition
    if folder.is_dir():
        return None
    return f"soil-pipeline run: no field-sample drop folder {folder} for --partition {partition}: {Remedy.DROP_FOLDER}"


def landing_warnings(landing_dir: str | None) -> list[str]:
    from soil_pipeline.readers import DROP_FOLDER_FORM, drop_folders

    landing = landing_dir or str(LANDING_DIR)
    _, invalid = drop_folders(landing)
    return [
        f"warning: {landing}/field_samples/{name}/ is not a partition folder ({DROP_FOLDER_FORM}); it is ignored"
        for name in invalid
    ]


def drops_text(landing_dir: str | None) -> str:
    """Every folder of the landing area: a valid monthly drop with its table files, or why it is not one."""
    from soil_pipeline.readers import DROP_FOLDER_FORM, drop_folders, is_table_name

    landing = Path(landing_dir or LANDING_DIR)
    valid, invalid = drop_folders(landing)
    lines = [f"Field-sample drops under {landing / 'field_samples'}:"]
    for name in valid:
        files = sorted(p.name for p in (landing / "field_samples" / name).iterdir() if is_table_name(p.name))
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


def _size_limit_note(cause: str) -> str:
    """What a "File too large" failure hit: the process's file size limit, when there is one (and not said yet)."""
    limit = file_size_limit()
    if "File too large" not in cause or limit is None or "ulimit" in cause:
        return ""
    return f" (the process's file size limit, ulimit -f, is {limit} bytes)"


def error_line(error: BaseException) -> str:
    """One line naming the cause: the OS error by name with its file, or the message of a rule/lookup error."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{type(error).__name__}: {error.strerror}{where}{_size_limit_note(error.strerror)}"
    message = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
    return message if isinstance(error, KeyError | ValueError) else f"{type(error).__name__}: {message}"


def check_drop_text(drop_dir: str, declaration: str | None) -> tuple[str, bool]:
    """The check-drop report and whether the drop would be published; land and regions from the default inputs."""
    from soil_pipeline.drop_check import check_drop, raw_references, report
    from soil_pipeline.raster_inputs import SOC_STOCK_2010

    land, regions = raw_references(SOC_STOCK_2010.default, str(COUNTRIES_VECTOR))
    check = check_drop(Path(drop_dir), declaration, land=land, regions=regions)
    return report(check), check.publishable


def _quiet_library_warnings() -> None:
    """Notices for developers, not for every run: the observable source assets are a Dagster beta API; rasterio's
    rasterize warns about its own scratch dataset (given the window's transform later), not an input."""
    warnings.filterwarnings("ignore", message=r".* is currently in beta")
    warnings.filterwarnings("ignore", message="Dataset has no geotransform", module="rasterio.features")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_library_warnings()
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
        line = error_line(error)
        if args.command == "check-drop":  # the drop's file names are quoted: one line, whatever they hold
            from soil_pipeline.drop_check import printable

            line = printable(line)
        print(f"soil-pipeline {args.command}: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
