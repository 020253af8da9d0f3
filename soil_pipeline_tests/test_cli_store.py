"""The store commands of the CLI: read commands never write under the root, and every error is one named line."""

import shutil
import subprocess
import sys

from soil_pipeline_tests.test_access import REPO, cli


def snapshot(root) -> dict:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_read_commands_never_write_under_the_root_and_pull_refuses_a_destination_inside_it(embedded_run, tmp_path):
    _, root = embedded_run
    before = snapshot(root)
    results = [
        cli("versions", "--output-root", str(root), cwd=tmp_path),
        cli("show", "countries", "--output-root", str(root), cwd=tmp_path),
        cli("doctor", "--list-unlisted", "--output-root", str(root), cwd=tmp_path),
        cli("pull", "countries", "--to", str(tmp_path / "out"), "--output-root", str(root), cwd=tmp_path),
    ]
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    inside = cli("pull", "countries", "--to", str(root / "countries"), "--output-root", str(root), cwd=tmp_path)
    at_root = cli("pull", "countries", "--to", ".", "--output-root", str(root), cwd=root)
    assert (inside.returncode, at_root.returncode) == (1, 1)
    assert f"is inside the output root {root}: pull copies versions out of the store" in inside.stderr
    assert snapshot(root) == before


def test_versions_of_an_unknown_asset_fails_listing_the_known_ones(embedded_run, tmp_path):
    _, root = embedded_run
    result = cli("versions", "no_such_asset", "--output-root", str(root), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("soil-pipeline versions: no versions of 'no_such_asset' under")
    assert "countries" in result.stderr and "regional_soc_stocks" in result.stderr


def test_show_into_a_closed_pipe_is_not_an_error(embedded_run, tmp_path):
    _, root = embedded_run
    command = f"{sys.executable} -m soil_pipeline.cli show field_sites --rows 5000 --output-root {root} | head -n 1"
    result = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True
    )
    assert result.stdout.startswith("{") and result.stderr == ""


def test_errors_name_the_cause_in_one_line(embedded_run, tmp_path):
    _, root = embedded_run
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    run = cli("run", "--output-root", str(a_file), cwd=tmp_path)
    pull = cli("pull", "countries", "--to", str(a_file / "sub"), "--output-root", str(root), cwd=tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(root, broken, ignore=shutil.ignore_patterns("_*"))
    (broken / "catalog.json").write_text('{"versions": [')
    versions = cli("versions", "--output-root", str(broken), cwd=tmp_path)
    assert [r.returncode for r in (run, pull, versions)] == [1, 1, 1]
    assert run.stderr.splitlines() == [
        f"soil-pipeline run: NotADirectoryError: the output root is a file, not a folder ({a_file})"
    ]
    assert pull.stderr.splitlines()[-1].startswith("soil-pipeline pull: NotADirectoryError: Not a directory (")
    assert versions.stderr.startswith(f"soil-pipeline versions: {broken / 'catalog.json'}: not a valid catalog (JSON:")
    assert all(len(r.stderr.splitlines()) == 1 for r in (run, pull, versions))


def test_run_for_a_drop_without_its_folder_stops_at_once_naming_the_folder(tmp_path, capsys):
    from soil_pipeline.cli import main

    assert (
        main(["run", "--partition", "2001-01", "--landing-dir", str(tmp_path), "--output-root", str(tmp_path / "out")])
        == 2
    )
    error = capsys.readouterr().err
    assert f"no field-sample drop folder {tmp_path}/field_samples/2001-01 for --partition 2001-01" in error
    assert not (tmp_path / "out" / "catalog.json").exists()
