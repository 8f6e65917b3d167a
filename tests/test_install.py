"""A non-editable install (`pip install .`) finds its configs and sweeps wherever it is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_DIR

pytestmark = pytest.mark.integration


def test_wheel_carries_conf_and_sweeps_and_runs_from_elsewhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO_DIR),
        ],
        check=True,
    )
    wheel = next(wheels.glob("swiftops-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
    )
    assert (target / "swiftops" / "conf" / "config.yaml").is_file()
    assert (target / "swiftops" / "sweeps" / "tutorial.yaml").is_file()
    # read by path, not imported: the report's template and the supervisor that swift runs under
    assert (target / "swiftops" / "report" / "templates" / "report.html.j2").is_file()
    assert (target / "swiftops" / "supervisor.py").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))  # the installed copy shadows the checkout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swiftops",
            "+sweep=tutorial",
            "dry_run=true",
            f"hydra.sweep.dir={elsewhere / 's'}",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" sft ") == 5
    located = subprocess.run(
        [sys.executable, "-c", "import swiftops.paths as p; print(p.conf_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(located) == target / "swiftops" / "conf"
