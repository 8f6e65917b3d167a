"""Loss curves -> small PNG images as data URIs, for the HTML report.

The y-limit and decimation rules are plain numpy functions; matplotlib is imported only when a
figure is drawn, and through `matplotlib.figure.Figure` (the Agg canvas, no pyplot), so no
global backend or figure registry is touched. PNG rather than SVG: 100 runs x 5k points as SVG
paths is megabytes, a PNG at modest dpi is a few kilobytes per figure.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERDICT_COLORS = {
    "failed": "#d62728",
    "underfit": "#e08a00",
    "overfit": "#8c4fbf",
    "converged": "#2a9d3a",
}
NO_VERDICT_COLOR = "#7f7f7f"
RUN_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
MAX_RUN_COLORS = len(RUN_COLORS)  # above this many runs, lines are coloured by verdict instead
LOG_RANGE = 10.0  # a y-range spanning this factor or more is drawn on a log scale
PAD = 0.05  # share of the y-range added above and below
LEGEND_WIDTH = 1.4  # inches beside an overlay's panels for its legend
SPIKE_MIN_POINTS = 50  # from this many points on, a lone spike of a healthy curve may leave the y-range
RUN_PLOT_SIZE = (3.6, 2.3)  # inches: one run's plot, 324 x 207 px at its dpi of 90


@dataclass
class Line:
    """One run's curve in an overlay."""

    label: str  # "job 3"
    steps: np.ndarray
    values: np.ndarray
    verdict: str | None = None
    failed: bool = False  # left out of the y-limits so it cannot flatten the others
    best: bool = False  # drawn thick, on top
    divergence_step: int | None = None


@dataclass
class Limits:
    lo: float
    hi: float
    log: bool


@dataclass
class Overlay:
    """An overlay image and what it had to leave out."""

    uri: str | None  # None when no run logged a finite value
    clipped: list[str] = field(default_factory=list)  # labels of runs drawn partly outside the limits
    log_panels: list[str] = field(default_factory=list)  # titles of the panels on a log scale


# ---------------------------------------------------------------------------------------------
# pure helpers


def decimate(steps: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about max_points points that look the same when drawn: the series is cut into
    buckets and each keeps its first point, its minimum, its maximum and its first non-finite
    point (a NaN gap stays a gap). For drawing only: tables use the full series."""
    n = len(values)
    if n <= max_points or max_points < 8:
        return steps, values
    buckets = max(max_points // 3, 1)
    size = math.ceil(n / buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, size)
    finite = np.isfinite(grid)
    starts = np.arange(buckets) * size
    lows = np.where(finite, grid, np.inf).argmin(axis=1)
    highs = np.where(finite, grid, -np.inf).argmax(axis=1)
    real = np.arange(buckets * size).reshape(buckets, size) < n
    odd = ~finite & real
    keep = [starts, starts + lows, starts + highs, [n - 1]]
    if odd.any():
        rows = np.flatnonzero(odd.any(axis=1))
        keep.append(starts[rows] + odd[rows].argmax(axis=1))
    index = np.unique(np.concatenate(keep))
    index = index[index < n]
    return steps[index], values[index]


def _median3(values: np.ndarray) -> np.ndarray:
    """Running median of 3 (ends kept): a lone spike vanishes, a real start or level stays."""
    if len(values) < 3:
        return values
    middle = np.nanmedian(np.vstack([values[:-2], values[1:-1], values[2:]]), axis=0)
    return np.concatenate([values[:1], middle, values[-1:]])


def y_limits(lines: Sequence[Line]) -> Limits | None:
    """Limits showing every run that did not fail in full, spikes aside: from the lowest point
    to the highest (for a curve of SPIKE_MIN_POINTS or more: its highest 3-point median).
    Failed runs do not count (a loss of 1e4 or NaN would flatten the rest), unless every run
    failed: then their 1st..99th percentiles. A range spanning LOG_RANGE or more gets a log
    scale. None when nothing finite was logged."""
    healthy = [x.values[np.isfinite(x.values)] for x in lines if not x.failed]
    healthy = [v for v in healthy if len(v)]
    if healthy:
        lo = min(float(v.min()) for v in healthy)
        # a lone spike in a long, noisy curve may go; in a short one every point is evidence
        hi = max(float(np.nanmax(_median3(v) if len(v) >= SPIKE_MIN_POINTS else v)) for v in healthy)
    else:
        pooled = np.concatenate([x.values[np.isfinite(x.values)] for x in lines] or [np.empty(0)])
        if not len(pooled):
            return None
        lo, hi = (float(q) for q in np.percentile(pooled, [1, 99]))
    log = lo > 0 and hi / lo >= LOG_RANGE
    if log:
        span = math.log10(hi / lo) or 1.0
        return Limits(lo / 10 ** (PAD * span), hi * 10 ** (PAD * span), True)
    span = (hi - lo) or max(abs(hi), 1.0) * 0.1
    return Limits(lo - PAD * span, hi + PAD * span, False)


def first_outside(line: Line, limits: Limits) -> int | None:
    """The first step at which a finite value of the line lies outside the limits."""
    v = line.values
    outside = np.isfinite(v) & ((v > limits.hi) | (v < limits.lo))
    return int(line.steps[np.argmax(outside)]) if outside.any() else None


# ---------------------------------------------------------------------------------------------
# drawing


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig


def to_data_uri(fig, dpi: int) -> str:
    """The figure as a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax, *, fontsize: float = 8) -> None:
    ax.grid(True, which="major", color="#e5e5e5", linewidth=0.6)
    ax.tick_params(labelsize=fontsize)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def overlay(
    panels: Sequence[tuple[str, Sequence[Line]]], *, max_points: int = 1500, dpi: int = 100
) -> Overlay:
    """Side by side panels (title, lines): every run's curve over steps, on shared rules.

    Runs are coloured one by one up to MAX_RUN_COLORS runs (one legend beside the panels), by
    verdict above. Each panel's y-limits come from its runs that did not fail (see y_limits);
    a run drawn partly outside them is marked with a triangle on the edge where it leaves, and
    listed in `clipped`.
    """
    drawn = [(title, lines) for title, lines in panels if any(len(x.values) for x in lines)]
    if not drawn:
        return Overlay(None)
    labels = list(dict.fromkeys(x.label for _, lines in drawn for x in lines))
    many = len(labels) > MAX_RUN_COLORS
    fig = _figure(4.6 * len(drawn) + LEGEND_WIDTH, 3.4)
    clipped: list[str] = []
    log_panels: list[str] = []
    handles: dict[str, Any] = {}
    for i, (title, lines) in enumerate(drawn):
        ax = fig.add_subplot(1, len(drawn), i + 1)
        _style(ax)
        limits = y_limits(lines)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if limits is None:
            ax.text(0.5, 0.5, "nothing finite logged", ha="center", va="center", transform=ax.transAxes)
            continue
        if limits.log:
            log_panels.append(title)
        # failed runs first (under), the best run last (on top)
        for line in sorted(lines, key=lambda x: (x.best, not x.failed)):
            if not len(line.values):
                continue
            if many:
                color = "black" if line.best else VERDICT_COLORS.get(line.verdict or "", NO_VERDICT_COLOR)
            else:
                color = RUN_COLORS[labels.index(line.label) % MAX_RUN_COLORS]
            steps, values = decimate(line.steps, line.values, max_points)
            (handle,) = ax.plot(
                steps,
                values,
                color=color,
                linewidth=2.0 if line.best else (0.8 if many else 1.3),
                alpha=1.0 if line.best or not many else 0.55,
                linestyle="--" if line.failed else "-",
                marker="o" if len(steps) <= 30 else None,
                markersize=2.5,
                zorder=3 if line.best else 2,
            )
            handles.setdefault(line.label, (handle, _label(line)))
            out_at = first_outside(line, limits)
            if out_at is not None:
                if line.label not in clipped:
                    clipped.append(line.label)
                above = np.nanmax(line.values[np.isfinite(line.values)]) > limits.hi
                ax.plot(
                    [out_at],
                    [limits.hi if above else limits.lo],
                    marker="^" if above else "v",
                    color=color,
                    markersize=7,
                    clip_on=False,
                    zorder=4,
                )
        if limits.log:
            ax.set_yscale("log")
        ax.set_ylim(limits.lo, limits.hi)
    if many:
        legend = _verdict_legend([x for _, lines in drawn for x in lines])
    else:
        legend = [handles[x] for x in labels if x in handles]
    fig.legend([h for h, _ in legend], [t for _, t in legend], loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - LEGEND_WIDTH / fig.get_figwidth(), 1))
    return Overlay(to_data_uri(fig, dpi), clipped, log_panels)


def _label(line: Line) -> str:
    return f"{line.label} ({line.verdict})" if line.verdict else line.label


def _verdict_legend(lines: Sequence[Line]) -> list[tuple[Any, str]]:
    """Legend entries of a many-run overlay: one per verdict with its number of runs, and the
    best run."""
    from matplotlib.lines import Line2D

    runs: dict[str, set[str]] = {}
    for line in lines:
        runs.setdefault(line.verdict or "no verdict", set()).add(line.label)
    entries = [
        (Line2D([], [], color=VERDICT_COLORS.get(k, NO_VERDICT_COLOR)), f"{k} ({len(v)})")
        for k, v in runs.items()
    ]
    best = next((x for x in lines if x.best), None)
    if best is not None:
        entries.append((Line2D([], [], color="black", linewidth=2), f"best: {best.label}"))
    return entries


@dataclass
class RunPlot:
    """What one run's small plot shows."""

    train: tuple[np.ndarray, np.ndarray] | None
    evals: tuple[np.ndarray, np.ndarray] | None
    best_eval_step: int | None = None
    best_eval_loss: float | None = None
    divergence_step: int | None = None
    verdict: str | None = None


TRAIN_COLOR, EVAL_COLOR, BEST_COLOR, DIVERGED_COLOR = "#1f77b4", "#ff7f0e", "#2a9d3a", "#d62728"


def run_plots(plots: Sequence[RunPlot], *, max_points: int = 900, dpi: int = 90) -> list[str | None]:
    """One small PNG per run: training loss (blue), eval loss (orange), the eval minimum as a
    green star, the divergence point as a red dashed line (the page explains the colours once).
    One figure and its artists are reused, only their data changes: building a figure per run
    costs several times its drawing. None for a run with nothing to draw."""
    if not plots:
        return []
    fig = _figure(*RUN_PLOT_SIZE)
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.96)  # fixed: tight_layout per run is slow
    ax = fig.add_subplot(1, 1, 1)
    _style(ax, fontsize=7)
    (train_line,) = ax.plot([], [], color=TRAIN_COLOR, linewidth=1.0, markersize=2)
    (eval_line,) = ax.plot([], [], color=EVAL_COLOR, linewidth=1.2, markersize=2.5)
    (star,) = ax.plot([], [], marker="*", color=BEST_COLOR, markersize=10, linestyle="none", zorder=5)
    diverged = ax.axvline(0, color=DIVERGED_COLOR, linestyle="--", linewidth=1.0)
    out: list[str | None] = []
    for plot in plots:
        series = [(artist, pair) for artist, pair in ((train_line, plot.train), (eval_line, plot.evals))]
        if not any(_has_points(pair) for _, pair in series):
            out.append(None)
            continue
        lines, first, last = [], math.inf, -math.inf
        for artist, pair in series:
            if not _has_points(pair):
                artist.set_data([], [])
                continue
            steps, values = pair
            lines.append(Line("", steps, values))
            s, v = decimate(steps, values, max_points)
            artist.set_data(s, v)
            artist.set_marker("o" if len(s) <= 40 else "None")
            first, last = min(first, float(steps[0])), max(last, float(steps[-1]))
        has_best = plot.best_eval_step is not None and plot.best_eval_loss is not None
        star.set_data([plot.best_eval_step] if has_best else [], [plot.best_eval_loss] if has_best else [])
        diverged.set_visible(plot.divergence_step is not None)
        if plot.divergence_step is not None:
            diverged.set_xdata([plot.divergence_step, plot.divergence_step])
            first, last = min(first, plot.divergence_step), max(last, plot.divergence_step)
        span = (last - first) or 1.0
        ax.set_xlim(first - 0.02 * span, last + 0.02 * span)
        limits = _run_limits(lines)
        ax.set_yscale("log" if limits is not None and limits.log else "linear")
        if limits is not None:
            ax.set_ylim(limits.lo, limits.hi)
        out.append(to_data_uri(fig, dpi))
    return out


def _run_limits(lines: list[Line]) -> Limits | None:
    """One run's own limits: its whole range, on a log scale when wide (a diverged run is
    its own evidence, nothing to protect here), the spikes of inf left out."""
    values = [x.values[np.isfinite(x.values)] for x in lines]
    values = [v for v in values if len(v)]
    if not values:
        return None
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    log = lo > 0 and hi / lo >= LOG_RANGE
    if log:
        span = math.log10(hi / lo)
        return Limits(lo / 10 ** (PAD * span), hi * 10 ** (PAD * span), True)
    span = (hi - lo) or max(abs(hi), 1.0) * 0.1
    return Limits(lo - PAD * span, hi + PAD * span, False)


def _has_points(pair: tuple[np.ndarray, np.ndarray] | None) -> bool:
    return pair is not None and len(pair[0]) > 0


def heatmap(
    values: np.ndarray,
    row_labels: Sequence[Any],
    col_labels: Sequence[Any],
    *,
    row_name: str,
    col_name: str,
    notes: np.ndarray | None = None,
    dpi: int = 100,
) -> str:
    """A grid of numbers (rows x cols, NaN = no value) with each cell written in it; the lowest
    cell outlined. notes holds a short text for cells without a value ("failed")."""
    rows, cols = values.shape
    fig = _figure(max(3.2, 1.1 * cols + 1.6), max(2.2, 0.55 * rows + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_invalid(values)
    cmap = _viridis_with_grey()
    ax.imshow(masked, cmap=cmap, aspect="auto")
    ax.set_xticks(range(cols), [str(x) for x in col_labels], fontsize=8)
    ax.set_yticks(range(rows), [str(x) for x in row_labels], fontsize=8)
    ax.set_xlabel(col_name, fontsize=9)
    ax.set_ylabel(row_name, fontsize=9)
    finite = np.isfinite(values)
    best = np.unravel_index(np.where(finite, values, np.inf).argmin(), values.shape) if finite.any() else None
    lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if finite.any() else (0.0, 1.0)
    for r in range(rows):
        for c in range(cols):
            if finite[r, c]:
                dark = (values[r, c] - lo) / ((hi - lo) or 1.0) < 0.6
                text = f"{values[r, c]:.4g}"
                color = "white" if dark else "black"
            else:
                text = str(notes[r, c]) if notes is not None and notes[r, c] else "-"
                color = "#333333"
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color=color)
    if best is not None:
        from matplotlib.patches import Rectangle

        ax.add_patch(
            Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2)
        )
    ax.set_title("best eval loss (lowest outlined)", fontsize=9)
    fig.tight_layout()
    return to_data_uri(fig, dpi)


def _viridis_with_grey():
    import matplotlib

    return matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
