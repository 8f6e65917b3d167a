"""Sweeps side by side (hydra/launcher=parallel): GPU leases that never overlap and are freed by a
crashed or killed job, the cores split between jobs, a stop shared from the launching process with
its workers, and the bad inputs refused before any job starts. The stand-in swift records the
environment each job got (FAKE_SWIFT_ENV_LOG)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import commands_with, standin_sweep_argv, start_interruptible, wait_until_logging

from swiftops.leases import Lease, gpu_lease, thread_share
from swiftops.record import find_records, read_record
from swiftops.validate import runtime_problems


def env_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def overlapping(a: dict, b: dict) -> bool:
    return a["started"] < b["ended"] and b["started"] < a["ended"]


def sweep(tmp_path: Path, fake_swift: Path, stand_in_files, *overrides: str, env: dict | None = None):
    """A parallel sweep (hydra/launcher=parallel) on the stand-in, to its end."""
    command = standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "hydra/launcher=parallel", *overrides)
    run_env = {**os.environ, "FAKE_SWIFT_ENV_LOG": str(tmp_path / "env.jsonl"), **(env or {})}
    return subprocess.run(command, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300)


def records(tmp_path: Path) -> list:
    return [read_record(p) for p in find_records(tmp_path / "sweep")]


# ---------------------------------------------------------------- units


def test_a_lease_gives_swift_its_gpus_and_a_port_of_its_own():
    assert Lease((2,)).env() == {"CUDA_VISIBLE_DEVICES": "2", "MASTER_PORT": "29502"}
    assert Lease((0, 1)).env() == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "MASTER_PORT": "29500",
        "NPROC_PER_NODE": "2",
    }


def test_leases_taken_together_never_share_a_gpu(tmp_path):
    with gpu_lease([0, 1, 2], 2, folder=tmp_path) as first:
        assert first == Lease((0, 1))
        # a second job finds one GPU free of the two it needs: it waits, so here it gives up
        with gpu_lease([0, 1, 2], 2, folder=tmp_path, should_stop=lambda: True) as second:
            assert second is None
        with gpu_lease([0, 1, 2], 1, folder=tmp_path) as third:
            assert third == Lease((2,))
    with gpu_lease([0, 1, 2], 2, folder=tmp_path) as again:
        assert again == Lease((0, 1))  # released at the end of the block


HOLD_LEASE = """
import sys, time
from pathlib import Path
from swiftops.leases import gpu_lease
with gpu_lease([0], 1, folder=Path(sys.argv[1])) as lease:
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_job_frees_its_lease(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with gpu_lease([0], 1, folder=tmp_path, should_stop=lambda: True) as lease:
            assert lease is None  # held by the other process
        holder.send_signal(signal.SIGKILL)  # no cleanup can run: the kernel drops the lock
        holder.wait(timeout=10)
        with gpu_lease([0], 1, folder=tmp_path, should_stop=lambda: True) as lease:
            assert lease == Lease((0,))
    finally:
        holder.kill()
        holder.wait()


def test_concurrent_jobs_split_the_cores_but_never_get_more_threads_than_asked():
    cfg = {"jobs": 2, "runtime": {"env": {}}}
    assert thread_share(cfg, 16)["runtime"]["env"]["OMP_NUM_THREADS"] == "8"
    assert thread_share({**cfg, "jobs": 4}, 2)["runtime"]["env"]["OMP_NUM_THREADS"] == "1"
    asked = {"jobs": 2, "runtime": {"env": {"OMP_NUM_THREADS": "1"}}}
    assert thread_share(asked, 16)["runtime"]["env"]["OMP_NUM_THREADS"] == "1"
    assert thread_share({"jobs": 1, "runtime": {"env": {}}}, 16) == {"jobs": 1, "runtime": {"env": {}}}


@pytest.mark.parametrize(
    ("cfg", "gpu_count", "named"),
    [
        ({"jobs": 0}, None, "jobs = 0; use a whole number >= 1"),
        ({"jobs": "2"}, None, "jobs = '2'"),
        ({"runtime": {"gpus": [0, 5]}}, 2, "names GPU(s) [5] that this machine doesn't have; it has 2"),
        (
            {"runtime": {"gpus": [0, 1], "gpus_per_job": 3}},
            None,
            "gpus_per_job = 3 is more than the 2 GPU(s)",
        ),
        ({"runtime": {"gpus": [0, 0]}}, None, "runtime.gpus = [0, 0]; use a list of distinct GPU indices"),
        ({"runtime": {"gpus": [0], "gpus_per_job": 0}}, None, "runtime.gpus_per_job = 0"),
    ],
)
def test_bad_runtime_values_are_named(cfg, gpu_count, named):
    problems = runtime_problems(cfg, gpu_count)
    assert any(named in p for p in problems), problems


def test_gpus_are_checked_only_when_the_machine_says_how_many_it_has():
    assert runtime_problems({"runtime": {"gpus": [0, 1, 2, 3]}}, None) == []
    assert runtime_problems({"runtime": {"gpus": [0, 1, 2, 3], "gpus_per_job": 2}}, 4) == []


# ---------------------------------------------------------------- sweeps on the stand-in


@pytest.mark.sweep
def test_concurrent_jobs_never_hold_the_same_gpu(tmp_path, fake_swift, stand_in_files):
    done = sweep(
        tmp_path,
        fake_swift,
        stand_in_files,
        "jobs=2",
        "runtime.gpus=[0,1,2]",
        "lr=1e-3,5e-4",
        "lora_rank=4,8",
        env={"FAKE_SWIFT_STEP_SECONDS": "0.05"},
    )
    assert done.returncode == 0, done.stderr
    assert [r.status for r in records(tmp_path)] == ["completed"] * 4
    runs = env_log(tmp_path / "env.jsonl")
    assert len(runs) == 4
    for run in runs:
        assert run["CUDA_VISIBLE_DEVICES"] in {"0", "1", "2"}
        assert run["MASTER_PORT"] == str(29500 + int(run["CUDA_VISIBLE_DEVICES"]))
        assert run["NPROC_PER_NODE"] is None
    together = [(a, b) for a, b in itertools.combinations(runs, 2) if overlapping(a, b)]
    assert together, "no two jobs ran at the same time"
    for a, b in together:
        assert a["CUDA_VISIBLE_DEVICES"] != b["CUDA_VISIBLE_DEVICES"], (a, b)
        assert a["MASTER_PORT"] != b["MASTER_PORT"]


@pytest.mark.sweep
def test_a_crashed_job_frees_its_gpus_for_the_next(tmp_path, fake_swift, stand_in_files):
    # one GPU, two workers: the jobs must take turns, and the crash (lr >= 1) must not keep GPU 0
    done = sweep(tmp_path, fake_swift, stand_in_files, "jobs=2", "runtime.gpus=[0]", "lr=2,1e-3,5e-4")
    assert done.returncode == 0, done.stderr
    assert [r.status for r in records(tmp_path)] == ["failed", "completed", "completed"]
    runs = env_log(tmp_path / "env.jsonl")
    assert [r["CUDA_VISIBLE_DEVICES"] for r in runs] == ["0", "0", "0"]
    assert not any(overlapping(a, b) for a, b in itertools.combinations(runs, 2))


@pytest.mark.sweep
def test_two_gpus_per_job_run_torchrun_over_them(tmp_path, fake_swift, stand_in_files):
    done = sweep(
        tmp_path,
        fake_swift,
        stand_in_files,
        "jobs=2",
        "runtime.gpus=[0,1,2,3]",
        "runtime.gpus_per_job=2",
        "lr=1e-3,5e-4",
    )
    assert done.returncode == 0, done.stderr
    runs = env_log(tmp_path / "env.jsonl")
    assert sorted(r["CUDA_VISIBLE_DEVICES"] for r in runs) in (["0,1", "2,3"], ["0,1", "0,1"])
    assert all(r["NPROC_PER_NODE"] == "2" for r in runs)
    command = (tmp_path / "sweep" / "0" / "command.sh").read_text()
    assert "NPROC_PER_NODE=2" in command and "MASTER_PORT=" in command


@pytest.mark.sweep
def test_concurrent_cpu_jobs_share_the_cores(tmp_path, fake_swift, stand_in_files):
    done = sweep(
        tmp_path, fake_swift, stand_in_files, "jobs=2", "runtime.env.OMP_NUM_THREADS=64", "lr=1e-3,5e-4"
    )
    assert done.returncode == 0, done.stderr
    cores = len(os.sched_getaffinity(0))
    assert {r["OMP_NUM_THREADS"] for r in env_log(tmp_path / "env.jsonl")} == {str(max(1, cores // 2))}


@pytest.mark.sweep
@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["jobs=0"], "jobs = 0; use a whole number >= 1"),
        (
            ["runtime.gpus=[0,1]", "runtime.gpus_per_job=3"],
            "runtime.gpus_per_job = 3 is more than the 2 GPU(s)",
        ),
        (["runtime.gpus=[0,3]"], "names GPU(s) [3] that this machine doesn't have; it has 2"),
    ],
)
def test_bad_input_is_refused_before_any_job(tmp_path, fake_swift, stand_in_files, overrides, named):
    done = sweep(
        tmp_path, fake_swift, stand_in_files, "lr=1e-3,5e-4", *overrides, env={"CUDA_VISIBLE_DEVICES": "0,1"}
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert not env_log(tmp_path / "env.jsonl") and not list(tmp_path.rglob("run.json"))


@pytest.mark.sweep
def test_jobs_without_the_parallel_launcher_is_refused(tmp_path, fake_swift, stand_in_files):
    done = subprocess.run(
        standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "jobs=2", "lr=1e-3,5e-4"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "jobs = 2 is for hydra/launcher=parallel, but the launcher is BasicLauncher" in done.stderr
    assert not list(tmp_path.rglob("run.json"))


@pytest.mark.sweep
def test_a_stop_of_the_launching_process_reaches_every_worker(tmp_path, fake_swift, stand_in_files):
    """SIGTERM to the launching process alone (as `kill PID` or a scheduler sends it): its workers
    stop their swifts, the queued jobs are recorded as not started, the table is written."""
    sweep_dir = tmp_path / "sweep"
    proc = start_interruptible(
        standin_sweep_argv(
            tmp_path,
            fake_swift,
            stand_in_files,
            "hydra/launcher=parallel",
            "jobs=2",
            "lr=1e-3,5e-4,2e-4,1e-4",
        ),
        cwd=tmp_path,
        env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.3"},
    )
    wait_until_logging(proc, sweep_dir, 2)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, out
    found = records(tmp_path)
    assert [r.status for r in found] == ["interrupted"] * 4, out
    assert (
        sorted(r.error.splitlines()[0] for r in found[:2])
        == ["interrupted by SIGTERM (a scheduler's or kill's stop)"] * 2
    )
    assert [r.error for r in found[2:]] == ["not started: the sweep was interrupted (SIGTERM)"] * 2
    assert (sweep_dir / "summary.csv").is_file() and list((tmp_path / "reports").glob("*.html"))
    assert commands_with(str(fake_swift)) == []
