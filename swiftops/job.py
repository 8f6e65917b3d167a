"""One job from top to bottom: resolved config -> swift sft (or run=PATH) -> infer -> export ->
run.json with its diagnosis.

A straight line: each stage builds its argv (pure), runs through the one runner and returns its
result; the job assembles the record from those values (dataclasses.replace, never a record patched
in place) and writes it after each stage. Called by the Hydra app for each job of a run or sweep;
usable without Hydra (tests, notebooks) with a plain config dict.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swiftops.command import build_sft_argv, run_params, swift_env
from swiftops.installed_swift import installed_swift_version
from swiftops.job_progress import Progress
from swiftops.leases import job_lease
from swiftops.prepare import check_job, prepare_job
from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RunRecord, read_record, write_record
from swiftops.resume import KEEP, decide
from swiftops.runfolder import CheckpointError, last_resumable_checkpoint, newest_run_dir
from swiftops.runner import (
    STOPPED_BY_WATCHDOG,
    Outcome,
    log_tail,
    now_iso,
    run_swift,
    status_of,
    write_command_script,
)
from swiftops.stages.entry import AFTER_TRAINING, SKIPPED, print_failures, stage_failures, stage_line
from swiftops.stages.existing import load_run
from swiftops.stages.export import export_argv
from swiftops.stages.infer import infer_argv
from swiftops.stages.run import run_stage
from swiftops.stops import interruption_sentence, stop_requested
from swiftops.swift_log import swift_error_line
from swiftops.validate import ConfigError, refuse

if TYPE_CHECKING:
    from swiftops.diagnosis import Diagnosis
    from swiftops.resume import Decision
    from swiftops.watchdog import Watchdog

log = logging.getLogger("swiftops")
# how much of swift.log's end is searched for the traceback of swift's error (the record keeps less)
ERROR_SEARCH_LINES = 400


@dataclass
class JobContext:
    """Where a job lives and how it was asked for."""

    job_dir: Path
    overrides: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None
    job_num: int | None = None
    swift_bin: str = "swift"
    progress: bool = True
    lineage: dict[str, Any] | None = None  # autotune: the job this one follows, the change and why
    config: dict[str, Any] | None = None  # the resolved config as asked, before any preparation
    resume: dict[str, Any] | None = None  # resume=true: the decision that runs this job again

    @property
    def label(self) -> str:
        return f"job {self.job_num}" if self.job_num is not None else "job"


def job_env_changes(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The variables the runtime section sets (shown in command.sh)."""
    return {k: v for k, v in swift_env(cfg, {}).items()}


def sft_argv(cfg: Mapping[str, Any], ctx: JobContext) -> list[str]:
    """The job's `swift sft` command, with the flag names of the swift that will run it."""
    return build_sft_argv(
        cfg, str(ctx.job_dir / "output"), ctx.swift_bin, installed_swift_version(ctx.swift_bin)
    )


def new_record(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    output_dir = ctx.job_dir / "output"
    argv = sft_argv(cfg, ctx)
    return RunRecord(
        status="running",
        job_dir=str(ctx.job_dir),
        argv=argv,
        overrides=list(ctx.overrides),
        params=run_params(cfg),
        output_dir=str(output_dir),
        log_path=str(ctx.job_dir / "swift.log"),
        sweep_dir=str(ctx.sweep_dir) if ctx.sweep_dir else None,
        job_num=ctx.job_num,
        lineage=dict(ctx.lineage) if ctx.lineage else None,
        resume=ctx.resume,
        config=ctx.config,
    )


def skipped_record(cfg: Mapping[str, Any], ctx: JobContext, why: str) -> RunRecord:
    """A job that never started (the sweep was interrupted before it): recorded all the same,
    so the sweep's table and report account for every job."""
    record = replace(
        new_record(cfg, ctx),
        status=INTERRUPTED,
        error=why,
        stages={"sft": {"status": SKIPPED, "reason": why}},
    )
    write_record(record)
    return record


def earlier_decision(ctx: JobContext) -> tuple[Decision, RunRecord | None]:
    """resume=true: what to do with this job given what its folder holds from before (its record,
    its runs' checkpoints), and that record."""
    try:
        earlier = read_record(ctx.job_dir)
    except (OSError, ValueError):  # none, or none that can be read: the job runs
        earlier = None
    return decide(earlier, last_resumable_checkpoint(ctx.job_dir / "output")), earlier


def job_watchdog(cfg: Mapping[str, Any], record: RunRecord) -> Watchdog | None:
    """The live watchdog of this job (None when watchdog.enabled is false). One that can't be
    built is logged and left out: the job runs as it would without it."""
    # here, not at the top: the diagnosis (numpy) stays out of the orchestrator's start-up
    from swiftops.watchdog import make_watchdog

    try:
        return make_watchdog(cfg, Path(record.output_dir), record.params)
    except Exception:
        log.exception("no watchdog for %s", record.job_dir)
        return None


def judgement(ended: RunRecord, cfg: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The record fields the run's curves give: checkpoints, verdict, diagnosis. A run the
    watchdog stopped is judged by the watchdog's own diagnosis (the curves said why; the exit code
    of the stop says nothing). A defect in the diagnosis costs the job its verdict, not its record."""
    # here, not at the top: the diagnosis (numpy) stays out of the orchestrator's start-up
    from swiftops.diagnosis import NO_EVIDENCE, ClassifySettings
    from swiftops.judge import judge

    stopped = outcome.stopped_by == STOPPED_BY_WATCHDOG
    # the classify keys were checked before the run (validate.classify_problems)
    judged = judge(ended, ClassifySettings(**(cfg.get("classify") or {})), diagnose=not stopped)
    fields = {
        "best_checkpoint": judged.curves.best_checkpoint,
        "last_checkpoint": judged.curves.last_checkpoint,
    }
    if judged.note and ended.run_dir:
        log.warning("%s: %s", ended.job_dir, judged.note)
    try:
        if stopped:
            return {**fields, **watchdog_judgement(ended, outcome.decision, judged.curves.best_checkpoint)}
        if judged.error is not None:
            raise judged.error
    except Exception as exc:
        log.exception("could not diagnose %s", ended.run_dir)
        return {**fields, "diagnosis": {"error": f"{type(exc).__name__}: {exc}"}}
    if judged.diagnosis is None:
        return {**fields, "verdict": None, "diagnosis": {"reasons": [NO_EVIDENCE]}}
    return {**fields, "verdict": judged.diagnosis.verdict, "diagnosis": judged.diagnosis.to_dict()}


def watchdog_judgement(ended: RunRecord, diagnosis: Diagnosis, best: str | None) -> dict[str, Any]:
    """A run the watchdog stopped: failed, with the stop's sentence first among the reasons, in
    the error and as its error line (the log tail ends in the KeyboardInterrupt of the stop, which
    says nothing of why)."""
    from swiftops.watchdog import stop_sentence

    found = diagnosis.to_dict()
    found["figures"]["best_checkpoint"] = best
    first = f"{stop_sentence(found['figures'])}: {found['reasons'][0]}"
    found["reasons"] = [first, *found["reasons"][1:]]
    log.warning("%s in %s", first, ended.job_dir)
    return {
        "status": FAILED,
        "verdict": found["verdict"],
        "diagnosis": found,
        "error": f"{first}\n{ended.error or ''}".rstrip(),
        "error_line": first,
    }


def process_fields(record: RunRecord, outcome: Outcome) -> dict[str, Any]:
    """The record fields of how swift's process ended and where it put its run."""
    run_dir = newest_run_dir(Path(record.output_dir)) if record.output_dir else None
    status = status_of(outcome)
    error = log_tail(Path(record.log_path)) if status != COMPLETED and record.log_path else None
    # the error line from more of the log than the tail: a traceback runs to 40-60 lines
    error_line = None
    if error and not outcome.stop_signal:
        error_line = (
            swift_error_line(log_tail(Path(record.log_path), ERROR_SEARCH_LINES)) if record.log_path else None
        )
    if outcome.stop_signal:  # first: the table and the report show the error's first line
        error = f"{interruption_sentence(outcome.stop_signal)}\n{error or ''}".rstrip()
    return {
        "status": status,
        "exit_code": outcome.exit_code,
        "stopped_by": outcome.stopped_by,
        "started": outcome.started,
        "duration_s": outcome.duration_s,
        "run_dir": str(run_dir) if run_dir else None,
        "error": error,
        "error_line": error_line,
    }


def sft_entry(record: RunRecord, outcome: Outcome) -> dict[str, Any]:
    """run.json's stages.sft: the training stage's own summary."""
    entry = {
        "status": record.status,
        "exit_code": record.exit_code,
        "run_dir": record.run_dir,
        "duration_s": record.duration_s,
    }
    if outcome.stop_signal:
        entry["stop_signal"] = outcome.stop_signal
    figures = (record.diagnosis or {}).get("figures")
    if record.stopped_by and figures:
        entry.update(
            stopped_by=record.stopped_by, stopped_at_step=figures["steps"], max_steps=figures["max_steps"]
        )
    return entry


def run_sft(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    """Train one job with `swift sft` and record it. Never raises for swift's failures.

    A straight line: the record as planned (written as `running` before swift starts, with
    command.sh, so even a job whose orchestrator is killed outright leaves one), swift through the
    one runner, then the record assembled from what the process and the curves returned."""
    planned = replace(new_record(cfg, ctx), started=now_iso())
    ctx.job_dir.mkdir(parents=True, exist_ok=True)
    write_command_script(ctx.job_dir / "command.sh", planned.argv, job_env_changes(cfg))
    write_record(planned)
    log.info("launching swift sft in %s", ctx.job_dir)
    outcome = run_swift(
        planned.argv,
        env=swift_env(cfg, os.environ),
        log_path=Path(planned.log_path),
        cwd=ctx.job_dir,
        progress=Progress(ctx.label, Path(planned.output_dir)) if ctx.progress else None,
        watchdog=job_watchdog(cfg, planned),
    )
    ended = replace(planned, **process_fields(planned, outcome))
    judged = replace(ended, **judgement(ended, cfg, outcome))
    record = replace(judged, stages={**judged.stages, "sft": sft_entry(judged, outcome)})
    write_record(record)
    log.info(
        "swift sft %s in %s (exit %s, %.1f s)%s",
        record.status,
        ctx.job_dir,
        record.exit_code,
        record.duration_s or 0.0,
        f": {record.verdict}" if record.verdict else "",
    )
    return record


def load_for_stages(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    """The record of the run given by run=PATH, as this job's: its folder, overrides and lineage.

    Raises:
        swiftops.runfolder.CheckpointError: run=PATH holds no run.
    """
    return replace(
        load_run(cfg["run"]),
        job_dir=str(ctx.job_dir),
        overrides=list(ctx.overrides),
        job_num=ctx.job_num,
        sweep_dir=str(ctx.sweep_dir) if ctx.sweep_dir else None,
        lineage=dict(ctx.lineage) if ctx.lineage else None,
        resume=ctx.resume,
        config=ctx.config,
    )


def run_stages(
    cfg: Mapping[str, Any], record: RunRecord, *, job_dir: Path, swift_bin: str, progress: bool = True
) -> RunRecord:
    """The stages of cfg["stages"] after sft (infer, then export) on the record's run, in order.

    Each stage returns its entry; the record is assembled from them and written to job_dir after
    each one. A stage interrupted (Ctrl-C) makes the job interrupted: a sweep then starts no more
    jobs, and the stages after it are skipped."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    record = replace(record, job_dir=str(job_dir))
    ckpt = str(cfg.get("ckpt") or "best")
    label = f"job {record.job_num}" if record.job_num is not None else "job"
    for stage in [s for s in cfg.get("stages") or [] if s in AFTER_TRAINING]:
        entry = run_stage(stage, cfg, record, job_dir=job_dir, swift_bin=swift_bin, ckpt=ckpt)
        status = INTERRUPTED if entry["status"] == INTERRUPTED else record.status
        record = replace(record, status=status, stages={**record.stages, stage: entry})
        if progress:
            print(f"  [{label}] {stage}: {stage_line(entry)}", flush=True)
        else:
            log.info("%s in %s: %s", stage, job_dir, stage_line(entry))
        write_record(record)
    return record


def run_job(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    """The job's stages in order: train (or load the run given by run=PATH), then infer and
    export on the chosen checkpoint. Never raises for swift's failures.

    Raises:
        swiftops.runfolder.CheckpointError: run=PATH holds no run.
    """
    stages = list(cfg.get("stages") or ["sft"])
    record = run_sft(cfg, ctx) if "sft" in stages else load_for_stages(cfg, ctx)
    if set(stages) & {"infer", "export"}:
        record = run_stages(cfg, record, job_dir=ctx.job_dir, swift_bin=ctx.swift_bin, progress=ctx.progress)
        if "sft" not in stages and stage_failures(record):
            print_failures(record)
            record = replace(record, status=FAILED)  # the job was these stages alone: it failed with them
            write_record(record)
    return record


def planned_commands(cfg: Mapping[str, Any], ctx: JobContext) -> list[list[str]]:
    """The argv of each stage of the job, for dry_run. The checkpoint is chosen after training
    (ckpt=best|last), so infer and export show it as a placeholder."""
    stages = list(cfg.get("stages") or ["sft"])
    commands = []
    if "sft" in stages:
        commands.append(sft_argv(cfg, ctx))
    ckpt = f"<{cfg.get('ckpt') or 'best'} checkpoint of {cfg.get('run') or ctx.job_dir / 'output'}>"
    if "infer" in stages:
        commands.append(
            infer_argv(
                cfg,
                test_dataset=str(cfg["data"].get("test_dataset")),
                result_path=str(ctx.job_dir / "infer" / "result.jsonl"),
                adapters=ckpt,
                swift_bin=ctx.swift_bin,
            )
        )
    if "export" in stages:
        commands.append(
            export_argv(
                cfg, adapters=ckpt, output_dir=str(ctx.job_dir / "export" / "merged"), swift_bin=ctx.swift_bin
            )
        )
    return commands


def outcome_exit_status(record: RunRecord) -> int:
    """0 when the job completed, 1 when it failed, 130 when interrupted (as a shell would)."""
    return {COMPLETED: 0, FAILED: 1, INTERRUPTED: 130}.get(record.status, 1)


# ---------------------------------------------------------------------------------------------
# the job as the app runs it


def run(plain: dict, ctx: JobContext, swift_found: bool) -> RunRecord | None:
    """The job, start to end: its record (None for dry_run). Refused when its config can't run
    (a single run exits 2; a sweep's job is recorded failed), skipped after a stop, kept or
    resumed under resume=true, else run (run_job), holding its GPU lease throughout."""
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


def not_started_reason() -> str:
    signal_name = stop_requested()
    return "not started: the sweep was interrupted" + (f" ({signal_name})" if signal_name else "")
