"""hydra/launcher=parallel with the REAL `swift sft` on the built-in tiny model (CPU): two jobs
training at once, and a terminal's Ctrl-C in the middle of a parallel sweep, then resume=true
continuing the interrupted jobs from their checkpoints."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import QUICKSTART_VERDICTS, alive, children_of, commands_with, start_interruptible

from swiftops.record import COMPLETED, INTERRUPTED, find_records, read_record
from swiftops.resume import KEEP, RESUME, RUN
from swiftops.runfolder import last_resumable_checkpoint

pytestmark = pytest.mark.integration


def records(sweep_dir: Path) -> list:
    return [read_record(p) for p in find_records(sweep_dir)]


def span(record) -> tuple[float, float]:
    start = datetime.fromisoformat(record.started).timestamp()
    return start, start + record.duration_s


def test_two_real_swift_jobs_train_at_once(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = [sys.executable, "-m", "swiftops", "-m", "hydra/launcher=parallel", "jobs=2", "lr=1e-1,5e-5"]
    done = subprocess.run(
        [*sweep, f"hydra.sweep.dir={sweep_dir}", f"report.dir={tmp_path / 'reports'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first, second = records(sweep_dir)
    assert [first.status, second.status] == [COMPLETED, COMPLETED]
    assert [first.verdict, second.verdict] == QUICKSTART_VERDICTS[::2]  # as one at a time (README)
    (a0, a1), (b0, b1) = span(first), span(second)
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 0.5 * min(a1 - a0, b1 - b0), (span(first), span(second))
    assert "OMP_NUM_THREADS=1" in (sweep_dir / "0" / "command.sh").read_text()
    assert list((tmp_path / "reports").glob("*.html"))


def test_ctrl_c_in_a_parallel_sweep_then_resume_from_the_checkpoints(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = [sys.executable, "-m", "swiftops", "-m", "hydra/launcher=parallel", "jobs=2", "lr=1e-3,5e-4,2e-4"]
    sweep += ["epochs=8", f"hydra.sweep.dir={sweep_dir}", f"report.dir={tmp_path / 'reports'}"]
    # its own process group, as a shell runs a foreground job: the Ctrl-C reaches the launching
    # process and its workers alike (swift runs in sessions of its own, as always)
    proc = start_interruptible(sweep, cwd=tmp_path, start_new_session=True)
    # each of the two running jobs has a whole checkpoint to continue from (not two of one job's)
    deadline = time.monotonic() + 300
    while not all(last_resumable_checkpoint(sweep_dir / job / "output") for job in ("0", "1")):
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        assert time.monotonic() < deadline, "the two jobs never saved a checkpoint"
        time.sleep(0.25)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=120)[0].decode(errors="replace")
    assert proc.returncode == 130, out[-3000:]

    stopped = records(sweep_dir)
    assert [r.status for r in stopped] == [INTERRUPTED] * 3, out[-3000:]
    assert all(r.error.startswith("interrupted by Ctrl-C (SIGINT)") for r in stopped[:2])
    assert stopped[2].error == "not started: the sweep was interrupted (SIGINT)"
    assert (sweep_dir / "summary.csv").is_file() and list((tmp_path / "reports").glob("*.html"))
    deadline = time.monotonic() + 15
    while commands_with(str(sweep_dir)) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert commands_with(str(sweep_dir)) == []

    resumed = subprocess.run(
        [*sweep, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    final = records(sweep_dir)
    assert [r.status for r in final] == [COMPLETED] * 3
    assert [r.resume["action"] for r in final] == [RESUME, RESUME, RUN]
    for record in final[:2]:
        # swift continued from the checkpoint: the new run's args say so, and the curves join both runs
        assert f"--resume_from_checkpoint {record.resume['checkpoint']}" in " ".join(record.argv)
        assert (
            record.verdict
            and record.diagnosis["figures"]["steps"] == record.diagnosis["figures"]["max_steps"]
        )
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert [row["resume"].split(" ")[0] for row in rows] == [RESUME, RESUME, RUN]
    again = subprocess.run([*sweep, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and [r.resume["action"] for r in records(sweep_dir)] == [KEEP] * 3


def test_kill_9_of_the_launcher_takes_its_workers_and_their_swifts_with_it(tmp_path):
    """The issue's case: a parallel sweep whose launching process is killed with kill -9 while both
    jobs train. Nothing of it may go on running (on GPUs it would hold the cards), and the two jobs
    are recorded interrupted, so resume=true continues them."""
    sweep_dir = tmp_path / "sweep"
    sweep = [sys.executable, "-m", "swiftops", "-m", "hydra/launcher=parallel", "jobs=2", "lr=1e-3,2e-3"]
    sweep += ["epochs=40", f"hydra.sweep.dir={sweep_dir}", f"report.dir={tmp_path / 'reports'}"]
    proc = start_interruptible(sweep, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while len(list(sweep_dir.glob("*/output/v*/logging.jsonl"))) < 2:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        assert time.monotonic() < deadline, "the two jobs never logged a step"
        time.sleep(0.25)
    workers = children_of(proc.pid, "LokyProcess")
    assert len(workers) == 2 and len(commands_with(str(sweep_dir))) >= 4  # swift and its trainer, twice
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 20  # swift's own stop after SIGINT, as on Ctrl-C
    while (commands_with(str(sweep_dir)) or alive(workers)) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert commands_with(str(sweep_dir)) == [] and alive(workers) == []
    stopped = records(sweep_dir)
    assert [r.status for r in stopped] == [INTERRUPTED] * 2
    assert all(
        r.error.startswith("interrupted by the end of the process that launched the sweep") for r in stopped
    )
