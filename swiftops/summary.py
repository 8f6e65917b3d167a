"""records -> the comparison table: one row format for the console, the sweep's summary.csv and the
report (its page, its CSV and its JSON).

csv and tabulate rather than pandas (which is therefore no dependency): this runs at the end of every
single run, where importing pandas cost 0.3 s of the orchestrator's ~0.8 s (benchmarks/overhead.py),
and a DataFrame would make none of it shorter: the rows are built one record at a time, and the
console and CSV views differ in their columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from swiftops.record import RunRecord
from swiftops.resume import decision_text

# params always shown for a single run; for a sweep, only those that differ between jobs
HEADLINE_PARAMS = ("lr", "lora_rank", "epochs")

# the table's columns, after `job` and the differing params
COLUMNS = (
    "status",
    "resume",
    "stopped_by",
    "verdict",
    "confidence",
    "first_train_loss",
    "min_train_loss",
    "final_train_loss",
    "best_eval_loss",
    "best_eval_step",
    "steps",
    "duration_s",
    "exit_code",
    "best_checkpoint",
    "next_override",
    "next_step",
    "error",
    "job_dir",
    "run_dir",
)
# the console's view of a row: these columns, under these short headers
CONSOLE_HEADERS = {
    "status": "status",
    "resume": "resume",
    "verdict": "verdict",
    "confidence": "confidence",
    "first_train_loss": "first_loss",
    "final_train_loss": "final_loss",
    "best_eval_loss": "best_eval",
    "best_eval_step": "best_step",
    "steps": "steps",
    "duration_s": "duration_s",
    "next_override": "next",
    "error": "why",
}
CONSOLE_ERROR_CHARS = 70


def differing_params(records: Sequence[RunRecord]) -> list[str]:
    """The params whose values are not the same in every record, in first-seen order (for one
    record: the headline ones)."""
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record.params if k not in keys)
    if len(records) < 2:
        return [k for k in HEADLINE_PARAMS if k in keys]
    return [k for k in keys if len({repr(r.params.get(k)) for r in records}) > 1]


def param_column(name: str) -> str:
    """A param's column name (prefixed only if it would clash with a fixed column)."""
    return f"param.{name}" if name in ("job", *COLUMNS) else name


def param_value(value: Any) -> Any:
    """A param as a table cell: lists joined, dicts as JSON, the rest as is."""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def console_why(why: str, limit: int = CONSOLE_ERROR_CHARS) -> str:
    """A why cut to fit the console's table; swift's frame at the end, "(in swift/x.py: f)", is
    kept whole and the exception's message shortened instead (its type always stays)."""
    if len(why) <= limit:
        return why
    head, sep, frame = why.rpartition(" (in swift/")
    if not sep or not frame.endswith(")"):
        return why[: limit - 3] + "..."
    frame = sep + frame
    kind = head.split(":", 1)[0]
    room = max(limit - len(frame), len(kind) + 3)
    return (head if len(head) <= room else head[: room - 3] + "...") + frame


def why_line(record: RunRecord) -> str | None:
    """One line saying why a run did not complete: swift's own error (the exception), else the
    first line of the record's error (a signal, a watchdog stop, a config error)."""
    if record.status == "completed":
        return None
    if record.error_line:
        return record.error_line
    lines = [line.strip() for line in (record.error or "").splitlines() if line.strip()]
    return lines[0] if lines else None


def summary_rows(
    records: Sequence[RunRecord], diagnoses: Sequence[Mapping[str, Any] | None] | None = None
) -> list[dict[str, Any]]:
    """One row per job: `job`, its differing params, then COLUMNS; raw values at full precision.
    diagnoses: one per record to use instead of the record's own (the report's provisional
    diagnosis of a job still running); None = the records' own."""
    params = differing_params(records)
    chosen = diagnoses if diagnoses is not None else [None] * len(records)
    rows = []
    for record, given in zip(records, chosen, strict=True):
        diagnosis = given if given is not None else (record.diagnosis or {})
        figures = diagnosis.get("figures") or {}
        nxt = diagnosis.get("next") or {}
        row: dict[str, Any] = {
            "job": record.job_num if record.job_num is not None else Path(record.job_dir).name
        }
        row.update({param_column(k): param_value(record.params.get(k)) for k in params})
        row.update(
            status=record.status,
            resume=decision_text(record.resume) if record.resume else None,
            stopped_by=record.stopped_by,
            verdict=record.verdict or diagnosis.get("verdict"),
            confidence=diagnosis.get("confidence"),
            first_train_loss=figures.get("first_train_loss"),
            min_train_loss=figures.get("min_train_loss"),
            final_train_loss=figures.get("final_train_loss"),
            best_eval_loss=figures.get("best_eval_loss"),
            best_eval_step=figures.get("best_eval_step"),
            steps=figures.get("steps"),
            duration_s=record.duration_s,
            exit_code=record.exit_code,
            best_checkpoint=record.best_checkpoint or figures.get("best_checkpoint"),
            next_override=nxt.get("override"),
            next_step=nxt.get("text"),
            error=why_line(record),
            job_dir=record.job_dir,
            run_dir=record.run_dir,
        )
        rows.append(row)
    return rows


def summary_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The table as CSV text, every column."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The console's view: job, params, then CONSOLE_HEADERS' columns (`why` and `resume` only when
    some run has one), numbers rounded; a stop's cause beside the status ("failed (watchdog)")."""
    from tabulate import tabulate

    fixed = set(COLUMNS) | {"job"}
    shown = []
    sometimes = {column for column in ("error", "resume") if any(row.get(column) for row in rows)}
    for row in rows:
        cells = {k: v for k, v in row.items() if k not in fixed or k == "job"}
        for column, header in CONSOLE_HEADERS.items():
            if column in ("error", "resume") and column not in sometimes:
                continue
            value = row.get(column)
            if column == "status" and row.get("stopped_by"):
                value = f"{value} ({row['stopped_by']})"
            if column == "error" and value:
                value = console_why(value)
            cells[header] = value
        shown.append({k: ("" if v is None else v) for k, v in cells.items()})
    return tabulate(shown, headers="keys", tablefmt="pipe", floatfmt=".4g")
