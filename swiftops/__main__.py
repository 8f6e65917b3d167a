"""`python -m swiftops [-m] [overrides]`: the Hydra app. Thin on purpose: it turns Hydra's
config and job folder into a plain dict and a JobContext, and hands them to swiftops.job."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from swiftops.configs import job_config, register
from swiftops.paths import conf_dir
from swiftops.validate import ConfigError, find_swift, refuse

log = logging.getLogger("swiftops")

# set once Ctrl-C stopped a job: the sweep's remaining jobs are recorded, not started
_sweep_interrupted = False


def context_from_hydra(swift_bin: str, progress: bool):
    from swiftops.job import JobContext

    hc = HydraConfig.get()
    # Hydra's test harness leaves hydra.mode unset in sweep jobs; a job number means a sweep
    multirun = hc.mode == RunMode.MULTIRUN or hc.job.get("num") is not None
    return JobContext(
        job_dir=Path(hc.runtime.output_dir),
        overrides=list(hc.overrides.task),
        sweep_dir=Path(hc.sweep.dir).resolve() if multirun else None,
        job_num=hc.job.num if multirun else None,
        swift_bin=swift_bin,
        progress=progress,
    )


def run_task(cfg: DictConfig) -> str:
    """One job: validate, build, launch, record. Returns the job's status; never raises for
    a failing swift (Hydra would then skip the end-of-sweep table)."""
    global _sweep_interrupted
    from swiftops.job import run_sft, skipped_record
    from swiftops.prepare import check_job, prepare_job

    plain = job_config(cfg)
    swift_bin = find_swift(plain.get("swift_bin")) or ""
    ctx = context_from_hydra(swift_bin or "swift", bool(plain.get("progress", True)))
    problems = check_job(plain, swift_found=bool(swift_bin))
    if problems:
        error = ConfigError(problems)
        if ctx.sweep_dir is None:
            refuse(error)  # a single run: stop before anything runs, with the reasons
        log.error("%s", error)  # a sweep job (a swept config group): record it, the sweep goes on
        return record_failure(plain, ctx, str(error))

    if plain.get("dry_run"):
        from swiftops.command import build_sft_argv, installed_swift_version
        from swiftops.job import job_env_changes

        argv = build_sft_argv(plain, str(ctx.job_dir / "output"), ctx.swift_bin, installed_swift_version())
        env = "".join(f"{k}={shlex.quote(v)} " for k, v in job_env_changes(plain).items())
        print(
            f"# {ctx.label}: {' '.join(ctx.overrides) or '(defaults)'}\n{env}{shlex.join(argv)}", flush=True
        )
        return "dry_run"

    if _sweep_interrupted:
        return skipped_record(plain, ctx, "not started: the sweep was interrupted").status

    try:
        plain = prepare_job(plain, ctx.job_dir)
        record = run_sft(plain, ctx)
    except Exception as exc:
        if ctx.sweep_dir is None:
            raise
        # a bug of ours in one job must not cost the sweep its other jobs or its table
        log.exception("job %s failed inside swiftops", ctx.job_dir)
        return record_failure(plain, ctx, f"swiftops error: {type(exc).__name__}: {exc}")
    if record.status == "interrupted":
        _sweep_interrupted = True
    return record.status


def record_failure(plain: dict, ctx, error: str) -> str:
    """run.json for a job that could not launch swift at all."""
    from swiftops.job import new_record
    from swiftops.record import FAILED, write_record

    record = new_record(plain, ctx)
    record.status, record.error = FAILED, error
    write_record(record)
    return FAILED


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> str:
    return run_task(cfg)


def main() -> None:
    register()
    hydra_main()


if __name__ == "__main__":
    main()
