"""`python -m swiftops [-m] [overrides]`: the Hydra app. Thin on purpose: it turns Hydra's
config and job folder into a plain dict and a JobContext, and hands them to swiftops.job."""

from __future__ import annotations

import copy
import logging
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from swiftops.autotune import LINEAGE_KEYS, is_lineage
from swiftops.callbacks import in_sweep, remove_unused_folder
from swiftops.configs import job_config, register
from swiftops.installed_swift import find_swift
from swiftops.job import (
    JobContext,
    earlier_decision,
    job_env_changes,
    new_record,
    planned_commands,
    run_job,
    skipped_record,
)
from swiftops.leases import job_lease
from swiftops.overrides import check_command_line
from swiftops.paths import conf_dir
from swiftops.prepare import check_job, prepare_job
from swiftops.record import FAILED, INTERRUPTED, write_record
from swiftops.resume import KEEP
from swiftops.runfolder import CheckpointError
from swiftops.stops import (
    follow_launcher,
    handle_stop_signals,
    join_sweep_stops,
    launched_here,
    stop_handling,
    stop_requested,
)
from swiftops.summary import why_line
from swiftops.validate import ConfigError, refuse

log = logging.getLogger("swiftops")

# A single run (no -m) always runs in this process (Hydra launches only sweeps), so its status can
# live here until main() turns it into the exit status. A sweep's state never does: its jobs may run
# in other processes, and share the sweep's stop through the sweep folder (stops.share_sweep_stops).
_single_status: str | None = None
_single_why: str | None = None


def context_from_hydra(swift_bin: str, plain: dict, autotune: dict | None = None):
    hc = HydraConfig.get()
    multirun = in_sweep(hc)
    autotune = autotune or {}
    return JobContext(
        job_dir=Path(hc.runtime.output_dir),
        overrides=[o for o in hc.overrides.task if not is_lineage(o)],
        sweep_dir=Path(hc.sweep.dir).resolve() if multirun else None,
        job_num=hc.job.num if multirun else None,
        swift_bin=swift_bin,
        # a sweep's progress is drawn by the process that launched it (swiftops.sweep_progress)
        progress=bool(plain.get("progress", True)) and not multirun,
        lineage={k: autotune.get(k) for k in LINEAGE_KEYS} if autotune.get("parent") is not None else None,
        config=copy.deepcopy(plain),
    )


def run_task(cfg: DictConfig) -> str:
    """One job: validate, build, launch, record. Returns the job's status; never raises for
    a failing swift (Hydra would then skip the end-of-sweep table). Runs in the launching process
    or in a parallel launcher's worker process alike."""
    global _single_status, _single_why

    plain = job_config(cfg)
    swift_bin = find_swift(plain.get("swift_bin")) or ""
    ctx = context_from_hydra(swift_bin or "swift", plain, plain.get("autotune"))
    worker = ctx.sweep_dir is not None and not launched_here(ctx.sweep_dir)
    if worker:
        quiet_terminal()
        follow_launcher()  # a launcher killed with kill -9 takes its workers with it
    join_sweep_stops(ctx.sweep_dir)
    with stop_handling(worker):
        try:
            record = run_checked(plain, ctx, bool(swift_bin))
        except SystemExit:  # refused: the folder Hydra made for the run holds nothing of it
            if ctx.sweep_dir is None:
                remove_unused_folder(ctx.job_dir)
            raise
    if ctx.sweep_dir is None and record is not None:
        _single_status, _single_why = record.status, failure_sentence(record)
    return record.status if record is not None else "dry_run"


def quiet_terminal() -> None:
    """In a worker process: its console log lines say only warnings and errors when they would go to
    a terminal, where the launching process draws the sweep's live display (the job's own log file
    keeps everything)."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if console and stream is not None and hasattr(stream, "isatty") and stream.isatty():
            handler.setLevel(logging.WARNING)


def run_checked(plain: dict, ctx, swift_found: bool):
    """The job's record (None for dry_run): refused when its config can't run, skipped after a
    stop, kept or resumed under resume=true, else run, holding its GPU lease throughout."""
    problems = check_job(plain, swift_found=swift_found)
    if problems:
        error = ConfigError(problems)
        if ctx.sweep_dir is None:
            refuse(error)  # a single run: stop before anything runs, with the reasons
        log.error("%s", error)  # a sweep job (a swept config group): record it, the sweep goes on
        return record_failure(plain, ctx, str(error))

    if plain.get("dry_run"):
        print_commands(plain, ctx)
        return None

    if stop_requested():  # a stop signal came between jobs: record, don't start
        return skipped_record(plain, ctx, not_started_reason())

    if plain.get("resume"):
        decision, earlier = earlier_decision(ctx)
        log.info("%s: %s", ctx.label, decision.text)
        ctx = replace(ctx, resume=decision.to_dict())
        if earlier is not None and decision.action == KEEP:
            return keep(earlier, decision)
        if decision.checkpoint:
            plain = with_resume_checkpoint(plain, decision.checkpoint)

    try:
        with job_lease(plain, ctx) as leased:
            if leased is None:  # a stop came while the job waited for GPUs
                return skipped_record(plain, ctx, not_started_reason())
            plain = prepare_job(leased, ctx.job_dir)
            return run_job(plain, ctx)
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


def failure_sentence(record) -> str | None:
    """A failed single run's last word: swift's own error line and where the whole log is."""
    why = why_line(record) if record.status == FAILED else None
    if why is None:
        return None
    where = f" (its log: {record.log_path})" if record.log_path else ""
    return f"swiftops: the run failed: {why}{where}"


def print_commands(plain: dict, ctx) -> None:
    """dry_run=true: the command of each stage of the job, runnable as printed."""
    env = "".join(f"{k}={shlex.quote(v)} " for k, v in job_env_changes(plain).items())
    lines = [f"# {ctx.label}: {' '.join(ctx.overrides) or '(defaults)'}"]
    lines += [env + shlex.join(argv) for argv in planned_commands(plain, ctx)]
    print("\n".join(lines), flush=True)


def record_failure(plain: dict, ctx, error: str):
    """run.json for a job that could not launch swift at all; returns the record."""
    record = replace(new_record(plain, ctx), status=FAILED, error=error)
    try:
        write_record(record)
    except OSError as exc:  # a full disk or a folder gone: the log keeps the reason
        log.error("could not write the record of %s (%s): %s", ctx.job_dir, exc, error)
    return record


def keep(earlier, decision):
    """resume=true on a completed job: its record as it was, with the decision noted."""
    kept = replace(earlier, resume=decision.to_dict())
    write_record(kept)
    return kept


def with_resume_checkpoint(plain: dict, checkpoint: str) -> dict:
    """The job's config with swift told to continue from checkpoint (--resume_from_checkpoint)."""
    return {**plain, "args": {**(plain.get("args") or {}), "resume_from_checkpoint": checkpoint}}


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> str:
    return run_task(cfg)


def not_started_reason() -> str:
    signal_name = stop_requested()
    return "not started: the sweep was interrupted" + (f" ({signal_name})" if signal_name else "")


def main() -> None:
    register()
    # bad overrides (an unknown key, group option or syntax; whatever Hydra would refuse) exit 2
    # here, before Hydra composes the config and would exit 1 with its own advice
    check_command_line(sys.argv[1:])
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
