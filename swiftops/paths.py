"""Where swiftops finds its own configs and keeps its cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped_dir(name: str) -> Path:
    """A top-level folder of the project: inside the package when installed from a wheel,
    at the repository root in a source checkout or an editable install."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


def conf_dir() -> Path:
    """The primary config tree (`conf/`)."""
    return _shipped_dir("conf")


def sweeps_dir() -> Path:
    """The named sweeps (`sweeps/`)."""
    return _shipped_dir("sweeps")


def cache_dir() -> Path:
    """`$SWIFTOPS_CACHE`, else `$XDG_CACHE_HOME/swiftops`, else `~/.cache/swiftops`."""
    if os.environ.get("SWIFTOPS_CACHE"):
        return Path(os.environ["SWIFTOPS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "swiftops"
