"""swift's own error, read from its console log (swift.log): the exception of the log's last
traceback and the innermost frame of swift's own code, as one line for the table's `why`, the
report and a failed run's last word on the console:

    StopIteration (in swift/dataset/loader.py: _load_dataset_path)
    KeyError: 'eval_nosuch' (in swift/trainers/mixin.py: _maybe_log_save_evaluate)

Never a line of source (`result = self.run()`), whatever the exception is called. Pure: text in,
line out."""

from __future__ import annotations

import re
from dataclasses import dataclass

TRACEBACK_START = "Traceback (most recent call last):"
# torchrun prefixes each line of a rank's output: "[rank0]: Traceback ..."
_RANK_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:\s?")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<function>.+?)\s*$')
# a bare exception line with no traceback (a log cut before the frames): "ValueError: remaining_argv: [...]"
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Iteration)\b(?::.*)?$"
)
# where a file belongs to the swift package: .../site-packages/swift/dataset/loader.py, .../ms-swift/swift/...
_SWIFT_FILE = re.compile(r"(?:^|[/\\])(swift[/\\].+)$")
EXCEPTION_CHARS = 200


@dataclass(frozen=True)
class SwiftError:
    """The last traceback of a log: its exception line and the innermost frame in swift's code."""

    exception: str  # "KeyError: 'eval_nosuch'", "StopIteration"
    swift_file: str | None = None  # "swift/trainers/mixin.py"
    function: str | None = None  # "_maybe_log_save_evaluate"

    def line(self) -> str:
        shown = (
            self.exception
            if len(self.exception) <= EXCEPTION_CHARS
            else self.exception[: EXCEPTION_CHARS - 3] + "..."
        )
        if self.swift_file:
            return f"{shown} (in {self.swift_file}: {self.function})"
        return shown


def _clean(text: str) -> list[str]:
    """The log's lines as a person sees them: progress bars redraw with \\r (the last state of each
    line is kept), torchrun's rank prefixes dropped."""
    return [_RANK_PREFIX.sub("", line.rsplit("\r", 1)[-1]) for line in text.split("\n")]


def swift_file(path: str) -> str | None:
    """'/venv/lib/python3.11/site-packages/swift/dataset/loader.py' -> 'swift/dataset/loader.py';
    None for a file outside a `swift/` package (transformers, datasets, torch)."""
    normal = path.replace("\\", "/")
    if "/site-packages/" in normal or "/dist-packages/" in normal:
        normal = re.split(r"/(?:site|dist)-packages/", normal)[-1]
        return normal if normal.startswith("swift/") else None
    found = _SWIFT_FILE.search(normal)
    return found.group(1) if found else None


def last_traceback(text: str) -> SwiftError | None:
    """The last traceback in text (of a chained exception: the last one printed, the one that ended
    the process), else a last bare exception line, else None (a run killed without one)."""
    lines = _clean(text)
    starts = [i for i, line in enumerate(lines) if line.strip() == TRACEBACK_START]
    if not starts:
        # a tail that cut the header off still has the frames; without them, the last exception line
        frames_seen = any(_FRAME.match(line) for line in lines)
        if not frames_seen:
            return _bare_exception(lines)
        starts = [0]
    frames: list[tuple[str, str]] = []
    exception = None
    for line in lines[starts[-1] + 1 :]:
        frame = _FRAME.match(line)
        if frame:
            frames.append((frame["file"], frame["function"]))
            continue
        if not line.strip() or line[:1].isspace():
            continue  # a frame's source line, its ^^^ markers, "[Previous line repeated N more times]"
        exception = line.strip()  # the first line at the margin after the frames
        break
    if exception is None:
        return _bare_exception(lines)
    for file, function in reversed(frames):
        where = swift_file(file)
        if where:
            return SwiftError(exception, where, function)
    return SwiftError(exception)


def _bare_exception(lines: list[str]) -> SwiftError | None:
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return SwiftError(line.strip())
    return None


def swift_error_line(text: str) -> str | None:
    """swift's error as one line (SwiftError.line), None when the log holds no exception."""
    error = last_traceback(text)
    return error.line() if error else None
