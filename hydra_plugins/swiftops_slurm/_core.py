"""The SLURM launcher's plain functions, apart from Hydra's plugin class (as hydra-joblib-launcher
keeps its own in _core.py): can the sweep be submitted, which state is each task in, wait for every
task however it ended, and the #SBATCH lines a dry run shows."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

NO_SBATCH = (
    "hydra/launcher=slurm needs SLURM's sbatch, and there is none on PATH: run the sweep from a login "
    "node of your cluster (or `module load slurm` first), or run it on this machine with "
    "hydra/launcher=parallel jobs=N (or no launcher: one job at a time)"
)
# the states of a task SLURM ended itself (scontrol's JobState), and what they mean for its job
ENDED_BY_SLURM = {
    "CANCELLED": "cancelled (scancel)",
    "TIMEOUT": "stopped at its time limit (hydra.launcher.timeout_min)",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "lost with its node",
    "OUT_OF_MEMORY": "killed for using more memory than it asked for (hydra.launcher.mem_gb)",
    "DEADLINE": "stopped at its deadline",
    "BOOT_FAIL": "its node failed to boot",
}
SUBMIT_CHECK_SECONDS = 60
FINAL_STATES = {"COMPLETED", "FAILED", *ENDED_BY_SLURM}


def slurm_problems(params: dict[str, Any]) -> list[str]:
    """Why no array could be submitted with these settings: no sbatch, or sbatch's own refusal of a
    test submission (a partition that doesn't exist, a time limit over the partition's)."""
    limit_s, warning_s = 60 * int(params.get("timeout_min") or 60), int(params.get("signal_delay_s") or 0)
    if warning_s >= limit_s:
        return [
            f"hydra.launcher.signal_delay_s = {warning_s} is not less than the time limit (timeout_min = "
            f"{params.get('timeout_min')}: {limit_s} s): every task would be told to stop as it starts; "
            "raise timeout_min or lower signal_delay_s"
        ]
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return [NO_SBATCH]
    argv = [sbatch, "--test-only", f"--time={int(params.get('timeout_min') or 60)}", "--wrap=true"]
    if params.get("partition"):
        argv.append(f"--partition={params['partition']}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SUBMIT_CHECK_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"sbatch --test-only could not run: {exc}"]
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().replace("\n", " ")
        return [f"SLURM refuses the sweep's settings ({' '.join(argv[1:])}): {said}"]
    return []


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """The JobState of each job SLURM still shows (squeue shows an ended job for MinJobAge seconds,
    with no accounting needed), e.g. {"12_0": "RUNNING", "12_1": "CANCELLED"}; {} when squeue fails."""
    if not job_ids:
        return {}
    # --array: one line per array task (a pending array shows as 12_[0-3] otherwise)
    argv = [
        "squeue",
        "--noheader",
        "--array",
        "--states=all",
        "--jobs=" + ",".join(job_ids),
        "--format=%i|%T",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if state:
            states[job_id] = state
    return states


def wait_for_tasks(tasks: Sequence[Any], poll_s: float = 2.0, check_s: float = 15.0) -> dict[str, str]:
    """Wait until every task has ended; returns the last SLURM state seen of each.

    submitit's own wait learns of a task that ended without a result (cancelled while pending,
    killed) only from sacct, so on a cluster without accounting it would wait forever; here a task
    also counts as ended once SLURM says so (or no longer knows it) at two checks in a row."""
    pending = {task.job_id: task for task in tasks}
    states: dict[str, str] = {}
    suspect: set[str] = set()
    last_check = time.monotonic()
    while pending:
        for job_id, task in list(pending.items()):
            if task.done():
                del pending[job_id]
        if pending and time.monotonic() - last_check >= check_s:
            last_check = time.monotonic()
            seen = slurm_states(list(pending))
            states.update(seen)
            ended = {j for j in pending if j not in seen or seen[j].split()[0] in FINAL_STATES}
            for job_id in ended & suspect:
                del pending[job_id]
            suspect = ended
        if pending:
            time.sleep(poll_s)
    return states


def sbatch_lines(params: dict[str, Any], tasks: int) -> list[str]:
    """The #SBATCH lines submitit writes for an array of `tasks` with these launcher settings (its
    own script builder, fed as its executor would feed it: no cluster needed)."""
    import inspect

    from submitit.slurm.slurm import SlurmExecutor, _convert_mem, _make_sbatch_string

    names = SlurmExecutor._equivalence_dict()
    accepted = set(inspect.signature(_make_sbatch_string).parameters)
    settings = {names.get(k, k): v for k, v in params.items() if v is not None}
    if "mem" in settings:
        settings["mem"] = _convert_mem(settings["mem"])
    settings = {k: v for k, v in settings.items() if k in accepted and k not in ("command", "folder")}
    script = _make_sbatch_string(
        command="<one job of the sweep>", folder=str(params["submitit_folder"]), map_count=tasks, **settings
    )
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]
