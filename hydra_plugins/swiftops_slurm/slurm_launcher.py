"""hydra-submitit-launcher's SLURM launcher, made safe for a sweep: it refuses a cluster it can't
submit to before any job starts, waits for every task of the array however the others ended, and
records a task SLURM cancelled or killed, so the end-of-sweep table and report (written here, on the
submitting host, from the run.json files on the shared filesystem) account for every job.
dry_run=true shows the sbatch settings and each job's commands, submitting nothing.

Submitting, the array and the tasks themselves are submitit's (SlurmLauncher.__call__ runs each
job in its task); the table is swiftops.callbacks'."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import open_dict

log = logging.getLogger("swiftops")

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


class SwiftopsSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from swiftops.validate import ConfigError, refuse

        assert self.config is not None
        if self.config.get("dry_run"):
            return self.dry_run(job_overrides, initial_job_idx)
        problems = slurm_problems(self.params)
        if problems:
            refuse(ConfigError(problems))
        executor = self.executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            jobs.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        submitted = executor.map_array(self, *zip(*jobs, strict=True))
        log.info(
            "SLURM array %s: %d task(s) for sweep %s", submitted[0].job_id.split("_")[0], len(jobs), sweep_dir
        )
        states = wait_for_tasks(submitted)
        states.update(slurm_states([task.job_id for task in submitted]))  # how each ended, as SLURM tells it
        return [
            self.collect(task, idx, overrides, states.get(task.job_id))
            for task, (overrides, _, idx, _, _) in zip(submitted, jobs, strict=True)
        ]

    def executor(self) -> Any:
        """submitit's executor with this launcher's settings, as hydra-submitit-launcher builds it."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from omegaconf import OmegaConf

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm",
            folder=params.pop("submitit_folder"),
            slurm_max_num_timeout=params.pop("max_num_timeout", 0),
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
        return executor

    def collect(self, task: Any, idx: int, overrides: list[str], state: str | None) -> JobReturn:
        """The JobReturn of a task that ended, however it ended. One that SLURM ended (cancelled, over
        its time limit, its node lost) is recorded in its run.json as interrupted, with SLURM's reason;
        one that ended without a result otherwise, as failed."""
        result, error = None, None
        try:
            result = task.results()[0] if task.done() else None
        except Exception as exc:  # submitit's UncompletedJobError / FailedJobError: no result came back
            error = exc
        ended_by = next((why for key, why in ENDED_BY_SLURM.items() if state and state.startswith(key)), None)
        if result is not None and ended_by is None:
            return result
        job_dir = self.job_dir(idx, overrides)
        why = f"SLURM task {task.job_id} " + (
            ended_by or f"ended without a result ({state or 'state unknown'})"
        )
        detail = (
            f"{type(error).__name__}: {str(error).strip().splitlines()[0]}" if error is not None else None
        )
        log.warning("job %d: %s%s", idx, why, f" ({detail})" if detail else "")
        from swiftops.callbacks import record_ended_job

        record_ended_job(job_dir, overrides, idx, why, detail, interrupted=ended_by is not None)
        ret = result if result is not None else JobReturn()
        ret.overrides, ret.working_dir = list(overrides), str(job_dir)
        ret.status, ret.return_value = JobStatus.COMPLETED, "interrupted" if ended_by else "failed"
        return ret

    def job_dir(self, idx: int, overrides: list[str]) -> Path:
        """The job's folder, as Hydra names it in the task (hydra.sweep.dir / hydra.sweep.subdir)."""
        from swiftops.sweep_check import compose_job

        assert self.config is not None and self.hydra_context is not None
        return compose_job(self.hydra_context.config_loader, self.config, overrides, idx)[1]

    def dry_run(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """The sbatch script submitit would submit, then each job's commands (run here: a dry run
        only prints), submitting nothing."""
        from hydra.core.utils import run_job, setup_globals

        from swiftops.sweep_check import compose_job

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        print("# the sbatch script of the sweep's array (dry_run=true: not submitted)", flush=True)
        print("\n".join(sbatch_lines(self.params, len(job_overrides))), flush=True)
        setup_globals()
        returns = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            job = compose_job(self.hydra_context.config_loader, self.config, overrides, idx)[0]
            with open_dict(job):
                job.hydra.job.id = f"dry_run_{idx}"
            returns.append(
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=job,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
        return returns
