"""Write REAL run folders for tests: TensorBoard event files through tensorboard's own
EventFileWriter (the bytes TensorBoard, HF and ms-swift write), ms-swift's logging.jsonl and
HF's trainer_state.json."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

Points = Mapping[str, tuple[Sequence[int], Sequence[float]]]  # tag -> (steps, values)

RUN_NAME = "v0-20250101-120000"


def write_events(logdir: Path, scalars: Points, *, tensor_style: bool = False) -> Path:
    """One event file holding the scalars, one event per tag, the tags of a step together
    and the steps in order, as the HF TensorBoard callback writes them. tensor_style writes
    TF2-style tensor scalars (plugin "scalars") instead of simple_value. Returns the file."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    before = set(logdir.iterdir())
    writer = EventFileWriter(str(logdir), max_queue_size=1000)
    for step, tag, value in _in_step_order(scalars):
        if tensor_style:
            summary_value = _tensor_value(tag, value)
        else:
            summary_value = summary_pb2.Summary.Value(tag=tag, simple_value=value)
        writer.add_event(
            event_pb2.Event(
                wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=[summary_value])
            )
        )
    writer.close()
    (path,) = set(logdir.iterdir()) - before
    return path


def write_raw_events(logdir: Path, events: Iterable) -> Path:
    """An event file holding exactly the given Event protos (after the writer's header)."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    before = set(logdir.iterdir())
    writer = EventFileWriter(str(logdir), max_queue_size=1000)
    for event in events:
        writer.add_event(event)
    writer.close()
    (path,) = set(logdir.iterdir()) - before
    return path


def _tensor_value(tag: str, value: float):
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    return summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(), float_val=[value]
        ),
        metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        ),
    )


def _in_step_order(scalars: Points) -> list[tuple[int, str, float]]:
    rows = [
        (int(step), order, tag, float(value))
        for order, (tag, (steps, values)) in enumerate(scalars.items())
        for step, value in zip(steps, values, strict=True)
    ]
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(step, tag, value) for step, _, tag, value in rows]


def make_run(
    root: Path,
    train: tuple[Sequence[int], Sequence[float]] | None = None,
    evals: tuple[Sequence[int], Sequence[float]] | None = None,
    *,
    extra: Points | None = None,
    steps_per_epoch: float | None = None,
    name: str = RUN_NAME,
) -> Path:
    """A swift-like run folder root/name with args.json and runs/events...: train/loss,
    eval/loss, a train/grad_norm of 1.0 at every train step and, given steps_per_epoch,
    train/epoch. Returns the run folder."""
    run_dir = root / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text("{}")
    scalars: dict[str, tuple[Sequence[int], Sequence[float]]] = {}
    if train is not None:
        scalars["train/loss"] = train
        if steps_per_epoch:
            scalars["train/epoch"] = (train[0], [s / steps_per_epoch for s in train[0]])
        scalars["train/grad_norm"] = (train[0], [1.0] * len(train[0]))
    if evals is not None:
        scalars["eval/loss"] = evals
    scalars.update(extra or {})
    if scalars:
        write_events(run_dir / "runs", scalars)
    return run_dir


def write_jsonl(
    run_dir: Path,
    train: tuple[Sequence[int], Sequence[float]],
    evals: tuple[Sequence[int], Sequence[float]] | None = None,
    *,
    max_steps: int,
    grad_norm: Sequence[float] | None = None,
    summary: dict | None = None,
    cut_last_line: bool = False,
) -> Path:
    """ms-swift's logging.jsonl: training lines, eval lines, bare NaN/Infinity as Python's json
    writes them; the summary line only when given (a killed run has none)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    eval_at = dict(zip(*evals, strict=True)) if evals else {}
    grads = list(grad_norm) if grad_norm is not None else [1.0] * len(train[0])
    for step, loss, grad in zip(train[0], train[1], grads, strict=True):
        lines.append(
            {
                "loss": loss,
                "grad_norm": grad,
                "learning_rate": 1e-4,
                "token_acc": 0.5,
                "epoch": round(step / max_steps, 4),
                "global_step/max_steps": f"{step}/{max_steps}",
                "elapsed_time": "1s",
            }
        )
        if step in eval_at:
            lines.append(
                {
                    "eval_loss": eval_at[step],
                    "eval_token_acc": 0.5,
                    "eval_runtime": 0.1,
                    "epoch": round(step / max_steps, 4),
                    "global_step/max_steps": f"{step}/{max_steps}",
                }
            )
    if summary is not None:
        lines.append({"train_runtime": 1.0, "train_loss": float(np.nanmean(train[1]))})
        lines.append(summary)
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    if cut_last_line:
        text = text[: -len(json.dumps(lines[-1])) // 2]
    path = run_dir / "logging.jsonl"
    path.write_text(text)
    return path


def write_trainer_state(
    path: Path,
    train: tuple[Sequence[int], Sequence[float]],
    evals: tuple[Sequence[int], Sequence[float]] | None = None,
    *,
    max_steps: int,
    best_model_checkpoint: str | None = None,
) -> Path:
    """An HF trainer_state.json with its log_history."""
    history: list[dict] = [
        {"loss": v, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": s / max_steps, "step": s}
        for s, v in zip(*train, strict=True)
    ]
    if evals:
        history += [
            {"eval_loss": v, "eval_runtime": 0.1, "epoch": s / max_steps, "step": s}
            for s, v in zip(*evals, strict=True)
        ]
    history.sort(key=lambda e: e["step"])
    history.append({"train_runtime": 1.0, "train_loss": 1.0, "step": max_steps, "epoch": 1.0})
    state = {
        "best_model_checkpoint": best_model_checkpoint,
        "global_step": max_steps,
        "max_steps": max_steps,
        "log_history": history,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))
    return path


# ---- synthetic curves ----


def steps_of(n: int, every: int = 1, first: int = 1) -> list[int]:
    return list(range(first, n + 1, every))


def decay(steps: Sequence[int], start: float, floor: float, rate: float) -> list[float]:
    """start at step 0 falling exponentially towards floor: floor + (start-floor) e^(-rate*step)."""
    return [floor + (start - floor) * math.exp(-rate * s) for s in steps]


def noisy(values: Sequence[float], rel: float, seed: int = 0) -> list[float]:
    """values with multiplicative Gaussian noise of relative size rel."""
    rng = np.random.default_rng(seed)
    return [float(v * (1 + rel * rng.standard_normal())) for v in values]
