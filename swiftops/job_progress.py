"""The one-line live progress of a job (step, loss, eval loss, ETA), read from the run's growing
logging.jsonl, and what every display shares: it only displays, so its failure never costs a job."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from swiftops.runfolder import LineFollower, live_log

logger = logging.getLogger("swiftops")


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
