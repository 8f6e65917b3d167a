"""Reading TensorBoard curves: swiftops.curves vs EventAccumulator vs tbparse, then classifying
a sweep's worth of long runs.

    python benchmarks/read_curves.py                       # 2k / 20k / 200k steps, 100 runs x 20k
    python benchmarks/read_curves.py --sizes 2000 20000 --runs 20   # a quick look

Each size is one event file laid out as ms-swift writes it: 5 train tags a step (loss,
grad_norm, learning_rate, token_acc, epoch) and 2 eval tags every 10 steps, one event per
tag. The three readers read the same file, every point (EventAccumulator with size_guidance 0
for every kind, tbparse's defaults), and the script checks that they return the same points.
Then it times read + diagnose on `--runs` run folders of `--run-steps` steps each (target: 100
runs x 20k steps in 5 s on a 2-core machine).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

TRAIN_TAGS = ("train/loss", "train/grad_norm", "train/learning_rate", "train/token_acc", "train/epoch")
EVAL_TAGS = ("eval/loss", "eval/token_acc")
EVAL_EVERY = 10


def masked_crc():
    """TFRecord's masked CRC32C: crcmod's C version where installed, else tensorboard's own
    (pure Python, about 20x slower: only the generation gets slower)."""
    try:
        import crcmod.predefined

        crc = crcmod.predefined.mkCrcFun("crc-32c")
    except ImportError:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

        return masked_crc32c

    def masked(data: bytes) -> int:
        x = crc(data)
        return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked


def curves_for(shape: str, steps: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ms-swift-like scalars of one run: a loss curve of the given shape plus the other tags."""
    rng = np.random.default_rng(seed)
    s = np.arange(1, steps + 1)
    e = np.arange(EVAL_EVERY, steps + 1, EVAL_EVERY)
    x, xe = s / steps, e / steps
    if shape == "failed":  # rises and stays up
        loss = 1.5 + 4 * (1 - np.exp(-x * 20)) + 0.2 * rng.standard_normal(len(s))
        eval_loss = 1.5 + 4 * (1 - np.exp(-xe * 20))
    elif shape == "underfit":  # both still falling
        loss = 0.5 + 1.5 * np.exp(-x * 1.5) + 0.05 * rng.standard_normal(len(s))
        eval_loss = 0.7 + 1.5 * np.exp(-xe * 1.5)
    elif shape == "overfit":  # eval falls, then rises from a third of the run
        loss = 0.2 + 1.5 * np.exp(-x * 6) + 0.05 * rng.standard_normal(len(s))
        eval_loss = 1.0 + 1.0 * np.exp(-xe * 10) + 0.3 * np.maximum(xe - 0.33, 0)
    else:  # converged: both flat for the last half
        loss = 0.5 + 1.5 * np.exp(-x * 12) + 0.05 * rng.standard_normal(len(s))
        eval_loss = 0.8 + 1.5 * np.exp(-xe * 12)
    return {
        "train/loss": (s, loss),
        "train/grad_norm": (s, 1 + 0.1 * rng.random(len(s))),
        "train/learning_rate": (s, 1e-4 * (1 - x)),
        "train/token_acc": (s, 0.5 + 0.1 * rng.random(len(s))),
        "train/epoch": (s, 3 * x),
        "eval/loss": (e, eval_loss),
        "eval/token_acc": (e, 0.6 + 0.0 * xe),
    }


def event_file_bytes(scalars: dict[str, tuple[np.ndarray, np.ndarray]], crc) -> bytes:
    """The bytes TensorBoard's writers write: a file_version event, then one event per tag,
    the tags of a step together, framed as TFRecords with masked CRC32Cs."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    def frame(data: bytes) -> bytes:
        header = struct.pack("<Q", len(data))
        return header + struct.pack("<I", crc(header)) + data + struct.pack("<I", crc(data))

    rows = sorted(
        (int(step), order, tag, float(value))
        for order, (tag, (steps, values)) in enumerate(scalars.items())
        for step, value in zip(steps.tolist(), values.tolist(), strict=True)
    )
    parts = [frame(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())]
    Event, Summary = event_pb2.Event, summary_pb2.Summary
    for step, _, tag, value in rows:
        event = Event(
            wall_time=1.7e9 + step,
            step=step,
            summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]),
        )
        parts.append(frame(event.SerializeToString()))
    return b"".join(parts)


def write_run(run_dir: Path, data: bytes) -> Path:
    (run_dir / "runs").mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text("{}")
    path = run_dir / "runs" / "events.out.tfevents.1700000000.bench.1.0"
    path.write_bytes(data)
    return path


# ---- the three readers, each returning {tag: (steps, values)} ----


def read_ours(run_dir: Path):
    from swiftops.curves import read_curves

    curves = read_curves(run_dir)
    return {tag: (s.steps, s.values) for tag, s in curves.scalars.items()}


def read_event_accumulator(run_dir: Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    kinds = (ea.COMPRESSED_HISTOGRAMS, ea.IMAGES, ea.AUDIO, ea.SCALARS, ea.HISTOGRAMS, ea.TENSORS)
    acc = ea.EventAccumulator(str(run_dir / "runs"), size_guidance=dict.fromkeys(kinds, 0))
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return out


def read_tbparse(run_dir: Path):
    from tbparse import SummaryReader

    frame = SummaryReader(str(run_dir / "runs")).scalars
    out = {}
    for tag, group in frame.groupby("tag", sort=False):
        out[tag] = (group["step"].to_numpy(), group["value"].to_numpy())
    return out


def same_points(a, b) -> bool:
    if set(a) != set(b):
        return False
    for tag in a:
        (sa, va), (sb, vb) = a[tag], b[tag]
        if not np.array_equal(np.asarray(sa, np.int64), np.asarray(sb, np.int64)):
            return False
        # all three hold the logged float32; compare in float32 (tbparse may widen differently)
        if not np.array_equal(np.asarray(va, np.float32), np.asarray(vb, np.float32)):
            return False
    return True


def timed(func, *args, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def compare_readers(sizes: list[int], tmp: Path, crc) -> None:
    print("reading one run, every point (seconds; best of 3 below 100k steps)")
    header = f"{'steps':>8} {'events':>9} {'MB':>6} {'swiftops':>9} {'EventAcc':>9} {'tbparse':>9}"
    print(header + f" {'EA/ours':>8} {'tbp/ours':>8}  same points")
    for steps in sizes:
        run_dir = tmp / f"size-{steps}"
        path = write_run(run_dir, event_file_bytes(curves_for("converged", steps, seed=steps), crc))
        events = steps * len(TRAIN_TAGS) + (steps // EVAL_EVERY) * len(EVAL_TAGS)
        repeat = 3 if steps < 100_000 else 1
        t_ours, ours = timed(read_ours, run_dir, repeat=repeat)
        t_ea, by_ea = timed(read_event_accumulator, run_dir, repeat=repeat)
        t_tbp, by_tbp = timed(read_tbparse, run_dir, repeat=repeat)
        same = same_points(ours, by_ea) and same_points(ours, by_tbp)
        points = sum(len(s) for s, _ in ours.values())
        print(
            f"{steps:>8} {events:>9} {path.stat().st_size / 1e6:>6.1f} {t_ours:>9.3f} {t_ea:>9.3f} "
            f"{t_tbp:>9.3f} {t_ea / t_ours:>7.1f}x {t_tbp / t_ours:>7.1f}x  "
            f"{'yes' if same else 'NO'} ({points} points)"
        )
        if not same:
            sys.exit(f"the readers disagree on {path}")
        shutil.rmtree(run_dir)


def classify_sweep(runs: int, steps: int, tmp: Path, crc) -> None:
    from swiftops.curves import read_curves
    from swiftops.diagnosis import diagnose

    shapes = ("failed", "underfit", "overfit", "converged")
    files = {shape: event_file_bytes(curves_for(shape, steps, seed=i), crc) for i, shape in enumerate(shapes)}
    sweep = tmp / "sweep"
    run_dirs = []
    for job in range(runs):
        shape = shapes[job % len(shapes)]
        run_dirs.append((shape, sweep / str(job) / "output" / "v0-20250101-000000"))
        write_run(run_dirs[-1][1], files[shape])
    params = {"lr": 1e-4, "epochs": 3}

    start = time.perf_counter()
    verdicts = []
    t_read = 0.0
    for _, run_dir in run_dirs:
        t0 = time.perf_counter()
        curves = read_curves(run_dir)
        t_read += time.perf_counter() - t0
        verdicts.append(diagnose(curves, params=params).verdict)
    total = time.perf_counter() - start
    right = sum(v == shape for v, (shape, _) in zip(verdicts, run_dirs, strict=True))
    print(
        f"\nclassifying {runs} runs x {steps} steps (read + diagnose, {runs * (steps * 5 + steps // 10 * 2)} "
        f"events): {total:.2f} s ({t_read:.2f} s reading, {total - t_read:.2f} s diagnosing), "
        f"target 5 s for 100 x 20k"
    )
    print(f"verdicts: {dict(Counter(verdicts))}; as generated: {right}/{runs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[2_000, 20_000, 200_000], help="steps per file"
    )
    parser.add_argument("--runs", type=int, default=100, help="run folders classified (0: skip)")
    parser.add_argument("--run-steps", type=int, default=20_000, help="steps of each classified run")
    args = parser.parse_args(argv)
    crc = masked_crc()
    with tempfile.TemporaryDirectory(prefix="swiftops-bench-") as name:
        tmp = Path(name)
        if args.sizes:
            compare_readers(args.sizes, tmp, crc)
        if args.runs:
            classify_sweep(args.runs, args.run_steps, tmp, crc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
