"""The test SLURM cluster itself (tests/slurm_cluster.py): a batch job, an array and a cancel, in
seconds. Skipped where the cluster cannot run, unless SWIFTOPS_REQUIRE_SLURM=1."""

from __future__ import annotations

import time

import pytest

pytest_plugins = ["slurm_cluster"]

pytestmark = pytest.mark.integration


def submit(cluster, tmp_path, *args: str) -> str:
    """sbatch ARGS from tmp_path; returns the job id."""
    done = cluster.run("sbatch", "--parsable", f"--chdir={tmp_path}", *args)
    return done.stdout.strip().split(";")[0]


def wait_for(condition, timeout: float = 30.0, what: str = "the condition"):
    """condition()'s first true value, polled every 0.2 s; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} not reached within {timeout:.0f} s")


def job_state(cluster, job_id: str) -> str:
    """scontrol's JobState of a job (finished ones stay MinJobAge seconds); '' when gone."""
    done = cluster.run("scontrol", "-o", "show", "job", job_id, check=False)
    for word in done.stdout.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return ""


def test_a_wrapped_command_runs_and_completes(slurm_cluster, tmp_path):
    job = submit(slurm_cluster, tmp_path, "--output=out.txt", "--wrap", "echo hello from $SLURM_JOB_ID")
    wait_for(lambda: job_state(slurm_cluster, job) == "COMPLETED", what=f"job {job} COMPLETED")
    assert (tmp_path / "out.txt").read_text() == f"hello from {job}\n"


def test_every_task_of_an_array_runs(slurm_cluster, tmp_path):
    job = submit(
        slurm_cluster, tmp_path, "--array=0-3", "--output=task-%a.txt", "--wrap", "echo $SLURM_ARRAY_TASK_ID"
    )
    outputs = [tmp_path / f"task-{i}.txt" for i in range(4)]
    wait_for(
        lambda: all(path.exists() and path.read_text() for path in outputs),
        what=f"the 4 outputs of array {job}",
    )
    assert [path.read_text() for path in outputs] == [f"{i}\n" for i in range(4)]
    wait_for(
        lambda: all(job_state(slurm_cluster, f"{job}_{i}") == "COMPLETED" for i in range(4)),
        what=f"every task of {job} COMPLETED",
    )


def test_a_cancelled_job_shows_cancelled(slurm_cluster, tmp_path):
    job = submit(slurm_cluster, tmp_path, "--output=out.txt", "--wrap", "echo started; sleep 300")
    wait_for(lambda: job_state(slurm_cluster, job) == "RUNNING", what=f"job {job} RUNNING")
    slurm_cluster.run("scancel", job)
    wait_for(lambda: job_state(slurm_cluster, job) == "CANCELLED", what=f"job {job} CANCELLED")
    squeue = slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T", check=False)
    assert "RUNNING" not in squeue.stdout
