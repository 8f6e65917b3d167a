"""One job from top to bottom: resolved config -> swift sft -> run.json with its diagnosis.

Called by the Hydra app for each job of a run or sweep; usable without Hydra (tests,
notebooks) with a plain config dict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swiftops.command import build_sft_argv, installed_swift_version, run_params, swift_env
from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RunRecord, write_record
from swiftops.runner import STOPPED_BY_WATCHDOG, Progress, finish_record, run_swift, start_record

if TYPE_CHECKING:
    from swiftops.curves import Curves
    from swiftops.diagnosis import Diagnosis
    from swiftops.watchdog import Watchdog

log = logging.getLogger("swiftops")


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

    @property
    def label(self) -> str:
        return f"job {self.job_num}" if self.job_num is not None else "job"


def job_env_changes(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The variables the runtime section sets (shown in command.sh)."""
    return {k: v for k, v in swift_env(cfg, {}).items()}


def new_record(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    output_dir = ctx.job_dir / "output"
    argv = build_sft_argv(cfg, str(output_dir), ctx.swift_bin, installed_swift_version())
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
    )


def skipped_record(cfg: Mapping[str, Any], ctx: JobContext, why: str) -> RunRecord:
    """A job that never started (the sweep was interrupted before it): recorded all the same,
    so the sweep's table and report account for every job."""
    record = new_record(cfg, ctx)
    record.status, record.error = INTERRUPTED, why
    record.stages["sft"] = {"status": "skipped", "reason": why}
    write_record(record)
    return record


def read_run_curves(record: RunRecord) -> Curves:
    """The run's curves as swift left them on disk, with its checkpoints; empty curves (with a
    warning) when swift wrote no run folder or it can't be read."""
    from swiftops.curves import Curves, read_curves
    from swiftops.runfolder import NoRunFound

    try:
        curves = read_curves(record.run_dir) if record.run_dir else None
    except (NoRunFound, OSError, ValueError) as exc:
        log.warning("could not read the curves of %s: %s", record.run_dir, exc)
        curves = None
    if curves is None:
        curves = Curves(
            run_dir=None,
            scalars={},
            best_checkpoint=None,
            last_checkpoint=None,
            source="none",
            warnings=["swift wrote no run folder"],
        )
    return curves


def diagnose_record(record: RunRecord, cfg: Mapping[str, Any]) -> RunRecord:
    """Read the run's curves and attach checkpoints, verdict and diagnosis. A run whose
    curves can't be read still gets a verdict from its exit status."""
    from swiftops.diagnosis import ClassifySettings, diagnose_recorded

    curves = read_run_curves(record)
    record.best_checkpoint = curves.best_checkpoint
    record.last_checkpoint = curves.last_checkpoint
    settings = ClassifySettings(**(cfg.get("classify") or {}))
    try:
        diagnosis = diagnose_recorded(curves, record, settings)
    except Exception as exc:  # a defect in the diagnosis must not cost the job its record
        log.exception("could not diagnose %s", record.run_dir)
        record.diagnosis = {"error": f"{type(exc).__name__}: {exc}"}
        return record
    record.verdict = diagnosis.verdict
    record.diagnosis = diagnosis.to_dict()
    return record


def job_watchdog(cfg: Mapping[str, Any], record: RunRecord) -> Watchdog | None:
    """The live watchdog of this job (None when watchdog.enabled is false). One that can't be
    built is logged and left out: the job runs as it would without it."""
    from swiftops.watchdog import make_watchdog

    try:
        return make_watchdog(cfg, Path(record.output_dir), record.params)
    except Exception:
        log.exception("no watchdog for %s", record.job_dir)
        return None


def record_watchdog_stop(record: RunRecord, diagnosis: Diagnosis) -> RunRecord:
    """A run the watchdog stopped: failed, stopped_by watchdog, judged by the watchdog's own
    diagnosis (the curves said why; the exit code of the stop says nothing), with the checkpoints
    it left on disk."""
    from swiftops.watchdog import stop_sentence

    curves = read_run_curves(record)
    record.best_checkpoint = curves.best_checkpoint
    record.last_checkpoint = curves.last_checkpoint
    found = diagnosis.to_dict()
    found["figures"]["best_checkpoint"] = record.best_checkpoint
    first = f"{stop_sentence(found['figures'])}: {found['reasons'][0]}"
    found["reasons"] = [first, *found["reasons"][1:]]
    record.status, record.verdict, record.diagnosis = FAILED, found["verdict"], found
    record.error = f"{first}\n{record.error or ''}".rstrip()  # the log tail ends in the stop's traceback
    log.warning("%s in %s", first, record.job_dir)
    return record


def run_sft(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    """Train one job with `swift sft` and record it. Never raises for swift's failures."""
    record = new_record(cfg, ctx)
    env_changes = job_env_changes(cfg)
    start_record(record, env_changes)
    log.info("launching swift sft in %s", ctx.job_dir)
    progress = Progress(ctx.label, Path(record.output_dir)) if ctx.progress else None
    outcome = run_swift(
        record.argv,
        env=swift_env(cfg, os.environ),
        log_path=Path(record.log_path),
        cwd=ctx.job_dir,
        progress=progress,
        watchdog=job_watchdog(cfg, record),
    )
    finish_record(record, outcome, Path(record.output_dir))
    try:
        if outcome.stopped_by == STOPPED_BY_WATCHDOG:
            record_watchdog_stop(record, outcome.decision)
        else:
            diagnose_record(record, cfg)
    except Exception as exc:  # a diagnosis bug must not lose the run's record
        log.exception("diagnosis failed for %s", ctx.job_dir)
        record.diagnosis = {"error": f"{type(exc).__name__}: {exc}"}
    record.stages["sft"] = {
        "status": record.status,
        "exit_code": record.exit_code,
        "run_dir": record.run_dir,
        "duration_s": record.duration_s,
    }
    if record.stopped_by and isinstance(record.diagnosis, dict) and "figures" in record.diagnosis:
        figures = record.diagnosis["figures"]
        record.stages["sft"].update(
            stopped_by=record.stopped_by, stopped_at_step=figures["steps"], max_steps=figures["max_steps"]
        )
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


def run_job(cfg: Mapping[str, Any], ctx: JobContext) -> RunRecord:
    """The job's stages in order: train (or load the run given by run=PATH), then infer and
    export on the chosen checkpoint. Never raises for swift's failures.

    Raises:
        swiftops.stages.CheckpointError: run=PATH holds no run.
    """
    stages = list(cfg.get("stages") or ["sft"])
    if "sft" in stages:
        record = run_sft(cfg, ctx)
    else:
        from swiftops.stages import load_run

        record = load_run(cfg["run"])
        record.overrides, record.job_num = list(ctx.overrides), ctx.job_num
        record.sweep_dir = str(ctx.sweep_dir) if ctx.sweep_dir else None
        record.lineage = dict(ctx.lineage) if ctx.lineage else None
    if set(stages) & {"infer", "export"}:
        from swiftops.stages import print_failures, run_stages, stage_failures

        record = run_stages(cfg, record, job_dir=ctx.job_dir, swift_bin=ctx.swift_bin, progress=ctx.progress)
        if "sft" not in stages and stage_failures(record):
            print_failures(record)
            record.status = FAILED  # the job was these stages alone: it failed with them
    return record


def planned_commands(cfg: Mapping[str, Any], ctx: JobContext) -> list[list[str]]:
    """The argv of each stage of the job, for dry_run. The checkpoint is chosen after training
    (ckpt=best|last), so infer and export show it as a placeholder."""
    from swiftops.stages import export_argv, infer_argv

    stages = list(cfg.get("stages") or ["sft"])
    commands = []
    if "sft" in stages:
        commands.append(
            build_sft_argv(cfg, str(ctx.job_dir / "output"), ctx.swift_bin, installed_swift_version())
        )
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
