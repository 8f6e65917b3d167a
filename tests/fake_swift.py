"""A stand-in for the `swift` CLI, for fast tests of orchestration and faults.

`swift sft ... --output_dir D` writes D/v0-<timestamp>/ the way ms-swift 4 does: logging.jsonl,
a TensorBoard event file with train/loss and eval/loss, checkpoint folders. Behaviour follows
the learning rate, so a sweep can mix outcomes:
  lr >= 1        crash after two logged steps, exit 1 (a traceback in the log)
  lr >= 0.05     diverge: loss rises, exit 0 (as swift does)
  otherwise      a falling loss, exit 0
FAKE_SWIFT_STEP_SECONDS slows each step (for Ctrl-C tests).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path


def flag(argv: list[str], name: str, default: str | None = None) -> str | None:
    key = f"--{name}"
    return argv[argv.index(key) + 1] if key in argv else default


def write_scalar(writer, tag: str, value: float, step: int) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))


def sft(argv: list[str]) -> int:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    output_dir = Path(flag(argv, "output_dir", "output"))
    lr = float(flag(argv, "learning_rate", "1e-4"))
    epochs = float(flag(argv, "num_train_epochs", "1"))
    step_seconds = float(os.environ.get("FAKE_SWIFT_STEP_SECONDS", "0"))
    run_dir = output_dir / f"v0-{time.strftime('%Y%m%d-%H%M%S')}"
    (run_dir / "runs").mkdir(parents=True, exist_ok=True)
    print(f"[INFO:swift] output_dir: {run_dir}", flush=True)
    writer = EventFileWriter(str(run_dir / "runs"))
    max_steps = max(2, int(10 * epochs))
    with open(run_dir / "logging.jsonl", "w") as log:
        code, last_ckpt, best_ckpt, best, loss = train_loop(log, writer, run_dir, lr, max_steps, step_seconds)
        if code:
            return code
        log.write(json.dumps({"train_runtime": 1.0, "train_loss": loss}) + "\n")
        summary = {
            "last_model_checkpoint": last_ckpt,
            "best_model_checkpoint": best_ckpt,
            "best_metric": best,
            "global_step": max_steps,
        }
        log.write(json.dumps(summary) + "\n")
    writer.close()
    print(f"last_model_checkpoint: {last_ckpt}\nbest_model_checkpoint: {best_ckpt}", flush=True)
    return 0


def train_loop(log, writer, run_dir, lr, max_steps, step_seconds):
    best, best_ckpt, last_ckpt, loss = math.inf, None, None, math.nan
    for step in range(1, max_steps + 1):
        time.sleep(step_seconds)
        if lr >= 1 and step > 2:
            print("Traceback (most recent call last):\nRuntimeError: fake swift crashed", flush=True)
            writer.close()
            return 1, None, None, None, None
        loss = 3.0 * (1 + 0.3 * step) if lr >= 0.05 else 3.0 * math.exp(-step / max_steps) + 0.5
        line = {
            "loss": loss,
            "grad_norm": 1.0,
            "learning_rate": lr,
            "epoch": step / 10,
            "global_step/max_steps": f"{step}/{max_steps}",
            "remaining_time": "0s",
        }
        log.write(json.dumps(line) + "\n")
        write_scalar(writer, "train/loss", loss, step)
        if step % 5 == 0 or step == max_steps:
            eval_loss = loss + 0.1
            log.write(
                json.dumps({"eval_loss": eval_loss, "global_step/max_steps": f"{step}/{max_steps}"}) + "\n"
            )
            write_scalar(writer, "eval/loss", eval_loss, step)
            ckpt = run_dir / f"checkpoint-{step}"
            ckpt.mkdir()
            (ckpt / "adapter_config.json").write_text("{}")
            last_ckpt = str(ckpt)
            if eval_loss < best:
                best, best_ckpt = eval_loss, str(ckpt)
        log.flush()
        writer.flush()
    return 0, last_ckpt, best_ckpt, best, loss


def main() -> int:
    argv = sys.argv[1:]
    if not argv:
        return 2
    if argv[0] == "sft":
        return sft(argv[1:])
    print(f"fake swift: unsupported command {argv[0]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
