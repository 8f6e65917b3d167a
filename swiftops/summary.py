"""records -> the end-of-sweep comparison table: CSV and markdown.

csv and tabulate rather than pandas: this runs at the end of every single run, where importing
pandas cost 0.3 s of the orchestrator's ~0.8 s (benchmarks/overhead.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swiftops.record import RunRecord

# params always shown for a single run; for a sweep, only those that differ between jobs
HEADLINE_PARAMS = ("lr", "lora_rank", "epochs")


def differing_params(records: Sequence[RunRecord]) -> list[str]:
    """The params whose values are not the same in every record, in first-seen order."""
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record.params if k not in keys)
    if len(records) < 2:
        return [k for k in HEADLINE_PARAMS if k in keys]
    return [k for k in keys if len({repr(r.params.get(k)) for r in records}) > 1]


def _figure(record: RunRecord, name: str) -> Any:
    figures = (record.diagnosis or {}).get("figures") or {}
    return figures.get(name)


def summary_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per job: its differing params, status, verdict, losses and next step."""
    params = differing_params(records)
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "job": record.job_num if record.job_num is not None else Path(record.job_dir).name
        }
        row.update({k: _cell(record.params.get(k)) for k in params})
        nxt = (record.diagnosis or {}).get("next") or {}
        row.update(
            status=f"{record.status} ({record.stopped_by})" if record.stopped_by else record.status,
            verdict=record.verdict,
            confidence=(record.diagnosis or {}).get("confidence"),
            first_loss=_figure(record, "first_train_loss"),
            final_loss=_figure(record, "final_train_loss"),
            best_eval=_figure(record, "best_eval_loss"),
            best_step=_figure(record, "best_eval_step"),
            steps=_figure(record, "steps"),
            duration_s=record.duration_s,
            next=nxt.get("override"),
            job_dir=record.job_dir,
        )
        rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return value


def summary_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The table as CSV text, every column (job folders included)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The console form: without the job folders (they go in the CSV), numbers rounded."""
    from tabulate import tabulate

    shown = [{k: ("" if v is None else v) for k, v in row.items() if k != "job_dir"} for row in rows]
    return tabulate(shown, headers="keys", tablefmt="pipe", floatfmt=".4g")
