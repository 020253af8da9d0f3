"""A data engineer's first visit, in a real browser (Debian's chromium driven by Playwright): `dagster dev` on
127.0.0.1 with a fresh DAGSTER_HOME and a configuration file (SOIL_PIPELINE_CONFIG) naming a landing folder with
two drops and a month without one between them, "Materialize all" on the asset graph for all partitions (a
backfill over both drops), then an asset's checks, a scenario map, the Data Docs pages and every check's outcome
through the webserver's GraphQL, and one scenario materialized alone from its page. Screenshots go to
`test-artifacts/browser/` (gitignored)."""

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from soil_pipeline.embedded import DATA_DIR
from soil_pipeline.partitions import EMBEDDED_DROP_PARTITION
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline_tests.servers import ASSETS_QUERY, free_port, graphql, start, stop, wait_for_assets, wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_SECONDS = 180
RUNS_SECONDS = 900
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
OBSERVED_QUERY = (
    '{ assetNodeOrError(assetKey: {path: ["soc_stock_2010_raster"]}) { ... on AssetNode { '
    "assetObservations(limit: 1) { timestamp } } } }"
)
STALE_QUERY = "{ assetNodes { assetKey { path } isPartitioned isMaterializable staleStatus } }"
PARTITIONS_QUERY = '{ assetNodeOrError(assetKey: {path: ["field_sites"]}) { ... on AssetNode { partitionKeys } } }'
BACKFILLS_QUERY = "{ partitionBackfillsOrError(limit: 5) { ... on PartitionBackfills { results { id status } } } }"
RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status } } } }"
RUN_SELECTIONS_QUERY = "{ runsOrError { ... on Runs { results { runId status assetSelection { path } } } } }"
CHECKS_QUERY = (
    "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name blocking "
    "executionForLatestMaterialization { status evaluation { severity metadataEntries { label "
    "... on UrlMetadataEntry { url } } } } } } } } }"
)
LATEST_QUERY = (
    "query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } "
    "assetMaterializations(limit: 1) { partition timestamp } } }"
)
# The landing folder of the test: the embedded drop as 2012-10 and again as 2012-12; no drop for 2012-11.
DROPS = (EMBEDDED_DROP_PARTITION, "2012-12")
WORKSPACE = "load_from:\n  - python_module:\n      module_name: soil_pipeline.definitions\n"
ERROR_TEXTS = ("GraphQL error", "Unexpected error", "was not launched", "Unable to")

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """(port, output root) of `dagster dev` started in a fresh folder (outputs land in ./soil_pipeline_output)."""
    work = tmp_path_factory.mktemp("ui")
    (work / "home").mkdir()
    (work / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: soil_pipeline.definitions\n"
    )
    output_root = work / "soil_pipeline_output"
    output_root.mkdir()
    for key in DROPS:
        shutil.copytree(
            DATA_DIR / "landing" / "field_samples" / EMBEDDED_DROP_PARTITION, work / "landing" / "field_samples" / key
        )
    port, docs_port, bin_dir = free_port(), free_port(), Path(sys.executable).parent
    # the Data Docs are served on a port of the test's choosing, named in the configuration (`docs_url`)
    (work / "soil_pipeline.yaml").write_text(
        f"output_root: {output_root}\ndocs_url: http://127.0.0.1:{docs_port}\n"
        f"inputs:\n  landing_dir: {work / 'landing'}\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(work / "home"), "SOIL_PIPELINE_CONFIG": str(work / "soil_pipeline.yaml")}
    docs_command = [str(bin_dir / "soil-pipeline"), "docs", "--output-root", str(output_root), "--port", str(docs_port)]
    docs = start(docs_command, work, env)
    dev = start(
        [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        work,
        env,
        work / "dagster_dev.log",
    )
    try:
        if not wait_for_assets(port, dev, STARTUP_SECONDS):
            pytest.fail(f"dagster dev did not serve the asset graph:\n{(work / 'dagster_dev.log').read_text()[-3000:]}")
        yield port, output_root, docs_port
    finally:
        stop(dev, docs)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots():
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


def _no_error_toast(page) -> None:
    for text in ERROR_TEXTS:
        assert not page.get_by_text(text).count(), f"the UI shows {text!r}"


def _wait_for_runs(port: int) -> tuple[list, list]:
    """(runs, backfills) once every run and backfill launched has finished."""
    deadline = time.monotonic() + RUNS_SECONDS
    while time.monotonic() < deadline:
        backfills = graphql(port, BACKFILLS_QUERY)["partitionBackfillsOrError"]["results"]
        runs = graphql(port, RUNS_QUERY)["runsOrError"]["results"]
        running = [run for run in runs if run["status"] not in FINISHED]
        if runs and not running and all(backfill["status"] not in ("REQUESTED", "CANCELING") for backfill in backfills):
            return runs, backfills
        time.sleep(1)
    pytest.fail("the runs did not finish")


def _runs_since(port: int, before: set[str]) -> list[dict]:
    """The runs not in `before`, with their status and asset selection."""
    return [run for run in graphql(port, RUN_SELECTIONS_QUERY)["runsOrError"]["results"] if run["runId"] not in before]


def _wait_for_commits(store: VersionedParquetStore, run_ids: set[str]) -> None:
    """Once the output root's catalog lists every run of `run_ids` as committed."""
    wait_until(
        "the commit sensor to commit the runs",
        STARTUP_SECONDS,
        lambda: run_ids <= {run["run_id"] for run in store.document()["runs"]},
        every=0.5,
    )


def _wait_for_backfill(port: int) -> None:
    """Once the backfill launched from the dialog is listed (a launch that failed lists none)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if graphql(port, BACKFILLS_QUERY)["partitionBackfillsOrError"]["results"]:
            return
        time.sleep(0.5)
    pytest.fail("no backfill was launched")


def _wait_for_partitions(port: int) -> list[str]:
    """The drop partitions, once the raw_inputs sensor has registered both drops and observed the raw inputs."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        keys = graphql(port, PARTITIONS_QUERY)["assetNodeOrError"]["partitionKeys"]
        observed = graphql(port, OBSERVED_QUERY)["assetNodeOrError"]["assetObservations"]
        if len(keys) == len(DROPS) and observed:
            return keys
        time.sleep(1)
    pytest.fail("the drop partitions were not registered, or the raw inputs not observed")


@pytest.fixture(scope="module")
def page(ui, browser, screenshots):
    """A browser tab on the UI after "Materialize all" for all drop partitions, with every run finished."""
    port, _, _ = ui
    assert _wait_for_partitions(port) == list(DROPS)
    tab = browser.new_page(viewport={"width": 1600, "height": 1000})
    tab.goto(f"http://127.0.0.1:{port}/asset-groups", wait_until="networkidle")
    skip = tab.get_by_role("button", name="Skip")
    skip.first.wait_for(timeout=30_000)
    tab.screenshot(path=screenshots / "01_community_modal.png")
    skip.first.click()

    tab.get_by_role("button", name="Materialize all").first.click()
    dialog = tab.get_by_role("dialog")
    dialog.get_by_role("button", name="All", exact=True).click()
    dialog.get_by_text(f"{len(DROPS)} partitions", exact=True).wait_for(timeout=10_000)
    tab.screenshot(path=screenshots / "02_materialize_all_partitions.png")
    dialog.get_by_role("button", name="Launch backfill").click()
    _wait_for_backfill(port)
    _no_error_toast(tab)
    tab.screenshot(path=screenshots / "03_launched.png")
    _wait_for_runs(port)
    return tab


def test_a_backfill_over_every_drop_is_green_and_leaves_the_regional_tables_fresh(ui, page, screenshots):
    port, output_root, _ = ui
    runs, backfills = _wait_for_runs(port)
    assert {run["status"] for run in runs} == {"SUCCESS"}, runs
    assert [backfill["status"] for backfill in backfills] == ["COMPLETED_SUCCESS"], backfills
    nodes = [node for node in graphql(port, ASSETS_QUERY)["assetNodes"] if node["isMaterializable"]]
    keys = [{"path": node["assetKey"]["path"]} for node in nodes]
    latest = {
        "/".join(node["assetKey"]["path"]): node["assetMaterializations"]
        for node in graphql(port, LATEST_QUERY, {"keys": keys})["assetNodes"]
    }
    assert not [asset for asset, found in latest.items() if not found], "not materialized"
    # the regional table was made after the last drop's stocks (from both drops), not before or between them
    assert float(latest["regional_soc_stocks"][0]["timestamp"]) > float(latest["topsoil_soc_stocks"][0]["timestamp"])
    store = VersionedParquetStore(str(output_root))
    assert sorted(store.latest_by_partition("topsoil_soc_stocks")) == list(DROPS)
    # right after the first runs nothing is stale: each run recorded the input versions the catalog knows
    stale = [
        "/".join(node["assetKey"]["path"])
        for node in graphql(port, STALE_QUERY)["assetNodes"]
        if node["isMaterializable"] and not node["isPartitioned"] and node["staleStatus"] != "FRESH"
    ]
    assert not stale, f"stale after the first runs: {stale}"
    page.goto(f"http://127.0.0.1:{port}/runs", wait_until="networkidle")
    page.get_by_text("Success").first.wait_for(timeout=30_000)
    page.screenshot(path=screenshots / "04_runs.png")
    _no_error_toast(page)


def test_checks_show_failures_by_rule_and_the_scenario_map_is_shown_by_the_ui_alone(ui, page, screenshots):
    port, _, _ = ui
    page.goto(f"http://127.0.0.1:{port}/assets/field_horizons?view=checks", wait_until="networkidle")
    page.get_by_text("contract").first.wait_for(timeout=30_000)
    page.get_by_text("contract").first.click()
    page.screenshot(path=screenshots / "05_field_horizons_checks.png")
    row = page.get_by_role("row").filter(has_text="failures_by_rule")
    row.get_by_text("Show Markdown").click()
    page.get_by_role("cell", name="depth_order").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1_000)  # let the dialog finish fading in
    page.screenshot(path=screenshots / "06_contract_failures_by_rule.png")
    page.keyboard.press("Escape")

    page.goto(f"http://127.0.0.1:{port}/assets/restoration_scenario/global_priority_15pct", wait_until="networkidle")
    page.get_by_role("row").filter(has_text="restored_cells_map").get_by_text("Show Markdown").click()
    image = page.get_by_role("dialog").locator("img").first
    image.wait_for(timeout=30_000)
    assert image.get_attribute("src").startswith("data:image/png;base64,")  # inside the metadata: no other server
    page.wait_for_function("img => img.complete && img.naturalWidth >= 400", arg=image.element_handle(), timeout=30_000)
    page.wait_for_timeout(1_000)
    page.screenshot(path=screenshots / "07_scenario_map.png")
    page.keyboard.press("Escape")
    _no_error_toast(page)


def test_graphql_shows_every_contract_check_with_its_outcome_and_metadata(ui, page):
    port, _, docs_port = ui
    outcomes, urls = {}, []
    for node in graphql(port, CHECKS_QUERY)["assetNodes"]:
        for check in node["assetChecksOrError"].get("checks", []):
            execution = check["executionForLatestMaterialization"]
            labels = {entry["label"] for entry in execution["evaluation"]["metadataEntries"]}
            urls += [entry["url"] for entry in execution["evaluation"]["metadataEntries"] if entry.get("url")]
            key = ("/".join(node["assetKey"]["path"]), check["name"])
            outcomes[key] = (execution["status"], execution["evaluation"]["severity"], check["blocking"], labels)
    assert outcomes[("field_horizons", "contract")][:3] == ("FAILED", "WARN", False)
    assert {"rows_checked", "failures_by_rule", "failing_rows_sample"} <= outcomes[("field_horizons", "contract")][3]
    assert outcomes[("field_sites", "data_quality_gx")][0] == "SUCCEEDED"
    assert {"data_docs", "data_docs_url"} <= outcomes[("field_horizons", "data_quality_gx")][3]
    assert urls and all(url.startswith(f"http://127.0.0.1:{docs_port}/_data_docs/") for url in urls)
    for asset in ("topsoil_soc_stocks", "regional_soc_stocks", "countries", "soc_stock_grid", "field_horizons_rejects"):
        assert outcomes[(asset, "contract")][:3] == ("SUCCEEDED", "ERROR", True)


def test_data_docs_pages_show_their_tables_with_no_console_error(ui, page, browser, screenshots):
    """The Data Docs of the run work offline: the validation results table is populated, status icons load and
    no page logs an error or asks for a file that is not there."""
    _, output_root, docs_port = ui
    site = next((output_root / "_data_docs").glob("*/field_horizons_*"))
    validations = sorted(site.glob("validations/**/*.html"))
    pages = [site / "index.html", *validations, *site.glob("expectations/*.html")]
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    problems = []
    tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    icons = "[...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded')"
    for number, html in enumerate(pages):
        url = f"http://127.0.0.1:{docs_port}/{html.relative_to(output_root).as_posix()}"
        tab.goto(url, wait_until="networkidle")
        rows = tab.locator("table tbody tr")
        rows.first.wait_for(timeout=30_000)
        assert rows.count() >= 1, f"{url}: empty table"
        if html in validations:  # a status icon per expectation
            assert tab.evaluate(icons), f"{url}: the status icons' font did not load"
        tab.screenshot(path=screenshots / f"08_data_docs_{number}.png")
    assert not problems, problems
    tab.close()


def test_one_scenario_materialized_from_its_page_runs_alone_and_finds_its_version_published(ui, page, screenshots):
    # The four scenarios are one multi-asset that can be subset: "Materialize" on one scenario's page launches a
    # run of that scenario alone, which succeeds and finds the version the backfill published (same inputs, same
    # bytes), while the other scenarios keep their materializations.
    port, output_root, _ = ui
    scenario, others = "global_priority_30pct", ["global_priority_15pct", "within_country_15pct"]
    keys = [{"path": ["restoration_scenario", name]} for name in (scenario, *others)]

    def latest() -> dict[str, str]:
        nodes = graphql(port, LATEST_QUERY, {"keys": keys})["assetNodes"]
        return {node["assetKey"]["path"][1]: node["assetMaterializations"][0]["timestamp"] for node in nodes}

    store = VersionedParquetStore(str(output_root))
    before = {run["runId"] for run in graphql(port, RUNS_QUERY)["runsOrError"]["results"]}
    _wait_for_commits(store, before)  # the commit sensor lists a UI run's outputs after the run
    published, materialized = store.latest_by_partition("restoration_scenario"), latest()
    page.goto(f"http://127.0.0.1:{port}/assets/restoration_scenario/{scenario}", wait_until="networkidle")
    page.get_by_text("Latest materialization").first.wait_for(timeout=30_000)
    page.get_by_role("button").filter(has_text="Materialize").first.click()  # its name has its icon's too
    wait_until("a run launched from the page", STARTUP_SECONDS, lambda: _runs_since(port, before), every=0.5)
    _no_error_toast(page)
    _wait_for_runs(port)
    new = _runs_since(port, before)
    assert len(new) == 1 and new[0]["status"] == "SUCCESS", new
    run = new[0]
    assert run["assetSelection"] == [{"path": ["restoration_scenario", scenario]}]
    after = latest()
    assert float(after[scenario]) > float(materialized[scenario])
    assert {name: after[name] for name in others} == {name: materialized[name] for name in others}
    _wait_for_commits(store, {run["runId"]})
    assert store.latest_by_partition("restoration_scenario") == published
    assert len(published) == 4
    page.goto(f"http://127.0.0.1:{port}/runs/{run['runId']}", wait_until="networkidle")
    page.get_by_text("Success").first.wait_for(timeout=30_000)
    page.screenshot(path=screenshots / "09_one_scenario_run.png")
