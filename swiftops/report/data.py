"""A sweep folder's runs, as the report sees them: each run's record, curves and diagnosis
(RunView), the sweep's name and command, the comparison table, the best run, the stages after
training and autotune's path. Reading the folder happens in load_runs(); the rest is pure."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from swiftops.judge import judge
from swiftops.record import (
    COMPLETED,
    FAILED,
    UNREADABLE,
    RunRecord,
    find_records,
    read_record,
    unreadable_record,
)
from swiftops.report.formats import finite, fmt_loss
from swiftops.summary import differing_params, summary_rows

VERDICT_ORDER = ("converged", "underfit", "overfit", "failed")
NO_VERDICT = "no verdict"
HYDRA_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HYDRA_TIME = re.compile(r"^\d{2}-\d{2}-\d{2}$")
COMMAND = "python -m swiftops"


class NoRecords(FileNotFoundError):
    """A folder holding no run.json; the message names it."""


# ---------------------------------------------------------------------------------------------
# one run, as the report sees it


@dataclass
class RunView:
    """A run's record with its curves (None when they could not be read) and its diagnosis
    (the record's own, or one computed here for a record without: then `provisional`)."""

    record: RunRecord
    curves: Any = None  # swiftops.curves.Curves
    curves_note: str | None = None  # why there are no curves
    diagnosis: dict[str, Any] = field(default_factory=dict)
    provisional: bool = False

    @property
    def label(self) -> str:
        num = self.record.job_num
        return f"job {num}" if num is not None else Path(self.record.job_dir).name

    @property
    def anchor(self) -> str:
        return "run-" + re.sub(r"[^A-Za-z0-9_-]+", "-", self.label).strip("-")

    @property
    def verdict(self) -> str | None:
        return self.record.verdict or self.diagnosis.get("verdict")

    @property
    def confidence(self) -> float | None:
        value = self.diagnosis.get("confidence")
        return float(value) if finite(value) else None

    @property
    def figures(self) -> dict[str, Any]:
        return self.diagnosis.get("figures") or {}

    @property
    def failed(self) -> bool:
        return self.verdict == "failed" or self.record.status in (FAILED, UNREADABLE)

    @property
    def next_step(self) -> dict[str, Any]:
        return self.diagnosis.get("next") or {}

    @property
    def command(self) -> str:
        return shlex.join(self.record.argv) if self.record.argv else ""


def load_runs(sweep_dir: str | os.PathLike) -> list[RunView]:
    """Every job under sweep_dir with its curves. Never raises for one broken job: a run.json
    that does not parse, or curves that can't be read, still make a row, marked as such.

    Raises:
        NoRecords: no run.json under sweep_dir.
    """
    root = Path(sweep_dir)
    paths = find_records(root) if root.is_dir() else []
    if not paths:
        raise NoRecords(f"{root}: holds no run.json (is it a swiftops sweep or job folder?)")
    return [load_run(p) for p in paths]


def load_run(path: Path) -> RunView:
    """One job: its record, curves and diagnosis."""
    try:
        record = read_record(path)
    except (OSError, ValueError, TypeError) as exc:
        return RunView(unreadable_record(path, exc), curves_note="run.json could not be read")
    diagnosis = dict(record.diagnosis or {})
    # a running job, or one whose diagnosis failed, is judged from its curves as they are now
    judged = judge(record, diagnose=not diagnosis.get("figures"))
    curves = judged.curves if judged.has_curves else None
    if judged.error is not None:  # the report must come out whatever one run holds
        return RunView(
            record, curves, f"diagnosis failed: {type(judged.error).__name__}: {judged.error}", diagnosis
        )
    if curves is None or judged.diagnosis is None:
        return RunView(record, curves, judged.note, diagnosis)
    return RunView(record, curves, judged.note, judged.diagnosis.to_dict(), provisional=True)


# ---------------------------------------------------------------------------------------------
# naming


def sweep_id(folder: str | os.PathLike) -> str:
    """A file name for the report of a sweep or job folder: its name, prefixed by its parents
    while the name alone would not be unique (multirun/2026-11-24/10-00-00 ->
    "2026-11-24_10-00-00"; a sweep's job 3 -> "2026-11-24_10-00-00_3")."""
    current = Path(folder).absolute()
    parts = [current.name]
    while (HYDRA_TIME.match(current.name) or current.name.isdigit()) and current.parent != current:
        current = current.parent
        parts.insert(0, current.name)
        if HYDRA_DATE.match(current.name):
            break
    name = "_".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "report"


def sweep_command(sweep_dir: Path, records: Sequence[RunRecord]) -> tuple[str | None, str]:
    """The command that made the sweep, and where it was read from: Hydra's multirun.yaml, a
    single run's .hydra/overrides.yaml, or else rebuilt from the jobs' overrides."""
    multirun = sweep_dir / "multirun.yaml"
    try:
        if multirun.is_file():
            data = yaml.safe_load(multirun.read_text(encoding="utf-8")) or {}
            task = ((data.get("hydra") or {}).get("overrides") or {}).get("task") or []
            return _command(["-m", *map(str, task)]), "multirun.yaml"
        single = sweep_dir / ".hydra" / "overrides.yaml"
        if single.is_file():
            task = yaml.safe_load(single.read_text(encoding="utf-8")) or []
            return _command([str(x) for x in task]), ".hydra/overrides.yaml"
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    if not records:
        return None, ""
    if len(records) == 1:
        return _command(list(records[0].overrides)), "the job's overrides"
    values: dict[str, list[str]] = {}
    for record in records:
        for item in record.overrides:
            key, _, value = item.partition("=")
            seen = values.setdefault(key, [])
            if value not in seen:
                seen.append(value)
    return _command(["-m", *(f"{k}={','.join(v)}" for k, v in values.items())]), "the jobs' overrides"


def _command(args: list[str]) -> str:
    return " ".join([COMMAND, *(shlex.quote(a) for a in args)]).strip()


def preset_name(command: str | None) -> str | None:
    """`sweep NAME` or `experiment NAME` when the command picked a named preset."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        return None
    for word in words:
        key, _, value = word.lstrip("+").partition("=")
        if key in ("sweep", "experiment") and value:
            return f"{key} {value}"
    return None


# ---------------------------------------------------------------------------------------------
# the comparison table


def comparison_rows(runs: Sequence[RunView]) -> tuple[list[str], list[dict[str, Any]]]:
    """The differing params and the table's rows (swiftops.summary's one format), from each
    run's diagnosis (a provisional one for a job still running); a loss that ended in NaN reads
    NaN from the curve rather than blank."""
    records = [r.record for r in runs]
    rows = summary_rows(records, [r.diagnosis for r in runs])
    for run, row in zip(runs, rows, strict=True):
        row["first_train_loss"] = _loss_at(run, "first_train_loss", 0)
        row["final_train_loss"] = _loss_at(run, "final_train_loss", -1)
    return differing_params(records), rows


def nonempty_series(curves: Any, attr: str) -> Any:
    """One series of a run's curves (train_loss, eval_loss), or None when absent or empty."""
    series = getattr(curves, attr, None) if curves is not None else None
    return series if series is not None and len(series.steps) else None


def _loss_at(run: RunView, name: str, index: int) -> Any:
    """A training-loss figure; when the diagnosis stored none (JSON has no NaN), the full
    curve's own point, so a loss that ended in NaN reads NaN rather than blank."""
    value = run.figures.get(name)
    series = nonempty_series(run.curves, "train_loss")
    if value is None and series is not None:
        return float(series.values[index])
    return value


# ---------------------------------------------------------------------------------------------
# the best run


@dataclass
class Best:
    run: RunView | None
    why: str


def choose_best(runs: Sequence[RunView]) -> Best:
    """The run with the lowest best eval loss among the runs that did not fail, and why."""
    if not runs:
        return Best(None, "none: there are no runs")
    scored = [r for r in runs if not r.failed and finite(r.figures.get("best_eval_loss"))]
    if not scored:
        if all(r.failed for r in runs):
            return Best(None, "none: every run failed")
        return Best(None, "none: no run that did not fail logged an eval loss")
    scored.sort(key=lambda r: r.figures["best_eval_loss"])
    best, figures = scored[0], scored[0].figures
    why = f"lowest best eval loss, {fmt_loss(figures['best_eval_loss'])}"
    if figures.get("best_eval_step") is not None:
        why += f" at step {figures['best_eval_step']}"
    why += f", among {len(scored)} run{'s' if len(scored) > 1 else ''} that did not fail"
    if len(scored) > 1:
        second = scored[1]
        why += f" (next: {second.label} at {fmt_loss(second.figures['best_eval_loss'])})"
    if best.verdict:
        why += f"; verdict {best.verdict}"
        if best.confidence is not None:
            why += f" ({best.confidence:.2f})"
    if best.record.status != COMPLETED:
        why += f"; the run is {best.record.status}"
    return Best(best, why + ".")


# ---------------------------------------------------------------------------------------------
# the page


STAGE_KEYS = ("score", "scorer", "n", "checkpoint", "checkpoint_rule", "reason", "error")


def stage_rows(runs: Sequence[RunView]) -> list[dict[str, Any]]:
    """One row per (run, stage) after training (infer, export, ...): status, score and paths."""
    rows = []
    for run in runs:
        for name, entry in (run.record.stages or {}).items():
            if name == "sft" or not isinstance(entry, dict):
                continue
            paths = {k: v for k, v in entry.items() if isinstance(v, str) and k.endswith(("_path", "_dir"))}
            if isinstance(entry.get("paths"), dict):
                paths.update({str(k): str(v) for k, v in entry["paths"].items()})
            elif isinstance(entry.get("paths"), list):
                paths.update({f"path {i}": str(v) for i, v in enumerate(entry["paths"])})
            baseline = entry.get("baseline") if isinstance(entry.get("baseline"), dict) else {}
            message = str(entry.get("reason") or entry.get("error") or "").strip().splitlines()
            rows.append(
                {
                    "run": run,
                    "stage": name,
                    "status": entry.get("status"),
                    "score": entry.get("score"),
                    "scorer": entry.get("scorer"),
                    "n": entry.get("n"),
                    "baseline": baseline.get("score"),
                    "checkpoint": entry.get("checkpoint"),
                    "paths": paths,
                    "message": message[-1] if message else "",
                }
            )
    return rows


def when(records: Sequence[RunRecord]) -> dict[str, str]:
    """First start and last end over the jobs, as text."""
    starts, ends = [], []
    for record in records:
        try:
            start = datetime.fromisoformat(record.started) if record.started else None
        except ValueError:
            start = None
        if start is None:
            continue
        starts.append(start)
        if finite(record.duration_s):
            ends.append(start + timedelta(seconds=float(record.duration_s)))
    out = {"started": "", "ended": ""}
    try:
        if starts:
            out["started"] = min(starts).strftime("%Y-%m-%d %H:%M:%S %z").strip()
        if ends:
            out["ended"] = max(ends).strftime("%Y-%m-%d %H:%M:%S %z").strip()
    except TypeError:  # naive and aware times mixed: leave it out rather than guess
        pass
    return out


@dataclass
class TuningView:
    """The autotune path: run -> verdict -> change -> next run, and what it all cost."""

    rows: list[dict[str, Any]]  # one per job, in job order
    swift_seconds: float
    steps: int
    stopped: str | None  # why the autotune ended (from autotune.json)
    best: RunView | None  # the converged run it recommends
    recommendation: str | None  # the command of that run


def tuning_path(runs: Sequence[RunView], decisions: dict[str, Any] | None) -> TuningView | None:
    """The path of an autotune sweep from its runs' lineage and autotune.json (decisions);
    None for any other sweep."""
    if decisions is None and not any(r.record.lineage for r in runs):
        return None
    decisions = decisions or {}
    children: dict[Any, list[str]] = {}
    for run in runs:
        parent = (run.record.lineage or {}).get("parent")
        if parent is not None:
            children.setdefault(parent, []).append(run.label)
    rows = []
    for run in runs:
        lineage = run.record.lineage or {}
        parent = lineage.get("parent")
        trained = _trained_here(run.record)
        rows.append(
            {
                "run": run,
                "from": f"job {parent}" if parent is not None else "start",
                "change": lineage.get("change"),
                "why": lineage.get("why"),
                "verdict": run.verdict,
                "swift_seconds": _swift_seconds(run.record, trained),
                "steps": run.figures.get("steps") if trained else None,
                "next_runs": children.get(run.record.job_num, []),
            }
        )
    best_num = decisions.get("best_job")
    best = next((r for r in runs if best_num is not None and r.record.job_num == best_num), None)
    recommendation = decisions.get("recommendation")
    return TuningView(
        rows=rows,
        swift_seconds=float(sum(row["swift_seconds"] for row in rows)),
        steps=int(sum(row["steps"] or 0 for row in rows)),
        stopped=decisions.get("stopped"),
        best=best,
        recommendation=f"{COMMAND} {recommendation}".strip() if recommendation is not None else None,
    )


def _trained_here(record: RunRecord) -> bool:
    """Whether the job ran swift sft itself (a stages-only job carries its run's record)."""
    if record.run_dir:
        return Path(record.run_dir).is_relative_to(record.job_dir)
    return "sft" in record.stages


def _swift_seconds(record: RunRecord, trained: bool) -> float:
    """The seconds swift ran for this job: its training (when it trained) and its stages."""
    seconds = (record.duration_s or 0.0) if trained else 0.0
    for name in ("infer", "export"):
        seconds += float(record.stages.get(name, {}).get("duration_s") or 0.0)
    return seconds
