"""The verdict rules: one ordered table, the tutorial's four definitions written as small pure
functions. Each reads the run's Evidence and returns a Finding or None; the first Finding decides.

    rule               verdict    holds when
    crashed            failed     swift exited non-zero
    nothing_logged     failed     no loss was logged
    not_finite         failed     a loss (training or eval) is NaN or Inf
    stuck_at_zero      failed     the training loss is exactly 0.0 at zero_share of its points
    ended_above_start  failed     the training loss ended above its start, beyond its noise, and the eval
                                  loss did not fall
    too_short          underfit   a single point: nothing to judge yet, train longer
    never_learned      failed     neither loss ever went below its start beyond its noise
    overfit            overfit    the eval loss rose after its minimum, beyond its noise, while training fell
    still_falling      underfit   the deciding loss still falls at the end, at a fair share of its pace
    levelled_off       converged  otherwise: it learned and has levelled off

The deciding loss is the eval loss when it has enough points to measure its noise, else the training
loss. A jump above the start that came back, a non-finite grad_norm with a finite loss and a short-lived
spike are observations (warnings), never verdicts: a run is judged by where it ended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from swiftops.curves import GRAD_NORM, Curves, Series
from swiftops.diagnosis.evidence import MIN_EVAL_POINTS, Evidence, Finding
from swiftops.diagnosis.settings import ClassifySettings
from swiftops.diagnosis.signal import (
    MEASURED_POINTS,
    Signal,
    end_trend,
    learned,
    level,
    rose,
    running_median3,
)

CHANCE_CLASSES = range(2, 11)  # ln k for a classifier head of k classes: 2..10 are far enough apart
Rule = Callable[[Evidence], "Finding | None"]


# ---------------------------------------------------------------------------------------------
# failed: the run broke, or never learned


def crashed(ev: Evidence) -> Finding | None:
    """swift exited non-zero: whatever the curves show, the run did not finish."""
    if ev.exit_code in (None, 0):
        return None
    reasons = [f"swift exited with code {ev.exit_code}"]
    train = ev.curves.train_loss
    if train is not None and len(train):
        reasons.append(
            f"until then training loss went from {_num(train.values[0])} at step {int(train.steps[0])} to "
            f"{_num(train.values[-1])} at step {int(train.steps[-1])}"
        )
    else:
        reasons.append("no training step was logged")
    return Finding("failed", "crashed", 1.0, tuple(reasons), _test("crashed", ev.exit_code, 0))


def nothing_logged(ev: Evidence) -> Finding | None:
    """No training loss and no eval loss: nothing ran far enough to log."""
    if any(s is not None and len(s) for s in (ev.curves.train_loss, ev.curves.eval_loss)):
        return None
    return Finding("failed", "nothing_logged", 0.95, ("no training step was logged",))


def not_finite(ev: Evidence) -> Finding | None:
    """NaN or Inf in a loss: the weights went with it, nothing after it counts."""
    bad = {name: _first_nonfinite(series) for name, series in _losses(ev.curves)}
    bad = {name: step for name, step in bad.items() if step is not None}
    if not bad:
        return None
    where = ", ".join(f"{name} at step {step}" for name, step in bad.items())
    return Finding(
        "failed",
        "not_finite",
        0.97,
        (f"NaN/Inf in {where}: the training diverged",),
        _test("not_finite", 1, 0),
        divergence_step=min(bad.values()),
    )


def stuck_at_zero(ev: Evidence) -> Finding | None:
    """A training loss of exactly 0.0 at most points: no token was trained on, or the model collapsed."""
    train = ev.curves.train_loss
    if train is None or not len(train):
        return None
    zeros = train.values == 0.0
    share = float(zeros.mean())
    if share < ev.settings.zero_share:
        return None
    first = int(train.steps[np.argmax(zeros)])
    return Finding(
        "failed",
        "stuck_at_zero",
        0.95,
        (
            f"training loss is exactly 0.0 at {int(zeros.sum())} of its {len(train)} points (from step "
            f"{first}): a degenerate state (labels masked out, or a collapsed model), not learning",
        ),
        _test("zero_share", share, ev.settings.zero_share),
        divergence_step=first,
    )


def ended_above_start(ev: Evidence) -> Finding | None:
    """The training loss ended above where it started, beyond its noise (or, too short to measure
    its noise, by more than unmeasured_rise): a healthy run never does, unless its eval loss fell."""
    sig, at, s = ev.train, ev.train_level, ev.settings
    if sig is None or not sig.log or not rose(sig, s) or ev.eval_fell:
        return None
    rel = at.rel(sig)
    if sig.measured:
        size, limit = f"{at.z:.1f} noise units above its start, the limit is {s.noise_z:g}", s.noise_z
        value = at.z
    else:
        size = f"too few points to measure its noise; a rise counts past +{s.unmeasured_rise:.0%}"
        value, limit = rel, s.unmeasured_rise
    first = float(sig.values[0])
    above = np.flatnonzero(running_median3(sig.y) > sig.y[0] + s.noise_z * sig.noise)
    return Finding(
        "failed",
        "ended_above_start",
        0.6 + 0.35 * _margin(value, limit),
        (
            f"training loss rose: {_num(first)} at step {int(sig.steps[0])}, {_num(sig.level(at.late))} over "
            f"the last {_points(at.late_points)} ({rel:+.0%}; {size}): a healthy run never ends above "
            "where it started",
        ),
        _test("ended_above_start", value, limit),
        divergence_step=int(sig.steps[above[0]]) if len(above) else int(sig.steps[-1]),
    )


def too_short(ev: Evidence) -> Finding | None:
    """One point of each loss at most: no curve to judge, so no verdict beyond "train longer"."""
    if ev.train is not None or ev.eval is not None:
        return None
    train = ev.curves.train_loss
    return Finding(
        "underfit",
        "too_short",
        0.3,
        (
            f"a single training loss was logged ({_num(train.values[0])} at step {int(train.steps[0])}): "
            "too short to judge, train longer",
        ),
    )


def never_learned(ev: Evidence) -> Finding | None:
    """Neither loss went below its start beyond its noise: the run did not learn (signal.learned)."""
    s = ev.settings
    signals = [sig for sig in (ev.train, ev.eval) if sig is not None]
    if any(learned(sig, s) for sig in signals):
        return None
    reasons = []
    for sig in signals:
        at = level(sig)
        reasons.append(
            f"{sig.name} never fell beyond its noise: {_num(sig.values[0])} at step {int(sig.steps[0])}, "
            f"{_num(sig.level(at.late))} over its last {_points(at.late_points)} ({at.rel(sig):+.1%}; "
            f"{-at.z:.1f} standard errors below its start, and its lowest {max(at.depth_z, 0):.1f} noise "
            f"units deeper than chance; learning shows as more than {s.noise_z:g})"
        )
    main = signals[0]
    at = level(main)
    test = _test("never_learned", -at.z, s.noise_z)
    classes = chance_classes(main.level(at.late), s) if main.log else None
    if classes is not None:
        reasons.append(
            f"it sits at {_num(main.level(at.late))}, within {s.chance_band:.0%} of ln {classes} = "
            f"{math.log(classes):.3f}: the loss of a uniform guess among {classes} classes"
        )
        test["classes"] = classes
    return Finding(
        "failed",
        "never_learned",
        (0.55 + 0.4 * _margin(s.noise_z, max(-at.z, 0.1))) * min(1.0, 0.5 + len(main) / 20),
        tuple(reasons),
        test,
    )


def chance_classes(loss: float, s: ClassifySettings) -> int | None:
    """k when a loss sits within chance_band of ln k (k in CHANCE_CLASSES), the loss of a uniform
    guess among k classes. Only ever read for a run that never learned: an LLM's loss sits near some
    ln k as often as not, so this names a suspect (the labels), never a verdict."""
    for k in CHANCE_CLASSES:
        if abs(loss / math.log(k) - 1) <= s.chance_band:
            return k
    return None


# ---------------------------------------------------------------------------------------------
# it learned: overfit, underfit or converged


@dataclass(frozen=True)
class EvalRise:
    """How far the eval loss rose after its minimum: in log units, in standard errors of its noise,
    and against the rise that counts as overfitting."""

    best_step: int
    after: int  # eval points after the minimum
    lowest: float  # the minimum, as a loss
    end: float  # the median of the last (up to) 3 points, as a loss
    rise: float  # end - minimum, in y
    rise_z: float
    share: float  # the rise as a share of the fall from the first point to the minimum
    needed: float  # the rise that counts, in y

    @property
    def rel(self) -> float:
        return self.end / self.lowest - 1 if self.lowest else math.nan


def eval_rise(sig: Signal, s: ClassifySettings) -> EvalRise | None:
    """The eval loss's rise after its minimum; None when the minimum is its last point."""
    i_min = int(np.argmin(sig.y))
    after = len(sig) - 1 - i_min
    if after < 1:
        return None
    k = min(3, after)
    end = float(np.median(sig.y[-k:]))
    rise, fall = end - sig.y[i_min], sig.y[0] - sig.y[i_min]
    # the rise that counts: overfit_share of the fall, or overfit_rise of the level, whichever is smaller
    needed = min(
        s.overfit_share * fall,
        math.log1p(s.overfit_rise) if sig.log else s.overfit_rise * abs(sig.values[i_min]),
    )
    return EvalRise(
        best_step=int(sig.steps[i_min]),
        after=after,
        lowest=float(sig.values[i_min]),
        end=sig.level(end),
        rise=rise,
        rise_z=rise / (sig.noise * math.sqrt(1 + 1 / k)),
        share=rise / fall if fall > 0 else math.inf,
        needed=needed,
    )


def overfit(ev: Evidence) -> Finding | None:
    """The eval loss rose after its minimum, beyond its noise, by at least overfit_share of its fall
    before the minimum or overfit_rise of its level (whichever is smaller), while training fell."""
    sig, s = ev.eval, ev.settings
    if sig is None or len(sig) < MIN_EVAL_POINTS:
        return None
    up = eval_rise(sig, s)
    if up is None or up.rise_z <= s.noise_z or up.rise < up.needed:
        return None
    lowest = _num(up.lowest)
    text = (
        f"eval loss fell from {_num(sig.values[0])} to {lowest} at step {up.best_step}, then rose "
        if up.best_step != int(sig.steps[0])
        else f"eval loss was lowest at its first point ({lowest}, step {up.best_step}) and rose "
    )
    text += (
        f"to {_num(up.end)} by step {int(sig.steps[-1])} ({up.rel:+.0%}; {up.rise_z:.1f} standard errors "
        "of its noise" + (f"; {up.share:.0%} of its earlier fall" if math.isfinite(up.share) else "") + ")"
    )
    margin = min(_margin(up.rise_z, s.noise_z), _margin(up.rise, up.needed))
    confidence = (0.55 + 0.4 * margin) * (1.0 if up.after >= 2 else 0.8) * ev.weight
    return Finding(
        "overfit",
        "overfit",
        confidence,
        (*learning_context(ev), text, "while the training loss fell: the model memorises the training set"),
        _test("overfit", up.rise / up.needed if up.needed > 0 else math.inf, 1.0, z=up.rise_z),
        best_step=up.best_step,
    )


def still_falling(ev: Evidence) -> Finding | None:
    """The deciding loss still falls at the end, beyond its noise, at settle_ratio or more of its
    pace before, and its last point is not already back above its lowest: more training will help."""
    sig, s = ev.deciding, ev.settings
    trend = end_trend(sig, s)
    if trend is None:
        return Finding(
            "underfit",
            "still_falling",
            0.4 * ev.weight,
            (
                *learning_context(ev),
                f"{sig.name} has too few points for a trend at the end: train longer to see one",
            ),
        )
    # falling beyond its noise over the end, or (an end too short to resolve a slow fall) going on at
    # its own earlier pace: a curve levels off only where its end is slower than what came before
    falling = trend.z < -s.noise_z or (trend.z < 0 and math.isfinite(trend.ratio) and trend.ratio >= 1)
    settling = math.isfinite(trend.ratio) and trend.ratio < s.settle_ratio
    # a curve whose last point already sits above its lowest, beyond its noise, has turned: whatever
    # a line through its end says, it is no longer falling
    turned = (sig.y[-1] - float(np.min(sig.y))) / (sig.noise * math.sqrt(2)) > s.noise_z
    if not falling or settling or turned:
        return None
    reasons = [*learning_context(ev), f"{_end_words(sig, trend, s)}: still falling, more training will help"]
    if ev.lr_decayed:
        reasons.append("the learning rate had decayed to under a tenth of its peak by the end")
    confidence = 0.55 + 0.4 * min(_margin(-trend.z, s.noise_z), _margin(trend.ratio, s.settle_ratio))
    return Finding(
        "underfit",
        "still_falling",
        confidence * ev.weight,
        tuple(reasons),
        _test("settle_ratio", trend.ratio, s.settle_ratio, z=trend.z),
    )


def levelled_off(ev: Evidence) -> Finding:
    """It learned and its end no longer falls at a fair share of its earlier pace: converged."""
    sig, s = ev.deciding, ev.settings
    trend = end_trend(sig, s)
    falling = trend.z < -s.noise_z
    words = _end_words(sig, trend, s)
    if falling and not (math.isfinite(trend.ratio) and trend.ratio < s.settle_ratio):
        text = (
            f"{words}, but its last point ({_num(sig.values[-1])}) is already above its lowest "
            f"({_num(float(np.min(sig.values)))}): it has stopped falling"
        )
        confidence = 0.55
    elif falling:
        text = f"{words}: still falling, but levelling off (under {s.settle_ratio:.0%} of its earlier rate)"
        confidence = 0.55 + 0.4 * _margin(s.settle_ratio, max(trend.ratio, 1e-3))
    elif trend.z > s.noise_z:
        text = f"{words}: rising a little, short of what counts as overfitting"
        confidence = 0.55
    else:
        text = f"{words}: flat, within its noise"
        confidence = 0.55 + 0.4 * _margin(s.noise_z, max(abs(trend.z), 0.05))
    reasons = [*learning_context(ev), text]
    up = eval_rise(ev.eval, s) if ev.eval is not None and len(ev.eval) >= MIN_EVAL_POINTS else None
    if up is not None and up.rise_z > s.noise_z:
        reasons.append(
            f"eval loss is {up.rel:+.1%} above its lowest ({_num(up.lowest)} at step {up.best_step}), "
            + (f"{up.share:.0%} of its earlier fall: " if math.isfinite(up.share) else "")
            + f"under the {s.overfit_share:.0%} of it (or +{s.overfit_rise:.0%}) that counts as overfitting"
        )
    if ev.eval is not None and len(ev.eval) >= MIN_EVAL_POINTS:
        reasons.append("more epochs would mostly fit the training set further, not the eval set")
    return Finding(
        "converged",
        "levelled_off",
        confidence * ev.weight,
        tuple(reasons),
        _test("settle_ratio", trend.ratio, s.settle_ratio, z=trend.z),
    )


def learning_context(ev: Evidence) -> list[str]:
    """What a learning verdict stands on: the training curve in a line, and which loss decides."""
    train, sig = ev.curves.train_loss, ev.deciding
    out = []
    if train is not None and len(train):
        binned = ev.train_trend
        out.append(
            f"training loss went from {_num(train.values[0])} at step {int(train.steps[0])} to "
            f"{_num(train.values[-1])} at step {int(train.steps[-1])}"
            + (f" ({len(binned)} medians of {len(train)} points)" if len(binned) < len(train) else "")
        )
        if len(train) < MEASURED_POINTS:
            out.append(f"only {len(train)} training points were logged: its noise can't be measured")
    evals = ev.curves.eval_loss
    n_eval = 0 if evals is None else int(np.isfinite(evals.values).sum())
    if sig is not ev.eval:
        seen = {0: "no eval loss was logged", 1: "eval loss was logged only once"}
        seen[2] = "eval loss was logged only twice"
        why = ", which can't show overfitting (give --val_dataset or --split_dataset_ratio)"
        out.append(
            seen.get(n_eval, f"only {n_eval} eval points were logged, too few to measure their noise")
            + ": the end is judged on the training loss"
            + ("" if n_eval else why)
        )
    return out


RULES: tuple[Rule, ...] = (
    crashed,
    nothing_logged,
    not_finite,
    stuck_at_zero,
    ended_above_start,
    too_short,
    never_learned,
    overfit,
    still_falling,
    levelled_off,
)
# what the live watchdog runs on a partial curve: the failures no later point can undo (a rise and a
# zero loss only once sustained; see verdict.watchdog_verdict)
WATCHDOG_RULES: tuple[Rule, ...] = (not_finite, stuck_at_zero, ended_above_start)


def first_finding(ev: Evidence, rules: tuple[Rule, ...] = RULES) -> Finding | None:
    """The first rule of the table that finds something decides."""
    for rule in rules:
        found = rule(ev)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# observations: what a reader should know that decides no verdict


def observations(ev: Evidence) -> tuple[list[str], bool]:
    """Sentences about what happened on the way (a jump that came back, a non-finite grad_norm), and
    whether the steps overshot: a warning with a lower-lr alternative, not a verdict."""
    notes, overshoot = [], False
    sig, s = ev.train, ev.settings
    if sig is not None and sig.log and sig.measured:
        smooth = running_median3(sig.y)
        top = int(np.argmax(smooth))
        over = (smooth[top] - sig.y[0]) / sig.noise
        if over > s.overshoot_z and not rose(sig, s):
            overshoot = True
            notes.append(
                f"training loss jumped {sig.relative(sig.y[0], smooth[top]):+.0%} above its start "
                f"({_num(sig.values[0])} at step {int(sig.steps[0])} -> {_num(sig.level(smooth[top]))} at "
                f"step {int(sig.steps[top])}; {over:.1f} noise units, 3-point median) before it came back "
                f"to {_num(sig.level(ev.train_level.late))}: the steps overshoot; a lower learning rate "
                "may learn more smoothly"
            )
    grad = ev.curves.scalars.get(GRAD_NORM)
    if grad is not None and len(grad):
        bad = ~np.isfinite(grad.values)
        if bad.any():
            notes.append(
                f"grad_norm was NaN/Inf at {int(bad.sum())} of its {len(grad)} points (first at step "
                f"{int(grad.steps[np.argmax(bad)])}) while the loss stayed finite: optimizer steps skipped "
                "(an fp16 overflow), no divergence"
            )
    return notes, overshoot


# ---------------------------------------------------------------------------------------------
# helpers


def _losses(curves: Curves) -> list[tuple[str, Series | None]]:
    return [("training loss", curves.train_loss), ("eval loss", curves.eval_loss)]


def _first_nonfinite(series: Series | None) -> int | None:
    if series is None or not len(series):
        return None
    bad = ~np.isfinite(series.values)
    return int(series.steps[np.argmax(bad)]) if bad.any() else None


def _end_words(sig: Signal, trend: Any, s: ClassifySettings) -> str:
    where = f"over the last {s.tail_fraction:.0%} of the run (steps {trend.first_step}-{trend.last_step})"
    words = f"{where} {sig.name} {_num(trend.start)} -> {_num(trend.end)} ({trend.rel:+.1%}, "
    words += f"{abs(trend.z):.1f} standard errors"
    if math.isfinite(trend.ratio) and trend.before_steps:
        words += f"; {trend.ratio:.0%} of its rate over steps {trend.before_steps[0]}-{trend.before_steps[1]}"
    elif trend.ratio == math.inf:
        words += "; it was not falling before"
    return words + ")"


def _points(n: int) -> str:
    return "point" if n == 1 else f"{n} points"


def _test(rule: str, value: float, limit: float, **more: float) -> dict[str, Any]:
    """The test a verdict rests on, for the record: its rule, measured value and limit."""
    return {
        "rule": rule,
        "value": round(float(value), 4),
        "limit": limit,
        **{k: round(float(v), 4) for k, v in more.items()},
    }


def _margin(value: float, threshold: float) -> float:
    """How far past a threshold a value is, 0 (on it) .. 1 (twice as far, or more)."""
    if not math.isfinite(value) or threshold <= 0:
        return 1.0 if value == math.inf else 0.0
    return float(min(1.0, max(0.0, value / threshold - 1)))


def _num(x: float) -> str:
    """A loss for a sentence: 3 significant digits, trailing zeros kept (2.31, 1.20, 10.2)."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1000:
        return f"{x:.0f}"
    text = f"{x:#.3g}"
    return text.rstrip(".") if "e" not in text else f"{x:.2e}"
