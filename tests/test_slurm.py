"""hydra/launcher=slurm on a REAL single-node SLURM (tests/slurm_cluster.py): the quickstart sweep
as one array job with the real swift on the tiny model; a task cancelled with scancel and one warned
of its time limit, on the stand-in swift; bad settings refused before anything is submitted; and
dry_run=true showing the sbatch settings without a cluster."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import QUICKSTART_VERDICTS

from swiftops.record import COMPLETED, INTERRUPTED, find_records, read_record

pytest_plugins = ["slurm_cluster"]

# the test node has 2 cores and a few GB: the preset's defaults (4 cpus, 32 GB) ask for more
SMALL_TASKS = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def swiftops(tmp_path: Path, *overrides: str, env: dict | None = None, timeout: float = 600):
    command = [
        sys.executable,
        "-m",
        "swiftops",
        "-m",
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"report.dir={tmp_path / 'reports'}",
        *overrides,
    ]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def standin_inputs(tmp_path: Path, fake_swift: Path) -> list[str]:
    model = tmp_path / "model"
    model.mkdir()
    data = tmp_path / "train.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n'
    )
    return [f"model.id={model}", f"data.dataset=[{data}]", f"swift_bin={fake_swift}"]


def without_sbatch(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds this Python's folder and no SLURM command."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": f"{empty}{os.pathsep}{Path(sys.executable).parent}"}


def records(tmp_path: Path) -> list:
    return [read_record(p) for p in find_records(tmp_path / "sweep")]


@pytest.mark.integration
def test_the_quickstart_sweep_runs_as_one_slurm_array_with_the_real_swift(tmp_path, slurm_cluster):
    done = swiftops(tmp_path, "lr=1e-1,5e-5", "lora_rank=4,8", *SMALL_TASKS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = records(tmp_path)
    assert [r.status for r in found] == [COMPLETED] * 4
    # as the README's quickstart says: lr 0.1 levels off after an overshoot, lr 5e-5 is still falling
    assert [r.verdict for r in found] == QUICKSTART_VERDICTS
    # one array of 4 tasks, each a job of the sweep, run by slurmd (submitit's task logs)
    logs = sorted((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 4 and len({p.name.split("_")[0] for p in logs}) == 1, logs
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert [row["verdict"] for row in rows] == QUICKSTART_VERDICTS
    assert list((tmp_path / "reports").glob("*.html"))
    assert "sweep: 4 ended (4 completed), 0 running, 0 queued" in done.stdout


def wait_for_training(job_dir: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not list(job_dir.glob("output/v*/checkpoint-*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)


@pytest.mark.integration
def test_a_task_cancelled_with_scancel_is_recorded_and_the_sweep_closes(tmp_path, slurm_cluster, fake_swift):
    command = [sys.executable, "-m", "swiftops", "-m", "hydra/launcher=slurm", *SMALL_TASKS]
    command += [f"hydra.sweep.dir={tmp_path / 'sweep'}", f"report.dir={tmp_path / 'reports'}"]
    command += [*standin_inputs(tmp_path, fake_swift), "lr=1e-3,5e-4", "progress=false"]
    # job 0 trains slowly enough to be cancelled; job 1 at the stand-in's usual pace
    env = {**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.5"}
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_training(tmp_path / "sweep" / "0", proc)
        queue = slurm_cluster.run("squeue", "--noheader", "--format=%i %j").stdout.split()
        task = next(job for job in queue if job.endswith("_0"))
        slurm_cluster.run("scancel", task)
        out = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    cancelled, other = records(tmp_path)
    assert cancelled.status == INTERRUPTED, cancelled.error
    assert cancelled.error.startswith(f"SLURM task {task} cancelled (scancel)"), cancelled.error
    assert other.status == COMPLETED
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert [row["status"] for row in rows] == [INTERRUPTED, COMPLETED]
    assert list((tmp_path / "reports").glob("*.html"))


@pytest.mark.integration
@pytest.mark.slow
def test_a_task_warned_of_its_time_limit_stops_swift_and_records_it_resumable(
    tmp_path, slurm_cluster, fake_swift
):
    # a 1-minute limit, warned 45 s before it. SLURM checks its time limits every 30 s or so, and sends
    # the warning "up to 60 seconds earlier than specified" (sbatch --signal): anywhere in the task's
    # first minute. The stand-in (0.5 s a step, 150 steps) is still training whenever it comes.
    done = swiftops(
        tmp_path,
        *SMALL_TASKS,
        *standin_inputs(tmp_path, fake_swift),
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=45",
        "epochs=15",
        env={"FAKE_SWIFT_STEP_SECONDS": "0.5"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (warned,) = records(tmp_path)
    assert warned.status == INTERRUPTED
    assert warned.error.startswith("interrupted by SLURM's warning that the task's time limit is near"), (
        warned.error
    )
    # resumable: from its last checkpoint when it saved one (every 5 steps), else run again
    step = warned.diagnosis["next"]
    if list((tmp_path / "sweep").glob("*/output/v*/checkpoint-*/trainer_state.json")):
        assert "+args.resume_from_checkpoint=" in step["override"], step
    else:
        assert step["override"] is None and "before its first checkpoint" in step["text"], step


@pytest.mark.integration
def test_a_partition_that_does_not_exist_is_refused_with_sbatchs_own_words(
    tmp_path, slurm_cluster, fake_swift
):
    done = swiftops(
        tmp_path, *SMALL_TASKS, *standin_inputs(tmp_path, fake_swift), "hydra.launcher.partition=nosuch"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SLURM refuses the sweep's settings" in done.stderr and "nosuch" in done.stderr
    assert "invalid partition" in done.stderr.lower() and "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("run.json"))


@pytest.mark.sweep
def test_no_sbatch_on_path_is_refused_saying_what_to_do(tmp_path, fake_swift):
    done = swiftops(
        tmp_path,
        *standin_inputs(tmp_path, fake_swift),
        "lr=1e-3,5e-4",
        env=without_sbatch(tmp_path),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "hydra/launcher=slurm needs SLURM's sbatch, and there is none on PATH" in done.stderr
    assert "hydra/launcher=parallel" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("run.json"))


@pytest.mark.sweep
def test_dry_run_shows_the_sbatch_settings_and_submits_nothing(tmp_path, fake_swift):
    done = swiftops(
        tmp_path,
        *standin_inputs(tmp_path, fake_swift),
        "lr=1e-3,5e-4",
        "dry_run=true",
        "hydra.launcher.partition=gpu",
        env=without_sbatch(tmp_path),  # none needed
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1440",
        "#SBATCH --array=0-1%2",
        "#SBATCH --cpus-per-task=4",
    ):
        assert line in done.stdout, done.stdout
    assert done.stdout.count(" sft ") == 2  # each job's swift command
    assert not list(tmp_path.rglob("run.json"))


@pytest.mark.sweep
def test_a_time_limit_warning_longer_than_the_limit_is_refused(tmp_path, fake_swift):
    done = swiftops(
        tmp_path, *standin_inputs(tmp_path, fake_swift), "lr=1e-3,5e-4", "hydra.launcher.timeout_min=1"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "hydra.launcher.signal_delay_s = 120 is not less than the time limit (timeout_min = 1: 60 s)"
        in done.stderr
    )
    assert not list(tmp_path.rglob("run.json"))
