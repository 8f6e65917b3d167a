"""A stand-in for the `swift` CLI, for fast tests of orchestration and faults.

`swift sft ... --output_dir D` writes D/v0-<timestamp>/ the way ms-swift 4 does: logging.jsonl,
a TensorBoard event file with train/loss and eval/loss, checkpoint folders. Behaviour follows
the learning rate, so a sweep can mix outcomes:
  lr >= 1        crash after two logged steps, exit 1 (a traceback in the log)
  lr >= 0.05     diverge: loss rises, exit 0 (as swift does)
  otherwise      a falling loss, exit 0
FAKE_SWIFT_STEP_SECONDS slows each step (for Ctrl-C tests). FAKE_SWIFT_SHAPES scripts the curves
instead: a JSON list of [{flag: value, ...}, shape] pairs, the first whose flags all match wins
(numbers compared as numbers), e.g. [[{"learning_rate": 0.1}, "rising"], [{}, "converged"]].
The shapes (see SHAPES): converged, flat, still_falling, overfit, rising, nan, explode, and crash
(two falling steps, then a traceback and exit 1).

`swift infer ... --val_dataset T --result_path R` appends one result line per row of T to R, as
swift does: with --adapters the response is the row's reference answer (a perfect student),
without (the base model) "I don't know."; an adapter folder without adapter_config.json fails
(exit 1), and so does --check_model (a training flag).
`swift export --adapters C --output_dir D` writes D/config.json (naming the adapters merged) and
D/model.safetensors; an existing D fails without `--exist_ok true` (FileExistsError) and with it
is left as it is, the merge skipped (exit 0), as in swift 4.6.
FAKE_SWIFT_CALLS=FILE appends each command's name to FILE (to count launches);
FAKE_SWIFT_ENV_LOG=FILE appends, for each `sft`, a JSON line with its GPU environment
(CUDA_VISIBLE_DEVICES, MASTER_PORT, NPROC_PER_NODE, OMP_NUM_THREADS), its output_dir and the
wall-clock times it started and ended (to check GPU leases never overlap);
FAKE_SWIFT_FAIL=infer (or export) makes that command crash.
FAKE_SWIFT_FAULTS scripts a fault of `sft`, matched as FAKE_SWIFT_SHAPES is ([[{flag: value}, fault]]):
  crash_at_start    a traceback and exit 1 before any run folder or log line
  killed            SIGKILL to itself after 3 logged steps (as kill -9 or the OOM killer would)
  garbage_lines     logging.jsonl interleaved with lines that are not JSON objects, and a half line
  nan_inf           bare NaN and Infinity in logging.jsonl (as swift writes them; strict JSON rejects them)
  non_utf8          invalid UTF-8 bytes in the console output (swift.log) and in logging.jsonl
  corrupt_events    the event file overwritten with garbage bytes in its middle, after training
  truncated_events  the event file cut off in the middle of a record, after training
  stop_iteration    before any run folder, the traceback ms-swift 4.6 prints for a dataset its reader
                    finds no rows in (StopIteration, under swift/dataset/loader.py), and exit 1
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path

FAULTS = (
    "crash_at_start",
    "killed",
    "garbage_lines",
    "nan_inf",
    "non_utf8",
    "corrupt_events",
    "truncated_events",
    "stop_iteration",
)

# ms-swift 4.6's traceback for an empty dataset file, its frames abridged (site-packages as here)
_SITE = "/venv/lib/python3.11/site-packages"
STOP_ITERATION_TRACEBACK = f"""Traceback (most recent call last):
  File "{_SITE}/swift/cli/sft.py", line 20, in <module>
    sft_main()
  File "{_SITE}/swift/pipelines/base.py", line 52, in main
    result = self.run()
             ^^^^^^^^^^
  File "{_SITE}/swift/dataset/loader.py", line 59, in _load_dataset_path
    dataset = hf_load_dataset(file_type, data_files=dataset_path, **kwargs)
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{_SITE}/datasets/packaged_modules/json/json.py", line 91, in _split_generators
    pa_table = next(iter(self._generate_tables(**splits[0].gen_kwargs, allow_full_read=False)))[1]
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
StopIteration"""


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
    fault = scripted(argv, "FAKE_SWIFT_FAULTS")
    if fault not in (None, *FAULTS):
        raise SystemExit(f"fake swift: unknown fault {fault!r}")
    if fault == "crash_at_start":
        return crash("ImportError: fake swift could not import its pipelines")
    if fault == "stop_iteration":
        print(STOP_ITERATION_TRACEBACK, flush=True)
        return 1
    run_dir = output_dir / f"v0-{time.strftime('%Y%m%d-%H%M%S')}"
    (run_dir / "runs").mkdir(parents=True, exist_ok=True)
    print(f"[INFO:swift] output_dir: {run_dir}", flush=True)
    writer = EventFileWriter(str(run_dir / "runs"))
    max_steps = max(2, int(10 * epochs))
    with open(run_dir / "logging.jsonl", "w", encoding="utf-8", errors="surrogateescape") as log:
        code, last_ckpt, best_ckpt, best, loss = train_loop(
            log, writer, run_dir, lr, max_steps, step_seconds, scripted_shape(argv), fault
        )
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
    if fault in ("corrupt_events", "truncated_events"):
        damage_events(run_dir, fault)
    print(f"last_model_checkpoint: {last_ckpt}\nbest_model_checkpoint: {best_ckpt}", flush=True)
    return 0


def damage_events(run_dir: Path, fault: str) -> None:
    """Garbage over the middle of the event file, or the file cut inside a record."""
    (path,) = (run_dir / "runs").glob("events.out.tfevents.*")
    data = path.read_bytes()
    if fault == "corrupt_events":
        middle = len(data) // 2
        data = data[: middle - 64] + b"\xde\xad\xbe\xef" * 32 + data[middle + 64 :]
    else:
        data = data[: len(data) * 2 // 3 + 5]  # 5 bytes past a cut point: inside a record's framing
    path.write_bytes(data)


def write_fault_lines(log, writer, fault: str | None, step: int, max_steps: int) -> None:
    """The fault's extra lines in logging.jsonl after this step's line."""
    if fault == "garbage_lines" and step in (2, 4):
        log.write('this is not json\n[1, 2, 3]\n42\n{"loss": 1.0, "global_st\n\n')
    elif fault == "nan_inf" and step == 3:
        # swift's json.dumps writes bare NaN and Infinity: here an eval loss gone to Infinity
        log.write(json.dumps({"eval_loss": math.inf, "global_step/max_steps": f"{step}/{max_steps}"}) + "\n")
        write_scalar(writer, "eval/loss", math.inf, step)
    elif fault == "non_utf8" and step == 2:
        log.write('\udcff\udcfe{"loss": \udcc3(\n')  # surrogateescape writes the raw bytes ff fe c3
        sys.stdout.flush()
        sys.stdout.buffer.write(b"[INFO:swift] caf\xe9 \xff\xfe not utf-8\n")
        sys.stdout.buffer.flush()


def _wiggle(step: int) -> float:
    """A small deterministic noise, so every curve has a measurable noise level."""
    return 0.01 * math.sin(1.7 * step)


# shape -> (training loss, eval loss) at step s of n
SHAPES = {
    "converged": lambda s, n: (0.5 + 2.5 * math.exp(-s / 1.5) + _wiggle(s),) * 2,
    "flat": lambda s, n: (3.0 + 0.1 * _wiggle(s),) * 2,
    "still_falling": lambda s, n: (3.0 - 2.0 * s / n + _wiggle(s),) * 2,
    "overfit": lambda s, n: (
        0.5 + 2.5 * math.exp(-s / 1.5) + _wiggle(s),
        1.0 + 2.0 * math.exp(-s / 1.5) + 0.02 * max(0.0, s - n / 3),
    ),
    "rising": lambda s, n: (3.0 * (1 + 0.05 * s) + _wiggle(s),) * 2,
    "nan": lambda s, n: (3.0 if s < 3 else math.nan,) * 2,
    "explode": lambda s, n: (3.0 * 2.0**s,) * 2,
    "crash": lambda s, n: (3.0 - 0.1 * s,) * 2,
}


def scripted_shape(argv: list[str]) -> str | None:
    """The shape FAKE_SWIFT_SHAPES gives this command line, if any."""
    return scripted(argv, "FAKE_SWIFT_SHAPES")


def scripted(argv: list[str], variable: str) -> str | None:
    """The value the environment variable's [[{flag: value}, value], ...] gives this command line."""
    for match, value in json.loads(os.environ.get(variable) or "[]"):
        if all(_same(flag(argv, key), wanted) for key, wanted in match.items()):
            return value
    return None


def _same(given: str | None, wanted) -> bool:
    if given is None:
        return False
    try:
        return math.isclose(float(given), float(wanted), rel_tol=1e-9)
    except ValueError:
        return given == str(wanted)


def train_loop(log, writer, run_dir, lr, max_steps, step_seconds, shape=None, fault=None):
    best, best_ckpt, last_ckpt, loss = math.inf, None, None, math.nan
    for step in range(1, max_steps + 1):
        time.sleep(step_seconds)
        if fault == "killed" and step > 3:
            os.kill(os.getpid(), signal.SIGKILL)
        if ((shape is None and lr >= 1) or shape == "crash") and step > 2:
            print("Traceback (most recent call last):\nRuntimeError: fake swift crashed", flush=True)
            writer.close()
            return 1, None, None, None, None
        if shape is not None:
            loss, eval_loss = SHAPES[shape](step, max_steps)
        else:
            loss = 3.0 * (1 + 0.3 * step) if lr >= 0.05 else 3.0 * math.exp(-step / max_steps) + 0.5
            eval_loss = loss + 0.1
        line = {
            "loss": loss,
            "grad_norm": math.nan if fault == "nan_inf" and step >= 3 else 1.0,
            "learning_rate": lr,
            "epoch": step / 10,
            "global_step/max_steps": f"{step}/{max_steps}",
            "remaining_time": "0s",
        }
        log.write(json.dumps(line) + "\n")
        write_fault_lines(log, writer, fault, step, max_steps)
        write_scalar(writer, "train/loss", loss, step)
        if step % 5 == 0 or step == max_steps:
            log.write(
                json.dumps({"eval_loss": eval_loss, "global_step/max_steps": f"{step}/{max_steps}"}) + "\n"
            )
            write_scalar(writer, "eval/loss", eval_loss, step)
            ckpt = run_dir / f"checkpoint-{step}"
            ckpt.mkdir()
            (ckpt / "adapter_config.json").write_text("{}")
            # last, as the trainer writes it: a checkpoint without one was cut off mid-save
            state = {"global_step": step, "max_steps": max_steps, "log_history": []}
            (ckpt / "trainer_state.json").write_text(json.dumps(state))
            last_ckpt = str(ckpt)
            if eval_loss < best:
                best, best_ckpt = eval_loss, str(ckpt)
        log.flush()
        writer.flush()
    return 0, last_ckpt, best_ckpt, best, loss


def crash(message: str) -> int:
    print(f"Traceback (most recent call last):\n{message}", flush=True)
    return 1


def infer(argv: list[str]) -> int:
    if "--check_model" in argv:  # a training flag: swift 4.6's infer rejects it
        return crash(f"ValueError: remaining_argv: {argv[argv.index('--check_model') :][:2]}")
    adapters = flag(argv, "adapters")
    if adapters and not (Path(adapters) / "adapter_config.json").is_file():
        return crash(f"AssertionError: args_path: {adapters}/args.json")
    rows = [json.loads(line) for line in Path(flag(argv, "val_dataset")).read_text().splitlines() if line]
    result_path = Path(flag(argv, "result_path"))
    result_path.parent.mkdir(parents=True, exist_ok=True)
    with open(result_path, "a") as out:  # swift appends to an existing result file
        for row in rows:
            label = row["messages"][-1]["content"]
            response = label if adapters else "I don't know."
            out.write(json.dumps({"response": response, "labels": label, "messages": row["messages"]}) + "\n")
    print(f"[INFO:swift] The inference results have been saved to result_path: `{result_path}`.", flush=True)
    return 0


def export(argv: list[str]) -> int:
    adapters = Path(flag(argv, "adapters"))
    if not (adapters / "adapter_config.json").is_file():
        return crash(f"AssertionError: args_path: {adapters}/args.json")
    output_dir = Path(flag(argv, "output_dir", f"{adapters}-merged"))
    if output_dir.exists() and flag(argv, "exist_ok", "false") != "true":
        return crash(f"FileExistsError: args.output_dir: `{output_dir}` already exists.")
    if output_dir.exists():  # as swift 4.6 does, whatever the folder holds
        print(
            f"[INFO:swift] The weight directory for the merged LoRA already exists in {output_dir}, "
            "skipping the saving process.",
            flush=True,
        )
        return 0
    output_dir.mkdir(parents=True)
    (output_dir / "config.json").write_text(json.dumps({"model_type": "qwen2", "merged_from": str(adapters)}))
    (output_dir / "model.safetensors").write_bytes(b"fake weights")
    print(f"[INFO:swift] Successfully merged LoRA and saved in `{output_dir}`.", flush=True)
    return 0


ENV_LOGGED = ("CUDA_VISIBLE_DEVICES", "MASTER_PORT", "NPROC_PER_NODE", "OMP_NUM_THREADS")


def log_env(argv: list[str], started: float) -> None:
    line = {k: os.environ.get(k) for k in ENV_LOGGED}
    line.update(output_dir=flag(argv, "output_dir"), started=started, ended=time.time(), pid=os.getpid())
    with open(os.environ["FAKE_SWIFT_ENV_LOG"], "a") as out:
        out.write(json.dumps(line) + "\n")


def main() -> int:
    argv = sys.argv[1:]
    if not argv:
        return 2
    if os.environ.get("FAKE_SWIFT_CALLS"):
        with open(os.environ["FAKE_SWIFT_CALLS"], "a") as calls:
            calls.write(argv[0] + "\n")
    if argv[0] in os.environ.get("FAKE_SWIFT_FAIL", "").split(","):
        return crash(f"RuntimeError: fake swift {argv[0]} failed")
    if argv[0] == "sft":
        if not os.environ.get("FAKE_SWIFT_ENV_LOG"):
            return sft(argv[1:])
        started = time.time()
        try:
            return sft(argv[1:])
        finally:
            log_env(argv[1:], started)
    if argv[0] == "infer":
        return infer(argv[1:])
    if argv[0] == "export":
        return export(argv[1:])
    print(f"fake swift: unsupported command {argv[0]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
