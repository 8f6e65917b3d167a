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
from swiftops.record import FAILED, INTERRUPTED
from swiftops.validate import ConfigError, find_swift, refuse

log = logging.getLogger("swiftops")

# set once Ctrl-C stopped a job: the sweep's remaining jobs are recorded, not started
_sweep_interrupted = False
# the status of a single run (no -m), for the process's exit status
_single_status: str | None = None


def context_from_hydra(swift_bin: str, progress: bool, autotune: dict | None = None):
    from swiftops.autotune import LINEAGE_KEYS, is_lineage
    from swiftops.job import JobContext

    hc = HydraConfig.get()
    # Hydra's test harness leaves hydra.mode unset in sweep jobs; a job number means a sweep
    multirun = hc.mode == RunMode.MULTIRUN or hc.job.get("num") is not None
    autotune = autotune or {}
    return JobContext(
        job_dir=Path(hc.runtime.output_dir),
        overrides=[o for o in hc.overrides.task if not is_lineage(o)],
        sweep_dir=Path(hc.sweep.dir).resolve() if multirun else None,
        job_num=hc.job.num if multirun else None,
        swift_bin=swift_bin,
        progress=progress,
        lineage={k: autotune.get(k) for k in LINEAGE_KEYS} if autotune.get("parent") is not None else None,
    )


def run_task(cfg: DictConfig) -> str:
    """One job: validate, build, launch, record. Returns the job's status; never raises for
    a failing swift (Hydra would then skip the end-of-sweep table)."""
    global _sweep_interrupted, _single_status
    from swiftops.job import run_job, skipped_record
    from swiftops.prepare import check_job, prepare_job
    from swiftops.stages import CheckpointError

    plain = job_config(cfg)
    swift_bin = find_swift(plain.get("swift_bin")) or ""
    ctx = context_from_hydra(swift_bin or "swift", bool(plain.get("progress", True)), plain.get("autotune"))
    problems = check_job(plain, swift_found=bool(swift_bin))
    if problems:
        error = ConfigError(problems)
        if ctx.sweep_dir is None:
            refuse(error)  # a single run: stop before anything runs, with the reasons
        log.error("%s", error)  # a sweep job (a swept config group): record it, the sweep goes on
        return record_failure(plain, ctx, str(error))

    if plain.get("dry_run"):
        print_commands(plain, ctx)
        return "dry_run"

    if _sweep_interrupted:
        return skipped_record(plain, ctx, "not started: the sweep was interrupted").status

    try:
        plain = prepare_job(plain, ctx.job_dir)
        record = run_job(plain, ctx)
    except CheckpointError as exc:  # run=PATH holds no run: bad input, named like the others
        if ctx.sweep_dir is None:
            refuse(ConfigError([str(exc)]))
        return record_failure(plain, ctx, str(exc))
    except Exception as exc:
        if ctx.sweep_dir is None:
            raise
        # a bug of ours in one job must not cost the sweep its other jobs or its table
        log.exception("job %s failed inside swiftops", ctx.job_dir)
        return record_failure(plain, ctx, f"swiftops error: {type(exc).__name__}: {exc}")
    if record.status == INTERRUPTED:
        _sweep_interrupted = True
    if ctx.sweep_dir is None:
        _single_status = record.status
    return record.status


def print_commands(plain: dict, ctx) -> None:
    """dry_run=true: the command of each stage of the job, runnable as printed."""
    from swiftops.job import job_env_changes, planned_commands

    env = "".join(f"{k}={shlex.quote(v)} " for k, v in job_env_changes(plain).items())
    lines = [f"# {ctx.label}: {' '.join(ctx.overrides) or '(defaults)'}"]
    lines += [env + shlex.join(argv) for argv in planned_commands(plain, ctx)]
    print("\n".join(lines), flush=True)


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
    # a single run that failed exits non-zero, so scripts can tell; in a sweep, failed runs
    # are results (the table and report show them) and the sweep itself succeeded
    if _single_status in (FAILED, INTERRUPTED):
        raise SystemExit(1 if _single_status == FAILED else 130)


if __name__ == "__main__":
    main()
