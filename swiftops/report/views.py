"""The report's figures from its runs: the overlay of every run's eval loss (the best run drawn
over the rest), each run's own curves, and the heatmap of a two-parameter grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swiftops.record import COMPLETED
from swiftops.report.data import RunView, nonempty_series
from swiftops.report.formats import finite, fmt_value
from swiftops.report.plots import Line, RunPlot, heatmap, overlay, run_plots

# ---------------------------------------------------------------------------------------------
# plots


def overlay_plot(runs: Sequence[RunView], best: RunView | None):
    panels = []
    for title, attr in (("train loss", "train_loss"), ("eval loss", "eval_loss")):
        lines = []
        for run in runs:
            series = nonempty_series(run.curves, attr)
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
        train, evals = nonempty_series(run.curves, "train_loss"), nonempty_series(run.curves, "eval_loss")
        figures = run.figures
        plots.append(
            RunPlot(
                train=(train.steps, train.values) if train is not None else None,
                evals=(evals.steps, evals.values) if evals is not None else None,
                best_eval_step=figures.get("best_eval_step"),
                best_eval_loss=figures.get("best_eval_loss")
                if finite(figures.get("best_eval_loss"))
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
        if not run.failed and finite(loss):
            values[r, c] = loss if math.isnan(values[r, c]) else min(values[r, c], loss)
        elif not notes[r, c]:
            notes[r, c] = (
                "failed" if run.failed else (run.record.status if run.record.status != COMPLETED else "-")
            )
    uri = heatmap(values, rows, cols, row_name=row_name, col_name=col_name, notes=notes)
    return Heatmap(uri, row_name, col_name)


def _ordered(labels: dict[str, Any]) -> list[str]:
    """Labels ordered by their values: numerically when all are numbers, else as text."""
    if all(finite(v) for v in labels.values()):
        return sorted(labels, key=lambda k: labels[k])
    return sorted(labels)
