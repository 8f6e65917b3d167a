"""Synthetic sweep folders for the report's tests and benchmark: run.json records as the runner
writes them, and REAL TensorBoard event files (tensorboard's own EventFileWriter, one
simple_value event per tag as ms-swift writes them) under SWEEP/i/output/v0-.../runs/.

    sweep = make_sweep(tmp_path / "multirun" / "2026-11-24" / "10-00-00",
                       [FakeRun("converged", {"lr": 1e-4}), FakeRun("diverged", {"lr": 1e-1})])
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swiftops.record import RunRecord, write_record

RUN_NAME = "v0-20260101-000000"
SHAPES = (
    "converged",  # falls, then flat (train and eval)
    "overfit",  # train keeps falling, eval falls then rises
    "underfit",  # both still falling steeply at the end
    "diverged",  # train loss explodes to ~1e3 (exit 0, as ms-swift does)
    "nan",  # falls, then NaN from 60% on (loss logged as 0.0 with grad_norm NaN, as ms-swift does)
    "crashed",  # exit 1 at 30% of the steps, with a log tail
    "running",  # 40% of the steps so far, no run_dir, verdict or exit code yet
    "interrupted",  # stopped by Ctrl-C at 50%
    "no_run",  # a bad flag: exit 2, no run folder at all
)


@dataclass
class FakeRun:
    """One job of a synthetic sweep."""

    shape: str = "converged"  # one of SHAPES
    params: dict[str, Any] = field(default_factory=dict)  # merged over BASE_PARAMS
    steps: int = 200  # planned steps (a partial shape logs fewer)
    eval_every: int = 20
    seed: int = 0
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


BASE_PARAMS: dict[str, Any] = {
    "lr": 1e-4,
    "lora_rank": 8,
    "epochs": 3,
    "batch_size": 4,
    "model": "/cache/tiny/model",
    "dataset": ["/data/train.jsonl"],
    "system": "You are a helpful assistant.",
}


def curves_of(run: FakeRun) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scalars (tag -> (steps, values)) a run of this shape logs."""
    rng = np.random.default_rng(run.seed)
    last = {"crashed": 0.3, "running": 0.4, "interrupted": 0.5}.get(run.shape, 1.0)
    last_step = max(2, int(run.steps * last))
    s = np.arange(1, last_step + 1)
    e = np.arange(run.eval_every, last_step + 1, run.eval_every)
    x, xe = s / run.steps, e / run.steps
    base = 2.5 + 0.3 * rng.random()
    noise = 0.03 * rng.standard_normal(len(s))
    grad = 1.0 + 0.1 * rng.random(len(s))
    if run.shape == "overfit":
        train = 0.1 + (base - 0.1) * np.exp(-6 * x)
        evals = 0.9 + (base - 0.9) * np.exp(-10 * xe) + 1.2 * np.maximum(xe - 0.3, 0) ** 1.5
    elif run.shape == "underfit":
        train = base - 1.2 * x
        evals = base + 0.1 - 1.1 * xe
    elif run.shape == "diverged":
        train = base * np.exp(7 * np.clip(x - 0.2, 0, None))
        evals = base * np.exp(7 * np.clip(xe - 0.2, 0, None))
        grad = grad * train
    else:  # converged and the partial shapes
        floor = 0.6 + 0.1 * rng.random()
        train = floor + (base - floor) * np.exp(-12 * x)
        evals = floor + 0.1 + (base - floor) * np.exp(-12 * xe)
    train = train * (1 + noise)
    scalars = {
        "train/loss": (s, train),
        "train/grad_norm": (s, grad),
        "train/learning_rate": (s, run_lr(run) * (1 + np.cos(math.pi * x)) / 2),
        "eval/loss": (e, evals),
    }
    if run.shape == "nan":
        bad = s >= int(0.6 * run.steps)
        train, grad = train.copy(), grad.copy()
        train[bad], grad[bad] = 0.0, np.nan  # logging_nan_inf_filter: NaN logged as 0.0
        evals = evals.copy()
        evals[e >= int(0.6 * run.steps)] = np.nan
        scalars.update({"train/loss": (s, train), "train/grad_norm": (s, grad), "eval/loss": (e, evals)})
    return scalars


def run_lr(run: FakeRun) -> float:
    return float({**BASE_PARAMS, **run.params}["lr"])


def write_events(logdir: Path, scalars: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """One event file in logdir, one simple_value event per tag, steps in order (ms-swift's
    layout). Returns logdir."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(parents=True, exist_ok=True)
    rows = sorted(
        (int(step), order, tag, float(value))
        for order, (tag, (steps, values)) in enumerate(scalars.items())
        for step, value in zip(steps.tolist(), values.tolist(), strict=True)
    )
    writer = EventFileWriter(str(logdir), max_queue_size=4096)
    for step, _, tag, value in rows:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        writer.add_event(event_pb2.Event(wall_time=1.767e9 + step, step=step, summary=summary))
    writer.close()
    return Path(writer.get_logdir())


def write_multirun_yaml(sweep_dir: Path, overrides: list[str]) -> Path:
    """The part of Hydra's multirun.yaml the report reads: hydra.overrides.task."""
    import yaml

    path = sweep_dir / "multirun.yaml"
    data = {"hydra": {"mode": "MULTIRUN", "overrides": {"hydra": [], "task": overrides}}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def make_sweep(
    sweep_dir: Path,
    runs: list[FakeRun],
    *,
    overrides: list[str] | None = None,
    diagnose: bool = True,
) -> Path:
    """A sweep folder holding one job per run (SWEEP/0, SWEEP/1, ...). overrides: the
    multirun's command-line overrides for multirun.yaml (None: no multirun.yaml). diagnose:
    attach verdict and diagnosis the way the runner does (swiftops.diagnosis on the curves
    read back), except for running jobs. Returns sweep_dir."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if overrides is not None:
        write_multirun_yaml(sweep_dir, overrides)
    for num, run in enumerate(runs):
        make_job(sweep_dir / str(num), run, job_num=num, sweep_dir=sweep_dir, diagnose=diagnose)
    return sweep_dir


def make_job(
    job_dir: Path,
    run: FakeRun,
    *,
    job_num: int | None = None,
    sweep_dir: Path | None = None,
    diagnose: bool = True,
) -> RunRecord:
    """One Hydra job folder: run.json, command.sh, swift.log and (shape allowing) output/v0-.../"""
    assert run.shape in SHAPES, run.shape
    job_dir.mkdir(parents=True, exist_ok=True)
    params = {**BASE_PARAMS, **run.params}
    output_dir = job_dir / "output"
    argv = ["swift", "sft", "--model", str(params["model"]), "--learning_rate", str(params["lr"])]
    argv += ["--lora_rank", str(params["lora_rank"]), "--system", str(params["system"])]
    argv += ["--output_dir", str(output_dir)]
    overrides = [f"{k}={v}" for k, v in run.params.items()]
    status, exit_code, error = {
        "crashed": ("failed", 1, "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA error <oom>"),
        "running": ("running", None, None),
        "interrupted": ("interrupted", -2, "KeyboardInterrupt"),
        "no_run": ("failed", 2, "swift sft: error: unrecognized arguments: --bogus <flag>"),
    }.get(run.shape, ("completed", 0, None))
    run_dir: Path | None = None
    if run.shape != "no_run":
        run_dir = output_dir / RUN_NAME
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "args.json").write_text("{}", encoding="utf-8")
        scalars = curves_of(run)
        write_events(run_dir / "runs", scalars)
        if run.shape not in ("crashed", "no_run", "nan", "diverged"):
            best = int(scalars["eval/loss"][0][np.nanargmin(scalars["eval/loss"][1])])
            (run_dir / f"checkpoint-{best}").mkdir(exist_ok=True)
    (job_dir / "command.sh").write_text(shlex.join(argv) + "\n", encoding="utf-8")
    (job_dir / "swift.log").write_text((error or "training done") + "\n", encoding="utf-8")
    record = RunRecord(
        status=status,
        job_dir=str(job_dir),
        argv=argv,
        overrides=overrides,
        params=params,
        exit_code=exit_code,
        output_dir=str(output_dir),
        # the runner sets run_dir when the job ends: a running job has none yet
        run_dir=str(run_dir) if run_dir is not None and status != "running" else None,
        started="2026-11-24T10:00:00+00:00",
        duration_s=None if status == "running" else 12.5 + (job_num or 0),
        error=error,
        log_path=str(job_dir / "swift.log"),
        sweep_dir=str(sweep_dir) if sweep_dir else None,
        job_num=job_num,
        stages=dict(run.stages),
    )
    if diagnose and record.run_dir:
        from swiftops.curves import read_curves
        from swiftops.diagnosis import diagnose as diagnose_curves

        curves = read_curves(record.run_dir)
        found = diagnose_curves(curves, exit_code=exit_code, params=params)
        record.verdict, record.diagnosis = found.verdict, found.to_dict()
        record.best_checkpoint, record.last_checkpoint = curves.best_checkpoint, curves.last_checkpoint
    elif diagnose and status == "failed":
        record.verdict = "failed"
        record.diagnosis = {
            "verdict": "failed",
            "confidence": 1.0,
            "reasons": [f"swift exited with code {exit_code}", "no training step was logged"],
            "figures": {},
            "next": {"text": "Read the end of swift.log.", "override": None},
        }
    write_record(record)
    return record


def grid_sweep(sweep_dir: Path, lrs: list[float], ranks: list[int], *, steps: int = 200) -> Path:
    """An lr x lora_rank grid: the highest lr diverges, the rest converge or overfit."""
    runs = []
    for i, lr in enumerate(lrs):
        for j, rank in enumerate(ranks):
            shape = "diverged" if lr == max(lrs) else ("overfit" if (i + j) % 2 else "converged")
            runs.append(FakeRun(shape, {"lr": lr, "lora_rank": rank}, steps=steps, seed=i * 10 + j))
    overrides = [f"lr={','.join(map(str, lrs))}", f"lora_rank={','.join(map(str, ranks))}"]
    return make_sweep(sweep_dir, runs, overrides=overrides)
