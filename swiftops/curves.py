"""Run folder -> every scalar curve it logged (pure reading; numpy only at import).

Sources, best first: TensorBoard event files under `runs/` (all of them merged, every point
kept; decoded by swiftops.tfevents, a 200k-step run in about a second, see
benchmarks/read_curves.py), ms-swift's `logging.jsonl`, an HF `trainer_state.json` (`log_history`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swiftops.tfevents import EventPoints, parse_event_bytes

TRAIN_LOSS = "train/loss"
EVAL_LOSS = "eval/loss"
GRAD_NORM = "train/grad_norm"
LEARNING_RATE = "train/learning_rate"
EPOCH = "train/epoch"

EVENTS_GLOB = "events.out.tfevents*"
JSONL_NAME = "logging.jsonl"
LLAMA_FACTORY_LOG = (
    "trainer_log.jsonl"  # LLaMA-Factory's log: current_steps, total_steps, loss, eval_loss, lr
)
TRAINER_STATE = "trainer_state.json"
RUN_NAME = re.compile(r"^v(\d+)-\d{8}-\d{6}$")  # ms-swift's vN-YYYYmmdd-HHMMSS
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True, eq=False)
class Series:
    """One scalar tag: steps strictly increasing, values as logged (NaN and inf kept)."""

    steps: np.ndarray  # int64
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def last_step(self) -> int | None:
        return int(self.steps[-1]) if len(self.steps) else None


@dataclass
class Curves:
    """Every scalar series of one run, with where they came from and what was odd about them."""

    run_dir: Path | None
    scalars: dict[str, Series]  # tag -> series ("train/loss", "eval/loss", "train/grad_norm", ...)
    best_checkpoint: str | None
    last_checkpoint: str | None
    source: str  # "tensorboard" | "logging.jsonl" | "trainer_state.json" | "none"
    warnings: list[str] = field(default_factory=list)
    max_steps: int | None = None  # the planned number of steps, when the logs say (partial curves)

    @property
    def train_loss(self) -> Series | None:
        return self.scalars.get(TRAIN_LOSS)

    @property
    def eval_loss(self) -> Series | None:
        return self.scalars.get(EVAL_LOSS)


class NoRunFound(Exception):
    """A path that does not exist or holds no run folder; the message names the path."""


# ---------------------------------------------------------------------------------------------
# finding run folders


def is_run_dir(path: Path) -> bool:
    """A folder one training run wrote its logs into (ms-swift's vN-timestamp folder, or any
    HF-Trainer output folder)."""
    if not path.is_dir():
        return False
    if any((path / name).is_file() for name in (JSONL_NAME, LLAMA_FACTORY_LOG, TRAINER_STATE)):
        return True
    if _event_files(path):
        return True
    if any((c / TRAINER_STATE).is_file() for c in path.glob("checkpoint-*")):
        return True
    # swift creates vN-ts/ with args.json before the first step: a run that died early is still a run
    return bool(RUN_NAME.match(path.name)) and (path / "args.json").is_file()


def find_run_dirs(path: str | os.PathLike) -> list[Path]:
    """Every run folder under path (itself included), in natural order (job 10 after job 9,
    v10 after v9). Path may be a run folder, the output folder holding vN-* runs, a Hydra job
    folder (run.json + output/vN-*) or a whole sweep.

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


def newest_run(run_dirs: list[Path]) -> Path:
    """The latest of sibling vN-* folders: highest N, then name."""

    def key(p: Path) -> tuple[int, str]:
        m = RUN_NAME.match(p.name)
        return (int(m.group(1)) if m else -1, p.name)

    return max(run_dirs, key=key)


def natural_key(p: Path) -> list[tuple[int, int, str]]:
    """Sort key putting job 10 after job 9 and v10 after v9."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(p)) if t]


# ---------------------------------------------------------------------------------------------
# reading one run


def read_curves(path: str | os.PathLike) -> Curves:
    """Read every scalar of one run. Path is a run folder or a folder holding one run (a Hydra
    job folder, an output folder: with several vN-* runs side by side, the newest is read).

    Raises:
        NoRunFound: no run under path.
        ValueError: path holds several unrelated runs (a sweep): read them one by one.
    """
    runs = find_run_dirs(path)
    if len(runs) > 1:
        if len({r.parent for r in runs}) > 1:
            names = ", ".join(str(r) for r in runs[:3])
            raise ValueError(f"{path} holds {len(runs)} runs ({names}, ...): read them one at a time")
        runs = [newest_run(runs)]
    return read_run_dir(runs[0])


def read_run_dir(run_dir: Path) -> Curves:
    """Read one run folder (no search)."""
    run_dir = Path(run_dir)
    warnings: list[str] = []
    events = _event_files(run_dir)
    scalars: dict[str, Series] = {}
    source = "none"
    if events:
        scalars, event_warnings = read_event_files(events)
        warnings += event_warnings
        if scalars:
            source = "tensorboard"

    jsonl = run_dir / JSONL_NAME
    if not jsonl.is_file() and (run_dir / LLAMA_FACTORY_LOG).is_file():
        jsonl = run_dir / LLAMA_FACTORY_LOG
    log: _LogInfo | None = None
    if jsonl.is_file():
        # With event files present, only the tail is needed (checkpoints, max_steps, last step).
        log = _read_jsonl(jsonl, full=TRAIN_LOSS not in scalars)
        warnings += log.warnings
        if TRAIN_LOSS not in scalars and log.scalars:
            if scalars:
                warnings.append(f"the event files hold no {TRAIN_LOSS}: curves read from {jsonl.name}")
            scalars = {**scalars, **log.scalars}
            source = jsonl.name
        elif TRAIN_LOSS in scalars and log.last_train_step is not None:
            tb_last = int(scalars[TRAIN_LOSS].steps[-1])
            if log.last_train_step > tb_last:
                warnings.append(
                    f"the event files stop at step {tb_last} but {JSONL_NAME} goes on to step "
                    f"{log.last_train_step}: the event files may be cut short"
                )

    state_path = _trainer_state_path(run_dir)
    state: _LogInfo | None = None
    if state_path is not None:
        state = _read_trainer_state(state_path, full=TRAIN_LOSS not in scalars)
        warnings += state.warnings
        if TRAIN_LOSS not in scalars and state.scalars:
            scalars = {**scalars, **state.scalars}
            source = TRAINER_STATE

    if not scalars:
        warnings.append(f"{run_dir}: no scalar was logged (no event files, {JSONL_NAME} or {TRAINER_STATE})")
    scalars, nan_warning = restore_nan_loss(scalars)
    if nan_warning:
        warnings.append(nan_warning)

    best = (log and log.best_checkpoint) or (state and state.best_checkpoint)
    last = (log and log.last_checkpoint) or _last_checkpoint_dir(run_dir)
    max_steps = (log and log.max_steps) or (state and state.max_steps)
    return Curves(
        run_dir=run_dir,
        scalars=scalars,
        best_checkpoint=_local_path(best, run_dir),
        last_checkpoint=_local_path(last, run_dir),
        source=source,
        warnings=warnings,
        max_steps=max_steps or None,
    )


def read_live_curves(run_dir: str | os.PathLike) -> Curves:
    """The curves of a run still training, from its logging.jsonl alone: swift writes that a line
    per log, while its event files reach the disk when TensorBoard flushes them. A half-written last
    line is left for the next reading; a NaN logged as 0.0 is read as NaN, as read_run_dir does.
    Checkpoints are not looked for (the run is not done saving them)."""
    run_dir = Path(run_dir)
    log = _read_jsonl(run_dir / JSONL_NAME, full=True, live=True)
    scalars, nan_warning = restore_nan_loss(log.scalars)
    return Curves(
        run_dir=run_dir,
        scalars=scalars,
        best_checkpoint=None,
        last_checkpoint=None,
        source=JSONL_NAME,
        warnings=log.warnings + ([nan_warning] if nan_warning else []),
        max_steps=log.max_steps,
    )


def restore_nan_loss(scalars: dict[str, Series]) -> tuple[dict[str, Series], str | None]:
    """ms-swift logs a NaN loss as 0.0 (logging_nan_inf_filter) while grad_norm still shows
    NaN: read such a loss as NaN again."""
    loss, grad = scalars.get(TRAIN_LOSS), scalars.get(GRAD_NORM)
    if loss is None or grad is None:
        return scalars, None
    _, li, gi = np.intersect1d(loss.steps, grad.steps, assume_unique=True, return_indices=True)
    hit = li[(loss.values[li] == 0.0) & ~np.isfinite(grad.values[gi])]
    if not len(hit):
        return scalars, None
    values = loss.values.copy()
    values[hit] = np.nan
    steps = loss.steps[hit]
    shown = ", ".join(str(int(s)) for s in steps[:5]) + (", ..." if len(steps) > 5 else "")
    note = (
        f"{TRAIN_LOSS} was logged as 0.0 where grad_norm was NaN ({len(hit)} steps: {shown}): "
        "read as NaN (ms-swift's logging_nan_inf_filter)"
    )
    return {**scalars, TRAIN_LOSS: Series(loss.steps, values)}, note


def curves_until(curves: Curves, step: int) -> Curves:
    """The curves as they stood when the run had logged up to `step` (every series cut there):
    how a finished run looked while it trained."""
    cut = {
        tag: Series(s.steps[s.steps <= step], s.values[s.steps <= step]) for tag, s in curves.scalars.items()
    }
    return dataclasses.replace(curves, scalars=cut)


def series_from_points(steps: Any, values: Any) -> Series:
    """A Series from points in logging order: sorted by step, the later point winning on a
    repeated step."""
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if len(steps) > 1 and not np.all(steps[1:] > steps[:-1]):
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        keep = np.append(steps[1:] != steps[:-1], True)
        steps, values = steps[keep], values[keep]
    return Series(steps, values)


# ---------------------------------------------------------------------------------------------
# TensorBoard event files


def _event_files(run_dir: Path) -> list[Path]:
    runs = run_dir / "runs"
    found = sorted(runs.rglob(EVENTS_GLOB)) if runs.is_dir() else []
    return found + sorted(run_dir.glob(EVENTS_GLOB))


def read_event_files(paths: list[Path]) -> tuple[dict[str, Series], list[str]]:
    """Merge the scalars of several event files: sorted by step; on a step present in several
    files (a resumed run) the file created later wins, and within a file the later record."""
    warnings: list[str] = []
    chunks = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            warnings.append(f"{path}: could not be read ({exc})")
            continue
        chunk, chunk_warnings = parse_event_bytes(data, Path(path).name)
        warnings += chunk_warnings
        chunks.append(chunk)
    chunks.sort(key=lambda c: c.created)  # stable: same-time files keep their name order
    return _merge(chunks), warnings


def _merge(chunks: list[EventPoints]) -> dict[str, Series]:
    names: dict[str, int] = {}
    ids, steps, values = [], [], []
    for chunk in chunks:
        remap = np.array([names.setdefault(t, len(names)) for t in chunk.tags] or [0], dtype=np.int64)
        ids.append(remap[chunk.tag_ids])
        steps.append(chunk.steps)
        values.append(chunk.values)
    if not names:
        return {}
    all_ids = np.concatenate(ids)
    all_steps = np.concatenate(steps)
    all_values = np.concatenate(values)
    # stable: keeps logging order within each tag (a radix sort when the ids fit 16 bits)
    small = np.int16 if len(names) < 1 << 15 else np.int64
    by_tag = np.argsort(all_ids.astype(small), kind="stable")
    bounds = np.searchsorted(all_ids[by_tag], np.arange(len(names) + 1))
    out: dict[str, Series] = {}
    for name, tid in sorted(names.items()):
        idx = by_tag[bounds[tid] : bounds[tid + 1]]
        if len(idx):
            out[name] = series_from_points(all_steps[idx], all_values[idx])
    return out


# ---------------------------------------------------------------------------------------------
# logging.jsonl and trainer_state.json


@dataclass
class _LogInfo:
    scalars: dict[str, Series] = field(default_factory=dict)
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    max_steps: int | None = None
    last_train_step: int | None = None
    warnings: list[str] = field(default_factory=list)


# log keys that are no curve
_NOT_SCALARS = {
    "global_step/max_steps",
    "step",
    "elapsed_time",
    "remaining_time",
    "global_step",
    "current_steps",
    "total_steps",
    "percentage",
}
# LLaMA-Factory's names for the keys HF and ms-swift log
_RENAMED = {"lr": "learning_rate"}


def _collect(entries: list[tuple[int, dict]]) -> dict[str, Series]:
    """Curves from HF-style log dicts: eval_* keys -> eval/*, the others -> train/*.
    End-of-training lines (train_runtime, ...) are left out."""
    points: dict[str, tuple[list[int], list[float]]] = {}
    for step, entry in entries:
        if "train_runtime" in entry or "log_history" in entry:
            continue
        is_eval = any(k.startswith("eval_") for k in entry)
        for key, value in entry.items():
            if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            key = _RENAMED.get(key, key)
            if key.startswith("eval_"):
                tag = "eval/" + key[5:]
            elif is_eval and key == "epoch":
                continue  # the eval line repeats the epoch; the train lines hold the curve
            else:
                tag = "train/" + key
            steps, values = points.setdefault(tag, ([], []))
            steps.append(step)
            values.append(float(value))
    return {tag: series_from_points(s, v) for tag, (s, v) in points.items()}


def _read_jsonl(path: Path, *, full: bool, live: bool = False) -> _LogInfo:
    """ms-swift's logging.jsonl, or LLaMA-Factory's trainer_log.jsonl. Bare NaN/Infinity are
    read (Python's json accepts them); a cut last line (a killed run) is skipped with a warning,
    or silently when live (the run is still writing it). With full=False only the last lines are
    parsed: checkpoints, max_steps and the last step are all there."""
    info = _LogInfo()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        info.warnings.append(f"{path}: could not be read ({exc})")
        return info
    lines = text.splitlines()
    if not full:
        lines = lines[-8:]
    entries: list[tuple[int, dict]] = []
    last_step = 0
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                if not live:
                    info.warnings.append(
                        f"{path.name}: the last line is cut short (a run killed while writing?)"
                    )
            else:
                info.warnings.append(f"{path.name}: a line does not parse and was skipped")
            continue
        if not isinstance(entry, dict):
            continue
        if "best_model_checkpoint" in entry or "last_model_checkpoint" in entry:
            info.best_checkpoint = entry.get("best_model_checkpoint") or info.best_checkpoint
            info.last_checkpoint = entry.get("last_model_checkpoint") or info.last_checkpoint
            if entry.get("global_step"):
                last_step = max(last_step, int(entry["global_step"]))
            continue
        progress = entry.get("global_step/max_steps")
        if isinstance(progress, str) and "/" in progress:
            done, _, planned = progress.partition("/")
            if done.strip().isdigit():
                last_step = int(done)
            if planned.strip().isdigit():
                info.max_steps = int(planned)
        elif isinstance(entry.get("current_steps"), int):  # LLaMA-Factory
            last_step = entry["current_steps"]
            if isinstance(entry.get("total_steps"), int) and entry["total_steps"] > 0:
                info.max_steps = entry["total_steps"]
        elif isinstance(entry.get("step"), int):
            last_step = entry["step"]
        if "loss" in entry and "train_runtime" not in entry:
            info.last_train_step = last_step
        entries.append((last_step, entry))
    if full:
        info.scalars = _collect(entries)
    return info


def _trainer_state_path(run_dir: Path) -> Path | None:
    """The top-level trainer_state.json, else the one of the latest checkpoint (whose
    log_history is the longest)."""
    top = run_dir / TRAINER_STATE
    if top.is_file():
        return top
    checkpoints = [
        (int(m.group(1)), c)
        for c in run_dir.glob("checkpoint-*")
        if (m := CHECKPOINT_NAME.match(c.name)) and (c / TRAINER_STATE).is_file()
    ]
    return max(checkpoints)[1] / TRAINER_STATE if checkpoints else None


def _read_trainer_state(path: Path, *, full: bool) -> _LogInfo:
    """An HF trainer_state.json: log_history, best_model_checkpoint, max_steps."""
    info = _LogInfo()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        info.warnings.append(f"{path}: could not be read ({exc})")
        return info
    info.best_checkpoint = state.get("best_model_checkpoint")
    info.max_steps = state.get("max_steps") or None
    if full:
        history = state.get("log_history") or []
        entries = [
            (int(e["step"]), e)
            for e in history
            if isinstance(e, dict) and isinstance(e.get("step"), (int, float)) and math.isfinite(e["step"])
        ]
        info.scalars = _collect(entries)
    return info


def _last_checkpoint_dir(run_dir: Path) -> str | None:
    checkpoints = [
        (int(m.group(1)), c) for c in run_dir.glob("checkpoint-*") if (m := CHECKPOINT_NAME.match(c.name))
    ]
    return str(max(checkpoints)[1]) if checkpoints else None


def _local_path(value: str | None, run_dir: Path) -> str | None:
    """A checkpoint path as logged, moved into run_dir when the run folder was moved since."""
    if not value:
        return None
    path = Path(value)
    if path.exists():
        return str(path)
    here = run_dir / path.name
    return str(here) if here.exists() else str(value)
