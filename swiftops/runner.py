"""Launch `swift` as a subprocess and record what happened.

swift runs in its own process group and session, never through a shell, with its output in a
log file; the orchestrator only polls the run's logging.jsonl, for a progress line and for the
watchdog (swiftops.watchdog), which stops the whole process group of a run that has already
failed. A failing swift never raises out of here: it becomes a `failed` record.

Stop signals (SIGINT = Ctrl-C, SIGTERM, SIGHUP = the terminal closed) are only noted by their
handler; the wait loop then stops swift's whole process group (SIGINT, grace, SIGTERM, grace,
SIGKILL; each further signal moves on to the next step at once), waits until the group is empty
and returns an `interrupted` Outcome naming the signal. On Linux swift is started through a tiny
supervisor that stops the group when the orchestrator itself dies (kill -9, the OOM killer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from swiftops.record import COMPLETED, FAILED, INTERRUPTED
from swiftops.runfolder import LineFollower, live_log

logger = logging.getLogger("swiftops")

LOG_TAIL_LINES = 40
POLL_SECONDS = 0.25
# how long swift gets to stop after SIGINT, then after SIGTERM, before SIGKILL
STOP_GRACE_SECONDS = (5.0, 5.0)
KILL_WAIT_SECONDS = 5.0  # after SIGKILL: what is left then (a process stuck in the kernel) is only reported
LEFTOVER_GRACE_SECONDS = 5.0  # processes left in the group after swift's leader exited on its own
GROUP_POLL_SECONDS = 0.05
STOPPED_BY_WATCHDOG = "watchdog"  # Outcome.stopped_by and run.json's stopped_by
# Ctrl-C, a scheduler's or `kill`'s stop, a closed terminal or ssh session (no SIGHUP on Windows)
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
LAUNCHER_GONE = "launcher-gone"  # StopRequests.first in a worker whose sweep's launching process died
STOP_CAUSES = {
    "SIGINT": "Ctrl-C (SIGINT)",
    "SIGTERM": "SIGTERM (a scheduler's or kill's stop)",
    "SIGHUP": "SIGHUP (the terminal or ssh session closed)",
    "SIGUSR2": "SLURM's warning that the task's time limit is near (SIGUSR2)",
    LAUNCHER_GONE: "the end of the process that launched the sweep (kill -9, or the OOM killer)",
}
# submitit asks SLURM for SIGUSR2 shortly before a task's time limit (hydra.launcher.signal_delay_s):
# in a SLURM task it is a stop too, so swift is stopped cleanly and the job recorded, resumable,
# before SLURM kills the task (submitit's own handler would raise out of the job instead)
SLURM_WARNING_SIGNAL = getattr(signal, "SIGUSR2", None)


def in_slurm_task() -> bool:
    """Whether this process runs inside a SLURM allocation (an array task of hydra/launcher=slurm)."""
    return bool(os.environ.get("SLURM_JOB_ID"))


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a job here: STOP_SIGNALS, and SLURM's time-limit warning in a task."""
    if in_slurm_task() and SLURM_WARNING_SIGNAL is not None:
        return (*STOP_SIGNALS, SLURM_WARNING_SIGNAL)
    return STOP_SIGNALS


# the app's handlers: this many stop signals while no swift runs stop the app at once
QUIT_AFTER_SIGNALS = 3
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


# ---------------------------------------------------------------- stop signals


@dataclass
class StopRequests:
    """The stop signals received, as their handler counts them. The handler only takes note (and
    no I/O of Python's): code that polls this decides, so a signal can't land in the middle of
    writing a record."""

    first: str | None = None  # the name of the first one
    count: int = 0
    swift_running: bool = False
    outside_swift: int = 0  # received while no swift ran
    quit_after: int | None = None  # the app's: this many outside swift raise KeyboardInterrupt

    def handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        self.first = self.first or name
        self.count += 1
        if name == "SIGHUP":
            detach_from_terminal()
        raise_sweep_stop(name)
        if self.swift_running or self.quit_after is None:
            return  # run_swift's loop sees the count within POLL_SECONDS
        self.outside_swift += 1
        if self.outside_swift >= self.quit_after:
            raise KeyboardInterrupt
        left = self.quit_after - self.outside_swift
        say(f"swiftops: {name}: stopping; the jobs not started are recorded as such ({left} more: quit now)")


def say(text: str) -> None:
    """A line on stderr straight to the file descriptor, safe inside a signal handler (print could
    re-enter the buffer the interrupted code was writing)."""
    with contextlib.suppress(OSError):
        os.write(2, f"\n{text}\n".encode(errors="replace"))


def detach_from_terminal() -> None:
    """After SIGHUP the terminal may be gone: writes to it fail (EIO, or EPIPE behind a pipe).
    stdout and stderr that aren't plain files are pointed at /dev/null, so the job's own writes,
    its log lines and the table still succeed (run.json, swift.log and the report hold it all)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.dup2(null, fd)
    os.close(null)


@contextlib.contextmanager
def _handlers(stops: StopRequests) -> Iterator[bool]:
    """stops.handle for every stop signal, the previous handlers back afterwards. Yields False
    (and installs nothing) outside the main thread, where Python can't set handlers."""
    previous: dict[int, Any] = {}
    try:
        for sig in stop_signals():
            previous[sig] = signal.signal(sig, stops.handle)
    except ValueError:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        yield False
        return
    try:
        yield True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


_app_stops: StopRequests | None = None  # set while handle_stop_signals() is active


@contextlib.contextmanager
def handle_stop_signals(quit_after: int | None = QUIT_AFTER_SIGNALS) -> Iterator[StopRequests]:
    """For an app's lifetime: SIGINT, SIGTERM and SIGHUP become stop requests. While swift runs,
    run_swift stops it; at any other time (between jobs, during a diagnosis) nothing is cut off
    halfway: stop_requested() tells the app to record its remaining jobs as not started. The
    quit_after-th signal received while no swift runs raises KeyboardInterrupt (a way out of a hang)."""
    global _app_stops
    stops = StopRequests(quit_after=quit_after)
    with _handlers(stops) as installed:
        if installed:
            _app_stops = stops
        try:
            yield stops
        finally:
            if installed:
                _app_stops = None


def stop_requested() -> str | None:
    """The name of the first stop signal the app received (handle_stop_signals), or the one the
    sweep's launching process shared (share_sweep_stops), else None."""
    own = _app_stops.first if _app_stops is not None else None
    return own or (LAUNCHER_GONE if _launcher_gone else None) or sweep_stop()


@contextlib.contextmanager
def stop_handling(worker: bool = False) -> Iterator[StopRequests | None]:
    """The app's stop handling for a job: already there in the launching process; elsewhere (a
    parallel launcher's worker, a SLURM task, a test) installed for the job's length. A worker never
    quits on repeated signals: the launching process decides when the sweep ends."""
    if _app_stops is not None:
        yield _app_stops
        return
    with handle_stop_signals(quit_after=None) as stops:
        yield stops
    if not worker:
        return
    # between jobs, a worker leaves a terminal's Ctrl-C (and hangup) to the launching process, which
    # shares the stop with the jobs still to come: by default it would kill the idle worker, and with
    # it the parallel launcher's sweep
    with contextlib.suppress(ValueError):  # not the main thread: no handlers to set
        for sig in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                signal.signal(sig, signal.SIG_IGN)


# ---------------------------------------------------------------- a sweep's shared stop

# A sweep's jobs may run in other processes (a parallel launcher's workers, SLURM tasks on other
# hosts). The launching process shares its stop as a file in the sweep folder; each job reads it
# between jobs and while swift runs. Only the launching process writes it: a worker or task stopped
# on its own (one task cancelled, or over its time limit) stops its job, not the sweep.
SWEEP_STOP_NAME = ".swiftops-stop"
_sweep_stop_path: Path | None = None  # this process's sweep's stop file
_sweep_stop_owner = False  # whether this process is the one that launched the sweep


def share_sweep_stops(sweep_dir: Path | None, *, owner: bool = False) -> None:
    """Where this process reads (and, as the sweep's owner, writes) the sweep's stop. The owner
    starts a sweep afresh: a stop left by an earlier one (resume=true into its folder) is removed,
    and the workers it starts learn who launched them (follow_launcher)."""
    global _sweep_stop_path, _sweep_stop_owner
    _sweep_stop_path = Path(sweep_dir) / SWEEP_STOP_NAME if sweep_dir is not None else None
    _sweep_stop_owner = owner
    if owner and _sweep_stop_path is not None:
        os.environ[LAUNCHER_ENV] = f"{socket.gethostname()}:{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            _sweep_stop_path.unlink()


def launched_here(sweep_dir: Path | None) -> bool:
    """Whether this process launched the sweep of sweep_dir (else it is a worker or a SLURM task)."""
    if sweep_dir is None or not _sweep_stop_owner:
        return False
    return _sweep_stop_path == Path(sweep_dir) / SWEEP_STOP_NAME


def join_sweep_stops(sweep_dir: Path | None) -> None:
    """A job's side: read the stop of the sweep it belongs to (a no-op in the launching process,
    which owns it already)."""
    path = Path(sweep_dir) / SWEEP_STOP_NAME if sweep_dir is not None else None
    if path != _sweep_stop_path:
        share_sweep_stops(sweep_dir)


def raise_sweep_stop(name: str) -> None:
    """In the sweep's owner (from the signal handler: plain os calls, no Python buffers): share the
    stop with every job of the sweep."""
    if not _sweep_stop_owner or _sweep_stop_path is None:
        return
    with contextlib.suppress(OSError):
        fd = os.open(_sweep_stop_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, name.encode())
        finally:
            os.close(fd)


# A local worker (hydra/launcher=parallel) must not outlive the process that launched its sweep: a
# launcher killed with kill -9 writes no table and no report, and its workers would go on holding
# the GPUs. The launcher's host and pid reach its workers in this variable. A SLURM task is left to
# the scheduler, which decides how long it lives (scancel stops it), even on the launcher's host.
LAUNCHER_ENV = "SWIFTOPS_LAUNCHER"
_followed_launcher: int | None = None
_launcher_gone = False


def follow_launcher() -> None:
    """In a worker on the launcher's host: when the launching process ends, the job running here is
    stopped as a stop signal would stop it (swift stopped, the job recorded interrupted, so
    resume=true continues it), and then this worker ends; an idle worker ends at once. Linux only
    (pidfd), as the supervisor that does the same for swift itself."""
    global _followed_launcher
    host, _, pid = os.environ.get(LAUNCHER_ENV, "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) in (os.getpid(), _followed_launcher):
        return
    if not hasattr(os, "pidfd_open") or in_slurm_task():  # the scheduler decides how long a task lives
        return
    try:
        pidfd = os.pidfd_open(int(pid))
    except ProcessLookupError:
        _end_with_launcher(None)
        return
    except OSError:  # a kernel before 5.3: the worker lives as loky lets it
        return
    _followed_launcher = int(pid)
    threading.Thread(target=_wait_for_launcher, args=(pidfd,), name="swiftops-launcher", daemon=True).start()


def _wait_for_launcher(pidfd: int) -> None:
    global _launcher_gone
    select.select([pidfd], [], [])  # readable once the process has ended
    _launcher_gone = True
    while True:
        _end_with_launcher(_app_stops)
        time.sleep(POLL_SECONDS)


def _end_with_launcher(stops: StopRequests | None) -> None:
    """Between jobs: end this worker (its job's record is written). During one: note the stop, which
    run_swift and the job's later stages act on; called again until the job is over."""
    if stops is None:
        logging.shutdown()
        os._exit(128 + signal.SIGTERM)
    if not stops.count:
        logger.error("the process that launched this sweep has ended: stopping this job")
        stops.first, stops.count = LAUNCHER_GONE, stops.count + 1


def sweep_stop() -> str | None:
    """The stop signal the sweep's launching process received, as it shared it, else None."""
    if _sweep_stop_path is None:
        return None
    try:
        return _sweep_stop_path.read_text(encoding="utf-8", errors="replace").strip() or "SIGINT"
    except OSError:
        return None


def adopt_sweep_stop(stops: StopRequests) -> bool:
    """Whether a stop came: this process's own, or the sweep's (then noted in stops as if received)."""
    if stops.count:
        return True
    shared = None if _sweep_stop_owner else sweep_stop()
    if shared:
        stops.first, stops.count = shared, 1
    return bool(shared)


@contextlib.contextmanager
def _stops_while_swift_runs() -> Iterator[StopRequests]:
    """The app's stop requests, or (used on its own: tests, notebooks) handlers of this call's."""
    stops = _app_stops
    if stops is None:
        stops = StopRequests(swift_running=True)
        with _handlers(stops):
            yield stops
        return
    stops.swift_running = True
    try:
        yield stops
    finally:
        stops.swift_running = False


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


# The parent of swift on Linux: `python -I -S -c SUPERVISOR <orchestrator pid> <grace> <grace> argv...`.
# swift runs in its own session (so Ctrl-C in the terminal reaches only the orchestrator), hence
# nothing stops it when the orchestrator dies (kill -9, the OOM killer). This asks the kernel for
# SIGUSR1 when its parent dies, then stops its own process group as the orchestrator would;
# otherwise it waits for swift and ends as swift ended. It handles the group's stop signals with a
# no-op (a handler, unlike SIG_IGN, is not inherited by swift).
SUPERVISOR = r"""# swiftops: stop the process group when the orchestrator dies
import ctypes, os, signal, sys, time
parent, graces, argv = int(sys.argv[1]), (float(sys.argv[2]), float(sys.argv[3])), sys.argv[4:]
child = None
class ParentDied(Exception):
    pass
def on_parent_death(signum, frame):
    if child is not None and os.getppid() != parent:  # (a thread of the parent that ended sends it too)
        raise ParentDied
def ended(block):
    try:
        pid, status = os.waitpid(child, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return 0
    return os.waitstatus_to_exitcode(status) if pid else None
signal.signal(signal.SIGUSR1, on_parent_death)
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda signum, frame: None)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGUSR1, 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != parent:  # the orchestrator died before it could be watched
    sys.exit(1)
errors_r, errors_w = os.pipe()  # closed on exec: the child writes why exec failed
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(errors_w, str(exc).encode())
    os._exit(127)
child = pid
os.close(errors_w)
try:
    error = os.read(errors_r, 4096)
    if error:
        ended(True)
        print(f"swiftops: could not start {argv[0]}: {error.decode()}", file=sys.stderr, flush=True)
        sys.exit(127)
    if os.getppid() != parent:
        raise ParentDied
    code = ended(True)
except ParentDied:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    for sig, grace in zip((signal.SIGINT, signal.SIGTERM), graces):
        os.killpg(0, sig)
        deadline = time.monotonic() + grace
        while ended(False) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)  # what is left, this supervisor included
if code < 0:  # swift died of a signal: die of the same one, so the orchestrator sees what swift saw
    try:
        signal.signal(-code, signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL's can't be set (nor need it be)
        pass
    os.kill(os.getpid(), -code)
sys.exit(code if code >= 0 else 128 - code)
"""


def supervised() -> bool:
    """Whether swift starts under SUPERVISOR: on Linux (prctl), unless SWIFTOPS_SUPERVISE=0."""
    return sys.platform.startswith("linux") and bool(sys.executable) and os.environ.get(SUPERVISE_ENV) != "0"


def launch_command(argv: Sequence[str]) -> list[str]:
    """The command that starts swift: argv itself, or argv under the parent-death supervisor."""
    if not supervised():
        return list(argv)
    graces = [str(g) for g in STOP_GRACE_SECONDS]
    return [sys.executable, "-I", "-S", "-c", SUPERVISOR, str(os.getpid()), *graces, *argv]


class DisplayOnly:
    """What only displays (a progress line, the sweep's live view) must never cost a job: the first
    failure of one of its steps is logged once, with what it was, and it stays off from then on."""

    off = False
    what = "the display"  # its name in the warning, e.g. "the progress line of job 3"

    def _guarded(self, step: Callable[[], None]) -> None:
        if self.off:
            return
        try:
            step()
        except Exception:
            self.off = True
            self._on_failure()
            logger.warning("%s failed; it is off from now on", self.what, exc_info=True)

    def _on_failure(self) -> None:
        """What to put back before the warning is written (a terminal a live view had taken over)."""


class Progress(DisplayOnly):
    """One short live line per job: step/max_steps, loss, eval loss, ETA — read from the
    newest logging.jsonl under output_dir. Redrawn in place on a terminal, printed at most
    every few seconds otherwise. It only displays: poll and close never raise; the first
    failure (a broken stream, a bug) is logged and the line stays off for the rest of the run."""

    def __init__(
        self, label: str, output_dir: Path | None, stream: TextIO | None = None, every_s: float = 5.0
    ):
        self.label, self.output_dir = label, output_dir
        self.stream = stream or sys.stdout
        try:
            self.tty = bool(self.stream.isatty())
        except Exception:  # a closed or odd stream: print plain lines (or fail later, guarded)
            self.tty = False
        self.every_s = every_s
        self.last_text, self.last_time = "", 0.0
        self.follower: LineFollower | None = None  # once swift created the run's log
        self.state: dict[str, Any] = {}
        self.what = f"the progress line of {label}"

    def poll(self) -> None:
        self._guarded(self._poll)

    def close(self) -> None:
        self._guarded(self._close)

    def _poll(self) -> None:
        if self.output_dir is None:
            return
        if self.follower is None:
            path = live_log(self.output_dir)
            if path is None:
                return
            self.follower = LineFollower(path)
        for row in self.follower.new_rows():
            self.state.update(row)
        text = progress_text(self.state)
        if (
            text
            and text != self.last_text
            and (self.tty or time.monotonic() - self.last_time >= self.every_s)
        ):
            self._show(text)

    def _show(self, text: str) -> None:
        line = f"  [{self.label}] {text}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last_text, self.last_time = text, time.monotonic()

    def _close(self) -> None:
        self._poll()
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
    """Run one swift command to its end. Never raises for swift's own failures, nor for stop
    signals: returns interrupted=True with stop_signal after SIGINT/SIGTERM/SIGHUP, and
    stopped_by="watchdog" (with its decision) when the watchdog found the run already failed, in
    both cases once swift's whole process group is gone. Under the app's handlers
    (handle_stop_signals) a stop that came before swift started means it never starts."""
    started, t0 = now_iso(), time.monotonic()
    interrupted, exit_code, decision = False, None, None
    with open(log_path, "ab") as log, _stops_while_swift_runs() as stops:
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


def interruption_sentence(stop_signal: str) -> str:
    """'interrupted by SIGHUP (the terminal or ssh session closed)'."""
    return f"interrupted by {STOP_CAUSES.get(stop_signal, stop_signal)}"
