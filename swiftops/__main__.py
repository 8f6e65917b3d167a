"""`python -m swiftops [-m] [overrides]`: the Hydra app. Thin on purpose: it turns Hydra's
config and job folder into a plain dict and a JobContext, and hands them to swiftops.job."""

from __future__ import annotations

import logging
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from swiftops.configs import job_config, register
from swiftops.paths import conf_dir
from swiftops.record import FAILED, INTERRUPTED
from swiftops.runner import handle_stop_signals, stop_requested
from swiftops.validate import ConfigError, find_swift, refuse

log = logging.getLogger("swiftops")

# set once a stop signal (Ctrl-C, SIGTERM, SIGHUP) stopped a job: the sweep's remaining jobs are
# recorded, not started (stop_requested() says so for a signal that came between jobs)
_sweep_interrupted = False
# the status of a single run (no -m), for the process's exit status, and why it failed
_single_status: str | None = None
_single_why: str | None = None


def context_from_hydra(swift_bin: str, progress: bool, autotune: dict | None = None):
    from swiftops.autotune import LINEAGE_KEYS, is_lineage
    from swiftops.callbacks import in_sweep
    from swiftops.job import JobContext

    hc = HydraConfig.get()
    multirun = in_sweep(hc)
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
    global _sweep_interrupted, _single_status, _single_why
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

    if _sweep_interrupted or stop_requested():  # a stop signal came between jobs: record, don't start
        return skipped_record(plain, ctx, not_started_reason()).status

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
        _single_status, _single_why = record.status, failure_sentence(record)
    return record.status


def failure_sentence(record) -> str | None:
    """A failed single run's last word: swift's own error line and where the whole log is."""
    from swiftops.summary import why_line

    why = why_line(record) if record.status == FAILED else None
    if why is None:
        return None
    where = f" (its log: {record.log_path})" if record.log_path else ""
    return f"swiftops: the run failed: {why}{where}"


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

    record = replace(new_record(plain, ctx), status=FAILED, error=error)
    try:
        write_record(record)
    except OSError as exc:  # a full disk or a folder gone: the log keeps the reason
        log.error("could not write the record of %s (%s): %s", ctx.job_dir, exc, error)
    return FAILED


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> str:
    return run_task(cfg)


def not_started_reason() -> str:
    signal_name = stop_requested()
    return "not started: the sweep was interrupted" + (f" ({signal_name})" if signal_name else "")


def main() -> None:
    register()
    # SIGINT, SIGTERM and SIGHUP for the app's whole life: a running swift is stopped and
    # recorded, the jobs after it are recorded as not started, the table and report still written
    with handle_stop_signals() as stops:
        try:
            hydra_main()
        except KeyboardInterrupt:  # the third signal while no swift ran: quit at once
            raise SystemExit(128 + signal.Signals[stops.first or "SIGINT"]) from None
    if stops.first:  # as a shell reports a process stopped by that signal: 130, 143, 129
        raise SystemExit(128 + signal.Signals[stops.first])
    # a single run that failed exits non-zero, so scripts can tell; in a sweep, failed runs
    # are results (the table and report show them) and the sweep itself succeeded
    if _single_why:  # after the table: the last line a person sees says why
        print(_single_why, file=sys.stderr, flush=True)
    if _single_status in (FAILED, INTERRUPTED):
        raise SystemExit(1 if _single_status == FAILED else 130)


if __name__ == "__main__":
    main()
