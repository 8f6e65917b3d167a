"""`python -m swiftops` as a user types it, for the tests that run the app in its own process, and
the flags of a swift command line read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def swiftops(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """The app in a child process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "swiftops", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def argv_to_flags(argv: list[str]) -> dict[str, list[str]]:
    """`swift sft --a 1 --b x y` -> {"a": ["1"], "b": ["x", "y"]}; a flag given twice fails."""
    flags: dict[str, list[str]] = {}
    current = None
    for token in argv[2:]:
        if token.startswith("--"):
            current = token[2:]
            assert current not in flags, f"flag {token} given twice"
            flags[current] = []
        else:
            flags[current].append(token)
    return flags
