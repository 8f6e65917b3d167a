"""The record of one job: `run.json` in its Hydra job folder. Everything downstream
(the end-of-sweep table, the diagnosis, the HTML report) reads runs through it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swiftops.atomic_write import write_text_atomically
from swiftops.runfolder import natural_key

RECORD_NAME = "run.json"

# status of a job as a whole
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
STATUSES = (RUNNING, COMPLETED, FAILED, INTERRUPTED)
# not a job's status: what the table and the report show for a run.json that can't be read
UNREADABLE = "unreadable"


class RecordError(ValueError):
    """A run.json that parses but holds no record (a list, a number, a record's fields missing)."""


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
    error_line: str | None = None  # swift's own error, e.g. "ValueError: remaining_argv: [...]"
    log_path: str | None = None
    sweep_dir: str | None = None  # the multirun folder (None for single runs)
    job_num: int | None = None
    verdict: str | None = None  # failed | underfit | overfit | converged (see swiftops.diagnosis)
    diagnosis: dict[str, Any] | None = None  # confidence, reasons, figures, next
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # sft/infer/export: status, paths, scores
    stopped_by: str | None = None  # "watchdog" when the live watchdog stopped a doomed run early
    lineage: dict[str, Any] | None = None  # autotune: parent job, the change applied and why
    resume: dict[str, Any] | None = None  # resume=true: what was done with the job (kept, re-run, resumed)
    config: dict[str, Any] | None = None  # the job's resolved config as asked (resume=true compares it)

    @property
    def early_stop_on(self) -> bool:
        """Whether its `swift sft` command turned ms-swift's early stop on (--early_stop_interval N,
        N >= 1), however it got there (early_stop=true or +args.early_stop_interval=N)."""
        argv = list(self.argv)
        if "--early_stop_interval" not in argv:
            return False
        i = argv.index("--early_stop_interval")
        value = argv[i + 1] if i + 1 < len(argv) else ""
        return value.isdigit() and int(value) >= 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_record(record: RunRecord, job_dir: str | Path | None = None) -> Path:
    """Write run.json atomically (a killed orchestrator never leaves half a record).

    Raises:
        OSError: the record could not be written (a full disk, a read-only folder); the previous
            run.json, if any, is left as it was, and no half-written temporary file stays behind.
    """
    path = Path(job_dir or record.job_dir) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(path, json.dumps(record.to_dict(), indent=2, default=str) + "\n")


# the fields every reader of a record relies on, with their types (None allowed or not)
_REQUIRED = {"status": str, "job_dir": str, "argv": list}
_TYPED = {
    "params": (dict, False),
    "overrides": (list, False),
    "stages": (dict, False),
    "diagnosis": (dict, True),
    "lineage": (dict, True),
}


def read_record(path: str | Path) -> RunRecord:
    """Read run.json, given the file or the job folder holding it.

    Raises:
        OSError: it can't be read.
        ValueError: it is not a record: bytes that are not UTF-8, text that is not JSON (an empty
            or truncated file), or RecordError for JSON that is not a record.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RecordError(f"{path}: holds a JSON {type(data).__name__}, not a record")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise RecordError(f"{path}: {key!r} is missing or not a {kind.__name__}")
    for key, (kind, nullable) in _TYPED.items():
        if key in data and not isinstance(data[key], kind) and not (nullable and data[key] is None):
            raise RecordError(f"{path}: {key!r} is not a {kind.__name__}")
    return RunRecord.from_dict(data)


def unreadable_record(path: str | Path, error: Exception) -> RunRecord:
    """A stand-in for a run.json that can't be read, so the table and report still show the job."""
    path = Path(path)
    job_dir = path.parent if path.name == RECORD_NAME else path
    return RunRecord(
        status=UNREADABLE,
        job_dir=str(job_dir),
        argv=[],
        error=f"{path} could not be read: {type(error).__name__}: {error}",
        job_num=int(job_dir.name) if job_dir.name.isdigit() else None,
    )


def find_records(root: str | Path) -> list[Path]:
    """Every run.json under root (itself included), in job order: numeric folder names
    sort as numbers, so job 10 comes after job 9."""
    root = Path(root)
    return sorted(root.rglob(RECORD_NAME), key=lambda p: natural_key(p.relative_to(root)))


def json_safe(value: Any) -> Any:
    """value as plain JSON: NaN and inf become None (JSON has neither), numpy numbers plain
    numbers, tuples lists, keys strings, anything else its str()."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars, without numpy
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
