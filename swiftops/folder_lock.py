"""One sweep or run per folder: the process that launches a sweep (or a single run) holds a lock
file in its folder until it ends, and a second launch into that folder is refused, naming the holder.

The lock is flock(2) on `.swiftops-lock`, whose text says who holds it (pid, host, since when, the
command). The kernel drops a process's locks when it ends, however it ends, so a holder that was
killed leaves a file that the next launch simply takes over. flock works across the hosts of an
NFS mount too, so a sweep launched on another login node is seen. (filelock, which the GPU leases
use, manages its lock file's contents itself: the holder's text could not live in it.)
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

LOCK_NAME = ".swiftops-lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a folder, as its lock file says."""

    pid: int | None
    host: str
    since: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.since}: {self.command}"


class FolderInUse(Exception):
    def __init__(self, folder: Path, holder: Holder):
        super().__init__(f"{folder} is in use by another swiftops run or sweep ({holder.describe()})")
        self.folder, self.holder = folder, holder


@dataclass
class FolderLock:
    """A held lock: the open file whose flock it is."""

    path: Path
    fd: int | None

    def release(self) -> None:
        """Remove the lock file and let go (idempotent). Removing first, while still holding it: a
        launch that opened the old file then finds it unlinked and starts over (see hold_folder)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self.path, self.fd):
                self.path.unlink()
        os.close(self.fd)  # closing drops the flock
        self.fd = None
        atexit.unregister(self.release)


def this_holder() -> Holder:
    command = " ".join(["python -m swiftops", *sys.argv[1:]]) if sys.argv else "swiftops"
    return Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        since=datetime.now().astimezone().isoformat(timespec="seconds"),
        command=command,
    )


def read_holder(path: Path) -> Holder:
    """The holder a lock file names; what can't be read is shown as unknown."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(
            data.get("pid"),
            str(data.get("host", "?")),
            str(data.get("since", "?")),
            str(data.get("command", "?")),
        )
    except (OSError, ValueError, AttributeError):
        return Holder(None, "an unknown host", "an unknown time", "(its lock file can't be read)")


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def _try_flock(path: Path, *, create: bool = True) -> int | None:
    """An fd holding path's exclusive flock, or None when another process holds it (or, with
    create=False, when there is no such file)."""
    while True:
        try:  # never O_TRUNC: the text names the holder
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(path, fd):
            return fd
        os.close(fd)  # the holder released (unlinked) it between our open and our flock: again


def live_holder(path: Path) -> Holder | None:
    """Who holds the lock file at path; None when nobody does (no such file, or its holder died)."""
    fd = _try_flock(path, create=False)
    if fd is not None:
        os.close(fd)
        return None
    return read_holder(path) if path.is_file() else None


def hold_folder(folder: Path) -> FolderLock:
    """Hold folder (made if missing) for this process, until release() or the process ends.
    Raises FolderInUse naming the live holder of folder, or of a folder above it (a sweep's)."""
    folder = Path(folder).resolve()
    for above in folder.parents:
        holder = live_holder(above / LOCK_NAME)
        if holder is not None:
            raise FolderInUse(above, holder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _try_flock(path)
    if fd is None:
        raise FolderInUse(folder, read_holder(path))
    holder = this_holder()
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder.__dict__).encode())
    lock = FolderLock(path, fd)
    atexit.register(lock.release)  # a SystemExit (a refusal) or Ctrl-C out of Hydra still lets go
    return lock
