"""The live watchdog: while swift trains, the run's logging.jsonl is judged with the diagnosis's own
failure rules (swiftops.diagnosis.watchdog_verdict), so a run that has already failed (NaN/Inf, an
exploded loss, a loss rising or stuck at 0.0 for a stretch) is stopped instead of trained to its end.

The runner polls it in its wait loop; it reads the log at most every `every_s` seconds, only when
the log grew, and never more than a small share of one CPU's time (a long log takes longer to read).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swiftops.curves import curves_until, read_live_curves
from swiftops.diagnosis import ClassifySettings, watchdog_verdict
from swiftops.runfolder import live_log

if TYPE_CHECKING:
    from swiftops.curves import Curves
    from swiftops.diagnosis import Diagnosis

# the settings of config.yaml's watchdog section, with their defaults
SETTINGS = {"enabled": True, "every_s": 1.0}
# wait at least this many times as long as the last check took: the watchdog's share of a CPU stays
# under 1/(1+BUSY_FACTOR) however long the log grows
BUSY_FACTOR = 20.0


class Watchdog:
    """Judges the newest run folder under output_dir as it trains; poll() returns the failed
    Diagnosis once the run is decided, else None."""

    def __init__(
        self,
        output_dir: Path,
        classify: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        every_s: float = SETTINGS["every_s"],
    ):
        self.output_dir = Path(output_dir)
        self.settings = ClassifySettings(**(classify or {}))
        self.params = dict(params or {})
        self.every_s = float(every_s)
        self.next_check = 0.0
        self.size = -1

    def poll(self) -> Diagnosis | None:
        """The watchdog's Diagnosis when the run has already failed, else None (also while nothing
        new was logged, or too soon after the last check)."""
        if time.monotonic() < self.next_check:
            return None
        path = live_log(self.output_dir)
        try:
            size = path.stat().st_size if path is not None else -1
        except OSError:
            return None
        if size <= 0 or size == self.size:
            return None

        self.size = size
        started = time.monotonic()
        decision = watchdog_verdict(read_live_curves(path.parent), self.settings, params=self.params)
        spent = time.monotonic() - started
        self.next_check = time.monotonic() + max(self.every_s, BUSY_FACTOR * spent)
        return decision


def first_stop(
    curves: Curves, settings: ClassifySettings | None = None, params: Mapping[str, Any] | None = None
) -> Diagnosis | None:
    """Where the watchdog would have stopped a finished run, had it watched it train: the failed
    Diagnosis at the first prefix of its curves (one more training point each time) that decides,
    or None. The runner checks about once a second, so a live run is stopped there or a little later."""
    train = curves.train_loss
    for step in train.steps.tolist() if train is not None else []:
        decision = watchdog_verdict(curves_until(curves, step), settings, params=params)
        if decision is not None:
            return decision
    return None


def watchdog_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """config.yaml's watchdog section over its defaults (a config without one gets the defaults:
    the watchdog is on unless turned off)."""
    return {**SETTINGS, **(cfg.get("watchdog") or {})}


def make_watchdog(cfg: Mapping[str, Any], output_dir: Path, params: Mapping[str, Any]) -> Watchdog | None:
    """The job's watchdog, with the classify group's thresholds; None when watchdog.enabled is false."""
    settings = watchdog_settings(cfg)
    if not settings["enabled"]:
        return None
    return Watchdog(output_dir, cfg.get("classify"), params, every_s=settings["every_s"])


def stop_sentence(figures: Mapping[str, Any]) -> str:
    """'stopped by the watchdog at step 7 of 60' (of N only when the planned steps are known)."""
    steps, max_steps = figures.get("steps"), figures.get("max_steps")
    return f"stopped by the watchdog at step {steps}" + (f" of {max_steps}" if max_steps else "")


def watchdog_problems(section: Any) -> list[str]:
    """config.yaml's watchdog section: known keys, enabled a boolean, every_s a number > 0."""
    if section is None:
        return []
    if not isinstance(section, Mapping):
        return [f"watchdog = {section!r}; use a section with enabled (true/false) and every_s (seconds > 0)"]
    problems = []
    for key in section:
        if key not in SETTINGS:
            problems.append(f"watchdog.{key} is not a watchdog setting; use one of {sorted(SETTINGS)}")
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"watchdog.enabled = {enabled!r}; use true or false")
    every = section.get("every_s", SETTINGS["every_s"])
    if (
        isinstance(every, bool)
        or not isinstance(every, int | float)
        or not (math.isfinite(every) and every > 0)
    ):
        problems.append(f"watchdog.every_s = {every!r}; use a number of seconds > 0, e.g. 1")
    return problems
