"""Launch `swift` as a subprocess and record what happened.

swift runs in its own process group and session, never through a shell, with its output in a
log file; the orchestrator only polls the run's logging.jsonl, for a progress line and for the
watchdog (swiftops.watchdog), which stops the whole process group of a run that has already
failed. A failing swift never raises out of here: it becomes a `failed` record.

Stop signals (SIGINT = Ctrl-C, SIGTERM, SIGHUP = the terminal closed) are only noted by their
handler (swiftops.stops); the wait loop then stops swift's whole process group (SIGINT, grace, SIGTERM, grace,
SIGKILL; each further signal moves on to the next step at once), waits until the group is empty
and returns an `interrupted` Outcome naming the signal. On Linux swift is started through a tiny
supervisor (swiftops.supervisor) that stops the group when the orchestrator itself dies (kill -9,
the OOM killer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from swiftops.job_progress import Progress
from swiftops.record import COMPLETED, FAILED, INTERRUPTED
from swiftops.stops import STOP_CAUSES, StopRequests, adopt_sweep_stop, stops_while_swift_runs

logger = logging.getLogger("swiftops")

LOG_TAIL_LINES = 40
POLL_SECONDS = 0.25
# how long swift gets to stop after SIGINT, then after SIGTERM, before SIGKILL
STOP_GRACE_SECONDS = (5.0, 5.0)
KILL_WAIT_SECONDS = 5.0  # after SIGKILL: what is left then (a process stuck in the kernel) is only reported
LEFTOVER_GRACE_SECONDS = 5.0  # processes left in the group after swift's leader exited on its own
GROUP_POLL_SECONDS = 0.05
STOPPED_BY_WATCHDOG = "watchdog"  # Outcome.stopped_by and run.json's stopped_by
SUPERVISOR_PATH = str(Path(__file__).with_name("supervisor.py"))  # run as a file: see its docstring
SUPERVISE_ENV = "SWIFTOPS_SUPERVISE"  # "0": start swift directly, without the parent-death supervisor


@dataclass
class Outcome:
    """How one swift process ended."""

    exit_code: int | None
    interrupted: bool
    started: str
    duration_s: float
    stopped_by: str | None = None  # "watchdog": stopped because the run had already failed
    decision: Any = None  # what the watchdog decided (its failed Diagnosis)
    stop_signal: str | None = None  # "SIGINT" | "SIGTERM" | "SIGHUP": the signal that interrupted it


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


# ---------------------------------------------------------------- process groups


def group_gone(proc: subprocess.Popen) -> bool:
    """Whether swift's process group is empty. The leader is reaped first (a zombie still counts),
    then any process of the group that died and was handed to us (we run as PID 1 or a subreaper)."""
    proc.poll()
    if proc.returncode is not None:  # only now: reaping the leader here would lose its exit code
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-proc.pid, os.WNOHANG)[0]:
                pass
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a member we may not signal is still a member
        return False
    return False


def wait_group_gone(
    proc: subprocess.Popen, timeout: float, cut_short: Callable[[], bool] | None = None
) -> bool:
    """Wait up to timeout for swift's process group to empty; False when time ran out or
    cut_short() said stop waiting."""
    deadline = time.monotonic() + timeout
    while not group_gone(proc):
        if time.monotonic() >= deadline or (cut_short is not None and cut_short()):
            return False
        time.sleep(GROUP_POLL_SECONDS)
    return True


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop_process_group(proc: subprocess.Popen, stops: StopRequests | None = None, counted: int = 0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the child's whole process group (the second Python
    that `swift` starts, torchrun workers), each step only when the group outlived the grace of
    the one before, so nothing is killed that would have ended on its own. A stop signal beyond
    the `counted` ones that `stops` holds ends the current grace at once. Returns once the
    group is empty (or, stuck after SIGKILL, with a warning)."""

    def more_signals() -> bool:
        return stops is not None and stops.count > counted

    for sig, grace in zip((signal.SIGINT, signal.SIGTERM), STOP_GRACE_SECONDS, strict=True):
        signal_group(proc, sig)
        if wait_group_gone(proc, grace, more_signals):
            return
        if more_signals():
            counted = stops.count
            logger.warning("another stop signal: swift gets no more time, next step at once")
    signal_group(proc, signal.SIGKILL)
    if not wait_group_gone(proc, KILL_WAIT_SECONDS):
        logger.warning("swift's process group %d outlived SIGKILL by %.0f s", proc.pid, KILL_WAIT_SECONDS)


def supervised() -> bool:
    """Whether swift starts under swiftops.supervisor: on Linux (prctl), unless SWIFTOPS_SUPERVISE=0."""
    return sys.platform.startswith("linux") and bool(sys.executable) and os.environ.get(SUPERVISE_ENV) != "0"


def launch_command(argv: Sequence[str]) -> list[str]:
    """The command that starts swift: argv itself, or argv under the parent-death supervisor."""
    if not supervised():
        return list(argv)
    graces = [str(g) for g in STOP_GRACE_SECONDS]
    return [sys.executable, "-I", "-S", SUPERVISOR_PATH, str(os.getpid()), *graces, *argv]


def run_swift(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path,
    progress: Progress | None = None,
    watchdog: RunWatchdog | None = None,
) -> Outcome:
    """Run one swift command to its end. Never raises for swift's own failures, nor for stop
    signals: returns interrupted=True with stop_signal after SIGINT/SIGTERM/SIGHUP, and
    stopped_by="watchdog" (with its decision) when the watchdog found the run already failed, in
    both cases once swift's whole process group is gone. Under the app's handlers
    (handle_stop_signals) a stop that came before swift started means it never starts."""
    started, t0 = now_iso(), time.monotonic()
    interrupted, exit_code, decision = False, None, None
    with open(log_path, "ab") as log, stops_while_swift_runs() as stops:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        if adopt_sweep_stop(stops):
            log.write(f"swiftops: not started: {stops.first} came first\n".encode())
            return Outcome(None, True, started, 0.0, stop_signal=stops.first)
        try:
            proc = subprocess.Popen(
                launch_command(argv),
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
                    proc.wait(timeout=POLL_SECONDS)
                    # a signal to the whole session (a scheduler's, a terminal's) may reach swift first:
                    # it ended because of the stop all the same
                    interrupted = stops.count > 0 and proc.returncode != 0
                    break
                except subprocess.TimeoutExpired:
                    pass
                if adopt_sweep_stop(stops):
                    interrupted = True
                    cause = STOP_CAUSES.get(stops.first, stops.first)
                    logger.warning("%s: stopping swift in %s (a second one cuts its grace)", cause, cwd)
                    stop_process_group(proc, stops, counted=1)
                    break
                if progress is not None:
                    progress = poll_progress(progress)
                if watchdog is not None:
                    decision, watchdog = poll_watchdog(watchdog)
                    if decision is not None and proc.poll() is not None:
                        decision = None  # swift ended on its own meanwhile: its own end is recorded
                    if decision is not None:
                        logger.warning("the watchdog stops swift in %s: the run has already failed", cwd)
                        stop_process_group(proc, stops, counted=stops.count)
                        break
            if (
                not interrupted
                and decision is None
                and not wait_group_gone(proc, LEFTOVER_GRACE_SECONDS, lambda: stops.count > 0)
            ):
                logger.warning("swift's leader ended but left processes in its group: stopping them")
                stop_process_group(proc, stops, counted=stops.count)
        except KeyboardInterrupt:  # raised by someone else's handler: still a stop
            interrupted = True
            stops.first = stops.first or "SIGINT"
            stop_process_group(proc, stops, counted=stops.count)
        finally:
            if not group_gone(proc):  # an unexpected error in our loop: never leave swift behind
                stop_process_group(proc, stops, counted=stops.count)
            if progress is not None:
                poll_progress(progress, final=True)
            exit_code = proc.returncode
    stopped_by = STOPPED_BY_WATCHDOG if decision is not None else None
    return Outcome(
        exit_code,
        interrupted,
        started,
        round(time.monotonic() - t0, 3),
        stopped_by,
        decision,
        stop_signal=stops.first if interrupted else None,
    )


def poll_progress(progress: Progress, final: bool = False) -> Progress | None:
    """Poll (or close) the progress line; one that raises (Progress never does, a stand-in
    might) is logged and left off: it only displays."""
    try:
        progress.close() if final else progress.poll()
        return progress
    except Exception:
        logger.warning("the progress line failed and is off for the rest of this run", exc_info=True)
        return None


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
