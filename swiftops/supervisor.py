"""The parent of swift on Linux: stops swift's process group when the orchestrator dies.

    python -I -S supervisor.py <orchestrator pid> <grace> <grace> swift sft ...

swift runs in its own session (so Ctrl-C in the terminal reaches only the orchestrator), hence
nothing stops it when the orchestrator dies (kill -9, the OOM killer). This asks the kernel for
SIGUSR1 when its parent dies, then stops its own process group as the orchestrator would (SIGINT,
grace, SIGTERM, grace, SIGKILL); otherwise it waits for swift and ends as swift ended. It handles
the group's stop signals with a no-op (a handler, unlike SIG_IGN, is not inherited by swift).

Run as a file, isolated and without site (-I -S): it starts in a few milliseconds, imports nothing
of swiftops, and may run under whatever Python the orchestrator runs under (3.10+).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1


class ParentDied(Exception):
    pass


class Supervisor:
    def __init__(self, parent: int, graces: tuple[float, float]):
        self.parent, self.graces = parent, graces
        self.child: int | None = None

    def on_parent_death(self, signum, frame) -> None:
        # a thread of the parent that ended sends it too: only the parent's own end counts
        if self.child is not None and os.getppid() != self.parent:
            raise ParentDied

    def ended(self, block: bool) -> int | None:
        """swift's exit code once it ended (0 if it was reaped already), else None."""
        try:
            pid, status = os.waitpid(self.child, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return 0
        return os.waitstatus_to_exitcode(status) if pid else None

    def stop_group(self) -> None:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        for sig, grace in zip((signal.SIGINT, signal.SIGTERM), self.graces, strict=True):
            os.killpg(0, sig)
            deadline = time.monotonic() + grace
            while self.ended(False) is None and time.monotonic() < deadline:
                time.sleep(0.05)
        os.killpg(0, signal.SIGKILL)  # what is left, this supervisor included

    def run(self, argv: list[str]) -> int:
        signal.signal(signal.SIGUSR1, self.on_parent_death)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, frame: None)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
        if os.getppid() != self.parent:  # the orchestrator died before it could be watched
            return 1
        errors_r, errors_w = os.pipe()  # closed on exec: the child writes why exec failed
        pid = os.fork()
        if pid == 0:
            try:
                os.execvp(argv[0], argv)
            except OSError as exc:
                os.write(errors_w, str(exc).encode())
            os._exit(127)
        self.child = pid
        os.close(errors_w)
        try:
            error = os.read(errors_r, 4096)
            if error:
                self.ended(True)
                print(f"swiftops: could not start {argv[0]}: {error.decode()}", file=sys.stderr, flush=True)
                return 127
            if os.getppid() != self.parent:
                raise ParentDied
            return self.ended(True)
        except ParentDied:
            self.stop_group()
            return 1  # not reached: SIGKILL ends the group, this supervisor with it


def end_as(code: int) -> None:
    """Exit as swift did: with its code, or (swift died of a signal) of the same signal, so the
    orchestrator sees what swift saw."""
    if code < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's can't be set (nor need it be)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code if code >= 0 else 128 - code)


def main(args: list[str]) -> None:
    parent, graces, argv = int(args[0]), (float(args[1]), float(args[2])), args[3:]
    end_as(Supervisor(parent, graces).run(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
