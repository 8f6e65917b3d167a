"""Curves -> verdict (failed / underfit / overfit / converged), the numbers behind it, and the
next experiment to run (pure; numpy only).

The rules are the tutorial's, made precise (thresholds in ClassifySettings, mirrored by
conf/classify/default.yaml):

- failed: the process exited non-zero; no step logged; NaN/Inf in a loss or a persistent one in
  grad_norm; training loss exploding, rising, or flat while eval loss did not improve either.
- overfit: eval loss rose after its minimum by more than `overfit_rise` and more than its noise.
- underfit: eval loss (or, with no eval, training loss) still falling at the end.
- converged: flat at the end (eval flat or only slightly rising).

"Falling" and "flat" are judged on the last `tail_fraction` of the steps with a line fitted
within epochs (the drop at each epoch boundary is not taken for a trend), against the series'
own noise (a robust, MAD-based standard error), and with a minimum relative size.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swiftops.curves import EPOCH, GRAD_NORM, Curves, Series

VERDICTS = ("failed", "underfit", "overfit", "converged")


@dataclass
class ClassifySettings:
    """Thresholds of the diagnosis; conf/classify/default.yaml holds the same keys."""

    tail_fraction: float = 0.3  # "at the end" = this share of the run's steps, counted back from the last
    min_tail_points: int = 3  # ... but at least this many logged points
    noise_z: float = 2.0  # a trend counts only when it exceeds this many standard errors of its own noise
    flat_change: float = 0.03  # a relative change over the tail smaller than this is flat
    overfit_rise: float = 0.05  # eval loss this much (relative) above its minimum at the end = overfit
    min_improvement: float = (
        0.05  # a loss must fall this much (relative) below its first value to count as learning
    )
    rise_tolerance: float = 0.10  # late training loss this much above its first value = rising (failed)
    explode_factor: float = (
        3.0  # training loss (3-point median) reaching this multiple of its first value = exploded
    )
    spike_rise: float = 0.25  # training loss (3-point median) this much above its start, even if it came
    #   back down = unstable (failed): the learning rate is too high
    high_lr: float = 1e-2  # a flat failed run below this learning rate is told to raise it 10x, not lower it
    lr_divisor: float = 100.0  # failed: the next learning rate is this many times smaller
    epochs_factor: float = 3.0  # underfit: the next run trains this many times more epochs


@dataclass
class NextStep:
    """The next experiment: what to change and why, and the override that does it."""

    text: str
    override: str | None  # a swiftops override, runnable as is ("lr=1e-3", "epochs=9"); None when none fits


@dataclass
class Diagnosis:
    verdict: str  # one of VERDICTS
    confidence: float  # 0..1
    reasons: list[str]  # sentences with the numbers behind the verdict
    figures: dict[str, Any]  # losses, steps and checkpoint (see FIGURES)
    next: NextStep
    warnings: list[str] = field(default_factory=list)  # what the reader found odd (cut files, NaN as 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN and inf become None, numpy numbers plain numbers."""
        return _json_safe(
            {
                "verdict": self.verdict,
                "confidence": self.confidence,
                "reasons": list(self.reasons),
                "figures": dict(self.figures),
                "next": {"text": self.next.text, "override": self.next.override},
                "warnings": list(self.warnings),
            }
        )


FIGURES = (
    "first_train_loss",
    "min_train_loss",
    "final_train_loss",
    "first_eval_loss",
    "best_eval_loss",
    "best_eval_step",
    "final_eval_loss",
    "train_eval_gap",  # final eval loss minus the training loss level at the end
    "steps",  # last step logged
    "max_steps",  # planned steps when known (a partial curve has steps < max_steps)
    "train_points",
    "eval_points",
    "best_checkpoint",
    "divergence_step",  # None unless failed by divergence (NaN, exploding or rising loss)
)


# ---------------------------------------------------------------------------------------------
# the numbers


@dataclass
class Trend:
    """A line fitted to the end of a series."""

    first_step: int
    last_step: int
    points: int
    start: float  # fitted level at first_step
    end: float  # fitted level at last_step
    z: float  # (end - start) / its standard error; nan when the noise can't be estimated
    within_epochs: bool  # fitted within epochs (the drops at epoch boundaries left out)

    @property
    def change(self) -> float:
        return self.end - self.start

    @property
    def rel(self) -> float:
        return self.change / abs(self.start) if self.start else math.nan


def tail_trend(
    series: Series,
    settings: ClassifySettings,
    epochs: np.ndarray | None = None,
    *,
    first_step: int = 0,
    noisy: bool = True,
) -> Trend | None:
    """Fit the last tail_fraction of the steps (at least min_tail_points points) of a series.
    `epochs` gives each point's epoch index: the line is then fitted within epochs. With too
    few points in the tail to measure its noise, a noisy series (training loss) borrows the
    whole series' point-to-point noise; a smooth one (eval loss) gets no standard error."""
    finite = np.isfinite(series.values)
    x_all = series.steps[finite].astype(np.float64)
    y_all = series.values[finite]
    if len(x_all) < 2:
        return None
    lo = min(float(first_step), x_all[0])
    cutoff = x_all[-1] - settings.tail_fraction * (x_all[-1] - lo)
    start = int(np.searchsorted(x_all, cutoff, side="left"))
    start = min(start, max(len(x_all) - settings.min_tail_points, 0))
    x, y = x_all[start:], y_all[start:]
    groups = epochs[finite][start:] if epochs is not None else None
    slope, sigma, dof, sxx, within = _fit_slope(x, y, groups)
    if (dof < 2 or not math.isfinite(sigma)) and noisy:
        sigma = _diff_noise(y_all)  # too few points in the tail: the whole series' noise
        dof = len(y_all) - 2
    span = x[-1] - x[0]
    change = slope * span
    if within:
        end = float(np.mean(y[groups == groups[-1]]) + slope * (x[-1] - np.mean(x[groups == groups[-1]])))
    else:
        end = float(np.mean(y) + slope * (x[-1] - np.mean(x)))
    if dof < 2 or not math.isfinite(sigma) or sxx <= 0:
        z = math.nan
    elif sigma == 0:
        z = math.copysign(math.inf, change) if change else 0.0
    else:
        z = change / (sigma / math.sqrt(sxx) * span)
    return Trend(int(x[0]), int(x[-1]), len(x), end - change, end, z, within)


def _fit_slope(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray | None
) -> tuple[float, float, int, float, bool]:
    """Least-squares slope (within groups when they are usable), refitted once with outliers
    clipped at 3 sigma. Returns slope, robust residual sigma, residual dof, the x spread, and
    whether the fit was within groups."""
    within = False
    if groups is not None and len(np.unique(groups)) > 1:
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        usable = counts[inverse] >= 3
        if usable.sum() - len(np.unique(inverse[usable])) >= 4:
            x, y, inverse = x[usable], y[usable], inverse[usable]
            with np.errstate(invalid="ignore"):  # groups dropped as unusable are empty bins: 0/0, unused
                xd = x - (np.bincount(inverse, x) / np.bincount(inverse))[inverse]
                yd = y - (np.bincount(inverse, y) / np.bincount(inverse))[inverse]
            dof = len(x) - len(np.unique(inverse)) - 1
            within = True
    if not within:
        xd, yd = x - x.mean(), y - y.mean()
        dof = len(x) - 2
    sxx = float(np.dot(xd, xd))
    if sxx <= 0:
        return 0.0, math.nan, dof, 0.0, within
    slope = float(np.dot(xd, yd)) / sxx
    resid = yd - slope * xd
    sigma = _mad_sigma(resid)
    if sigma > 0 and dof >= 2:
        clipped = slope * xd + np.clip(resid, -3 * sigma, 3 * sigma)
        slope = float(np.dot(xd, clipped)) / sxx
        sigma = _mad_sigma(yd - slope * xd)
    return slope, (sigma if dof >= 2 else math.nan), dof, sxx, within


def _mad_sigma(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if len(r) else math.nan


def _diff_noise(y: np.ndarray) -> float:
    """Per-point noise from successive differences: a trend, and the rare epoch-boundary
    drop, barely move their median absolute deviation."""
    if len(y) < 4:
        return math.nan
    return _mad_sigma(np.diff(y)) / math.sqrt(2)


def _jitter_noise(y: np.ndarray) -> float:
    """Point-to-point jitter around a running median of 3: zero on a smooth curve however
    curved (an eval loss measured on a fixed set), the zigzag's size on a jittery one."""
    if len(y) < 5:
        return math.nan
    return float(1.4826 * np.median(np.abs(y - _running_median3(y))))


def _running_median3(y: np.ndarray) -> np.ndarray:
    if len(y) < 3:
        return y
    stacked = np.vstack([y[:-2], y[1:-1], y[2:]])
    return np.concatenate([y[:1], np.median(stacked, axis=0), y[-1:]])


def epoch_index(curves: Curves, steps: np.ndarray, params: dict[str, Any]) -> np.ndarray | None:
    """Each step's epoch (0-based), from the logged train/epoch curve, else from the planned
    steps and epochs. None when neither is known."""
    epoch = curves.scalars.get(EPOCH)
    if epoch is not None and len(epoch) >= 2 and np.all(np.isfinite(epoch.values)):
        done = np.interp(steps.astype(np.float64), epoch.steps.astype(np.float64), epoch.values)
        return np.floor(np.maximum(done - 1e-6, 0)).astype(np.int64)
    epochs = _number(params.get("epochs"))
    if curves.max_steps and epochs and epochs >= 1:
        per_epoch = curves.max_steps / epochs
        return ((steps - 1) // per_epoch).astype(np.int64)
    return None


def epoch_at(curves: Curves, step: float) -> float | None:
    """Epochs done at a step, from the train/epoch curve."""
    epoch = curves.scalars.get(EPOCH)
    if epoch is None or not len(epoch) or not np.all(np.isfinite(epoch.values)):
        return None
    return float(np.interp(step, epoch.steps.astype(np.float64), epoch.values))


# ---------------------------------------------------------------------------------------------
# the verdict


@dataclass
class _Facts:
    """What diagnose() found, handed to the next-step rules."""

    cause: str = ""  # failed: exit | no_steps | nan | explode | rising | unstable | flat
    train_falling: bool = False
    best_step: int | None = None
    last_step: int | None = None
    partial: bool = False


def diagnose(
    curves: Curves,
    settings: ClassifySettings | None = None,
    *,
    exit_code: int | None = None,
    params: dict[str, Any] | None = None,
) -> Diagnosis:
    """Classify one run from its curves.

    Args:
        curves: what curves.read_curves returned (a partial curve of a running job works too).
        settings: thresholds; the defaults are conf/classify/default.yaml's.
        exit_code: swift's exit status, when known: non-zero is a failed run whatever the curves.
        params: the run's knobs (lr, epochs, lora_rank, ...) the next step is computed from.
    """
    s = settings or ClassifySettings()
    params = dict(params or {})
    train, evals = _finite_view(curves.train_loss), _finite_view(curves.eval_loss)
    grad = curves.scalars.get(GRAD_NORM)
    figures = _figures(curves)
    reasons: list[str] = []
    facts = _Facts(last_step=figures["steps"])
    steps_known = train is not None and len(train.steps) > 0
    if curves.max_steps and facts.last_step is not None and facts.last_step < curves.max_steps:
        facts.partial = True

    verdict, confidence = _failure(curves, train, evals, grad, exit_code, s, figures, reasons, facts)
    if verdict is None and steps_known:
        verdict, confidence = _learning(curves, train, evals, s, params, figures, reasons, facts)
    elif verdict is None:  # only eval, or nothing at all, was logged
        verdict, confidence = "failed", 0.9
        facts.cause = "no_steps"
        reasons.append("no training loss was logged")
    if facts.partial and verdict != "failed":
        reasons.append(
            f"the curve is partial: step {facts.last_step} of {curves.max_steps}, so the verdict may change"
        )
        confidence *= 0.8
    return Diagnosis(
        verdict=verdict,
        confidence=round(float(min(max(confidence, 0.05), 1.0)), 2),
        reasons=reasons,
        figures=figures,
        next=next_step(verdict, facts, curves, params, s),
        warnings=list(curves.warnings),
    )


def _finite_view(series: Series | None) -> Series | None:
    return series if series is not None and len(series) else None


def _failure(
    curves: Curves,
    train: Series | None,
    evals: Series | None,
    grad: Series | None,
    exit_code: int | None,
    s: ClassifySettings,
    figures: dict[str, Any],
    reasons: list[str],
    facts: _Facts,
) -> tuple[str | None, float]:
    """The failed rules, in order of certainty. Returns (None, 0) when the run did not fail."""
    verdict, confidence = None, 0.0
    if exit_code not in (None, 0):
        verdict, confidence, facts.cause = "failed", 1.0, "exit"
        reasons.append(f"swift exited with code {exit_code}")
    if train is None:
        if verdict is None:
            verdict, confidence, facts.cause = "failed", 0.95, "no_steps"
        reasons.append("no training step was logged")
        return verdict, confidence

    # NaN / Inf: in a loss at any point; in grad_norm when it persists (an fp16 loss-scale
    # overflow gives a lone inf that the optimizer skips)
    bad_loss = _first_nonfinite(train)
    bad_eval = _first_nonfinite(evals) if evals is not None else None
    bad_grad = None
    if grad is not None and len(grad):
        nonfinite = ~np.isfinite(grad.values)
        if nonfinite.sum() >= 2 or nonfinite[-1]:
            bad_grad = int(grad.steps[np.argmax(nonfinite)])
        elif nonfinite.any():
            reasons.append(
                f"grad_norm was not finite once (step {int(grad.steps[np.argmax(nonfinite)])}) and "
                "recovered: an fp16 overflow step, ignored"
            )
    if bad_loss is not None or bad_eval is not None or bad_grad is not None:
        where = [
            f"training loss at step {bad_loss}" if bad_loss is not None else "",
            f"eval loss at step {bad_eval}" if bad_eval is not None else "",
            f"grad_norm at step {bad_grad}" if bad_grad is not None else "",
        ]
        first = min(x for x in (bad_loss, bad_eval, bad_grad) if x is not None)
        reasons.append("NaN/Inf in " + ", ".join(w for w in where if w) + ": the training diverged")
        figures["divergence_step"] = first
        facts.cause = "nan"  # the curves say more than the exit code
        return "failed", max(confidence, 0.97)

    steps, values = train.steps, train.values
    first = float(values[0])
    smooth = _running_median3(values)
    peak = int(np.argmax(smooth))
    eval_better = _eval_improved(evals, s, first)
    if first > 0 and smooth[peak] >= s.explode_factor * first:
        reasons.append(
            f"training loss exploded from {_num(first)} at step {int(steps[0])} to {_num(values[peak])} "
            f"at step {int(steps[peak])} (a 3-point median {smooth[peak] / first:.1f}x its start, "
            f"the limit is {s.explode_factor:g}x)"
        )
        figures["divergence_step"] = int(steps[np.argmax(smooth >= s.explode_factor * first)])
        facts.cause = "explode"
        return "failed", max(confidence, 0.9)

    if len(values) >= 2:
        late = values[1:][steps[1:] >= (steps[0] + steps[-1]) / 2]  # the second half of the run
        late_level = float(np.median(late))
        above = float(np.mean(late > first))
        rising = late_level > first * (1 + s.rise_tolerance) and above >= 0.75
        if rising and not eval_better:
            over = int(np.argmax(smooth > first * (1 + s.rise_tolerance)))
            reasons.append(
                f"training loss rose from {_num(first)} at step {int(steps[0])} to a peak of "
                f"{_num(float(np.max(values)))} at step {int(steps[int(np.argmax(values))])} and ended at "
                f"{_num(float(values[-1]))}; the second half of the run sits at {_num(late_level)}, "
                f"{late_level / first - 1:.0%} above where it started"
            )
            figures["divergence_step"] = int(steps[over])
            facts.cause = "rising"
            return "failed", max(confidence, min(0.95, 0.6 + 0.5 * (late_level / first - 1)))
        if rising:
            reasons.append(
                f"training loss rose {late_level / first - 1:.0%} (from {_num(first)} to {_num(late_level)} "
                "over the second half) but eval loss improved: judged on the eval loss, the training loss "
                "is batch noise here"
            )
        if not rising and first > 0 and smooth[peak] >= (1 + s.spike_rise) * first:
            # the tutorial's lr 0.1 run: the loss jumps before any learning shows; a cosine decay
            # may bring it back down later, but to a worse place than a sane learning rate would
            jump = int(np.argmax(smooth >= (1 + s.spike_rise) * first))
            reasons.append(
                f"training loss jumped {smooth[peak] / first - 1:.0%} above its start ({_num(first)} at step "
                f"{int(steps[0])} -> {_num(values[peak])} at step {int(steps[peak])}; 3-point median, the "
                f"limit is +{s.spike_rise:.0%}) before it came back down to {_num(float(values[-1]))}: "
                "too high a learning rate for stable training"
            )
            figures["divergence_step"] = int(steps[jump])
            facts.cause = "unstable"
            return "failed", max(confidence, min(0.95, 0.6 + (smooth[peak] / first - 1)))
        improved = late_level < first * (1 - s.min_improvement)
        if not improved and not rising and eval_better is not True:
            reasons.append(
                f"training loss stayed flat: {_num(first)} at step {int(steps[0])}, {_num(late_level)} over "
                f"the second half ({late_level / first - 1:+.0%}, less than the {s.min_improvement:.0%} "
                "fall that counts as learning)"
                + (", and eval loss did not improve either" if evals is not None and len(evals) > 1 else "")
            )
            facts.cause = facts.cause or "flat"
            return "failed", max(confidence, 0.7 if len(values) >= 5 else 0.45)
    if verdict is not None:  # failed by its exit code alone: say how far it got
        reasons.append(
            f"until then training loss went from {_num(first)} at step {int(steps[0])} to "
            f"{_num(float(values[-1]))} at step {int(steps[-1])}, with no sign of divergence"
        )
    return verdict, confidence


def _learning(
    curves: Curves,
    train: Series,
    evals: Series | None,
    s: ClassifySettings,
    params: dict[str, Any],
    figures: dict[str, Any],
    reasons: list[str],
    facts: _Facts,
) -> tuple[str, float]:
    """underfit / overfit / converged, for a run that learned something."""
    steps, values = train.steps, train.values
    first_step = int(steps[0])
    penalty = 1.0
    if len(values) == 1:
        reasons.append(f"a single training loss was logged: {_num(values[0])} at step {first_step}")
    else:
        reasons.append(
            f"training loss went from {_num(values[0])} at step {first_step} to {_num(values[-1])} at step "
            f"{int(steps[-1])} (lowest {_num(np.nanmin(values))})"
        )
    train_trend = tail_trend(train, s, epoch_index(curves, steps, params), first_step=first_step)
    train_state = _trend_state(train_trend, s)
    facts.train_falling = train_state == "falling"
    if train_trend is not None:
        reasons.append(_trend_sentence("training loss", train_trend, train_state, s))
    if 1 < len(values) < 5:
        reasons.append(f"only {len(values)} training points were logged: the trend is uncertain")
        penalty *= 0.6

    n_eval = len(evals) if evals is not None else 0
    if n_eval >= 2:
        e_steps, e_values = evals.steps, evals.values
        i_min = int(np.argmin(e_values))
        e_min, e_first, e_last = float(e_values[i_min]), float(e_values[0]), float(e_values[-1])
        facts.best_step = int(e_steps[i_min])
        rise = (e_last - e_min) / abs(e_min) if e_min else 0.0
        noise = _jitter_noise(e_values)
        beyond_noise = not math.isfinite(noise) or (e_last - e_min) > s.noise_z * noise * math.sqrt(2)
        if n_eval < 4:
            penalty *= 0.75
        if i_min < n_eval - 1 and rise >= s.overfit_rise and beyond_noise:
            if i_min > 0:
                reasons.append(
                    f"eval loss fell from {_num(e_first)} to {_num(e_min)} at step {facts.best_step}, "
                    f"then rose {rise:.0%} to {_num(e_last)} by step {int(e_steps[-1])}"
                )
            else:
                reasons.append(
                    f"eval loss never fell below its first value {_num(e_first)} (step {facts.best_step}) "
                    f"and rose {rise:.0%} to {_num(e_last)} by step {int(e_steps[-1])}"
                )
            if facts.train_falling or (values[-1] < values[0]):
                reasons.append("while the training loss kept falling: the model memorises the training set")
            margin = min(1.0, (rise / s.overfit_rise - 1) / 2)
            return "overfit", (0.6 + 0.35 * margin) * penalty
        eval_trend = tail_trend(evals, s, first_step=first_step, noisy=False)
        eval_state = _trend_state(eval_trend, s, noisy=False)
        summary = f"eval loss went from {_num(e_first)} to {_num(e_last)} by step {int(e_steps[-1])}"
        if i_min < n_eval - 1:
            summary += f" (lowest {_num(e_min)} at step {facts.best_step})"
        reasons.append(summary)
        stalled = eval_state == "falling" and rise >= s.flat_change
        if stalled:  # the fitted line falls, yet the last eval is well above the lowest
            eval_state = "flat"
            reasons.append(
                f"over the last {s.tail_fraction:.0%} of the run (steps {eval_trend.first_step}-"
                f"{eval_trend.last_step}) a line through the eval loss falls {eval_trend.rel:+.1%}, but the "
                f"last value is {rise:.0%} above the lowest: it is no longer falling"
            )
        elif eval_trend is not None:
            reasons.append(_trend_sentence("eval loss", eval_trend, eval_state, s))
        if eval_state == "falling":
            both = " and the training loss too" if facts.train_falling else ""
            reasons.append(f"eval loss is still falling at the end{both}: more training will help")
            margin = min(1.0, (abs(eval_trend.rel) / s.flat_change - 1) / 2)
            return "underfit", (0.6 + 0.3 * margin + (0.05 if facts.train_falling else 0)) * penalty
        if 0 < rise < s.overfit_rise and i_min < n_eval - 1:
            reasons.append(
                f"eval loss is {rise:.1%} above its lowest, under the {s.overfit_rise:.0%} that counts as "
                "overfitting"
            )
        if facts.train_falling:
            reasons.append(
                "the training loss still falls while the eval loss is flat: more epochs would mostly "
                "memorise the training set"
            )
        rel = abs(eval_trend.rel) if eval_trend is not None and not stalled else 0.0
        margin = max(0.0, min(1.0, (s.flat_change - rel) / s.flat_change))
        return "converged", (0.6 + 0.3 * margin) * penalty

    # no eval curve to judge by
    if n_eval == 1:
        reasons.append(
            "eval loss was logged only once: this verdict rests on the training loss alone (lower confidence)"
        )
    else:
        reasons.append(
            "no eval loss was logged: this verdict rests on the training loss alone (lower confidence); "
            "give --val_dataset or --split_dataset_ratio to see overfitting"
        )
    penalty *= 0.6
    if train_trend is None:
        reasons.append("a single point shows no trend: the run is too short to judge, so train longer")
        return "underfit", 0.3 * penalty
    if train_state == "falling":
        margin = min(1.0, (abs(train_trend.rel) / s.flat_change - 1) / 2)
        return "underfit", (0.6 + 0.3 * margin) * penalty
    if train_state == "rising":
        reasons.append("the training loss creeps up at the end, within what counts as rising")
    rel = abs(train_trend.rel) if math.isfinite(train_trend.rel) else 0.0
    return "converged", (0.6 + 0.3 * max(0.0, (s.flat_change - rel) / s.flat_change)) * penalty


def _trend_state(trend: Trend | None, s: ClassifySettings, *, noisy: bool = True) -> str:
    """falling | rising | flat. A change must be larger than flat_change (relative) and, when
    the noise is known, larger than noise_z standard errors. Eval losses (noisy=False) are
    measured on a fixed set, so with 3 points or fewer the size alone decides."""
    if trend is None or not math.isfinite(trend.rel):
        return "flat"
    if abs(trend.rel) < s.flat_change:
        return "flat"
    if math.isfinite(trend.z) and abs(trend.z) < s.noise_z and (noisy or trend.points > 3):
        return "flat"
    return "falling" if trend.change < 0 else "rising"


def _trend_sentence(name: str, trend: Trend, state: str, s: ClassifySettings) -> str:
    share = f"over the last {s.tail_fraction:.0%} of the run (steps {trend.first_step}-{trend.last_step})"
    details = [f"{trend.rel:+.1%}" if math.isfinite(trend.rel) else "no level"]
    if math.isinf(trend.z):
        details.append("no noise at all")
    elif math.isfinite(trend.z):
        details.append(f"{abs(trend.z):.1f} standard errors")
    if trend.within_epochs:
        details.append("fitted within epochs")
    word = {"falling": "still falling", "rising": "rising", "flat": "flat"}[state]
    text = f"{share} {name} is {word}: {_num(trend.start)} -> {_num(trend.end)} ({', '.join(details)})"
    if state == "flat":
        if math.isfinite(trend.rel) and abs(trend.rel) >= s.flat_change:
            text += f"; within its noise (a trend needs {s.noise_z:g} standard errors)"
        else:
            text += f"; under the {s.flat_change:.0%} that counts as a trend"
    return text


def _eval_improved(evals: Series | None, s: ClassifySettings, first_train: float) -> bool | None:
    """Did eval loss end clearly below its first value, and not above where the training loss
    started? (An eval first measured after a divergence can fall while the model stays worse
    than it began.) None when it can't tell (< 2 points)."""
    if evals is None or len(evals) < 2:
        return None
    first, last = float(evals.values[0]), float(np.min(evals.values[-2:]))
    return last < first * (1 - s.min_improvement) and last <= first_train * (1 + s.rise_tolerance)


def _first_nonfinite(series: Series | None) -> int | None:
    if series is None or not len(series):
        return None
    bad = ~np.isfinite(series.values)
    return int(series.steps[np.argmax(bad)]) if bad.any() else None


def _figures(curves: Curves) -> dict[str, Any]:
    train, evals = curves.train_loss, curves.eval_loss
    figures: dict[str, Any] = dict.fromkeys(FIGURES)
    figures["best_checkpoint"] = curves.best_checkpoint
    figures["max_steps"] = curves.max_steps
    last_steps = [int(x.steps[-1]) for x in (train, evals) if x is not None and len(x)]
    figures["steps"] = max(last_steps) if last_steps else None
    if train is not None and len(train):
        v = train.values
        finite = v[np.isfinite(v)]
        figures.update(
            first_train_loss=float(v[0]),
            min_train_loss=float(finite.min()) if len(finite) else math.nan,
            final_train_loss=float(v[-1]),
            train_points=len(v),
        )
    if evals is not None and len(evals):
        v = evals.values
        finite = np.isfinite(v)
        figures.update(first_eval_loss=float(v[0]), final_eval_loss=float(v[-1]), eval_points=len(v))
        if finite.any():
            i = int(np.flatnonzero(finite)[np.argmin(v[finite])])
            figures.update(best_eval_loss=float(v[i]), best_eval_step=int(evals.steps[i]))
        if train is not None and len(train):
            # the training loss level around the last eval: the median of the points near it
            near = train.values[train.steps <= evals.steps[-1]][-5:]
            near = near[np.isfinite(near)]
            if len(near):
                figures["train_eval_gap"] = float(v[-1] - np.median(near))
    # float32 logs: 6 significant digits say all there is (1.2, not 1.2000000476837158)
    return {
        k: float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v for k, v in figures.items()
    }


# ---------------------------------------------------------------------------------------------
# the next step


def next_step(
    verdict: str, facts: _Facts, curves: Curves, params: dict[str, Any], s: ClassifySettings
) -> NextStep:
    """The tutorial's adjustment for a verdict, computed from this run's own values."""
    lr = _number(params.get("lr"))
    epochs = _number(params.get("epochs"))
    if verdict == "failed":
        if facts.cause in ("exit", "no_steps"):
            return NextStep(
                "Read the end of swift.log (run.json's `error` holds its tail): the run stopped before its "
                "curves could say anything; fix the cause and run it again.",
                None,
            )
        if facts.cause == "flat" and lr is not None and lr < s.high_lr:
            # a loss that neither fell nor jumped: the steps were too small to learn anything
            new = lr * 10
            return NextStep(
                f"Raise the learning rate 10x ({_fmt(lr)} -> {_fmt(new)}): "
                f"at {_fmt(lr)} the loss barely moved.",
                f"lr={_fmt(new)}",
            )
        why = {
            "nan": "the loss went NaN",
            "explode": "the loss exploded",
            "rising": "the loss rose instead of falling",
            "unstable": "the loss jumped before it fell",
            "flat": "the loss did not fall",
        }.get(facts.cause, "the run failed")
        if lr is None:
            return NextStep(f"Lower the learning rate {s.lr_divisor:g}x: {why}.", None)
        new = lr / s.lr_divisor
        return NextStep(
            f"Lower the learning rate {s.lr_divisor:g}x ({_fmt(lr)} -> {_fmt(new)}): {why}.",
            f"lr={_fmt(new)}",
        )
    if verdict == "underfit":
        if facts.partial:
            return NextStep(
                f"Let it finish: the loss is still falling at step {facts.last_step} of {curves.max_steps}.",
                None,
            )
        if epochs is None:
            return NextStep(f"Train about {s.epochs_factor:g}x more epochs: the loss is still falling.", None)
        new_epochs = _int_if_whole(epochs * s.epochs_factor)
        return NextStep(
            f"Train {_fmt(new_epochs)} epochs instead of {_fmt(epochs)}: "
            "the loss was still falling at the end.",
            f"epochs={_fmt(new_epochs)}",
        )
    if verdict == "overfit":
        total = curves.max_steps or facts.last_step
        if epochs and facts.best_step and total:
            best_epochs = facts.best_step / total * epochs
        else:
            best_epochs = epoch_at(curves, facts.best_step) if facts.best_step else None
        ckpt = (
            f" This run's best checkpoint ({curves.best_checkpoint}) already holds the lowest-eval weights."
        )
        ckpt = ckpt if curves.best_checkpoint else ""
        more = "More data, or a larger lora_rank together with more data, also lets it train longer."
        if best_epochs is None or (epochs is not None and epochs <= 1):
            return NextStep(
                f"Stop earlier or add data: eval loss was lowest at step {facts.best_step}. {more}{ckpt}",
                None,
            )
        new_epochs = max(1, int(best_epochs + 0.5))
        if epochs is not None and new_epochs >= epochs:
            new_epochs = max(1, math.ceil(epochs) - 1)
        return NextStep(
            f"Train {new_epochs} epoch{'s' if new_epochs > 1 else ''}"
            + (f" instead of {_fmt(epochs)}" if epochs is not None else "")
            + f": eval loss was lowest at step {facts.best_step} (about epoch {best_epochs:.1f}). "
            + f"{more}{ckpt}",
            f"epochs={new_epochs}",
        )
    # converged
    which = "best" if curves.best_checkpoint else "last"
    where = curves.best_checkpoint or curves.last_checkpoint
    run = f" {_override('run', str(curves.run_dir))}" if curves.run_dir is not None else ""
    return NextStep(
        f"Use it: run infer and export on the {which} checkpoint" + (f" ({where})" if where else "") + ".",
        f"stages=[infer,export]{run} ckpt={which}",
    )


# ---------------------------------------------------------------------------------------------
# formatting


def _num(x: float) -> str:
    """A loss for a sentence: 3 significant digits, trailing zeros kept (2.31, 1.20, 10.2)."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1000:
        return f"{x:.0f}"
    text = f"{x:#.3g}"
    return text.rstrip(".") if "e" not in text else f"{x:.2e}"


def _fmt(x: float) -> str:
    """A number for an override, short and read back by Hydra as the same float or int
    (5e-05 -> 5e-5, 0.001 -> 1e-3, 9.0 -> 9)."""
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    text = f"{x:.4g}"
    if "e" not in text and 0 < abs(x) < 1e-2:
        text = f"{x:.3e}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _int_if_whole(x: float) -> float | int:
    return round(x) if abs(x - round(x)) < 1e-9 else x


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.-+:@%~")


def _override(key: str, value: str) -> str:
    """key=value as one shell word that Hydra reads back as the same string: plain when the
    value holds only path characters, else quoted for Hydra and then for the shell."""
    if value and set(value) <= _PLAIN:
        return f"{key}={value}"
    hydra_quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return shlex.quote(f"{key}={hydra_quoted}")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)
