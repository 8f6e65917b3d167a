"""Stop signals with the REAL `swift sft` on the built-in tiny model (CPU): each stop comes a few
seconds into training; afterwards no swift process of the job is left (its leader, the second
Python it starts, the supervisor) and run.json says interrupted, naming the signal."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import commands_with, start_interruptible

from swiftops.record import find_records, read_record

pytestmark = pytest.mark.integration

SECONDS_INTO_TRAINING = 2.0


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return start_interruptible(
        [sys.executable, "-m", "swiftops", *args],
        cwd=cwd,
    )


def wait_until_training(proc: subprocess.Popen, job: Path) -> None:
    """Until swift logged its first step, then SECONDS_INTO_TRAINING more."""
    deadline = time.monotonic() + 240
    while not any(p.stat().st_size for p in job.glob("output/v*/logging.jsonl")):
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        assert time.monotonic() < deadline, "swift never logged a step"
        time.sleep(0.25)
    time.sleep(SECONDS_INTO_TRAINING)
    assert commands_with(str(job / "output")), "swift is not running"


def assert_nothing_left(job: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while commands_with(str(job / "output")) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert commands_with(str(job / "output")) == []


CAUSES = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_stops_real_swift_and_records_it(tmp_path, sig):
    job = tmp_path / "job"
    proc = start(["epochs=20", f"hydra.run.dir={job}", "report.enabled=false"], tmp_path)
    wait_until_training(proc, job)
    if sig == signal.SIGHUP:
        proc.stdout.close()  # the terminal is gone: every write to it would fail
    t0 = time.monotonic()
    proc.send_signal(sig)
    returncode = proc.wait(timeout=60)
    stop_s = time.monotonic() - t0
    out = "" if sig == signal.SIGHUP else proc.stdout.read().decode(errors="replace")
    assert_nothing_left(job)
    record = read_record(job)
    assert record.status == "interrupted", out
    assert record.error.startswith(f"interrupted by {CAUSES[sig.name]}"), record.error
    assert record.run_dir and Path(record.run_dir).is_dir()
    assert returncode == 128 + sig, out
    assert stop_s < 20, stop_s  # swift ends on the first step (SIGINT to its group)


def test_a_second_ctrl_c_during_the_grace_still_records_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = start(
        ["-m", "epochs=20,1", f"hydra.sweep.dir={sweep}", f"report.dir={tmp_path / 'reports'}"], tmp_path
    )
    wait_until_training(proc, sweep / "0")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0].decode(errors="replace")
    assert_nothing_left(sweep / "0")
    records = [read_record(p) for p in find_records(sweep)]
    assert [r.status for r in records] == ["interrupted", "interrupted"], out
    assert records[0].error.startswith("interrupted by Ctrl-C") and records[0].run_dir
    assert records[1].error == "not started: the sweep was interrupted (SIGINT)"
    assert not (sweep / "1" / "output").exists()
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["status"] for row in rows] == ["interrupted", "interrupted"]
    assert out.strip().splitlines()[-1].startswith("report: ") and list(
        (tmp_path / "reports").rglob("*.html")
    )
    assert proc.returncode == 130, out


def test_kill_9_of_the_orchestrator_takes_real_swift_with_it(tmp_path):
    """run.json can't be finished by a killed process (it stays `running`), but swift's leader and
    its worker must not train on as orphans."""
    job = tmp_path / "job"
    proc = start(["epochs=20", f"hydra.run.dir={job}", "report.enabled=false"], tmp_path)
    wait_until_training(proc, job)
    t0 = time.monotonic()
    proc.kill()
    proc.wait(timeout=10)
    assert_nothing_left(job)
    assert time.monotonic() - t0 < 15
    assert read_record(job).status == "running"
