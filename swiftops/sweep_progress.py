"""The live progress of a whole sweep, drawn by the process that launched it.

A sweep's jobs run in other processes (joblib workers) or on other hosts (SLURM array tasks sharing
the filesystem): nothing they hold in memory reaches the launcher, and their own stdout is theirs.
So the launcher reads what every job already writes to disk, through the readers everything
downstream uses: `<sweep>/<i>/run.json` (written `running` when the job starts swift, rewritten
with its status and verdict when it ends; swiftops.record) and swift's growing `logging.jsonl`
(step, loss, eval loss, ETA; swiftops.runfolder, turned into text by job_progress.progress_text).

It polls files and nothing more: one listing of the sweep folder, one stat of each run.json (read
again only when it changed), and for each running job only the bytes appended to its log since the
last poll. A job with no folder, or a folder without run.json yet, is queued.

    progress = SweepProgress(sweep_dir, expected=4)
    progress.start()  # a daemon thread: a rich Live display on a terminal, plain lines otherwise
    ...               # the jobs run, anywhere
    progress.stop()   # draws the final state, joins the thread
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from swiftops.job_progress import DisplayOnly, progress_text
from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RECORD_NAME, RUNNING, RunRecord, read_record
from swiftops.runfolder import LineFollower, live_log

logger = logging.getLogger("swiftops")

QUEUED = "queued"  # no folder yet, or a folder without run.json: swift has not started
STATES = (QUEUED, RUNNING, COMPLETED, FAILED, INTERRUPTED)
FINISHED = (COMPLETED, FAILED, INTERRUPTED)

# rich styles: a finished job by its verdict when it has one, else by its state
STYLES = {
    COMPLETED: "green",
    FAILED: "red",
    INTERRUPTED: "yellow",
    "converged": "green",
    "underfit": "yellow",
    "overfit": "yellow",
    "failed": "red",
}


# ---------------------------------------------------------------------------------------------
# the pure core: views -> lines


@dataclass(frozen=True)
class JobView:
    """What the display shows of one job, as read from its folder."""

    label: str  # "job 3", as the job's own log lines name it
    state: str  # queued | running | completed | failed | interrupted
    progress: str = ""  # job_progress.progress_text: 'step 12/40  loss 2.314  eval 2.101  eta 0:00:21'
    verdict: str | None = None  # failed | underfit | overfit | converged, once judged
    duration_s: float | None = None  # swift's run time, once finished
    stopped_by: str | None = None  # "watchdog" when the live watchdog stopped it

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def sweep_line(views: Sequence[JobView], expected: int | None = None) -> str:
    """'sweep: 3 ended (2 completed, 1 crashed), 1 running, 0 queued; verdicts: 2 failed, 1 converged'."""
    return "; ".join(sweep_parts(views, expected))


def sweep_parts(views: Sequence[JobView], expected: int | None = None) -> list[str]:
    """The sweep line's two parts (the live display draws them as two lines, to fit a terminal): the
    jobs' states, then the verdicts when there are any.

    How a job's process ended and what its curves say are different counts: a run that trained to
    its end can still be a failed run, and a crashed one is failed too. The endings are named only
    when there are any: completed, crashed (swift exited with an error), stopped by the watchdog,
    interrupted. With expected (the number of jobs the sweep will run), jobs that have no folder yet
    count as queued."""
    counts = Counter(view.state for view in views)
    queued = counts[QUEUED] + (max(0, expected - len(views)) if expected is not None else 0)
    ended = [view for view in views if view.finished]
    endings = Counter(_ending(view) for view in ended)
    how = ", ".join(f"{endings[name]} {name}" for name in ENDINGS if endings[name])
    line = f"sweep: {len(ended)} ended" + (f" ({how})" if how else "")
    parts = [line + f", {counts[RUNNING]} running, {queued} queued"]
    verdicts = Counter(view.verdict for view in ended if view.verdict)
    if verdicts:
        parts.append("verdicts: " + ", ".join(f"{n} {verdict}" for verdict, n in verdicts.items()))
    return parts


# how a finished job's process ended, in the sweep line's order
ENDINGS = ("completed", "crashed", "stopped by watchdog", "interrupted")


def _ending(view: JobView) -> str:
    if view.state == FAILED:
        return f"stopped by {view.stopped_by}" if view.stopped_by else "crashed"
    return view.state


def job_line(view: JobView) -> str:
    """'job 3  running  step 12/40  loss 2.314  eta 0:00:21', 'job 3  completed: converged  (15.2 s)',
    'job 1  failed  (stopped by watchdog, 8.1 s)'."""
    head = f"{view.label}  {view.state}"
    if view.state == RUNNING:
        return f"{head}  {view.progress}" if view.progress else head
    if not view.finished:
        return head
    if view.verdict and view.verdict != view.state:
        head += f": {view.verdict}"
    notes = [f"stopped by {view.stopped_by}"] if view.stopped_by else []
    if view.duration_s is not None:
        notes.append(duration_text(view.duration_s))
    return f"{head}  ({', '.join(notes)})" if notes else head


def live_lines(views: Sequence[JobView], expected: int | None = None, max_running: int = 20) -> list[str]:
    """The live display's lines: one per running job (at most max_running lines, the last then
    saying how many more run), then the sweep line's parts."""
    running = [job_line(view) for view in views if view.state == RUNNING]
    if len(running) > max(1, max_running):
        keep = max(1, max_running) - 1
        running = [*running[:keep], f"... and {len(running) - keep} more running"]
    return [*running, *sweep_parts(views, expected)]


def duration_text(seconds: float) -> str:
    """'8.1 s' under a minute, else '0:12:05'."""
    return f"{seconds:.1f} s" if seconds < 60 else str(timedelta(seconds=round(seconds)))


# ---------------------------------------------------------------------------------------------
# the sweep folder -> views


@dataclass
class _Job:
    """What the watcher keeps of one job folder between polls."""

    seen: bool = False  # its run.json has existed
    stat: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) of the run.json last read
    record: RunRecord | None = None  # the last run.json that could be read
    follower: LineFollower | None = None  # its logging.jsonl, while it runs
    rows: dict[str, Any] = field(default_factory=dict)  # the log's lines so far, merged


class SweepWatcher:
    """The current state of every job folder of a sweep, read from disk on each views() call."""

    def __init__(self, sweep_dir: str | os.PathLike, expected: int | None = None):
        # absolute: a job run in this process (Hydra's basic launcher) may change the working folder
        self.sweep_dir, self.expected = Path(sweep_dir).absolute(), expected
        self._jobs: dict[int, _Job] = {}

    def job_dirs(self) -> list[tuple[int, Path]]:
        """(number, folder) of every job folder so far (Hydra's default subdir: the job number)."""
        try:
            entries = list(os.scandir(self.sweep_dir))
        except OSError:  # not created yet: Hydra makes it with the first job
            return []
        return sorted((int(e.name), Path(e.path)) for e in entries if e.name.isdigit() and e.is_dir())

    def views(self) -> list[JobView]:
        """One view per job folder, in job order."""
        return [self._view(num, folder) for num, folder in self.job_dirs()]

    def _view(self, num: int, folder: Path) -> JobView:
        job = self._jobs.setdefault(num, _Job())
        self._read_record(job, folder / RECORD_NAME)
        label, record = f"job {num}", job.record
        if record is None:  # no run.json yet; or one that could not be read yet: it is being written
            return JobView(label, RUNNING if job.seen else QUEUED)
        state = record.status if record.status in FINISHED else RUNNING
        if state == RUNNING or job.follower is not None:  # a job just finished: its last lines
            self._follow(job, folder, record, running=state == RUNNING)
        if state != RUNNING:
            job.follower = None
        return JobView(
            label,
            state,
            progress_text(job.rows),
            record.verdict if isinstance(record.verdict, str) else None,
            record.duration_s if isinstance(record.duration_s, int | float) else None,
            record.stopped_by if isinstance(record.stopped_by, str) else None,
        )

    @staticmethod
    def _read_record(job: _Job, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:  # not written yet (or a folder gone meanwhile): what was read stands
            return
        job.seen = True
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == job.stat:
            return
        try:
            job.record = read_record(path)
        except (OSError, ValueError, RecursionError):
            return  # partial, or replaced meanwhile: the last state read stands, read again next poll
        job.stat = key

    @staticmethod
    def _follow(job: _Job, folder: Path, record: RunRecord, running: bool) -> None:
        rows = job.follower.new_rows() if job.follower is not None else []
        if not rows and running:  # quiet, or no log yet: has swift started a newer run folder?
            recorded = Path(record.output_dir) if isinstance(record.output_dir, str) else None
            output = recorded if recorded is not None and recorded.is_dir() else folder / "output"
            path = live_log(output)
            new = path is not None and (job.follower is None or path != job.follower.path)
            if new and _written_since(path, job.stat):
                job.follower, job.rows = LineFollower(path), {}
                rows = job.follower.new_rows()
        for row in rows:
            job.rows.update(row)


def _written_since(path: Path, record_stat: tuple[int, int, int] | None) -> bool:
    """The log was written since run.json was (re)written `running`, so it is this run's, not a
    run folder an earlier attempt left (resume=true re-runs a job in the same folder)."""
    slack_ns = 2_000_000_000  # filesystems with coarse timestamps
    try:
        return record_stat is None or path.stat().st_mtime_ns >= record_stat[0] - slack_ns
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# the display: a daemon thread drawing the views


class SweepProgress(DisplayOnly):
    """The sweep's live progress, drawn from disk by a daemon thread every poll_s seconds.

    On a terminal, a rich Live display: one line per running job and the sweep line, redrawn in
    place; each job that finishes is printed once above it with its verdict. Otherwise, plain lines
    when something changed: a job's state at once, its progress at most every every_s seconds, the
    sweep line when its counts change. It only displays: start, poll and stop never raise; the
    first failure is logged once and the display is off for the rest of the sweep."""

    def __init__(
        self,
        sweep_dir: str | os.PathLike,
        expected: int | None = None,
        stream: TextIO | None = None,
        every_s: float = 10.0,
        *,
        poll_s: float = 0.5,
    ):
        self.watcher = SweepWatcher(sweep_dir, expected)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = _isatty(self.stream)
        self.every_s, self.poll_s = every_s, poll_s
        self.what = f"the live progress of sweep {self.watcher.sweep_dir}"
        self._lock = threading.Lock()  # one poll at a time: the thread's, or stop()'s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._shown: dict[str, JobView] = {}  # what was last drawn of each job
        self._said: dict[str, float] = {}  # plain lines: when each job's line was last printed
        self._last_sweep = ""
        self.drawn: list[str] = []  # the live lines drawn last, on a terminal
        self._live: Any = None  # rich.live.Live, on a terminal, between start and stop
        self._rerouted: list[tuple[logging.StreamHandler, TextIO]] = []

    def start(self) -> None:
        """Start drawing in a daemon thread (a second call does nothing)."""
        self._guarded(self._start)

    def poll(self) -> None:
        """Read the sweep folder and draw what changed, now, in this thread (not after stop)."""
        if self._stopped:
            return
        with self._lock:
            self._guarded(self._poll)

    def stop(self) -> None:
        """Stop the thread and draw the final state (once; later calls do nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self._done.set()
        with contextlib.suppress(Exception):  # the display never holds up the sweep's end
            atexit.unregister(self.stop)
            if self._thread is not None:
                self._thread.join(timeout=5.0)
        if self._lock.acquire(timeout=5.0):  # a poll stuck on a hung filesystem: no final draw
            try:
                self._guarded(self._finish)
            finally:
                self._lock.release()
        self._close_live()

    # -----------------------------------------------------------------------------------------

    def _on_failure(self) -> None:
        self._close_live()  # the terminal back first, so the warning reads plainly

    def _start(self) -> None:
        if self._thread is not None or self._stopped:
            return
        # jobs that had ended before the sweep started (resume=true: the earlier records) are not
        # news: they are counted, and printed only when they change
        self._shown = {view.label: view for view in self.watcher.views() if view.finished}
        if self.tty:
            self._open_live()
        self._thread = threading.Thread(target=self._loop, name="swiftops-sweep-progress", daemon=True)
        self._thread.start()
        atexit.register(self.stop)  # a sweep that raises never reaches on_multirun_end

    def _loop(self) -> None:
        while not self.off:
            self.poll()
            if self._done.wait(self.poll_s):
                return

    def _poll(self, final: bool = False) -> None:
        views = self.watcher.views()
        if self.tty:
            self._draw_live(views)
        else:
            self._print_plain(views, final)

    def _finish(self) -> None:
        if self.tty and self._live is None:  # stop() without start(): nothing was drawn
            return
        self._poll(final=True)

    # plain lines ------------------------------------------------------------------------------

    def _print_plain(self, views: list[JobView], final: bool) -> None:
        now, lines = time.monotonic(), []
        for view in views:
            before = self._shown.get(view.label)
            moved = view.state != (before.state if before else QUEUED)
            progressed = (
                view.state == RUNNING
                and before is not None
                and view.progress != before.progress
                and (final or now - self._said.get(view.label, 0.0) >= self.every_s)
            )
            if moved or progressed:
                lines.append(job_line(view))
                self._shown[view.label], self._said[view.label] = view, now
        sweep = sweep_line(views, self.watcher.expected)
        if sweep != self._last_sweep:
            lines.append(sweep)
            self._last_sweep = sweep
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    # rich Live --------------------------------------------------------------------------------

    def _open_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream, force_terminal=True)
        ours = self.stream is sys.stdout or self.stream is sys.__stdout__
        self._live = Live(
            console=console,
            auto_refresh=False,  # this thread refreshes; no second one
            transient=False,  # the final state stays on screen
            # this process's own prints and logging go above the display instead of tearing it
            redirect_stdout=ours,
            redirect_stderr=ours and _isatty(sys.stderr),
        )
        before = {"stdout": sys.stdout, "stderr": sys.stderr}
        self._live.start()
        self._reroute_logging(before)

    def _draw_live(self, views: list[JobView]) -> None:
        from rich.console import Group
        from rich.text import Text

        live = self._live
        if live is None:
            return
        printed = False
        for view in views:
            before = self._shown.get(view.label)
            if view.finished and (before is None or before.state != view.state):
                style = STYLES.get(view.verdict or "", STYLES.get(view.state, ""))
                live.console.print(Text(job_line(view), style=style))  # above the live lines, kept
                printed = True
            self._shown[view.label] = view
        lines = live_lines(views, self.watcher.expected, max_running=live.console.height - 3)
        if lines == self.drawn and not printed:
            return  # nothing new: no bytes to the terminal
        texts = [Text(line) for line in lines[:-1]] + [Text(lines[-1], style="bold")]
        live.update(Group(*texts), refresh=True)
        self.drawn = lines

    def _reroute_logging(self, before: dict[str, TextIO]) -> None:
        """Point this process's console log handlers at the stdout/stderr Live redirected, so log
        lines print above the display (a handler keeps the stream it was made with, e.g. Hydra's
        `ext://sys.stdout`). Put back by _close_live."""
        moves = {
            id(old): (old, getattr(sys, name))
            for name, old in before.items()
            if getattr(sys, name) is not old
        }
        if not moves:
            return
        for each in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(each, "handlers", []):  # placeholders have none
                if isinstance(handler, logging.StreamHandler) and id(handler.stream) in moves:
                    old, proxy = moves[id(handler.stream)]
                    handler.setStream(proxy)
                    self._rerouted.append((handler, old))

    def _close_live(self) -> None:
        """Hand the terminal back; never raises."""
        live, self._live = self._live, None
        rerouted, self._rerouted = self._rerouted, []
        for handler, original in rerouted:
            with contextlib.suppress(Exception):
                handler.setStream(original)
        if live is not None:
            with contextlib.suppress(Exception):
                live.stop()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # a closed or odd stream: not a terminal
        return False
