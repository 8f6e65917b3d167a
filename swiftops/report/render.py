"""Runs -> the page (pure: render_report), and the page and its summary files written
(write_report), also as `python -m swiftops.report SWEEP_DIR [-o FILE]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from swiftops.atomic_write import write_text_atomically
from swiftops.autotune import read_path
from swiftops.record import COMPLETED, json_safe
from swiftops.report import plots
from swiftops.report.data import (
    NO_VERDICT,
    VERDICT_ORDER,
    NoRecords,
    RunView,
    TuningView,
    choose_best,
    comparison_rows,
    load_runs,
    preset_name,
    stage_rows,
    sweep_command,
    sweep_id,
    tuning_path,
    when,
)
from swiftops.report.formats import (
    breakable,
    fmt_duration,
    fmt_loss,
    fmt_time,
    fmt_value,
    param_texts,
    sha256_of,
    short_path,
    sort_key,
)
from swiftops.report.plots import NO_VERDICT_COLOR, VERDICT_COLORS
from swiftops.report.views import grid_heatmap, overlay_plot, run_images
from swiftops.summary import param_column, summary_csv

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "report.html.j2"
DEFAULT_REPORT_DIR = "reports"


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
        sha256=sha256_of,
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
