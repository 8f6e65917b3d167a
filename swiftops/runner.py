"""Launch `swift` as a subprocess and record what happened.

swift runs in its own process group and session, never through a shell, with its output in a
log file; the orchestrator only polls the run's logging.jsonl, for a progress line and for the
watchdog (swiftops.watchdog), which stops the whole process group of a run that has already
failed. A failing swift never raises out of here: it becomes a `failed` record. Ctrl-C (or
SIGTERM) stops the whole process group and becomes an `interrupted` record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RUNNING, RunRecord, write_record

logger = logging.getLogger("swiftops")

LOG_TAIL_LINES = 40
POLL_SECONDS = 0.25
# how long swift gets to stop after SIGINT, then after SIGTERM, before SIGKILL
STOP_GRACE_SECONDS = (5.0, 5.0)
STOPPED_BY_WATCHDOG = "watchdog"  # Outcome.stopped_by and run.json's stopped_by


@dataclass
class Outcome:
    """How one swift process ended."""

    exit_code: int | None
    interrupted: bool
    started: str
    duration_s: float
    stopped_by: str | None = None  # "watchdog": stopped because the run had already failed
    decision: Any = None  # what the watchdog decided (its failed Diagnosis)


class RunWatchdog(Protocol):
    """What run_swift polls while swift runs (swiftops.watchdog.Watchdog): a decision to stop the
    run, or None to let it go on."""

    def poll(self) -> Any | None: ...


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def write_command_script(path: Path, argv: Sequence[str], env_changes: Mapping[str, str]) -> None:
    """command.sh: the exact command, shell-quoted, to copy, paste or run again."""
    env = "".join(f"{k}={shlex.quote(v)} " for k, v in env_changes.items())
    path.write_text(f"#!/usr/bin/env bash\n{env}{shlex.join(argv)}\n", encoding="utf-8")
    path.chmod(0o755)


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, read from its end (logs of long runs are large)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # swift's progress bars redraw with \r: keep the last state of each line
    cleaned = [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]
    return "\n".join(cleaned[-lines:])


def newest_run_dir(output_dir: Path) -> Path | None:
    """The vN-timestamp folder swift wrote last into output_dir (highest N)."""

    def version(p: Path) -> int:
        head = p.name.split("-", 1)[0][1:]
        return int(head) if head.isdigit() else -1

    runs = [p for p in output_dir.glob("v*-*") if p.is_dir() and version(p) >= 0]
    return max(runs, key=version) if runs else None


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the child's whole process group, so the
    second Python that `swift` starts (and any torchrun workers) go too."""
    for sig, grace in ((signal.SIGINT, STOP_GRACE_SECONDS[0]), (signal.SIGTERM, STOP_GRACE_SECONDS[1])):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers whose parent already exited
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM (a scheduler's stop) like Ctrl-C while swift runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Progress:
    """One short live line per job: step/max_steps, loss, eval loss, ETA — read from the
    newest logging.jsonl under output_dir. Redrawn in place on a terminal, printed at most
    every few seconds otherwise."""

    def __init__(
        self, label: str, output_dir: Path | None, stream: TextIO | None = None, every_s: float = 5.0
    ):
        self.label, self.output_dir = label, output_dir
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self.last_text, self.last_time, self.offset, self.path = "", 0.0, 0, None
        self.state: dict[str, Any] = {}

    def poll(self) -> None:
        if self.output_dir is None:
            return
        if self.path is None:
            run_dir = newest_run_dir(self.output_dir) if self.output_dir.is_dir() else None
            if run_dir is None or not (run_dir / "logging.jsonl").exists():
                return
            self.path = run_dir / "logging.jsonl"
        self._read_new_lines()
        text = progress_text(self.state)
        if (
            text
            and text != self.last_text
            and (self.tty or time.monotonic() - self.last_time >= self.every_s)
        ):
            self._show(text)

    def _read_new_lines(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1  # a half-written last line is read next time
        for line in chunk[: end + 1].splitlines():
            with contextlib.suppress(ValueError):
                self.state.update(json.loads(line))

    def _show(self, text: str) -> None:
        line = f"  [{self.label}] {text}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last_text, self.last_time = text, time.monotonic()

    def close(self) -> None:
        self.poll()
        text = progress_text(self.state)
        if text and text != self.last_text:
            self._show(text)
        if self.tty and self.last_text:
            self.stream.write("\n")
            self.stream.flush()


def progress_text(state: Mapping[str, Any]) -> str:
    """'step 12/40  loss 2.314  eval 2.101  eta 0:00:21' from merged logging.jsonl lines."""
    step = state.get("global_step/max_steps")
    if not step:
        return ""
    parts = [f"step {step}"]
    if isinstance(state.get("loss"), int | float):
        parts.append(f"loss {state['loss']:.4g}")
    if isinstance(state.get("eval_loss"), int | float):
        parts.append(f"eval {state['eval_loss']:.4g}")
    if state.get("remaining_time"):
        parts.append(f"eta {state['remaining_time']}")
    return "  ".join(parts)


def run_swift(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
    progress: Progress | None = None,
    watchdog: RunWatchdog | None = None,
) -> Outcome:
    """Run one swift command to its end. Never raises for swift's own failures; returns
    interrupted=True after Ctrl-C/SIGTERM, and stopped_by="watchdog" (with its decision) when the
    watchdog found the run already failed, in both cases with the process group stopped."""
    started, t0 = now_iso(), time.monotonic()
    interrupted, exit_code, decision = False, None, None
    with open(log_path, "ab") as log, sigterm_as_interrupt():
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,  # own process group: Ctrl-C in the terminal reaches us, not it
            )
        except OSError as exc:  # not executable, vanished since validation
            log.write(f"swiftops: could not start {argv[0]}: {exc}\n".encode())
            return Outcome(127, False, started, time.monotonic() - t0)
        try:
            while True:
                try:
                    exit_code = proc.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    if progress:
                        progress.poll()
                    if watchdog is not None:
                        decision, watchdog = poll_watchdog(watchdog)
                        if decision is not None and proc.poll() is not None:
                            decision = None  # swift ended on its own meanwhile: its own end is recorded
                        if decision is not None:
                            logger.warning("the watchdog stops swift in %s: the run has already failed", cwd)
                            stop_process_group(proc)
                            exit_code = proc.returncode
                            break
        except KeyboardInterrupt:
            interrupted = True
            stop_process_group(proc)
            exit_code = proc.returncode
        finally:
            if proc.poll() is None:  # an unexpected error in our loop: never leave swift behind
                stop_process_group(proc)
            if progress:
                progress.close()
    stopped_by = STOPPED_BY_WATCHDOG if decision is not None else None
    return Outcome(exit_code, interrupted, started, round(time.monotonic() - t0, 3), stopped_by, decision)


def poll_watchdog(watchdog: RunWatchdog) -> tuple[Any | None, RunWatchdog | None]:
    """(its decision, the watchdog to poll next time). A watchdog that raises is logged once and
    switched off: it can never cost a job its run."""
    try:
        return watchdog.poll(), watchdog
    except Exception:
        logger.exception("the watchdog failed and is off for the rest of this run")
        return None, None


def status_of(outcome: Outcome) -> str:
    if outcome.interrupted:
        return INTERRUPTED
    if outcome.stopped_by:
        return FAILED
    return COMPLETED if outcome.exit_code == 0 else FAILED


def start_record(record: RunRecord, env_changes: Mapping[str, str]) -> RunRecord:
    """Write command.sh and a `running` run.json before swift starts, so even a job whose
    orchestrator is killed outright leaves a record behind."""
    job_dir = Path(record.job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    write_command_script(job_dir / "command.sh", record.argv, env_changes)
    record.status, record.started = RUNNING, now_iso()
    write_record(record)
    return record


def finish_record(record: RunRecord, outcome: Outcome, output_dir: Path | None) -> RunRecord:
    """Fill in how the process ended and where swift put its run (no diagnosis yet)."""
    record.status = status_of(outcome)
    record.exit_code = outcome.exit_code
    record.stopped_by = outcome.stopped_by
    record.started = outcome.started
    record.duration_s = outcome.duration_s
    if output_dir is not None:
        run_dir = newest_run_dir(output_dir) if output_dir.is_dir() else None
        record.run_dir = str(run_dir) if run_dir else None
    if record.status != COMPLETED and record.log_path:
        record.error = log_tail(Path(record.log_path))
    return record
