"""A training run's folder on disk, read in one place: which folders are runs (ms-swift's
`vN-timestamp`, or any HF-Trainer output folder), in which order, which earlier runs a resumed
run continues, its checkpoints (best, last, by step), the lines of its `logging.jsonl`, its
`args.json` and swift's end-of-run summary line. Standard library only: the curve reader, the
stages, the watchdog, the progress line and the report all read runs through here.

    <output_dir>/v<N>-<YYYYmmdd-HHMMSS>/
      args.json  logging.jsonl  runs/events.out.tfevents.*  trainer_state.json?
      checkpoint-<step>/ {adapter_config.json, trainer_state.json, ...}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

JSONL_NAME = "logging.jsonl"
LLAMA_FACTORY_LOG = "trainer_log.jsonl"  # LLaMA-Factory's: current_steps, total_steps, loss, ...
TRAINER_STATE = "trainer_state.json"
ARGS_NAME = "args.json"
EVENTS_GLOB = "events.out.tfevents*"
RUN_NAME = re.compile(r"^v(\d+)-\d{8}-\d{6}$")  # ms-swift's vN-YYYYmmdd-HHMMSS
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")  # not checkpoint-N-merged, not last-checkpoint


class NoRunFound(Exception):
    """A path that does not exist or holds no run folder; the message names the path."""


def natural_key(path: str | os.PathLike) -> list[tuple[int, int, str]]:
    """Sort key putting job 10 after job 9 and v10 after v9."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(path)) if t]


# ---------------------------------------------------------------------------------------------
# which folders are runs


def run_version(path: Path) -> int:
    """N of a vN-timestamp folder; -1 for any other name."""
    match = RUN_NAME.match(path.name)
    return int(match.group(1)) if match else -1


def event_files(run_dir: Path) -> list[Path]:
    """The run's TensorBoard event files: under runs/ (ms-swift, HF), then beside it."""
    runs = run_dir / "runs"
    found = sorted(runs.rglob(EVENTS_GLOB)) if runs.is_dir() else []
    return found + sorted(run_dir.glob(EVENTS_GLOB))


def is_run_dir(path: Path) -> bool:
    """A folder one training run wrote its logs into (ms-swift's vN-timestamp folder, an
    output_dir written with --add_version false, or any HF-Trainer output folder)."""
    if not path.is_dir():
        return False
    if any((path / name).is_file() for name in (JSONL_NAME, LLAMA_FACTORY_LOG, TRAINER_STATE)):
        return True
    if event_files(path) or any((c / TRAINER_STATE).is_file() for c in checkpoints(path)):
        return True
    # swift creates vN-ts/ with args.json before the first step: a run that died early is still a run
    return (run_version(path) >= 0 or bool(checkpoints(path))) and (path / ARGS_NAME).is_file()


def find_run_dirs(path: str | os.PathLike) -> list[Path]:
    """Every run folder under path (itself included), in natural order. Path may be a run
    folder, the output folder holding vN-* runs, a Hydra job folder (run.json + output/vN-*),
    a whole sweep, or a file inside a run.

    Raises:
        NoRunFound: path does not exist or holds no run.
    """
    root = Path(path).absolute()  # absolute: the paths end up in overrides run from elsewhere
    if not root.exists():
        raise NoRunFound(f"{path}: no such file or folder")
    if root.is_file():
        root = root.parent.parent if root.parent.name == "runs" else root.parent
    found: list[Path] = []
    for current, dirs, _files in os.walk(root, followlinks=False):
        here = Path(current)
        if is_run_dir(here):
            found.append(here)
            dirs[:] = []  # checkpoint-*/ and runs/ belong to this run
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".") and not CHECKPOINT_NAME.match(d)]
    if not found:
        raise NoRunFound(
            f"{root}: holds no run (no logging.jsonl, runs/events.out.tfevents.*, or trainer_state.json)"
        )
    return sorted(found, key=natural_key)


def versioned_runs(output_dir: Path) -> list[Path]:
    """The vN-timestamp folders swift wrote into output_dir, oldest (lowest N) first."""
    if not output_dir.is_dir():
        return []
    runs = [p for p in output_dir.iterdir() if p.is_dir() and run_version(p) >= 0]
    return sorted(runs, key=lambda p: (run_version(p), p.name))


def newest_run_dir(output_dir: Path) -> Path | None:
    """The vN-timestamp folder swift wrote last into output_dir (highest N)."""
    runs = versioned_runs(output_dir)
    return runs[-1] if runs else None


def live_log(output_dir: Path) -> Path | None:
    """The logging.jsonl a run training into output_dir writes: its newest vN-timestamp run's, or
    output_dir's own (--add_version false); None before swift created it."""
    run_dir = newest_run_dir(output_dir) or output_dir
    path = run_dir / JSONL_NAME
    return path if path.is_file() else None


def newest_of(run_dirs: list[Path]) -> Path:
    """The latest of sibling run folders: highest N, then name."""
    return max(run_dirs, key=lambda p: (run_version(p), p.name))


def resumed_from(run_dir: Path) -> Path | None:
    """The earlier run folder this run continues (swift's --resume_from_checkpoint into a
    checkpoint of it), found beside run_dir when the folders were moved since; None otherwise."""
    recorded = read_args(run_dir).get("resume_from_checkpoint")
    if not isinstance(recorded, str) or not recorded:
        return None
    checkpoint = Path(recorded)
    for candidate in (checkpoint.parent, run_dir.parent / checkpoint.parent.name):
        if candidate.is_dir() and candidate.resolve() != run_dir.resolve() and is_run_dir(candidate):
            return candidate
    return None


def run_chain(run_dir: Path) -> list[Path]:
    """run_dir with the runs it resumed, oldest first: the parts of one training run."""
    chain = [run_dir]
    seen = {run_dir.resolve()}
    while (earlier := resumed_from(chain[0])) is not None and earlier.resolve() not in seen:
        seen.add(earlier.resolve())
        chain.insert(0, earlier)
    return chain


# ---------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_step(path: str | Path) -> int:
    """N of checkpoint-N; -1 for any other name."""
    match = CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else -1


def checkpoints(run_dir: Path | None) -> list[Path]:
    """The checkpoint-N folders of a run, by step (merged exports `checkpoint-N-merged` and the
    `last-checkpoint` link are not checkpoints of their own)."""
    if run_dir is None or not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and CHECKPOINT_NAME.match(p.name)]
    return sorted(found, key=checkpoint_step)


def saved_checkpoints(run_dir: Path | None) -> list[Path]:
    """The checkpoints that were saved whole, by step: those holding trainer_state.json, which
    the trainer writes last. A checkpoint cut off mid-save (a run stopped while saving) has none,
    and swift could not continue from it."""
    return [c for c in checkpoints(run_dir) if (c / TRAINER_STATE).is_file()]


def last_resumable_checkpoint(output_dir: Path) -> str | None:
    """The last whole checkpoint of the newest run under output_dir that saved one (what
    resume=true continues from)."""
    for run_dir in reversed(versioned_runs(output_dir)):
        saved = saved_checkpoints(run_dir)
        if saved:
            return str(saved[-1])
    return None


def relocate(recorded: str | None, run_dir: Path | None) -> Path | None:
    """A checkpoint path as recorded, or the folder of the same name in run_dir when the run
    was moved or copied since (swift records absolute paths); None when neither exists."""
    if not isinstance(recorded, str) or not recorded:
        return None  # a log line holding a number, a list, ... where a path belongs
    path = Path(recorded)
    for candidate in (path, run_dir / path.name if run_dir is not None else None):
        with contextlib.suppress(OSError, ValueError):  # a name too long, a NUL byte
            if candidate is not None and candidate.is_dir():
                return candidate
    return None


def last_checkpoint(run_dir: Path | None) -> Path | None:
    """swift's last_model_checkpoint, else the highest checkpoint-N."""
    if run_dir is None:
        return None
    found = checkpoints(run_dir)
    return relocate(summary_line(run_dir).get("last_model_checkpoint"), run_dir) or (
        found[-1] if found else None
    )


def best_checkpoint(run_dir: Path | None) -> Path | None:
    """The lowest-eval-loss checkpoint: swift's summary line, else the newest checkpoint's
    trainer_state.json (a killed run has no summary), else the lowest eval loss logged at a step
    that has a checkpoint. None when no eval ran, or every eval loss was NaN."""
    if run_dir is None:
        return None
    best = relocate(summary_line(run_dir).get("best_model_checkpoint"), run_dir)
    if best:
        return best
    found = checkpoints(run_dir)
    for ckpt in reversed(found):
        if (ckpt / TRAINER_STATE).is_file():
            best = relocate(read_json(ckpt / TRAINER_STATE).get("best_model_checkpoint"), run_dir)
            if best:
                return best
            break
    losses = eval_losses(run_dir)
    saved = [c for c in found if checkpoint_step(c) in losses]
    return min(saved, key=lambda c: (losses[checkpoint_step(c)], checkpoint_step(c))) if saved else None


def recorded_checkpoint(recorded: str | None, run_dir: Path) -> str | None:
    """A checkpoint path as the logs name it, moved into run_dir when the run folder was moved
    since; as logged when it exists nowhere (the curves still say what swift wrote)."""
    if not isinstance(recorded, str) or not recorded:
        return None
    here = relocate(recorded, run_dir)
    return str(here) if here else recorded


# ---------------------------------------------------------------------------------------------
# the checkpoint a stage uses: ckpt=best|last|PATH


class CheckpointError(ValueError):
    """No checkpoint can be chosen. The message names the run and what it holds."""


class RecordedRun(Protocol):
    """What the checkpoint choice reads of a run's record (swiftops.record.RunRecord)."""

    job_dir: str
    output_dir: str | None
    run_dir: str | None
    best_checkpoint: str | None
    last_checkpoint: str | None


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint a stage uses, and why that one."""

    path: Path
    rule: str  # best | last | path
    note: str  # e.g. "lowest eval loss", "no eval loss: fell back to the last checkpoint"


def record_run_dir(record: RecordedRun) -> Path | None:
    """The record's swift run folder: run_dir, else the newest vN-* under its output_dir."""
    if record.run_dir and Path(record.run_dir).is_dir():
        return Path(record.run_dir)
    if record.output_dir and Path(record.output_dir).is_dir():
        return newest_run_dir(Path(record.output_dir))
    return None


def folder_listing(path: Path | None, limit: int = 12) -> str:
    if path is None or not path.is_dir():
        return "nothing (the folder does not exist)"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "nothing (empty)"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def choose_checkpoint(record: RecordedRun, ckpt: str) -> CheckpointChoice:
    """`ckpt=best|last|PATH` -> the checkpoint folder, with the rule that picked it.

    best: the lowest eval loss (the record's best_checkpoint, else read from the run folder),
    falling back to last when no eval ran or every eval loss was NaN. last: the record's
    last_checkpoint, else the highest checkpoint-N. Anything else is a path, taken as it is.

    Raises:
        CheckpointError: the path does not exist, or the run has no checkpoint-N folder.
    """
    ckpt = str(ckpt)
    if ckpt not in ("best", "last"):
        path = Path(os.path.expanduser(ckpt))
        if not path.is_dir():
            raise CheckpointError(f"ckpt={ckpt}: no such checkpoint folder; use best, last or a folder")
        return CheckpointChoice(path.resolve(), "path", "given")
    run_dir = record_run_dir(record)
    found = checkpoints(run_dir)
    if not found:
        where = run_dir or record.output_dir or record.job_dir
        raise CheckpointError(
            f"ckpt={ckpt}: the run {where} has no checkpoints (no checkpoint-N folder); it holds: "
            f"{folder_listing(Path(where) if where else None)}. Checkpoints are saved every save_steps "
            "(= eval_steps here): train for at least that many steps, or give ckpt=PATH"
        )
    if ckpt == "best":
        best = relocate(record.best_checkpoint, run_dir) or best_checkpoint(run_dir)
        if best is not None:
            return CheckpointChoice(best.resolve(), "best", "lowest eval loss")
    last = relocate(record.last_checkpoint, run_dir) or found[-1]
    note = "no eval loss: fell back to the last checkpoint" if ckpt == "best" else "last saved"
    return CheckpointChoice(last.resolve(), "last", note)


def resolve_checkpoint(record: RecordedRun, ckpt: str) -> Path:
    """`ckpt=best|last|PATH` -> the checkpoint folder (see choose_checkpoint)."""
    return choose_checkpoint(record, ckpt).path


# ---------------------------------------------------------------------------------------------
# logging.jsonl, args.json, trainer_state.json


@dataclass
class LogLines:
    """The JSON objects of a JSON-lines log, in order, and what was odd about the file."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cut: bool = False  # the last line is incomplete (a run killed, or still writing)


def parse_lines(data: bytes, name: str, *, live: bool = False) -> LogLines:
    """Every JSON object line of a log's bytes. Invalid UTF-8 is replaced, bare NaN/Infinity are
    read (Python's json accepts them), lines that are no JSON object are skipped with one warning;
    a cut last line is skipped with a warning, or silently when live (it is still being written)."""
    out = LogLines()
    lines = data.decode("utf-8", errors="replace").splitlines()
    skipped = 0
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError, and a number too large for float()
            if number == len(lines) - 1 and not data.endswith(b"\n"):
                out.cut = True
                if not live:
                    out.warnings.append(f"{name}: the last line is cut short (a run killed while writing?)")
            else:
                skipped += 1
            continue
        except RecursionError:  # a line of thousands of nested brackets
            skipped += 1
            continue
        if isinstance(row, dict):
            out.rows.append(row)
        else:
            skipped += 1
    if skipped:
        out.warnings.append(f"{name}: {skipped} line(s) are not JSON objects and were skipped")
    return out


def read_lines(path: Path, *, live: bool = False, tail_bytes: int | None = None) -> LogLines:
    """A JSON-lines log (logging.jsonl, trainer_log.jsonl, swift infer's result.jsonl); see
    parse_lines. tail_bytes: read only the end of the file (its whole lines)."""
    try:
        with open(path, "rb") as f:
            if tail_bytes is not None:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - tail_bytes))
                data = f.read()
                if size > tail_bytes:
                    data = data[data.find(b"\n") + 1 :]  # the first line read is a partial one
            else:
                data = f.read()
    except FileNotFoundError:
        return LogLines()
    except OSError as exc:
        return LogLines(warnings=[f"{path}: could not be read ({exc})"])
    return parse_lines(data, path.name, live=live)


class LineFollower:
    """The new whole lines of a growing log, read from where the last call stopped (a live run's
    logging.jsonl: the progress line reads only what was appended)."""

    MAX_READ = 4 * 1024 * 1024  # bytes read per call; a longer stretch without a line end is skipped

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def new_rows(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(self.MAX_READ)
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) == self.MAX_READ:  # no line end in sight: garbage, not a line being written
                self.offset += len(chunk)
            return []
        self.offset += end + 1  # a half-written last line is read next time
        return parse_lines(chunk[: end + 1], self.path.name, live=True).rows


MAX_STEP = 2**53  # a larger "step" is a corrupt line, not a run (steps are int64, losses float64)


def _step_number(value: Any) -> int | None:
    """A step count as logged: an int, or ASCII digits ("12"); None for anything else."""
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isascii() and value.isdigit() and len(value) < 17 else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STEP:
        return value
    return None


def step_of(row: dict[str, Any]) -> int | None:
    """The global step a log line belongs to: ms-swift's "global_step/max_steps" ("12/300"),
    LLaMA-Factory's current_steps, or HF's step / global_step."""
    progress = row.get("global_step/max_steps")
    if isinstance(progress, str):
        return _step_number(progress.partition("/")[0])
    for key in ("current_steps", "step", "global_step"):
        if key in row:
            return _step_number(row[key])
    return None


def planned_steps(row: dict[str, Any]) -> int | None:
    """The run's planned number of steps, when the line says ("12/300" -> 300)."""
    progress = row.get("global_step/max_steps")
    planned = progress.partition("/")[2] if isinstance(progress, str) and "/" in progress else None
    planned = planned if planned is not None else row.get("total_steps")
    steps = _step_number(planned)
    return steps if steps else None


def is_summary(row: dict[str, Any]) -> bool:
    """swift's end-of-run line: it names the checkpoints."""
    return "best_model_checkpoint" in row or "last_model_checkpoint" in row


def summary_line(run_dir: Path) -> dict[str, Any]:
    """swift's end-of-run summary (the last line naming checkpoints); {} for a run killed before
    writing it. Read from the log's end: a long run's log is large."""
    rows = read_lines(run_dir / JSONL_NAME, tail_bytes=256 * 1024).rows
    return next((row for row in reversed(rows) if is_summary(row)), {})


def eval_losses(run_dir: Path) -> dict[int, float]:
    """step -> finite eval loss, from logging.jsonl's eval lines."""
    losses = {}
    for row in read_lines(run_dir / JSONL_NAME).rows:
        loss, step = row.get("eval_loss"), step_of(row)
        finite = isinstance(loss, int | float) and not isinstance(loss, bool) and math.isfinite(loss)
        if finite and step is not None:
            losses[step] = float(loss)
    return losses


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file ({} when missing, unreadable or not an object)."""
    with contextlib.suppress(OSError, ValueError, RecursionError):
        value = json.loads(path.read_bytes().decode("utf-8", errors="replace"))
        if isinstance(value, dict):
            return value
    return {}


def read_args(run_dir: Path) -> dict[str, Any]:
    """The run's args.json: every argument swift ran with ({} when absent)."""
    return read_json(run_dir / ARGS_NAME)


def trainer_state_path(run_dir: Path) -> Path | None:
    """The top-level trainer_state.json, else the latest checkpoint's (whose log_history is
    the longest)."""
    top = run_dir / TRAINER_STATE
    if top.is_file():
        return top
    saved = saved_checkpoints(run_dir)
    return saved[-1] / TRAINER_STATE if saved else None
