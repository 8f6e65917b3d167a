"""Stop requests: what a stop signal, a sweep's shared stop or the end of a sweep's launcher asks
of the job that runs.

Stop signals (SIGINT = Ctrl-C, SIGTERM, SIGHUP = the terminal closed) are only noted by their
handler (StopRequests): the code that polls them decides, so a signal never lands in the middle of
writing a record. While swift runs, swiftops.runner stops its process group; between jobs the app
records the jobs not started as such. A sweep's launching process shares its stop with the jobs in
other processes (a parallel launcher's workers, SLURM tasks) through a file in the sweep folder, and
a local worker ends with the process that launched it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("swiftops")

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
# a worker whose launcher ended notes the stop again this often, until its job is over
LAUNCHER_POLL_SECONDS = 0.25
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
        time.sleep(LAUNCHER_POLL_SECONDS)


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
def stops_while_swift_runs() -> Iterator[StopRequests]:
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


def interruption_sentence(stop_signal: str) -> str:
    """'interrupted by SIGHUP (the terminal or ssh session closed)'."""
    return f"interrupted by {STOP_CAUSES.get(stop_signal, stop_signal)}"
