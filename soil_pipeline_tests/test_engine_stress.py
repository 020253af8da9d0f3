"""The raster engine under load never crashes: many grid and zonal passes, two at a time, each on 8 threads with
tiny windows, over every kind of alignment (see engine_stress.py), in a process of its own so that a segmentation
fault fails this test instead of ending the suite."""

import subprocess
import sys


def test_many_passes_on_many_threads_neither_crash_nor_change_a_sum():
    run = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m", "soil_pipeline_tests.engine_stress", "40", "8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-6000:]}"
    assert "80 rounds of a grid and a zonal pass on 8 threads, 5 configurations: same" in run.stdout
