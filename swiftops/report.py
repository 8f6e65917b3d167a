"""A sweep's runs -> one self-contained HTML page answering "which run, and what next".

    python -m swiftops.report SWEEP_DIR [-o FILE]     # regenerate from the runs on disk

Reads each job's run.json (swiftops.record) and its curves (swiftops.curves), and writes
`<report dir>/<sweep id>.html` with `<sweep id>.summary.csv` and `<sweep id>.summary.json`
beside it. The page has images inline (PNG data URIs), styles inline, one small inline script
(table sorting, allowed by its hash in the page's Content-Security-Policy) and nothing from the
network. Every string from the runs goes through Jinja2's autoescape.

The core is pure: runs -> comparison frame, best run, page context -> HTML. Reading the
folders and writing the files happen in load_runs() and write_report().
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from swiftops import plots
from swiftops.atomic_write import write_text_atomically
from swiftops.autotune import read_path
from swiftops.curves import read_curves
from swiftops.diagnosis import diagnose_recorded
from swiftops.plots import NO_VERDICT_COLOR, VERDICT_COLORS, Line, RunPlot, heatmap, overlay, run_plots
from swiftops.record import (
    COMPLETED,
    FAILED,
    RUNNING,
    UNREADABLE,
    RunRecord,
    find_records,
    json_safe,
    read_record,
    unreadable_record,
)
from swiftops.runfolder import NoRunFound
from swiftops.summary import differing_params, param_column, param_value, summary_csv, summary_rows

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "report.html.j2"
DEFAULT_REPORT_DIR = "reports"
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
        return float(value) if _finite(value) else None

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
    curves, note = read_run_curves(record)
    diagnosis = dict(record.diagnosis or {})
    provisional = False
    if curves is not None and not diagnosis.get("figures"):
        # a running job, or one whose diagnosis failed: judge the curves as they are now

        try:
            judged = diagnose_recorded(curves, record)
            if judged is not None:
                diagnosis, provisional = judged.to_dict(), True
        except Exception as exc:  # the report must come out whatever one run holds
            note = f"diagnosis failed: {type(exc).__name__}: {exc}"
    return RunView(record, curves, note, diagnosis, provisional)


def read_run_curves(record: RunRecord) -> tuple[Any, str | None]:
    """The run's curves, or None and why not. A running job has no run_dir yet (the runner sets
    it at the end): its output folder is read instead, for the curve so far."""
    where = record.run_dir
    if where is None and record.status == RUNNING and record.output_dir:
        where = record.output_dir
    if where is None:
        return None, "no run folder recorded (swift wrote none)"
    try:
        curves = read_curves(where)
    except (NoRunFound, OSError, ValueError) as exc:
        return None, f"curves could not be read: {exc}"
    except Exception as exc:  # one odd run folder must not cost the whole sweep its report
        return None, f"curves could not be read: {type(exc).__name__}: {exc}"
    if not curves.scalars:
        return None, f"no scalar was logged in {curves.run_dir}"
    return curves, None


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
    import yaml

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


def _loss_at(run: RunView, name: str, index: int) -> Any:
    """A training-loss figure; when the diagnosis stored none (JSON has no NaN), the full
    curve's own point, so a loss that ended in NaN reads NaN rather than blank."""
    value = run.figures.get(name)
    series = _series(run.curves, "train_loss")
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
    scored = [r for r in runs if not r.failed and _finite(r.figures.get("best_eval_loss"))]
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
# formatting (Jinja filters)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_loss(x: Any) -> str:
    """A loss for the page: 4 significant digits; '' when absent, 'NaN'/'inf' as such."""
    if x is None:
        return ""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    return str(x)


def fmt_duration(seconds: Any) -> str:
    if not _finite(seconds):
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_value(x: Any) -> str:
    """A param value: numbers as Python writes them (exact), None as 'null'."""
    if x is None:
        return "null"
    if isinstance(x, (list, tuple, dict)):
        return str(param_value(x))
    return str(x)


def param_texts(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, str]]:
    """Each param cell's text: the value as fmt_value writes it, with the folder that every absolute
    path of its column shares cut off. A dataset column then reads `tutorial_zh_100_train.jsonl`,
    not `/root/.cache/swiftops/tiny-v1-tf5/d...`: the part that tells runs apart, in a table that has
    to fit a screen. The cell's title keeps the whole value."""
    texts = [{col: fmt_value(row.get(col)) for col in columns} for row in rows]
    for col in columns:
        values = [row.get(col) for row in rows]
        paths = [p for value in values for p in _items(value) if isinstance(p, str) and os.path.isabs(p)]
        if not paths:
            continue
        shared = os.path.commonpath(paths)
        if shared in paths:  # one file, or a file and its own folder: keep the file's name
            shared = os.path.dirname(shared)
        if shared in ("", "/"):
            continue
        for text, value in zip(texts, values, strict=True):
            cut = [os.path.relpath(p, shared) if p in paths else p for p in _items(value)]
            text[col] = fmt_value(cut if isinstance(value, list | tuple) else cut[0])
    return texts


def breakable(text: str) -> Any:
    """text as markup that may wrap after `/`, `_` and `.` (file names, dotted keys) but nowhere
    else: a long cell wraps at a readable place, and short text (a number: 5e-05) never breaks."""
    from markupsafe import Markup, escape

    escaped = str(escape(text))
    if len(text) <= 12:
        return Markup(f'<span class="nobreak">{escaped}</span>')
    return Markup(re.sub(r"([/_.])", r"\1<wbr>", escaped))


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def sort_key(x: Any) -> str:
    """data-sort for a table cell: numbers as numbers, the rest as text, nothing as ''."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        return repr(float(x))
    return str(x)


def short_path(path: str | None, base: Path) -> str:
    """path relative to base when it lies under it (shorter to read), else as is."""
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def fmt_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %z").strip()
    except ValueError:
        return iso


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(str(text).encode("utf-8")).digest()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# plots


def _series(curves: Any, attr: str) -> Any:
    series = getattr(curves, attr, None) if curves is not None else None
    return series if series is not None and len(series.steps) else None


def overlay_plot(runs: Sequence[RunView], best: RunView | None):
    panels = []
    for title, attr in (("train loss", "train_loss"), ("eval loss", "eval_loss")):
        lines = []
        for run in runs:
            series = _series(run.curves, attr)
            if series is None:
                continue
            lines.append(
                Line(
                    run.label,
                    series.steps,
                    series.values,
                    verdict=run.verdict,
                    failed=run.failed,
                    best=run is best,
                )
            )
        panels.append((title, lines))
    return overlay(panels)


def run_images(runs: Sequence[RunView]) -> list[str | None]:
    plots = []
    for run in runs:
        train, evals = _series(run.curves, "train_loss"), _series(run.curves, "eval_loss")
        figures = run.figures
        plots.append(
            RunPlot(
                train=(train.steps, train.values) if train is not None else None,
                evals=(evals.steps, evals.values) if evals is not None else None,
                best_eval_step=figures.get("best_eval_step"),
                best_eval_loss=figures.get("best_eval_loss")
                if _finite(figures.get("best_eval_loss"))
                else None,
                divergence_step=figures.get("divergence_step"),
                verdict=run.verdict,
            )
        )
    return run_plots(plots)


@dataclass
class Heatmap:
    uri: str
    row_name: str
    col_name: str


def grid_heatmap(runs: Sequence[RunView], params: Sequence[str]) -> Heatmap | None:
    """Best eval loss over a grid of exactly two varying params, each with 2+ values and every
    combination run (a multirun over two params); None otherwise."""
    if len(params) != 2 or len(runs) < 4:
        return None
    import numpy as np

    row_name, col_name = params
    rows = _ordered({fmt_value(r.record.params.get(row_name)): r.record.params.get(row_name) for r in runs})
    cols = _ordered({fmt_value(r.record.params.get(col_name)): r.record.params.get(col_name) for r in runs})
    cells = {
        (fmt_value(r.record.params.get(row_name)), fmt_value(r.record.params.get(col_name))) for r in runs
    }
    if len(rows) < 2 or len(cols) < 2 or len(cells) < len(rows) * len(cols):
        return None  # not a grid: some combinations were never run
    values = np.full((len(rows), len(cols)), np.nan)
    notes = np.full((len(rows), len(cols)), "", dtype=object)
    for run in runs:
        r = rows.index(fmt_value(run.record.params.get(row_name)))
        c = cols.index(fmt_value(run.record.params.get(col_name)))
        loss = run.figures.get("best_eval_loss")
        if not run.failed and _finite(loss):
            values[r, c] = loss if math.isnan(values[r, c]) else min(values[r, c], loss)
        elif not notes[r, c]:
            notes[r, c] = (
                "failed" if run.failed else (run.record.status if run.record.status != COMPLETED else "-")
            )
    uri = heatmap(values, rows, cols, row_name=row_name, col_name=col_name, notes=notes)
    return Heatmap(uri, row_name, col_name)


def _ordered(labels: dict[str, Any]) -> list[str]:
    """Labels ordered by their values: numerically when all are numbers, else as text."""
    if all(_finite(v) for v in labels.values()):
        return sorted(labels, key=lambda k: labels[k])
    return sorted(labels)


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
        if _finite(record.duration_s):
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


@dataclass
class Report:
    """A built report: the page, the table behind it (swiftops.summary's rows), the summary for
    summary.json."""

    sweep_id: str
    html: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]


def build_report(sweep_dir: str | os.PathLike, *, generated: datetime | None = None) -> Report:
    """Read the runs under sweep_dir and build the page (nothing is written)."""
    sweep_dir = Path(sweep_dir).absolute()
    runs = load_runs(sweep_dir)
    command, command_source = sweep_command(sweep_dir, [r.record for r in runs])

    return render_report(
        runs,
        sweep_dir=sweep_dir,
        command=command,
        command_source=command_source,
        generated=generated or datetime.now().astimezone(),
        tuning=tuning_path(runs, read_path(sweep_dir)),
    )


def render_report(
    runs: Sequence[RunView],
    *,
    sweep_dir: Path,
    command: str | None = None,
    command_source: str = "",
    generated: datetime | None = None,
    tuning: TuningView | None = None,
) -> Report:
    """Runs -> the report (the page is rendered, plots drawn; no file is read or written)."""

    ident = sweep_id(sweep_dir)
    params, rows = comparison_rows(runs)
    columns = [param_column(p) for p in params]
    best = choose_best(runs)
    verdicts = Counter(r.verdict or NO_VERDICT for r in runs)
    statuses = Counter(r.record.status for r in runs)
    overlay = overlay_plot(runs, best.run)
    images = run_images(runs)
    stamp = (generated or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M:%S %z").strip()
    context = {
        "sweep_id": ident,
        "sweep_dir": str(sweep_dir),
        "preset": preset_name(command),
        "command": command,
        "command_source": command_source,
        "generated": stamp,
        "when": when([r.record for r in runs]),
        "runs": runs,
        "rows": list(zip(runs, rows, images, param_texts(rows, columns), strict=True)),
        "params": params,
        "param_columns": columns,
        "resumed": any(row.get("resume") for row in rows),
        # columns that would say the same for every run are left out (summary.csv keeps them)
        "exit_column": any(row.get("exit_code") not in (0, None) for row in rows),
        "curves_column": len({r.curves.source if r.curves is not None else None for r in runs}) > 1
        or any(r.curves is None for r in runs),
        "verdict_counts": [(v, verdicts[v]) for v in (*VERDICT_ORDER, NO_VERDICT) if verdicts[v]]
        + [(v, n) for v, n in verdicts.items() if v not in (*VERDICT_ORDER, NO_VERDICT)],
        "status_counts": [(s, n) for s, n in statuses.items() if s != COMPLETED],
        "best": best,
        "overlay": overlay,
        "heatmap": grid_heatmap(runs, params),
        "stage_rows": stage_rows(runs),
        "tuning": tuning,
    }
    html = _environment().get_template(TEMPLATE_NAME).render(**context)
    summary = {
        "sweep_id": ident,
        "sweep_dir": str(sweep_dir),
        "command": command,
        "generated": stamp,
        "runs": len(runs),
        "verdicts": dict(verdicts),
        "statuses": dict(statuses),
        "best": None
        if best.run is None
        else {"job": rows[list(runs).index(best.run)]["job"], "job_dir": best.run.record.job_dir},
        "best_why": best.why,
        "params": params,
        "rows": rows,
        "autotune": None
        if tuning is None
        else {
            "stopped": tuning.stopped,
            "best_job": tuning.best.record.job_num if tuning.best else None,
            "recommendation": tuning.recommendation,
            "swift_seconds": tuning.swift_seconds,
            "steps": tuning.steps,
            "path": [
                {k: v for k, v in row.items() if k != "run"} | {"job": row["run"].record.job_num}
                for row in tuning.rows
            ],
        },
    }
    return Report(ident, html, rows, json_safe(summary))


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,  # every string from the runs is text, never markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        loss=fmt_loss,
        duration=fmt_duration,
        value=fmt_value,
        sortkey=sort_key,
        time=fmt_time,
        basename=lambda p: Path(p).name if p else "",
        breakable=breakable,
        sha256=_sha256,
    )
    env.globals.update(short_path=short_path, colors=_badge_colors(), plot_colors=_plot_colors())
    return env


def _badge_colors() -> dict[str, str]:
    return {**VERDICT_COLORS, NO_VERDICT: NO_VERDICT_COLOR}


def _plot_colors() -> dict[str, str]:
    return {
        "train": plots.TRAIN_COLOR,
        "eval": plots.EVAL_COLOR,
        "best": plots.BEST_COLOR,
        "diverged": plots.DIVERGED_COLOR,
    }


# ---------------------------------------------------------------------------------------------
# files


def summary_paths(html_path: Path) -> tuple[Path, Path]:
    """summary CSV and JSON beside a report: reports/X.html -> X.summary.csv, X.summary.json
    (named after the report, so the reports of several sweeps can share a folder)."""
    stem = html_path.name.removesuffix(".html")
    return html_path.with_name(f"{stem}.summary.csv"), html_path.with_name(f"{stem}.summary.json")


def write_report(
    sweep_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    report_dir: str | os.PathLike = DEFAULT_REPORT_DIR,
) -> Path:
    """Write the report of the runs under sweep_dir, and its summary CSV and JSON beside it.

    Args:
        sweep_dir: a sweep folder (multirun/DATE/TIME) or one job's folder.
        out: the HTML file; default `report_dir/<sweep id>.html`.
        report_dir: where the report goes when out is not given (relative: to the working dir).

    Returns:
        The HTML file's path.

    Raises:
        NoRecords: no run.json under sweep_dir.
    """
    report = build_report(sweep_dir)
    path = Path(out) if out is not None else Path(report_dir) / f"{report.sweep_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = summary_paths(path)
    write_text_atomically(csv_path, summary_csv(report.rows))
    write_text_atomically(json_path, json.dumps(report.summary, indent=2, ensure_ascii=False) + "\n")
    write_text_atomically(path, report.html)  # last: its presence means the set is complete
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swiftops.report",
        description="Write the HTML report of a sweep (or one job) from its runs on disk.",
    )
    parser.add_argument("sweep_dir", help="a sweep folder (multirun/DATE/TIME) or a job folder")
    parser.add_argument("-o", "--out", help="the HTML file (default: REPORT_DIR/<sweep id>.html)")
    parser.add_argument(
        "--report-dir", default=DEFAULT_REPORT_DIR, help="where the report goes without -o (default: reports)"
    )
    args = parser.parse_args(argv)
    try:
        path = write_report(args.sweep_dir, args.out, args.report_dir)
    except NoRecords as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    csv_path, json_path = summary_paths(path)
    print(f"summary: {csv_path}, {json_path}")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
