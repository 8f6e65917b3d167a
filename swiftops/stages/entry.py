"""A stage's run.json entry: how it starts (the checkpoint chosen), how it ends (swift's outcome),
and how it reads on the console."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swiftops.record import COMPLETED, FAILED, RunRecord
from swiftops.runfolder import CheckpointChoice, CheckpointError, choose_checkpoint
from swiftops.runner import log_tail, now_iso, status_of
from swiftops.swift_log import swift_error_line

log = logging.getLogger("swiftops")

SKIPPED = "skipped"
AFTER_TRAINING = ("infer", "export")


def start_entry(record: RunRecord, ckpt: str) -> tuple[dict[str, Any], CheckpointChoice | None]:
    entry: dict[str, Any] = {"status": FAILED, "ckpt": ckpt, "started": now_iso()}
    try:
        choice = choose_checkpoint(record, ckpt)
    except CheckpointError as exc:
        entry["error"] = str(exc)
        return entry, None
    entry.update(checkpoint=str(choice.path), checkpoint_rule=choice.rule, checkpoint_note=choice.note)
    return entry, choice


def finish_entry(entry: dict[str, Any], outcome, log_path: Path) -> None:
    entry.update(
        status=status_of(outcome),
        exit_code=outcome.exit_code,
        duration_s=outcome.duration_s,
        log_path=str(log_path),
    )
    if entry["status"] != COMPLETED:
        entry["error"] = log_tail(log_path)


def stage_error_line(entry: Mapping[str, Any]) -> str | None:
    """A failed stage's error as one line: swift's exception and where (swiftops.swift_log), else the
    error's last line (a reason of ours: no result lines, no model written)."""
    error = str(entry.get("error") or "").strip()
    return (swift_error_line(error) or error.splitlines()[-1]) if error else None


def stage_line(entry: Mapping[str, Any]) -> str:
    """'completed: score 45.0 (exam, 10 rows), checkpoint-20' for the console."""
    status = entry.get("status")
    if status == SKIPPED:
        return f"skipped: {entry.get('reason')}"
    if status != COMPLETED:
        return f"{status}: {stage_error_line(entry) or 'see the stage log'}"
    parts = [str(status)]
    if "score" in entry:
        score = entry.get("score")
        shown = f"{score:g}/100" if isinstance(score, int | float) else "not scored"
        parts.append(f"score {shown} ({entry.get('scorer') or 'no scorer'}, {entry.get('n')} rows)")
        base = (entry.get("baseline") or {}).get("score")
        if isinstance(base, int | float):
            parts.append(f"base model {base:g}/100")
    if entry.get("output_dir"):
        parts.append(str(entry["output_dir"]))
    if entry.get("checkpoint"):
        parts.append(f"from {Path(entry['checkpoint']).name} ({entry.get('checkpoint_rule')})")
    return ", ".join(parts)


def stage_failures(record: RunRecord) -> list[str]:
    """'infer failed: ...' for each stage that failed, for a command's exit message and status."""
    problems = []
    for name, entry in record.stages.items():
        if name in AFTER_TRAINING and entry.get("status") == FAILED:
            problems.append(f"{name} failed: {stage_error_line(entry) or 'see ' + name + '.log'}")
    return problems


def print_failures(record: RunRecord, stream=None) -> int:
    """Print each failed stage on stderr; 1 if any failed, else 0 (for the standalone CLI)."""
    problems = stage_failures(record)
    for problem in problems:
        print(f"swiftops: {problem}", file=stream or sys.stderr, flush=True)
    return 1 if problems else 0
