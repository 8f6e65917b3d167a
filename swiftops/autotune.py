"""The tutorial's loop, closed: train, read the verdict, apply its next step, train again, until
a run converges. Pure planning on finished records; the Hydra sweeper that launches the rounds
lives in hydra_plugins/swiftops_autotune.

Each run's diagnosis names a next step as an override (`lr=1e-3`, `epochs=9`) and, where another
knob also fits, alternatives. A child's config is its parent's overrides with that change
applied. A config is identified by what it resolves to, so no config runs twice; a step whose
config was tried is passed over for the next untried one, newest run first, which is how a step
that did not help leads somewhere else and how the loop can never cycle.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swiftops.atomic_write import write_text_atomically

PATH_NAME = "autotune.json"  # the sweep's decisions, beside its job folders
LINEAGE_KEYS = ("parent", "change", "why")  # autotune.* keys the sweeper sets on each job it launches
FINISH_STAGES = ("infer", "export")
TUNED_VERDICTS = ("failed", "underfit", "overfit")  # the verdicts whose next step is a new training run


@dataclass(frozen=True)
class AutotuneSettings:
    """`autotune.*` of conf/config.yaml."""

    max_runs: int = 8  # training runs in all, the start included
    max_rounds: int = 8  # rounds of launches (one run each, or several when branching)
    branch: bool = False  # launch every fitting step of a run side by side (needs a parallel launcher)
    finish: tuple[str, ...] = ()  # stages run on the converged run's best checkpoint at the end

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> AutotuneSettings:
        """Raises ValueError naming each bad value and what would be valid."""
        section = dict(section or {})
        problems = []
        values: dict[str, Any] = {}
        for key in ("max_runs", "max_rounds"):
            value = section.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"autotune.{key} = {value!r}; use a whole number >= 1")
            values[key] = value
        branch = section.get("branch", False)
        if not isinstance(branch, bool):
            problems.append(f"autotune.branch = {branch!r}; use true or false")
        values["branch"] = branch
        finish = section.get("finish") or []
        finish = [finish] if isinstance(finish, str) else list(finish)
        if any(stage not in FINISH_STAGES for stage in finish) or len(set(finish)) != len(finish):
            problems.append(f"autotune.finish = {finish!r}; use a subset of {list(FINISH_STAGES)}, or []")
        values["finish"] = tuple(s for s in FINISH_STAGES if s in finish)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**values)


@dataclass(frozen=True)
class Step:
    """One possible next run: its overrides, and where it comes from."""

    overrides: tuple[str, ...]
    parent: int | None = None  # job number of the run it follows (None: the start)
    change: str | None = None  # the override applied to the parent's ("lr=1e-3")
    why: str | None = None  # the parent's verdict and next-step text


@dataclass
class Tried:
    """A finished job, as the planner sees it."""

    job_num: int
    overrides: tuple[str, ...]
    status: str  # completed | failed | interrupted
    verdict: str | None
    steps: list[dict[str, Any]]  # the diagnosis's next step, then its alternatives: {text, override}
    reason: str = ""  # the first reason of the verdict
    best_eval_loss: float | None = None
    job_dir: str | None = None

    @classmethod
    def from_record(cls, record: Any, overrides: Sequence[str]) -> Tried:
        diagnosis = record.diagnosis or {}
        steps = [diagnosis["next"]] if diagnosis.get("next") else []
        steps += list(diagnosis.get("alternatives") or [])
        figures = diagnosis.get("figures") or {}
        return cls(
            job_num=record.job_num if record.job_num is not None else -1,
            overrides=tuple(overrides),
            status=record.status,
            verdict=record.verdict,
            steps=steps,
            reason=(diagnosis.get("reasons") or [record.error or ""])[0],
            best_eval_loss=figures.get("best_eval_loss"),
            job_dir=record.job_dir,
        )


def override_key(text: str) -> str:
    """'lr=1e-3' -> 'lr'; '+args.x=1' -> 'args.x' (the key an override sets)."""
    return text.split("=", 1)[0].lstrip("+~")


def apply_change(overrides: Sequence[str], change: str) -> tuple[str, ...]:
    """The parent's overrides with each assignment of change replacing the one of the same key
    (or added): ('experiment=x', 'lr=0.1') + 'lr=1e-3' -> ('experiment=x', 'lr=1e-3')."""
    result = list(overrides)
    for assignment in shlex.split(change):
        key = override_key(assignment)
        kept = [o for o in result if override_key(o) != key]
        result = [*kept, assignment]
    return tuple(result)


def plain_identity(overrides: Sequence[str]) -> str:
    """A config's identity from its overrides alone: keys sorted, numbers compared as numbers
    (lr=0.001 is lr=1e-3). The sweeper uses the resolved config instead, where it can."""

    def norm(value: str) -> str:
        try:
            number = float(value)
        except ValueError:
            return value
        return repr(number) if math.isfinite(number) else value

    pairs = sorted((override_key(o), norm(o.split("=", 1)[1] if "=" in o else "")) for o in overrides)
    return json.dumps(pairs)


def next_round(
    history: Sequence[Tried],
    seen: set[str],
    identity: Callable[[Sequence[str]], str],
    *,
    branch: bool,
    room: int,
    last_round: Sequence[int] = (),
) -> list[Step]:
    """The runs of the next round: the untried steps of the newest run that has one (branching:
    of every run of the last round, else of the newest run that has one), at most room of them.
    Marks each planned config as seen. Empty: no untried step is left."""
    by_num = {t.job_num: t for t in history}
    newest_first = sorted(history, key=lambda t: t.job_num, reverse=True)
    sources = [by_num[n] for n in last_round if n in by_num] if branch else []
    planned: list[Step] = []
    for group in ([sources] if sources else []) + [[t] for t in newest_first]:
        for run in group:
            planned += _untried_steps(run, seen, identity, limit=room - len(planned) if branch else 1)
        if planned:
            break
    return planned[:room]


def _untried_steps(
    run: Tried, seen: set[str], identity: Callable[[Sequence[str]], str], *, limit: int
) -> list[Step]:
    steps: list[Step] = []
    if run.verdict not in TUNED_VERDICTS or run.status == "interrupted":
        return steps
    for step in run.steps:
        change = step.get("override")
        if not change or len(steps) >= limit:
            continue
        overrides = apply_change(run.overrides, change)
        key = identity(overrides)
        if key in seen:
            continue
        seen.add(key)
        why = f"job {run.job_num} {run.verdict}: {step.get('text') or run.reason}"
        steps.append(Step(overrides, parent=run.job_num, change=change, why=why))
    return steps


def best_run(history: Sequence[Tried]) -> Tried | None:
    """The converged run with the lowest eval loss (the first converged without one); else None."""
    converged = [t for t in history if t.verdict == "converged"]
    if not converged:
        return None
    return min(converged, key=lambda t: (t.best_eval_loss is None, t.best_eval_loss or 0.0, t.job_num))


def recommended_overrides(overrides: Sequence[str]) -> str:
    """The overrides that rerun a tried config as a single run (no +sweep=autotune, no
    autotune.* setting, no hydra.* folder)."""
    own = ("+sweep=", "sweep=", "hydra.", "autotune.", "+autotune.")
    return " ".join(o for o in overrides if not o.startswith(own))


def lineage_overrides(step: Step) -> list[str]:
    """The autotune.* overrides that carry a step's origin into its job's run.json."""
    if step.parent is None:
        return []
    return [
        f"autotune.parent={step.parent}",
        f"autotune.change={quote(step.change or '')}",
        f"autotune.why={quote(step.why or '')}",
    ]


def quote(text: str) -> str:
    """A Hydra override value that stays one string whatever it holds (commas, '=', quotes);
    `${` is broken up so no interpolation is read into a reason."""
    # Hydra reads a backslash as an escape only in front of a quote (or the closing one)
    text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, text.replace("${", "$ {"))
    return "'" + text.replace("'", "\\'") + "'"


def is_lineage(override: str) -> bool:
    """An autotune.parent/change/why override, which belongs in the record's lineage, not in
    the overrides a person typed."""
    return override_key(override) in {f"autotune.{k}" for k in LINEAGE_KEYS}


@dataclass
class TuningPath:
    """What autotune.json holds: the sweep's decisions, for the report and for people."""

    start: list[str]
    settings: dict[str, Any]
    rounds: list[list[int]] = field(default_factory=list)
    stopped: str = ""
    best_job: int | None = None
    recommendation: str | None = None  # the override line of the converged run
    finish_job: int | None = None

    def write(self, sweep_dir: Path) -> Path:
        return write_text_atomically(Path(sweep_dir) / PATH_NAME, json.dumps(asdict(self), indent=2) + "\n")


def read_path(sweep_dir: str | Path) -> dict[str, Any] | None:
    """autotune.json of a sweep folder, or None when there is none (or it does not parse)."""
    try:
        return json.loads((Path(sweep_dir) / PATH_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
