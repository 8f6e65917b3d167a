"""Run folder -> every scalar curve it logged (pure reading; numpy only at import).

Sources, best first: TensorBoard event files under `runs/` (all of them merged, every point
kept; decoded by swiftops.tfevents, a 200k-step run in about a second, see
benchmarks/read_curves.py), ms-swift's `logging.jsonl`, an HF `trainer_state.json` (`log_history`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swiftops.runfolder import (
    JSONL_NAME,
    LLAMA_FACTORY_LOG,
    TRAINER_STATE,
    checkpoints,
    event_files,
    find_run_dirs,
    is_summary,
    newest_of,
    planned_steps,
    read_json,
    read_lines,
    recorded_checkpoint,
    run_chain,
    step_of,
    trainer_state_path,
)
from swiftops.tfevents import EventPoints, parse_event_bytes

TRAIN_LOSS = "train/loss"
EVAL_LOSS = "eval/loss"
GRAD_NORM = "train/grad_norm"
LEARNING_RATE = "train/learning_rate"
EPOCH = "train/epoch"


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


# ---------------------------------------------------------------------------------------------
# reading one run


def read_curves(path: str | os.PathLike) -> Curves:
    """Read every scalar of one run. Path is a run folder or a folder holding one run (a Hydra
    job folder, an output folder: with several vN-* runs side by side, the newest is read, with
    the earlier runs it resumed).

    Raises:
        NoRunFound: no run under path.
        ValueError: path holds several unrelated runs (a sweep): read them one by one.
    """
    runs = find_run_dirs(path)
    if len(runs) > 1:
        if len({r.parent for r in runs}) > 1:
            names = ", ".join(str(r) for r in runs[:3])
            raise ValueError(f"{path} holds {len(runs)} runs ({names}, ...): read them one at a time")
        runs = [newest_of(runs)]
    return read_run_dir(runs[0])


def read_run_dir(run_dir: Path) -> Curves:
    """Read one run folder (no search), merged with the earlier run folders it resumed from
    (swift's --resume_from_checkpoint writes a new vN folder): by step, the later run wins."""
    run_dir = Path(run_dir)
    chain = run_chain(run_dir)
    warnings: list[str] = []
    if len(chain) > 1:
        warnings.append(
            f"{run_dir.name} resumes {', '.join(p.name for p in chain[:-1])}: their curves are merged, "
            "by step, the later run winning"
        )
    events = [path for part in chain for path in event_files(part)]
    scalars: dict[str, Series] = {}
    source = "none"
    if events:
        scalars, event_warnings = read_event_files(events)
        warnings += event_warnings
        if scalars:
            source = "tensorboard"

    # With event files present, only the log's tail is needed (checkpoints, max_steps, last step).
    log = _read_logs(chain, full=TRAIN_LOSS not in scalars)
    warnings += log.warnings
    if TRAIN_LOSS not in scalars and log.scalars:
        if scalars:
            warnings.append(f"the event files hold no {TRAIN_LOSS}: curves read from {log.name}")
        scalars = {**scalars, **log.scalars}
        source = log.name
    elif TRAIN_LOSS in scalars and log.last_train_step is not None:
        tb_last = int(scalars[TRAIN_LOSS].steps[-1])
        if log.last_train_step > tb_last:
            # cut or corrupt event files (a killed run, a bad record): the log has the rest
            full = _read_logs(chain, full=True)
            scalars = _extend_after(scalars, full.scalars)
            warnings.append(
                f"the event files stop at step {tb_last} but {log.name} goes on to step "
                f"{log.last_train_step}: the steps after {tb_last} are read from {log.name}"
            )

    state_path = trainer_state_path(run_dir)
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

    best = log.best_checkpoint or (state and state.best_checkpoint)
    # no summary line (a killed run): the highest checkpoint-N, as runfolder.last_checkpoint reads it
    saved = checkpoints(run_dir) if not log.last_checkpoint else []
    last = log.last_checkpoint or (str(saved[-1]) if saved else None)
    max_steps = log.max_steps or (state and state.max_steps)
    return Curves(
        run_dir=run_dir,
        scalars=scalars,
        best_checkpoint=recorded_checkpoint(best, run_dir),
        last_checkpoint=recorded_checkpoint(last, run_dir),
        source=source,
        warnings=warnings,
        max_steps=max_steps or None,
    )


def _extend_after(scalars: dict[str, Series], more: dict[str, Series]) -> dict[str, Series]:
    """Each series of scalars continued with the points of `more` after its own last step."""
    out = dict(scalars)
    for tag, extra in more.items():
        have = out.get(tag)
        if have is None or not len(have):
            out[tag] = extra
            continue
        later = extra.steps > have.steps[-1]
        out[tag] = Series(
            np.concatenate([have.steps, extra.steps[later]]),
            np.concatenate([have.values, extra.values[later]]),
        )
    return out


def read_live_curves(run_dir: str | os.PathLike) -> Curves:
    """The curves of a run still training, from its logging.jsonl alone: swift writes that a line
    per log, while its event files reach the disk when TensorBoard flushes them. A half-written last
    line is left for the next reading; a NaN logged as 0.0 is read as NaN, as read_run_dir does.
    Checkpoints are not looked for (the run is not done saving them)."""
    run_dir = Path(run_dir)
    log = _read_logs([run_dir], full=True, live=True)
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
    name: str = JSONL_NAME  # the log file read


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
            try:
                number = float(value)
            except OverflowError:  # an integer of hundreds of digits: a corrupt line, no point
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
            values.append(number)
    return {tag: series_from_points(s, v) for tag, (s, v) in points.items()}


def _log_path(run_dir: Path) -> Path | None:
    for name in (JSONL_NAME, LLAMA_FACTORY_LOG):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def _read_logs(chain: list[Path], *, full: bool, live: bool = False) -> _LogInfo:
    """The JSON-lines logs of a run's parts (ms-swift's logging.jsonl, or LLaMA-Factory's
    trainer_log.jsonl), oldest first, as one log. With full=False only the last part's tail is
    parsed: checkpoints, max_steps and the last step are all there."""
    info = _LogInfo()
    entries: list[tuple[int, dict]] = []
    parts = chain if full else chain[-1:]
    for run_dir in parts:
        path = _log_path(run_dir)
        if path is None:
            continue
        info.name = path.name
        lines = read_lines(path, live=live, tail_bytes=None if full else 64 * 1024)
        info.warnings += lines.warnings
        last_step = 0
        seen: set[int] = set()
        late = 0  # lines whose step went back to one never logged: not the run's end
        for row in lines.rows:
            if is_summary(row):
                info.best_checkpoint = row.get("best_model_checkpoint") or info.best_checkpoint
                info.last_checkpoint = row.get("last_model_checkpoint") or info.last_checkpoint
                continue
            step = step_of(row)
            if step is not None and seen and step < max(last_step, 0):
                # a step below the highest so far: a second writer's copy of a line already read, or
                # (a step never logged) LLaMA-Factory's evaluation of the reloaded best checkpoint,
                # whose step counts eval batches. Neither is a point of the curve.
                late += step not in seen
                continue
            last_step = step if step is not None else last_step
            seen.add(last_step)
            info.max_steps = planned_steps(row) or info.max_steps
            if "loss" in row and "train_runtime" not in row:
                info.last_train_step = last_step
            entries.append((last_step, row))
        if late:
            info.warnings.append(
                f"{path}: {late} line(s) whose step went back below the last step were left out (an "
                "evaluation after the run, e.g. of the reloaded best checkpoint, is not its end)"
            )
    if full:
        info.scalars = _collect(entries)
    return info


def _read_trainer_state(path: Path, *, full: bool) -> _LogInfo:
    """An HF trainer_state.json: log_history, best_model_checkpoint, max_steps."""
    info = _LogInfo(name=TRAINER_STATE)
    state = read_json(path)
    if not state:
        info.warnings.append(f"{path}: could not be read (missing, cut short or not JSON)")
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
