"""Faults that need the REAL swift (tiny model, CPU): a dataset path with spaces and non-ASCII
characters reaches swift as one argument, trains and is diagnosed."""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swiftops.record import read_record

pytestmark = pytest.mark.integration


def test_a_dataset_path_with_spaces_and_non_ascii_trains_and_is_diagnosed(tmp_path):
    from swiftops.tiny import ensure_tiny_assets

    data = tmp_path / "data dir" / "données 训练.jsonl"
    data.parent.mkdir()
    shutil.copyfile(ensure_tiny_assets().demo_train, data)
    job = tmp_path / "job"
    overrides = ["epochs=1", "runtime=cpu", f"data.dataset=['{data}']", f"hydra.run.dir={job}"]
    done = subprocess.run(
        [sys.executable, "-m", "swiftops", *overrides, f"report.dir={tmp_path / 'reports'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = read_record(job)
    assert record.status == "completed" and record.exit_code == 0, record.error
    assert record.argv[record.argv.index("--dataset") + 1] == str(data)  # one argument, as typed
    command = (job / "command.sh").read_text(encoding="utf-8").splitlines()[-1]
    assert str(data) in shlex.split(command)  # the runnable command quotes it
    assert record.verdict in {"failed", "underfit", "overfit", "converged"}
    figures = record.diagnosis["figures"]
    assert figures["steps"] > 0 and math.isfinite(figures["first_train_loss"]), figures
    report = Path(done.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and report.parent == tmp_path / "reports"
