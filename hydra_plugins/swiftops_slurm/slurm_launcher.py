"""hydra-submitit-launcher's SLURM launcher, made safe for a sweep: it refuses a cluster it can't
submit to before any job starts, waits for every task of the array however the others ended, and
records a task SLURM cancelled or killed, so the end-of-sweep table and report (written here, on the
submitting host, from the run.json files on the shared filesystem) account for every job.
dry_run=true shows the sbatch settings and each job's commands, submitting nothing.

Submitting, the array and the tasks themselves are submitit's (SlurmLauncher.__call__ runs each
job in its task); the table is swiftops.callbacks'."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import open_dict

from hydra_plugins.swiftops_slurm._core import (
    ENDED_BY_SLURM,
    sbatch_lines,
    slurm_problems,
    slurm_states,
    wait_for_tasks,
)

log = logging.getLogger("swiftops")


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
