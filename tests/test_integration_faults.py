"""Faults that need the REAL swift (tiny model, CPU): a dataset path with spaces and non-ASCII
characters reaches swift as one argument, trains and is diagnosed."""

from __future__ import annotations

import csv
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


def run_swiftops(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    job = tmp_path / "job"
    outputs = [f"hydra.run.dir={job}", f"report.dir={tmp_path / 'reports'}"]
    done = subprocess.run(
        [sys.executable, "-m", "swiftops", "epochs=1", "runtime=cpu", *overrides, *outputs],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, job


def assert_error_line_everywhere(
    done: subprocess.CompletedProcess, job: Path, start: str, frame: str
) -> None:
    """swift's error as its exception and swift's innermost frame: in the record, as the console's
    last line, in the table's why and in the report; never a line of source."""
    assert done.returncode == 1, done.stdout + done.stderr
    record = read_record(job)
    assert record.status == "failed" and record.exit_code == 1, record
    assert record.error_line.startswith(start) and record.error_line.endswith(frame), record.error_line
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"swiftops: the run failed: {start}") and frame in last, last
    (row,) = csv.DictReader((job / "summary.csv").open(encoding="utf-8"))
    assert row["error"] == record.error_line
    (report,) = (job.parent / "reports").glob("*.html")
    assert frame in report.read_text(encoding="utf-8")


def test_a_bad_metric_name_shows_swift_s_key_error_and_its_frame(tmp_path):
    """metric_for_best_model=nosuch: transformers raises at the first eval, under swift's trainer."""
    done, job = run_swiftops(tmp_path, "+args.metric_for_best_model=nosuch")
    assert_error_line_everywhere(
        done, job, "KeyError: ", "(in swift/trainers/mixin.py: _maybe_log_save_evaluate)"
    )
    assert "eval_nosuch" in read_record(job).error_line


def test_an_unknown_model_type_shows_swift_s_value_error_and_its_frame(tmp_path):
    done, job = run_swiftops(tmp_path, "model.model_type=nosuchtype")
    assert_error_line_everywhere(
        done,
        job,
        "ValueError: model_type: 'nosuchtype' not in",
        "(in swift/model/model_meta.py: _get_model_info)",
    )


def test_an_empty_dataset_is_refused_before_swift_starts(tmp_path):
    """It reached swift, which died with StopIteration 12-16 s later; now it is bad input."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done, job = run_swiftops(tmp_path, f"data.dataset={empty}")  # unbracketed, too
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"data.dataset: {str(empty)!r} is empty (0 bytes)" in done.stderr, done.stderr
    assert not (job / "swift.log").exists() and not (job / "run.json").exists()
