"""The swift that will run: where it is (find_swift), its ms-swift version and its flag names
(swift_args_for), read in ITS Python. The one swiftops module that asks the installed swift.

The orchestrator never imports swift (8 s, 500 MB): one subprocess in the interpreter of the
`swift` console script imports ms-swift's argument dataclasses for sft, infer and export and
prints their flags as JSON. The answer is cached under the swiftops cache folder, one file per
interpreter, and used only while the ms-swift version installed there is the one it was read
from (its dist-info METADATA, read without a subprocess), so an upgrade is never checked
against stale names. A swift that can't answer (broken install) costs a warning, not the run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from swiftops.atomic_write import write_text_atomically
from swiftops.paths import cache_dir

log = logging.getLogger("swiftops")

Version = tuple[int, ...]  # (4, 6, 0)


def installed_swift_version(swift_bin: str | None = None) -> Version | None:
    """The ms-swift version of the swift that will run (swift_bin as the config's `swift_bin`:
    None = the one beside this Python, else on PATH), as its own Python reports it (cached, see
    swift_args_for); where that swift can't tell, the ms-swift of this Python."""
    answer = swift_args_for(swift_bin)
    if answer is not None and answer.version:
        return answer.parsed_version
    return own_swift_version()


@functools.cache
def own_swift_version() -> Version | None:
    """The ms-swift installed beside the orchestrator, from package metadata (no import of swift)."""
    try:
        return parse_version(importlib.metadata.version("ms-swift"))
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_version(text: str) -> Version:
    """'4.6.0' -> (4, 6, 0); a pre-release tail ('4.1.0rc1') is dropped."""
    parts = []
    for piece in text.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def find_swift(swift_bin: str | None) -> str | None:
    """The swift executable: the given one, else the one installed beside this Python
    (a venv that isn't activated), else `swift` on PATH."""
    if swift_bin:
        return shutil.which(swift_bin)
    beside = Path(sys.executable).parent / "swift"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("swift")


SWIFT_MISSING = (
    "swift (ms-swift) is not installed: `pip install torch==2.13.0` first (CPU wheel), "
    "then `pip install ms-swift`, or set swift_bin=/path/to/swift"
)

COMMANDS = ("sft", "infer", "export")
CACHE_FORMAT = 1
MARKER = "SWIFTOPS_SWIFT_ARGS "
# the import takes 8-18 s on a busy 2-core machine; a hung import must not hang every run
PROBE_TIMEOUT_S = 300
PYTHON_NAME = re.compile(r"^(python|pypy)[\d.]*(\.exe)?$")

# Runs in swift's interpreter, which may be older than ours: plain syntax only. The names are the
# option strings of the parser ms-swift itself builds (swift.utils.parse_args), so the aliases it
# accepts (--a-b for --a_b, --no_x for a true bool, metadata aliases) count; field names back them.
PROBE = r"""
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # the working dir must not shadow swift
import contextlib, dataclasses, json
out = {"python": sys.executable, "version": None, "dist_info": None}
try:
    import importlib.metadata as metadata
    dist = metadata.distribution("ms-swift")
    out["version"] = dist.version
    path = getattr(dist, "_path", None)
    out["dist_info"] = str(path) if path is not None else None
except Exception as exc:
    out["version_error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    try:
        from swift import SftArguments, InferArguments, ExportArguments  # 4.x
    except Exception:
        from swift.llm import InferArguments, ExportArguments  # 3.x
        try:
            from swift.llm import SftArguments
        except ImportError:
            from swift.llm import TrainArguments as SftArguments  # 3.12: sft's arguments have that name
    if out["version"] is None:
        import swift
        out["version"] = getattr(swift, "__version__", None)
    try:
        from swift.utils.utils import _patch_get_type_hints as patch
    except Exception:
        patch = contextlib.nullcontext

    def names(cls):
        found = set(f.name for f in dataclasses.fields(cls) if f.init)
        try:
            from transformers import HfArgumentParser
            with patch():
                parser = HfArgumentParser([cls])
            for action in parser._actions:
                found.update(o[2:] for o in action.option_strings if o.startswith("--") and o != "--help")
        except Exception as exc:
            out.setdefault("parser_errors", {})[cls.__name__] = "%s: %s" % (type(exc).__name__, exc)
        return sorted(found)

    for command, cls in (("sft", SftArguments), ("infer", InferArguments), ("export", ExportArguments)):
        out[command] = names(cls)
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
sys.stdout.write("\n" + MARKER + json.dumps(out) + "\n")
""".replace("MARKER", repr(MARKER))


@dataclass(frozen=True)
class SwiftArgs:
    """What one swift interpreter answered: its ms-swift version and the flags of each command."""

    interpreter: str
    version: str | None = None  # ms-swift's version text; None: not installed there
    names: Mapping[str, frozenset[str]] = field(default_factory=dict)  # sft/infer/export -> flags
    dist_info: str | None = None  # ms-swift's dist-info folder, whose METADATA dates the answer
    error: str | None = None  # why the names could not be read; names is then empty
    cached: bool = False  # read from the cache file, no subprocess

    @property
    def parsed_version(self) -> Version | None:
        return parse_version(self.version) if self.version else None


def parse_shebang(head: str) -> str | None:
    """The interpreter a script's first lines name: `#!/venv/bin/python3`, `#!/usr/bin/env python3`,
    or pip's `#!/bin/sh` + `'''exec' "/long path/python" "$0" "$@"` for paths a shebang can't hold."""
    lines = head.splitlines()
    if not lines or not lines[0].startswith("#!"):
        return None
    words = lines[0][2:].split()
    if not words:
        return None
    program = words[0]
    if os.path.basename(program) == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return shutil.which(rest[0]) if rest else None
    if os.path.basename(program) == "sh" and len(lines) > 1:
        match = re.match(r"""'''exec' "([^"]+)" """, lines[1])
        return match.group(1) if match else None
    return program


def interpreter_of(swift_path: str) -> str:
    """The Python that runs the `swift` console script at swift_path (not resolved: a venv's
    python is a symlink, and resolving it would lose the venv); sys.executable when the script
    names none or names something that is not Python."""
    try:
        with open(swift_path, "rb") as script:
            head = script.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return sys.executable
    program = parse_shebang(head)
    if program and PYTHON_NAME.match(os.path.basename(program)) and os.access(program, os.X_OK):
        return program
    return sys.executable


def parse_probe_output(interpreter: str, stdout: str, stderr: str = "", returncode: int = 0) -> SwiftArgs:
    """The answer of the probe subprocess: its last marker line, whatever swift printed before it."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        why = f"exit {returncode}" + (f": {' | '.join(tail)}" if tail else "")
        return SwiftArgs(interpreter, error=f"the probe printed no answer ({why})")
    answer = json.loads(lines[-1][len(MARKER) :])
    names = {c: frozenset(answer[c]) for c in COMMANDS if answer.get(c)}
    error = answer.get("error")
    if not error and len(names) < len(COMMANDS):
        error = f"no flags for {[c for c in COMMANDS if c not in names]}"
    return SwiftArgs(
        interpreter,
        version=answer.get("version"),
        names=names if not error else {},
        dist_info=answer.get("dist_info"),
        error=error,
    )


def run_probe(interpreter: str, cwd: Path | None = None, timeout: float = PROBE_TIMEOUT_S) -> SwiftArgs:
    """One subprocess in the interpreter: ms-swift's version and flags (8-18 s: it imports swift)."""
    try:
        done = subprocess.run(
            [interpreter, "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd if cwd is not None and cwd.is_dir() else None,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SwiftArgs(interpreter, error=f"{type(exc).__name__}: {exc}")
    try:
        return parse_probe_output(interpreter, done.stdout, done.stderr, done.returncode)
    except (ValueError, KeyError, TypeError) as exc:
        return SwiftArgs(interpreter, error=f"unreadable answer: {type(exc).__name__}: {exc}")


def metadata_version(dist_info: str | None) -> str | None:
    """The `Version:` of a dist-info folder's METADATA (None when it is gone: pip removes the old
    folder on upgrade)."""
    if not dist_info:
        return None
    try:
        with open(os.path.join(dist_info, "METADATA"), encoding="utf-8", errors="replace") as metadata:
            for line in metadata:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    break  # the headers end at the first blank line
    except OSError:
        return None
    return None


def cache_path(interpreter: str, cache: Path | None = None) -> Path:
    digest = hashlib.sha256(interpreter.encode()).hexdigest()[:16]
    return Path(cache if cache is not None else cache_dir()) / "swift-args" / f"{digest}.json"


def read_cache(path: Path, interpreter: str) -> SwiftArgs | None:
    """The cached answer, or None when absent, unreadable, of another interpreter, or stale
    (the ms-swift installed now is not the version it was read from)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return None
    if data.get("interpreter") != interpreter or not data.get("version"):
        return None
    if metadata_version(data.get("dist_info")) != data["version"]:
        return None
    try:
        names = {c: frozenset(data[c]) for c in COMMANDS}
    except (KeyError, TypeError):
        return None
    return SwiftArgs(interpreter, data["version"], names, data["dist_info"], cached=True)


def write_cache(path: Path, answer: SwiftArgs) -> None:
    """Atomically (parallel jobs may write at once); a cache that can't be written is no error."""
    data = {
        "format": CACHE_FORMAT,
        "interpreter": answer.interpreter,
        "version": answer.version,
        "dist_info": answer.dist_info,
        **{c: sorted(answer.names[c]) for c in COMMANDS},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(data, indent=1) + "\n")
    except OSError as exc:
        log.debug("could not cache swift's flags at %s: %s", path, exc)


def cacheable(answer: SwiftArgs) -> bool:
    # without a dist-info folder a later check could not tell an upgrade: ask again instead
    return not answer.error and bool(answer.version) and metadata_version(answer.dist_info) == answer.version


def load_swift_args(
    interpreter: str,
    cache: Path | None = None,
    probe: Callable[[str, Path | None], SwiftArgs] = run_probe,
) -> SwiftArgs:
    """The interpreter's answer: from the cache while it is current (milliseconds), else from one
    probe subprocess, then cached. Never raises; a failed probe is returned with its error."""
    path = cache_path(interpreter, cache)
    cached = read_cache(path, interpreter)
    if cached is not None:
        return cached
    lock = None
    try:
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        lock.acquire(timeout=PROBE_TIMEOUT_S)  # a parallel job probing the same swift: wait for it
    except Exception as exc:  # no lock (read-only cache): probe unguarded
        log.debug("no lock for %s: %s", path, exc)
        lock = None
    try:
        cached = read_cache(path, interpreter)
        if cached is not None:
            return cached
        log.info("reading the flags of the swift run by %s (once per ms-swift version: ~10 s)", interpreter)
        answer = probe(interpreter, path.parent)
        if cacheable(answer):
            write_cache(path, answer)
        return answer
    finally:
        if lock is not None:
            lock.release()


_answers: dict[str, SwiftArgs] = {}


def swift_args_for(swift_bin: str | None) -> SwiftArgs | None:
    """The answer of the swift a job with this swift_bin runs (None: no swift found). Memoized
    per interpreter, so a sweep's many checks read the cache once; a failure is warned about once."""
    swift_path = find_swift(swift_bin)
    if not swift_path:
        return None
    interpreter = interpreter_of(swift_path)
    if interpreter not in _answers:
        started = time.monotonic()
        answer = load_swift_args(interpreter)
        log.debug("swift's flags from %s in %.3f s", interpreter, time.monotonic() - started)
        if answer.error:
            log.warning(
                "could not read the flags of %s (its Python: %s): %s; unknown +args/+infer.args/"
                "+export.args flags are not checked before the run",
                swift_path,
                interpreter,
                answer.error,
            )
        _answers[interpreter] = answer
    return _answers[interpreter]


def forget() -> None:
    """Drop the in-process answers (tests; a process that upgraded ms-swift under itself)."""
    _answers.clear()
