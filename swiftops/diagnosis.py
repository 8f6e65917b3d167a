"""Curves -> verdict (failed / underfit / overfit / converged), the numbers behind it, a
calibrated confidence, and the next experiment to run (pure; numpy only).

The tutorial's rules, made scale-free and noise-aware (thresholds in ClassifySettings,
mirrored by conf/classify/default.yaml). Every curve is judged on log(loss), so the same run
with its loss scaled 100x reads the same; its noise is measured from its own second
differences; trends are Theil-Sen lines, each compared with the noise AND with the curve's own
earlier change:

- failed needs positive evidence that the run broke: a non-zero exit, no step logged, NaN/Inf,
  a loss of exactly 0.0, or a training loss that exploded (3x), ended above its start, or
  jumped above its start beyond its noise before it came back.
- underfit: the training loss never moved beyond its noise (the run barely learned: raise the
  lr), or the signal (the eval loss with 3 points or more, else the training loss) is still
  falling at the end at a fair share of the run's average pace before it.
- overfit: the eval loss rose after its minimum, beyond its noise, by half of what it had
  fallen to get there, or by 10% of its level, whichever is smaller.
- converged: otherwise; the end has levelled off, or rises only a little.

The confidence says how far the evidence sits past its decision boundary, times how much
evidence there is (points, an eval curve, a finished run).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swiftops.curves import EPOCH, GRAD_NORM, LEARNING_RATE, TRAIN_LOSS, Curves, Series, curves_until
from swiftops.record import INTERRUPTED, RUNNING, RunRecord, json_safe

_MAX_BINS = 64  # a long training curve is judged on this many medians of consecutive points

VERDICTS = ("failed", "underfit", "overfit", "converged")


@dataclass
class ClassifySettings:
    """Thresholds of the diagnosis; conf/classify/default.yaml holds the same keys. Trends are
    measured on log(loss), against the curve's own noise and its own earlier change, so none of
    these is a share of the loss level (the same run scaled 100x gets the same verdict)."""

    noise_z: float = 2.0  # a change counts only beyond this many standard errors of the curve's own noise
    tail_fraction: float = 0.3  # "the end": this share of the run's steps, counted back from the last point
    min_tail_points: int = 2  # ... but at least this many points (a slope needs 2; borrowing more from
    #   before the end would judge the middle of a sparsely evaluated run)
    settle_ratio: float = 0.2  # still falling = the end falls at least at this share of the run's average
    #   pace before the end; slower means the curve is levelling off (converged)
    overfit_share: float = 0.5  # overfit = eval loss rose after its minimum, beyond its noise, by at least
    #   this share of what it had fallen from its first value to that minimum ...
    overfit_rise: float = 0.1  # ... or by this much of its minimum, whichever is smaller: giving back half
    #   of a small gain is overfitting, and so is a 10% rise after a large one
    unstable_z: float = 4.0  # training loss (3-point median) this many noise units above its first value
    #   = the steps overshoot (failed), even if it came back down; a healthy run never rises above its start
    explode_factor: float = 3.0  # training loss (3-point median) reaching this multiple of its first value
    #   = exploded (failed), whatever its noise
    zero_share: float = 0.5  # training loss exactly 0.0 at this share of its points = degenerate (failed)
    resolution: float = 1e-3  # the smallest relative change a log resolves (4-digit logs, float32): the
    #   floor of every noise estimate, so a perfectly smooth curve does not make every wiggle significant
    high_lr: float = 1e-2  # a run that barely moved below this lr is told to raise it
    lr_factor: float = 10.0  # ... raised this many times
    lr_divisor: float = 100.0  # failed: the next learning rate is this many times smaller
    epochs_factor: float = 3.0  # underfit: the next run trains this many times more epochs
    watchdog_min_points: int = 20  # the live watchdog stops a rising or zero loss only from this many
    #   training points on: the noise a rise is measured against is steady from about 20 points
    watchdog_sustain: float = 0.3  # ... and only when it already rose this share of the points earlier (or
    #   was exactly 0.0 at every one of them): a passing jump is no failure yet. A rise must also exceed
    #   watchdog_rise_z and not be falling back; NaN/Inf and an exploded loss stop a run at once
    watchdog_rise_z: float = 8.0  # a rise stops a run only this many noise units above its start: twice
    #   unstable_z, so that the whole run's noise (its estimate varies ~30% at 20 points) still finds it
    #   failed, even if it comes back down


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
    evidence: dict[str, Any] = field(default_factory=dict)  # the deciding test: rule, value, limit
    alternatives: list[NextStep] = field(default_factory=list)  # other steps that also fit, best first

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN and inf become None, numpy numbers plain numbers."""
        return json_safe(
            {
                "verdict": self.verdict,
                "confidence": self.confidence,
                "reasons": list(self.reasons),
                "figures": dict(self.figures),
                "next": {"text": self.next.text, "override": self.next.override},
                "warnings": list(self.warnings),
                "evidence": dict(self.evidence),
                "alternatives": [{"text": a.text, "override": a.override} for a in self.alternatives],
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
# the numbers: robust trend statistics on one loss curve


@dataclass(frozen=True)
class Signal:
    """One loss curve prepared for judging: finite points, on a log scale when every value is
    positive (trends of a loss are multiplicative: the same run scaled 100x reads the same),
    against training progress (cumulative learning rate when it was logged, else steps)."""

    name: str  # "eval loss" | "training loss"
    steps: np.ndarray  # int64, the logged steps of the points kept
    values: np.ndarray  # the losses as logged
    y: np.ndarray  # log(values), or values when some are <= 0
    x: np.ndarray  # training progress at each point (steps at the peak lr)
    noise: float  # per-point noise of y (floored at the resolution)
    log: bool
    measured: bool  # the noise was measured (5 points or more), not just the floor

    def __len__(self) -> int:
        return len(self.y)

    def level(self, y: float) -> float:
        """A value of y as a loss again."""
        return float(math.exp(y)) if self.log else float(y)


def prepare(name: str, series: Series, s: ClassifySettings) -> Signal | None:
    """The finite points of a series as a Signal; None with fewer than 2."""
    keep = np.isfinite(series.values)
    steps, values = series.steps[keep], series.values[keep]
    if len(values) < 2:
        return None
    log = bool(np.all(values > 0))
    y = np.log(values) if log else values.astype(np.float64)
    floor = s.resolution if log else s.resolution * max(float(np.median(np.abs(values))), 1e-12)
    noise = _curvature_noise(y)
    measured = math.isfinite(noise)
    noise = max(noise, floor) if measured else floor
    return Signal(name, steps, values, y, steps.astype(np.float64), noise, log, measured)


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


def _bin_medians(steps: np.ndarray, values: np.ndarray, bins: int) -> Series:
    """A long noisy curve as the medians of `bins` consecutive runs of points (its trend kept,
    its batch noise shrunk), so pairwise statistics stay cheap on 200k steps."""
    if len(steps) <= 2 * bins:
        return Series(steps, values)
    edges = np.linspace(0, len(steps), bins + 1).astype(np.int64)
    mid = [int(steps[(a + b - 1) // 2]) for a, b in itertools.pairwise(edges)]
    med = [float(np.median(values[a:b])) for a, b in itertools.pairwise(edges)]
    return Series(np.asarray(mid, dtype=np.int64), np.asarray(med))


def _mad_sigma(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if len(r) else math.nan


_FEW_POINTS = 8  # below this many points (5 second differences) their median is too unsure to centre on


def _curvature_noise(y: np.ndarray) -> float:
    """Per-point noise from second differences (y[i-1] - 2 y[i] + y[i+1], 6 sigma^2 for
    independent noise): a straight trend adds nothing to them and a bend or a spike only a
    few, which their median absolute deviation ignores. Unbiased for 20 points or more. On
    fewer than 8 points the deviation from their own median (of 3 to 5 values) can come out
    near zero by chance, so their spread around zero, which counts any bend as noise, is taken
    when it is larger: a short curve's changes are judged against the larger noise."""
    if len(y) < 5:
        return math.nan
    d2 = np.diff(y, 2)
    sigma = _mad_sigma(d2)
    if len(y) < _FEW_POINTS:
        sigma = max(sigma, float(1.4826 * np.median(np.abs(d2))))
    return sigma / math.sqrt(6)


def _running_median3(y: np.ndarray) -> np.ndarray:
    if len(y) < 3:
        return y
    stacked = np.vstack([y[:-2], y[1:-1], y[2:]])
    return np.concatenate([y[:1], np.median(stacked, axis=0), y[-1:]])


def epoch_at(curves: Curves, step: float) -> float | None:
    """Epochs done at a step, from the train/epoch curve."""
    epoch = curves.scalars.get(EPOCH)
    if epoch is None or not len(epoch) or not np.all(np.isfinite(epoch.values)):
        return None
    return float(np.interp(step, epoch.steps.astype(np.float64), epoch.values))


def _evidence_of(rule: str, value: float, limit: float, **more: float) -> dict[str, Any]:
    """The test a verdict rests on, for the record: its rule, measured value and limit."""
    return {
        "rule": rule,
        "value": round(float(value), 4),
        "limit": limit,
        **{k: round(float(v), 4) for k, v in more.items()},
    }


def _evidence(points: int) -> float:
    """How much a verdict can rest on a curve of this many points: 0.65 at 3, full from 10."""
    return min(1.0, 0.5 + points / 20)


def _margin(value: float, threshold: float) -> float:
    """How far past a threshold a value is, 0 (on it) .. 1 (twice as far, or more)."""
    if not math.isfinite(value) or threshold <= 0:
        return 1.0 if value == math.inf else 0.0
    return float(min(1.0, max(0.0, value / threshold - 1)))


# ---------------------------------------------------------------------------------------------
# the verdict


@dataclass
class _Facts:
    """What diagnose() found, handed to the next-step rules."""

    cause: str = ""  # failed: exit | no_steps | nan | zero | explode | rising | unstable
    moved: bool = True  # False: neither curve moved beyond its noise (underfit: raise the lr)
    best_step: int | None = None
    last_step: int | None = None
    partial: bool = False  # the process did not finish (or, not knowing, logged fewer steps than planned)
    interrupted: bool = False  # stopped from outside (Ctrl-C, SIGTERM, SIGHUP): resume it
    resume_from: str | None = None  # its last checkpoint, to resume from
    lr_decayed: bool = False  # the lr ended under a tenth of its peak
    evidence: dict[str, Any] = field(default_factory=dict)  # the deciding test: rule, value, limit


def diagnose(
    curves: Curves,
    settings: ClassifySettings | None = None,
    *,
    exit_code: int | None = None,
    params: dict[str, Any] | None = None,
    early_stopped: bool = False,
    interrupted: bool = False,
) -> Diagnosis:
    """Classify one run from its curves.

    Args:
        curves: what curves.read_curves returned (a partial curve of a running job works too).
        settings: thresholds; the defaults are conf/classify/default.yaml's.
        exit_code: swift's exit status, when known: non-zero is a failed run whatever the curves. A
            known exit code means the process ended: its curve is complete, even if shorter than planned.
        params: the run's knobs (lr, epochs, lora_rank, ...) the next step is computed from.
        early_stopped: ms-swift's early stop was on and the run ended on its own: a curve that ends
            before its planned steps is then complete, not cut short.
        interrupted: the run was stopped from outside (Ctrl-C, SIGTERM, SIGHUP): it is judged on what
            it logged, as partial, and told to resume; its exit code says nothing about the run.
    """
    s = settings or ClassifySettings()
    params = dict(params or {})
    figures, reasons, facts, eval_sig = _start(curves, s)
    short = facts.partial  # fewer steps logged than planned
    finished = (exit_code is not None or early_stopped) and not interrupted
    # partial = the process did not finish; only when that is unknown do the step counts decide
    facts.partial = interrupted or (short and not finished)
    facts.interrupted = interrupted
    facts.resume_from = curves.last_checkpoint
    verdict, confidence = _failure(
        curves, eval_sig, None if interrupted else exit_code, s, figures, reasons, facts
    )
    if verdict is None:
        verdict, confidence = _learning(curves, eval_sig, s, reasons, facts)
    if early_stopped and short and finished and verdict != "failed":
        reasons.append(
            f"ms-swift's early stop ended the run at step {facts.last_step} of {curves.max_steps}, once the "
            "eval loss had stopped reaching new lows: the curve is complete"
        )
    if interrupted:
        reasons.append(
            f"the run was interrupted at step {facts.last_step or 0} of {curves.max_steps or '?'}: judged on "
            "what it logged, so the verdict may change once it is resumed"
        )
        confidence *= 0.85
    elif facts.partial and verdict != "failed":
        reasons.append(
            f"the curve is partial: step {facts.last_step} of {curves.max_steps}, so the verdict may change"
        )
        confidence *= 0.85
    return Diagnosis(
        verdict=verdict,
        confidence=round(float(min(max(confidence, 0.05), 1.0)), 2),
        reasons=reasons,
        figures=figures,
        next=next_step(verdict, facts, curves, params, s),
        alternatives=alternative_steps(verdict, facts, params, s),
        warnings=list(curves.warnings),
        evidence=facts.evidence,
    )


def diagnose_recorded(
    curves: Curves,
    record: RunRecord | None,
    settings: ClassifySettings | None = None,
    *,
    run_dir: Path | None = None,
) -> Diagnosis:
    """diagnose() with what a job's run.json knows of the process: its exit code, whether it was
    interrupted, its params, and whether ms-swift's early stop ended it. The exit code belongs to
    the run the job launched (run_dir, when given, must be that one, not an older vN beside it); a
    run the watchdog stopped exited from the stop, and its curves say why."""
    from swiftops.command import early_stop_in

    if record is None:
        return diagnose(curves, settings)
    own_run = run_dir is None or record.run_dir in (None, str(run_dir))
    ended = own_run and not record.stopped_by and record.status != RUNNING
    interrupted = ended and record.status == INTERRUPTED
    exit_code = record.exit_code if ended and not interrupted else None
    return diagnose(
        curves,
        settings,
        exit_code=exit_code,
        params=record.params,
        early_stopped=early_stop_in(record.argv) and exit_code == 0,
        interrupted=interrupted,
    )


def watchdog_verdict(
    curves: Curves, settings: ClassifySettings | None = None, *, params: dict[str, Any] | None = None
) -> Diagnosis | None:
    """The failed verdict of a run still training, once the run is decided; None while it may still learn.

    diagnose()'s own failure rules, run on the partial curve (as swift logs it), act only when the
    run is decided:

    - NaN/Inf in a loss: at once (a NaN never leaves the curve, and the weights are NaN with it);
    - an exploded loss, or NaN/Inf in grad_norm alone: when the rule held one logged point earlier
      too, so a spike at the newest point (which the 3-point median can't filter yet) or a lone fp16
      overflow never decides;
    - a loss at exactly 0.0: from watchdog_min_points points on, when it was 0.0 at every one of the
      last watchdog_sustain of the points;
    - a rising loss: from watchdog_min_points points on, when it rose watchdog_sustain of the points
      earlier too and from its second and third point, now sits more than watchdog_rise_z noise units
      above its start (so far up that diagnose calls the run failed even if it comes back: unstable_z)
      and is not falling back at the end.

    Never on a loss that jumped and came back (unstable: it is still learning), an exit code or an
    empty log (the process is alive). Args as diagnose().
    """
    s = settings or ClassifySettings()
    train = curves.train_loss
    if train is None or not len(train):
        return None
    figures, reasons, facts, eval_sig = _start(curves, s)
    verdict, confidence = _failure(curves, eval_sig, None, s, figures, reasons, facts)
    if verdict is None:
        return None
    held = _decided(curves, facts, s)
    if held is None:
        return None
    reasons.extend(held)
    return Diagnosis(
        verdict=verdict,
        confidence=round(float(min(max(confidence, 0.05), 1.0)), 2),
        reasons=reasons,
        figures=figures,
        next=next_step(verdict, facts, curves, dict(params or {}), s),
        alternatives=alternative_steps(verdict, facts, dict(params or {}), s),
        warnings=list(curves.warnings),
        evidence={**facts.evidence, "cause": facts.cause},
    )


def _decided(curves: Curves, facts: _Facts, s: ClassifySettings) -> list[str] | None:
    """Whether a failure found on a partial curve is final: None while the points to come could still
    undo it, else what made it final (reasons, or none needed)."""
    train, cause = curves.train_loss, facts.cause
    n = len(train)
    if cause == "nan" and (
        _first_nonfinite(train) is not None or _first_nonfinite(curves.eval_loss) is not None
    ):
        return []  # a NaN loss never leaves the curve
    if cause in ("nan", "explode"):
        return [] if _cause_before(curves, n - 1, s) == cause else None
    if cause not in ("rising", "zero") or n < s.watchdog_min_points:
        return None  # unstable: it came back, so it is still learning; exit / no_steps: the process is alive
    back = max(1, math.ceil(s.watchdog_sustain * n))
    stretch = f"the last {back} of the {n} training points logged so far"
    if cause == "zero":
        return (
            [f"it was exactly 0.0 at every one of {stretch}"] if np.all(train.values[-back:] == 0.0) else None
        )
    # rising: so far above its start that diagnose calls the run failed even if it comes back
    # (past unstable_z, with a margin), over a stretch, from its second and third point too (a first
    # point that happened to be low is no rise), and not on its way back down now (a jump that came
    # back is still learning)
    if (
        facts.evidence.get("value", 0.0) <= s.watchdog_rise_z
        or _cause_before(curves, n - back, s) != "rising"
    ):
        return None
    if any(_cause_of(_from_point(curves, k), s) != "rising" for k in (1, 2)):
        return None
    sig = prepare("training loss", _bin_medians(train.steps, train.values, _MAX_BINS), s)
    trend = end_trend(sig, s) if sig is not None else None
    if trend is not None and trend.z < -s.noise_z:
        return None
    return [
        f"it stayed up over {stretch}, more than {s.watchdog_rise_z:g} noise units above its start, "
        "and is not falling back"
    ]


def _cause_of(curves: Curves, s: ClassifySettings) -> str | None:
    """The cause of the failure rule that holds on these curves, or None."""
    figures, reasons, facts, eval_sig = _start(curves, s)
    verdict, _ = _failure(curves, eval_sig, None, s, figures, reasons, facts)
    return facts.cause if verdict is not None else None


def _cause_before(curves: Curves, points: int, s: ClassifySettings) -> str | None:
    """The failure cause of the run as it stood when it had logged `points` training points
    (every curve cut at that step); None when no failure rule held then."""
    train = curves.train_loss
    if train is None or points < 1:
        return None
    return _cause_of(curves_until(curves, int(train.steps[points - 1])), s)


def _from_point(curves: Curves, k: int) -> Curves:
    """The curves with the training loss's first k points left out."""
    train = curves.train_loss
    return dataclasses.replace(
        curves, scalars={**curves.scalars, TRAIN_LOSS: Series(train.steps[k:], train.values[k:])}
    )


def _start(curves: Curves, s: ClassifySettings) -> tuple[dict[str, Any], list[str], _Facts, Signal | None]:
    """What every judgment starts from: the figures, no reasons yet, the facts known before any rule
    (last step, partial) and the eval signal (prepared once, read by the failure and learning rules)."""
    figures = _figures(curves)
    facts = _Facts(last_step=figures["steps"])
    if curves.max_steps and facts.last_step is not None and facts.last_step < curves.max_steps:
        facts.partial = True
    evals = curves.eval_loss
    eval_sig = prepare("eval loss", evals, s) if evals is not None else None
    return figures, [], facts, eval_sig


def _failure(
    curves: Curves,
    eval_sig: Signal | None,
    exit_code: int | None,
    s: ClassifySettings,
    figures: dict[str, Any],
    reasons: list[str],
    facts: _Facts,
) -> tuple[str | None, float]:
    """The failed rules: each needs positive evidence that the run broke. Returns (None, 0)
    when none holds."""
    train, evals, grad = curves.train_loss, curves.eval_loss, curves.scalars.get(GRAD_NORM)
    verdict, confidence = None, 0.0
    if exit_code not in (None, 0):
        verdict, confidence, facts.cause = "failed", 1.0, "exit"
        reasons.append(f"swift exited with code {exit_code}")
    if train is None or not len(train):
        if verdict is None:
            verdict, confidence, facts.cause = "failed", 0.95, "no_steps"
        reasons.append("no training step was logged")
        return verdict, confidence

    # NaN / Inf: in a loss at any point; in grad_norm when it persists (an fp16 loss-scale
    # overflow gives a lone inf that the optimizer skips)
    bad_loss = _first_nonfinite(train)
    bad_eval = _first_nonfinite(evals)
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
        reasons.append("NaN/Inf in " + ", ".join(w for w in where if w) + ": the training diverged")
        figures["divergence_step"] = min(x for x in (bad_loss, bad_eval, bad_grad) if x is not None)
        facts.cause = "nan"  # the curves say more than the exit code
        return "failed", max(confidence, 0.97)

    values, steps = train.values, train.steps
    zeros = values == 0.0
    if zeros.mean() >= s.zero_share:
        first_zero = int(steps[np.argmax(zeros)])
        reasons.append(
            f"training loss is exactly 0.0 at {int(zeros.sum())} of its {len(values)} points (from step "
            f"{first_zero}): a degenerate state (labels masked out, or a collapsed model), not learning"
        )
        figures["divergence_step"] = first_zero
        facts.cause = "zero"
        facts.evidence = _evidence_of("zero_share", float(zeros.mean()), s.zero_share)
        return "failed", max(confidence, 0.95)

    first = float(values[0])
    smooth = _running_median3(values)
    peak = int(np.argmax(smooth))
    if first > 0 and smooth[peak] >= s.explode_factor * first:
        reasons.append(
            f"training loss exploded from {_num(first)} at step {int(steps[0])} to {_num(values[peak])} "
            f"at step {int(steps[peak])} (a 3-point median {smooth[peak] / first:.1f}x its start, "
            f"the limit is {s.explode_factor:g}x)"
        )
        figures["divergence_step"] = int(steps[np.argmax(smooth >= s.explode_factor * first)])
        facts.cause = "explode"
        facts.evidence = _evidence_of("explode_factor", float(smooth[peak] / first), s.explode_factor)
        return "failed", max(confidence, 0.95)

    sig = prepare("training loss", train, s)
    if sig is not None and sig.log and sig.measured:
        ys = _running_median3(sig.y)
        top = int(np.argmax(ys))
        over = (ys[top] - sig.y[0]) / sig.noise
        quarter = max(1, len(sig) // 4)
        late = float(np.median(sig.y[-quarter:]))
        late_z = (late - sig.y[0]) / sig.noise
        eval_fell = late_z > s.noise_z and _eval_fell(eval_sig, s)
        if late_z > s.noise_z and not eval_fell:
            reasons.append(
                f"training loss rose: {_num(first)} at step {int(steps[0])}, "
                f"{_num(sig.level(late))} over the last quarter of its points "
                f"({sig.level(late) / first - 1:+.0%}, {late_z:.1f} noise units above its start, "
                f"the limit is {s.noise_z:g}); a healthy run never ends above where it started"
            )
            figures["divergence_step"] = int(sig.steps[int(np.argmax(ys - sig.y[0] > s.noise_z * sig.noise))])
            facts.cause = "rising"
            facts.evidence = _evidence_of("rising", late_z, s.noise_z)
            return "failed", max(confidence, 0.6 + 0.35 * _margin(late_z, s.noise_z))
        if over > s.unstable_z:
            reasons.append(
                f"training loss jumped {sig.level(ys[top]) / first - 1:+.0%} above its start ({_num(first)} "
                f"at step {int(steps[0])} -> {_num(sig.level(ys[top]))} at step {int(sig.steps[top])}, "
                f"3-point median; {over:.1f} noise units, the limit is {s.unstable_z:g}) before it came "
                f"back to {_num(float(values[-1]))}: the steps overshoot, too high a learning rate"
            )
            figures["divergence_step"] = int(
                sig.steps[int(np.argmax(ys - sig.y[0] > s.unstable_z * sig.noise))]
            )
            facts.cause = "unstable"
            facts.evidence = _evidence_of("unstable_z", over, s.unstable_z)
            return "failed", max(confidence, 0.6 + 0.35 * _margin(over, s.unstable_z))
        if late_z > s.noise_z:
            reasons.append(
                f"training loss ended {late_z:.1f} noise units above its start, but eval loss fell: "
                "judged on the eval loss"
            )
    if verdict is not None:  # failed by its exit code alone: say how far it got
        reasons.append(
            f"until then training loss went from {_num(first)} at step {int(steps[0])} to "
            f"{_num(float(values[-1]))} at step {int(steps[-1])}, with no sign of divergence"
        )
    return verdict, confidence


def _eval_fell(sig: Signal | None, s: ClassifySettings) -> bool:
    """Eval loss ended below its first value, beyond its noise."""
    if sig is None:
        return False
    end = float(np.median(sig.y[-min(3, len(sig) - 1) :]))
    return sig.y[0] - end > s.noise_z * sig.noise


def _learning(
    curves: Curves, eval_sig: Signal | None, s: ClassifySettings, reasons: list[str], facts: _Facts
) -> tuple[str, float]:
    """underfit / overfit / converged, for a run with no sign of breakage. The eval loss is the
    signal when it has 3 points or more, else the training loss."""
    train = curves.train_loss
    binned = _bin_medians(train.steps, train.values, _MAX_BINS)
    train_sig = prepare("training loss", binned, s)
    evals = curves.eval_loss
    if eval_sig is not None and len(eval_sig) < 3:
        eval_sig = None
    lr = curves.scalars.get(LEARNING_RATE)
    if lr is not None and len(lr) and np.isfinite(lr.values).all() and lr.values.max() > 0:
        facts.lr_decayed = bool(lr.values[-1] < 0.1 * lr.values.max())

    if train_sig is None:
        reasons.append(
            f"a single training loss was logged ({_num(train.values[0])} at step {int(train.steps[0])}): "
            "too short to judge, train longer"
        )
        facts.moved = False
        return "underfit", 0.3

    penalty = 1.0
    first, last = train_sig.values[0], train_sig.values[-1]
    reasons.append(
        f"training loss went from {_num(first)} at step {int(train_sig.steps[0])} to {_num(last)} at step "
        f"{int(train_sig.steps[-1])}"
        + (f" ({len(binned)} medians of {len(train)} points)" if len(binned) < len(train) else "")
    )
    quarter = max(1, len(train_sig) // 4)
    train_fall_z = (train_sig.y[0] - float(np.median(train_sig.y[-quarter:]))) / train_sig.noise
    if len(train) < 5:
        reasons.append(f"only {len(train)} training points were logged: its noise can't be measured")

    sig = eval_sig if eval_sig is not None else train_sig
    if eval_sig is None:
        n_eval = 0 if evals is None else int(np.isfinite(evals.values).sum())
        reasons.append(
            (
                "eval loss was logged only " + ("once" if n_eval == 1 else "twice")
                if n_eval
                else "no eval loss was logged"
            )
            + ": judged on the training loss alone, which can't show overfitting"
            + ("" if n_eval else " (give --val_dataset or --split_dataset_ratio)")
        )
        penalty *= 0.85
    elif len(eval_sig) < 5:
        reasons.append(f"only {len(eval_sig)} eval points: the noise of the eval loss can't be measured")
    penalty *= _evidence(len(sig))

    # a training loss that did not move beyond its noise: the run barely learned, whatever the
    # eval loss did meanwhile (a steady fall of a fraction of a percent is no convergence)
    if train_fall_z <= s.noise_z:
        facts.moved = False
        late = train_sig.level(float(np.median(train_sig.y[-quarter:])))
        reasons.append(
            f"training loss barely moved: {_num(first)} at step {int(train_sig.steps[0])}, {_num(late)} "
            f"over its last quarter ({late / first - 1:+.1%}; {train_fall_z:.1f} noise units, learning "
            f"shows as more than {s.noise_z:g}): too small a step size, or too short a run, to learn"
        )
        if eval_sig is not None:
            reasons.append(
                f"eval loss went from {_num(eval_sig.values[0])} to {_num(eval_sig.values[-1])} by step "
                f"{int(eval_sig.steps[-1])} ({eval_sig.values[-1] / eval_sig.values[0] - 1:+.1%})"
            )
        facts.evidence = _evidence_of("barely_moved", train_fall_z, s.noise_z)
        return "underfit", (0.55 + 0.4 * _margin(s.noise_z, max(train_fall_z, 0.1))) * penalty

    if eval_sig is not None:
        overfit = _overfit(eval_sig, s, reasons, facts)
        if overfit is not None:
            return "overfit", overfit * penalty

    trend = end_trend(sig, s)
    if trend is None:
        reasons.append(f"{sig.name} has too few points for a trend at the end: train longer to see one")
        return "underfit", 0.4 * penalty
    where = f"over the last {s.tail_fraction:.0%} of the run (steps {trend.first_step}-{trend.last_step})"
    words = f"{sig.name} {_num(trend.start)} -> {_num(trend.end)} ({trend.rel:+.1%}, "
    words += f"{abs(trend.z):.1f} standard errors"
    if math.isfinite(trend.ratio) and trend.before_steps:
        words += f"; {trend.ratio:.0%} of its rate over steps {trend.before_steps[0]}-{trend.before_steps[1]}"
    elif trend.ratio == math.inf:
        words += "; it was not falling before"
    words += ")"
    facts.evidence = _evidence_of("settle_ratio", trend.ratio, s.settle_ratio, z=trend.z)
    falling = trend.z < -s.noise_z
    settling = math.isfinite(trend.ratio) and trend.ratio < s.settle_ratio
    # a curve whose last point already sits above its lowest, beyond its noise, has turned:
    # whatever a line through its end says, it is no longer falling
    turned = (sig.y[-1] - float(np.min(sig.y))) / (sig.noise * math.sqrt(2)) > s.noise_z
    if falling and not settling and turned:
        reasons.append(
            f"{where} {words}, but its last point ({_num(sig.values[-1])}) is already above its lowest "
            f"({_num(float(np.min(sig.values)))}): it has stopped falling"
        )
        if eval_sig is not None:
            reasons.append(_MORE_EPOCHS)
        return "converged", 0.55 * penalty
    if falling and not settling:
        reasons.append(f"{where} {words}: still falling, more training will help")
        if facts.lr_decayed:
            reasons.append("the learning rate had decayed to under a tenth of its peak by the end")
        confidence = 0.55 + 0.4 * min(_margin(-trend.z, s.noise_z), _margin(trend.ratio, s.settle_ratio))
        return "underfit", confidence * penalty
    if falling:
        reasons.append(
            f"{where} {words}: still falling, but levelling off "
            f"(under {s.settle_ratio:.0%} of its earlier rate)"
        )
        confidence = 0.55 + 0.4 * _margin(s.settle_ratio, max(trend.ratio, 1e-3))
    elif trend.z > s.noise_z:
        reasons.append(f"{where} {words}: rising a little, short of what counts as overfitting")
        confidence = 0.55
    else:
        reasons.append(f"{where} {words}: flat, within its noise")
        confidence = 0.55 + 0.4 * _margin(s.noise_z, max(abs(trend.z), 0.05))
    if eval_sig is not None:
        reasons.append(_MORE_EPOCHS)
    return "converged", confidence * penalty


_MORE_EPOCHS = "more epochs would mostly fit the training set further, not the eval set"


def _overfit(sig: Signal, s: ClassifySettings, reasons: list[str], facts: _Facts) -> float | None:
    """The confidence of an overfit verdict on the eval signal, or None: the eval loss rose after
    its minimum beyond its noise, by at least overfit_share of its fall before the minimum."""
    i_min = int(np.argmin(sig.y))
    facts.best_step = int(sig.steps[i_min])
    after = len(sig) - 1 - i_min
    if after < 1:
        return None
    k = min(3, after)
    end = float(np.median(sig.y[-k:]))
    rise, fall = end - sig.y[i_min], sig.y[0] - sig.y[i_min]
    rise_z = rise / (sig.noise * math.sqrt(1 + 1 / k))
    share = rise / fall if fall > 0 else math.inf
    # the rise that counts, in log units: overfit_share of the fall, or overfit_rise of the level
    needed = min(
        s.overfit_share * fall,
        math.log1p(s.overfit_rise) if sig.log else s.overfit_rise * abs(sig.values[i_min]),
    )
    if rise_z <= s.noise_z or rise < needed:
        if rise > 0 and rise_z > s.noise_z:
            reasons.append(
                f"eval loss is {sig.level(end) / sig.level(sig.y[i_min]) - 1:+.1%} above its lowest "
                f"({_num(sig.values[i_min])} at step {facts.best_step}), {share:.0%} of its earlier fall: "
                f"under the {s.overfit_share:.0%} of it (or +{s.overfit_rise:.0%}) that counts as overfitting"
            )
        return None
    lowest = _num(sig.values[i_min])
    text = (
        f"eval loss fell from {_num(sig.values[0])} to {lowest} at step {facts.best_step}, then rose "
        if i_min > 0
        else f"eval loss was lowest at its first point ({lowest}, step {facts.best_step}) and rose "
    )
    text += (
        f"to {_num(sig.level(end))} by step {int(sig.steps[-1])} "
        f"({sig.level(end) / sig.values[i_min] - 1:+.0%}; {rise_z:.1f} standard errors of its noise"
        + (f"; {share:.0%} of its earlier fall" if math.isfinite(share) else "")
        + ")"
    )
    reasons.append(text)
    facts.evidence = _evidence_of("overfit", rise / needed if needed > 0 else math.inf, 1.0, z=rise_z)
    reasons.append("while the training loss fell: the model memorises the training set")
    margin = min(_margin(rise_z, s.noise_z), _margin(rise, needed))
    return (0.55 + 0.4 * margin) * (1.0 if after >= 2 else 0.8)


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
    if facts.interrupted and not (verdict == "failed" and facts.cause not in ("exit", "no_steps")):
        return _resume_step(facts, curves)
    if verdict == "failed":
        if facts.cause in ("exit", "no_steps"):
            return NextStep(
                "Read the end of swift.log (run.json's `error` holds its tail): the run stopped before its "
                "curves could say anything; fix the cause and run it again.",
                None,
            )
        if facts.cause == "zero":
            return NextStep(
                "Check the data and the template before the learning rate: a loss of exactly 0.0 means no "
                "token was trained on (every label masked) or the model collapsed.",
                None,
            )
        why = {
            "nan": "the loss went NaN",
            "explode": "the loss exploded",
            "rising": "the loss rose instead of falling",
            "unstable": "the loss jumped above its start before it fell",
        }.get(facts.cause, "the run failed")
        if lr is None:
            return NextStep(f"Lower the learning rate {s.lr_divisor:g}x: {why}.", None)
        new = lr / s.lr_divisor
        return NextStep(
            f"Lower the learning rate {s.lr_divisor:g}x ({_fmt(lr)} -> {_fmt(new)}): {why}.",
            f"lr={_fmt(new)}",
        )
    if verdict == "underfit":
        if not facts.moved:
            # the loss did not move: steps too small to learn, which more of them fixes only slowly
            if lr is not None and lr < s.high_lr:
                new = lr * s.lr_factor
                return NextStep(
                    f"Raise the learning rate {s.lr_factor:g}x ({_fmt(lr)} -> {_fmt(new)}): at {_fmt(lr)} "
                    "the training loss barely moved.",
                    f"lr={_fmt(new)}",
                )
            if lr is not None:
                return NextStep(
                    f"Check the data, the template and what is trained: the training loss barely moved "
                    f"even at lr {_fmt(lr)}.",
                    None,
                )
            return NextStep("Raise the learning rate, or train longer: the training loss barely moved.", None)
        if facts.partial:
            return NextStep(
                f"Let it finish (or resume it): the loss was still falling at step {facts.last_step} of "
                f"{curves.max_steps}.",
                None,
            )
        decayed = " (the schedule took the lr to near 0 at the end; it stretches over more epochs)"
        decayed = decayed if facts.lr_decayed else ""
        if epochs is None:
            return NextStep(
                f"Train about {s.epochs_factor:g}x more epochs: the loss was still falling{decayed}.", None
            )
        new_epochs = _int_if_whole(epochs * s.epochs_factor)
        return NextStep(
            f"Train {_fmt(new_epochs)} epochs instead of {_fmt(epochs)}: "
            f"the loss was still falling at the end{decayed}.",
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


def _resume_step(facts: _Facts, curves: Curves) -> NextStep:
    """An interrupted run: finish it from its last checkpoint (swift's --resume_from_checkpoint)."""
    where = f"step {facts.last_step or 0} of {curves.max_steps or '?'}"
    if facts.resume_from:
        return NextStep(
            f"Resume it: it was interrupted at {where}; swift continues from its last checkpoint "
            f"({Path(facts.resume_from).name}), and the curves of both parts are read as one.",
            _override("+args.resume_from_checkpoint", facts.resume_from),
        )
    return NextStep(f"Run it again: it was interrupted at {where}, before its first checkpoint.", None)


def alternative_steps(
    verdict: str, facts: _Facts, params: dict[str, Any], s: ClassifySettings
) -> list[NextStep]:
    """The other knob that also answers the verdict, for when the next step was tried already
    (autotune never runs a config twice) or can run beside it: a gentler lr cut after a
    failure; for an underfit run, more epochs where the lr was raised and the other way round."""
    lr, epochs = _number(params.get("lr")), _number(params.get("epochs"))
    if verdict == "failed" and facts.cause in ("nan", "explode", "rising", "unstable") and lr is not None:
        new = lr / s.lr_factor
        return [
            NextStep(
                f"Lower the learning rate {s.lr_factor:g}x ({_fmt(lr)} -> {_fmt(new)}).", f"lr={_fmt(new)}"
            )
        ]
    if verdict != "underfit" or facts.partial:
        return []  # a partial run is resumed before anything is changed
    more_epochs = higher_lr = None
    if epochs is not None:
        new_epochs = _fmt(_int_if_whole(epochs * s.epochs_factor))
        text = f"Train {s.epochs_factor:g}x more epochs ({_fmt(epochs)} -> {new_epochs})."
        more_epochs = NextStep(text, f"epochs={new_epochs}")
    if lr is not None and lr < s.high_lr:
        new_lr = _fmt(lr * s.lr_factor)
        higher_lr = NextStep(
            f"Raise the learning rate {s.lr_factor:g}x ({_fmt(lr)} -> {new_lr}).", f"lr={new_lr}"
        )
    other = more_epochs if not facts.moved else higher_lr  # next_step() gave the other one
    return [other] if other is not None else []


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
