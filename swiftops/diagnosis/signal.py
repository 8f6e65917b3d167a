"""The statistics the rules read: one loss curve as a Signal (log scale, its own noise), robust
Theil-Sen trends, and the three questions every verdict starts from: did the curve learn, did it end
above where it started, and how does it end (pure; numpy only)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from swiftops.curves import Series
from swiftops.diagnosis.settings import ClassifySettings

MAX_BINS = 64  # a long training curve is judged on this many medians of consecutive points
MEASURED_POINTS = 5  # the noise is measured from second differences: 3 of them at least
_FEW_POINTS = 8  # below this many points (5 second differences) their median is too unsure to centre on


@dataclass(frozen=True)
class Signal:
    """One loss curve prepared for judging: finite points, on a log scale when every value is
    positive (trends of a loss are multiplicative: the same run scaled 100x reads the same)."""

    name: str  # "eval loss" | "training loss"
    steps: np.ndarray  # int64, the logged steps of the points kept
    values: np.ndarray  # the losses as logged
    y: np.ndarray  # log(values), or values when some are <= 0
    x: np.ndarray  # the steps as floats, the axis trends are fitted on
    noise: float  # per-point noise of y (floored at the resolution)
    log: bool
    measured: bool  # the noise was measured (MEASURED_POINTS or more), not just the floor
    binned_from: int  # the points logged, when the curve was binned into medians; else len(steps)

    def __len__(self) -> int:
        return len(self.y)

    def level(self, y: float) -> float:
        """A value of y as a loss again."""
        return float(math.exp(y)) if self.log else float(y)

    def relative(self, a: float, b: float) -> float:
        """How far b lies from a, as a share of a's loss (+0.4 = 40% above)."""
        start = self.level(a)
        return self.level(b) / start - 1 if start else math.nan


def prepare(name: str, series: Series | None, s: ClassifySettings, *, binned: bool = False) -> Signal | None:
    """The finite points of a series as a Signal (binned into MAX_BINS medians when asked); None
    with fewer than 2."""
    if series is None:
        return None
    keep = np.isfinite(series.values)
    steps, values = series.steps[keep], series.values[keep]
    logged = len(values)
    if binned:
        steps, values = bin_medians(steps, values, MAX_BINS)
    if len(values) < 2:
        return None
    log = bool(np.all(values > 0))
    y = np.log(values) if log else values.astype(np.float64)
    floor = s.resolution if log else s.resolution * max(float(np.median(np.abs(values))), 1e-12)
    noise = curvature_noise(y)
    measured = math.isfinite(noise)
    noise = max(noise, floor) if measured else floor
    return Signal(name, steps, values, y, steps.astype(np.float64), noise, log, measured, logged)


def bin_medians(steps: np.ndarray, values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """A long noisy curve as the medians of `bins` consecutive runs of points (its trend kept, its
    batch noise shrunk), so pairwise statistics stay cheap on 200k steps."""
    if len(steps) <= 2 * bins:
        return steps, values
    edges = np.linspace(0, len(steps), bins + 1).astype(np.int64)
    mid = [int(steps[(a + b - 1) // 2]) for a, b in itertools.pairwise(edges)]
    med = [float(np.median(values[a:b])) for a, b in itertools.pairwise(edges)]
    return np.asarray(mid, dtype=np.int64), np.asarray(med)


def theil_sen(x: np.ndarray, y: np.ndarray) -> float:
    """The median of all pairwise slopes: a line that a few wild points can't tilt."""
    if len(x) < 2:
        return math.nan
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx > 0
    return float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else math.nan


def change_z(x: np.ndarray, y: np.ndarray, slope: float, noise: float) -> float:
    """The fitted change over the window in standard errors of that change (a least-squares
    standard error with the curve's per-point noise)."""
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx <= 0 or not math.isfinite(slope):
        return 0.0
    return slope * math.sqrt(sxx) / noise


def curvature_noise(y: np.ndarray) -> float:
    """Per-point noise from second differences (y[i-1] - 2 y[i] + y[i+1], 6 sigma^2 for
    independent noise): a straight trend adds nothing to them and a bend or a spike only a
    few, which their median absolute deviation ignores. On fewer than 8 points the deviation
    from their own median can come out near zero by chance, so their spread around zero, which
    counts any bend as noise, is taken when larger. NaN below MEASURED_POINTS points."""
    if len(y) < MEASURED_POINTS:
        return math.nan
    d2 = np.diff(y, 2)
    sigma = _mad_sigma(d2)
    if len(y) < _FEW_POINTS:
        sigma = max(sigma, float(1.4826 * np.median(np.abs(d2))))
    return sigma / math.sqrt(6)


def _mad_sigma(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if len(r) else math.nan


def running_median3(y: np.ndarray) -> np.ndarray:
    """Each point as the median of itself and its two neighbours: one wild point can't stand out."""
    if len(y) < 3:
        return y
    stacked = np.vstack([y[:-2], y[1:-1], y[2:]])
    return np.concatenate([y[:1], np.median(stacked, axis=0), y[-1:]])


# ---------------------------------------------------------------------------------------------
# the questions every verdict starts from


@dataclass(frozen=True)
class Level:
    """Where a curve ended against where it started: the first point against the median of the last
    quarter of the points, in standard errors of that difference."""

    start: float  # y of the first point
    late: float  # y of the late level: the median of the last quarter of the points
    late_points: int
    z: float  # (late - start) in standard errors; positive = ended above its start
    lowest: float  # y of the lowest 3-point median
    lowest_step: int
    depth_z: float  # (start - lowest) in noise units, less the depth noise alone reaches over the curve

    def rel(self, sig: Signal) -> float:
        return sig.relative(self.start, self.late)


def level(sig: Signal) -> Level:
    """The start, the late level and the lowest point of a curve, each against its noise."""
    k = max(1, len(sig) // 4)
    late = float(np.median(sig.y[-k:]))
    z = (late - sig.y[0]) / (sig.noise * math.sqrt(1 + 1 / k))
    smooth = running_median3(sig.y)
    low = int(np.argmin(smooth))
    # the minimum of n noisy points sits about sqrt(2 ln n) noise units below their level by chance
    chance = math.sqrt(2 * math.log(len(sig))) if len(sig) > 1 else 0.0
    depth_z = (sig.y[0] - smooth[low]) / sig.noise - chance
    return Level(float(sig.y[0]), late, k, z, float(smooth[low]), int(sig.steps[low]), depth_z)


def learned(sig: Signal, s: ClassifySettings) -> bool:
    """The principle: a curve learned when it went below its start by more than its noise explains,
    either where it ended (the late level, noise_z standard errors under the first point) or where it
    got to (its lowest 3-point median, noise_z noise units deeper than chance alone reaches over that
    many points). Scale-free (log loss, own noise), from 2 points to 200k (binned)."""
    at = level(sig)
    return -at.z > s.noise_z or at.depth_z > s.noise_z


def rose(sig: Signal, s: ClassifySettings) -> bool:
    """The principle: a curve ended above its start when its late level sits noise_z standard errors
    above its first point; with too few points to measure the noise, when it sits more than
    unmeasured_rise above it. A healthy run never ends above where it started."""
    at = level(sig)
    if sig.measured:
        return at.z > s.noise_z
    return at.rel(sig) > s.unmeasured_rise


@dataclass(frozen=True)
class EndTrend:
    """How a curve ends: its rate of change over the end, against its noise and against the rate
    over the stretch just before."""

    first_step: int  # the end's first point
    last_step: int
    points: int
    start: float  # the fitted loss at the end's first point
    end: float  # ... and at its last
    z: float  # the end's change in standard errors (negative = falling)
    ratio: float  # the end's slope / the slope just before (nan when there is no before)
    before_steps: tuple[int, int] | None  # the stretch before

    @property
    def rel(self) -> float:
        return self.end / self.start - 1 if self.start else math.nan


def end_trend(sig: Signal, s: ClassifySettings) -> EndTrend | None:
    """The trend over the last tail_fraction of the steps (at least min_tail_points points): a
    Theil-Sen line, its change in standard errors, and its slope against the run's average rate
    from the first point to where the end begins. None with fewer than 3 points."""
    n = len(sig)
    if n < 3:
        return None
    x, y = sig.x, sig.y
    cut = x[-1] - s.tail_fraction * (x[-1] - x[0])
    i = min(int(np.searchsorted(x, cut, side="left")), n - s.min_tail_points)
    i = max(i, 0)
    slope = theil_sen(x[i:], y[i:])
    if not math.isfinite(slope):
        return None
    z = change_z(x[i:], y[i:], slope, sig.noise)
    mid_x, mid_y = float(np.median(x[i:])), float(np.median(y[i:]))
    fitted_start = mid_y + slope * (x[i] - mid_x)
    ratio, before = math.nan, None
    if i >= 1 and x[i] > x[0]:
        prior = (fitted_start - y[0]) / (x[i] - x[0])  # the average rate from the first point to the end
        if prior < 0:
            ratio = slope / prior
        elif slope < 0:
            ratio = math.inf  # it only started falling at the end
        else:
            ratio = 0.0
        before = (int(sig.steps[0]), int(sig.steps[i]))
    start = sig.level(fitted_start)
    end = sig.level(mid_y + slope * (x[-1] - mid_x))
    return EndTrend(int(sig.steps[i]), int(sig.steps[-1]), n - i, start, end, z, ratio, before)
