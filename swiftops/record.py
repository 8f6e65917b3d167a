"""The record of one job: `run.json` in its Hydra job folder. Everything downstream
(the end-of-sweep table, the diagnosis, the HTML report) reads runs through it."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORD_NAME = "run.json"

# status of a job as a whole
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
STATUSES = (RUNNING, COMPLETED, FAILED, INTERRUPTED)


@dataclass
class RunRecord:
    """What one job did. Paths are absolute strings so the record can be read from anywhere."""

    status: str  # running | completed | failed | interrupted
    job_dir: str  # the Hydra job folder holding run.json, command.sh and swift.log
    argv: list[str]  # the exact `swift sft ...` command, argv[0] first
    overrides: list[str] = field(default_factory=list)  # Hydra overrides of this job, as typed
    params: dict[str, Any] = field(default_factory=dict)  # the job's knobs (lr, lora_rank, epochs, ...)
    exit_code: int | None = None
    output_dir: str | None = None  # --output_dir given to swift
    run_dir: str | None = None  # the vN-timestamp folder swift wrote
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    started: str | None = None  # ISO 8601, local time with offset
    duration_s: float | None = None
    error: str | None = None  # tail of swift.log when the job failed
    log_path: str | None = None
    sweep_dir: str | None = None  # the multirun folder (None for single runs)
    job_num: int | None = None
    verdict: str | None = None  # failed | underfit | overfit | converged (see swiftops.diagnosis)
    diagnosis: dict[str, Any] | None = None  # confidence, reasons, figures, next
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # sft/infer/export: status, paths, scores
    stopped_by: str | None = None  # "watchdog" when the live watchdog stopped a doomed run early
    lineage: dict[str, Any] | None = None  # autotune: parent job, the change applied and why

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_record(record: RunRecord, job_dir: str | Path | None = None) -> Path:
    """Write run.json atomically (a killed orchestrator never leaves half a record)."""
    path = Path(job_dir or record.job_dir) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_record(path: str | Path) -> RunRecord:
    """Read run.json, given the file or the job folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    return RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))


def find_records(root: str | Path) -> list[Path]:
    """Every run.json under root (itself included), in job order: numeric folder names
    sort as numbers, so job 10 comes after job 9."""

    def key(p: Path) -> list[Any]:
        return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in p.relative_to(root).parts]

    root = Path(root)
    return sorted(root.rglob(RECORD_NAME), key=key)
