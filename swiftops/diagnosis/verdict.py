"""diagnose(): curves -> Diagnosis, assembled from what the rule table found (rules.RULES), the
observations on the way, and the advice for its cause; watchdog_verdict(): the same table's failure
subset on a run still training (pure)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swiftops.curves import TRAIN_LOSS, Curves, Series, curves_until
from swiftops.diagnosis.advice import NextStep, RunState, alternative_steps, next_step
from swiftops.diagnosis.evidence import Evidence, Finding
from swiftops.diagnosis.rules import RULES, WATCHDOG_RULES, first_finding, observations
from swiftops.diagnosis.settings import ClassifySettings
from swiftops.diagnosis.signal import end_trend
from swiftops.record import INTERRUPTED, RUNNING, RunRecord, json_safe

VERDICTS = ("failed", "underfit", "overfit", "converged")

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
    "divergence_step",  # None unless failed by divergence (NaN, or a loss that ended above its start)
)


@dataclass
class Diagnosis:
    verdict: str  # one of VERDICTS
    confidence: float  # 0..1
    reasons: list[str]  # sentences with the numbers behind the verdict
    figures: dict[str, Any]  # losses, steps and checkpoint (see FIGURES)
    next: NextStep
    warnings: list[str] = field(default_factory=list)  # odd files, and what happened on the way
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


def diagnose(
    curves: Curves,
    settings: ClassifySettings | None = None,
    *,
    exit_code: int | None = None,
    params: dict[str, Any] | None = None,
    early_stopped: bool = False,
    interrupted: bool = False,
) -> Diagnosis:
    """Classify one run from its curves: the first rule of rules.RULES that finds something decides.

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
    ev = Evidence(curves, s, None if interrupted else exit_code)
    finding = first_finding(ev, RULES)
    figures = _figures(curves, finding)
    last_step, max_steps = figures["steps"], curves.max_steps
    short = bool(max_steps and last_step is not None and last_step + _log_interval(curves) <= max_steps)
    finished = (exit_code is not None or early_stopped) and not interrupted
    partial = interrupted or (short and not finished)  # only when it is unknown do the steps decide
    reasons, confidence = list(finding.reasons), finding.confidence
    notes, overshoot = observations(ev)
    if early_stopped and short and finished and finding.verdict != "failed":
        reasons.append(
            f"ms-swift's early stop ended the run at step {last_step} of {max_steps}, once the eval loss "
            "had stopped reaching new lows: the curve is complete"
        )
    if interrupted:
        reasons.append(
            f"the run was interrupted at step {last_step or 0} of {max_steps or '?'}: judged on what it "
            "logged, so the verdict may change once it is resumed"
        )
        confidence *= 0.85
    elif partial and finding.verdict != "failed":
        reasons.append(f"the curve is partial: step {last_step} of {max_steps}, so the verdict may change")
        confidence *= 0.85
    state = RunState(
        last_step=last_step,
        partial=partial,
        interrupted=interrupted,
        lr_decayed=ev.lr_decayed,
        overshoot=overshoot,
        ended_higher=ev.train_level is not None and ev.train_level.z > 0,
    )
    params = dict(params or {})
    if params.get("lr") is None and ev.peak_lr is not None:
        params["lr"] = ev.peak_lr  # a run swiftops did not launch: the lr it logged
    return Diagnosis(
        verdict=finding.verdict,
        confidence=round(float(min(max(confidence, 0.05), 1.0)), 2),
        reasons=reasons,
        figures=figures,
        next=next_step(finding, state, curves, params, s),
        alternatives=alternative_steps(finding, state, params, s),
        warnings=[*curves.warnings, *notes],
        evidence={**finding.evidence, "cause": finding.cause},
    )


# the reason a run stopped from outside before it logged anything has no verdict
NO_EVIDENCE = "interrupted before its first logged step: no evidence, so no verdict"


def no_evidence(curves: Curves, record: RunRecord | None) -> bool:
    """A run interrupted (or still running) before it logged a loss: nothing says how it would have
    gone. A run that ended on its own without logging anything did fail (rules.nothing_logged)."""
    logged = any(s is not None and len(s) for s in (curves.train_loss, curves.eval_loss))
    return record is not None and record.status in (INTERRUPTED, RUNNING) and not logged


def diagnose_recorded(
    curves: Curves,
    record: RunRecord | None,
    settings: ClassifySettings | None = None,
    *,
    run_dir: Path | None = None,
) -> Diagnosis | None:
    """diagnose() with what a job's run.json knows of the process: its exit code, whether it was
    interrupted, its params, and whether ms-swift's early stop ended it. The exit code belongs to
    the run the job launched (run_dir, when given, must be that one, not an older vN beside it); a
    run the watchdog stopped exited from the stop, and its curves say why. None for a run with no
    evidence yet (no_evidence)."""
    if record is None:
        return diagnose(curves, settings)
    if no_evidence(curves, record):
        return None
    own_run = run_dir is None or record.run_dir in (None, str(run_dir))
    ended = own_run and not record.stopped_by and record.status != RUNNING
    interrupted = ended and record.status == INTERRUPTED
    exit_code = record.exit_code if ended and not interrupted else None
    return diagnose(
        curves,
        settings,
        exit_code=exit_code,
        params=record.params,
        early_stopped=record.early_stop_on and exit_code == 0,
        interrupted=interrupted,
    )


# ---------------------------------------------------------------------------------------------
# the live watchdog


def watchdog_verdict(
    curves: Curves, settings: ClassifySettings | None = None, *, params: dict[str, Any] | None = None
) -> Diagnosis | None:
    """The failed verdict of a run still training, once nothing to come can undo it; None while it may
    still learn.

    The watchdog runs rules.WATCHDOG_RULES, the failures of the table a partial curve can show:

    - not_finite: at once (a NaN never leaves the curve, and the weights are NaN with it);
    - stuck_at_zero: from watchdog_min_points points on, when the loss was exactly 0.0 at every one
      of the last watchdog_sustain of the points;
    - ended_above_start: from watchdog_min_points points on, when the rule held watchdog_sustain of the
      points earlier too and from the second and third point, the loss now sits more than
      watchdog_rise_z noise units above its start, and it is not falling back at the end.

    A warm-up spike that comes back is never stopped. Args as diagnose().
    """
    s = settings or ClassifySettings()
    train = curves.train_loss
    if train is None or not len(train):
        return None
    finding = first_finding(Evidence(curves, s), WATCHDOG_RULES)
    if finding is None:
        return None
    held = _sustained(curves, finding, s)
    if held is None:
        return None
    figures = _figures(curves, finding)
    params = dict(params or {})
    state = RunState(last_step=figures["steps"], partial=True)
    return Diagnosis(
        verdict=finding.verdict,
        confidence=round(float(min(max(finding.confidence, 0.05), 1.0)), 2),
        reasons=[*finding.reasons, *held],
        figures=figures,
        next=next_step(finding, state, curves, params, s),
        alternatives=alternative_steps(finding, state, params, s),
        warnings=list(curves.warnings),
        evidence={**finding.evidence, "cause": finding.cause},
    )


def _sustained(curves: Curves, finding: Finding, s: ClassifySettings) -> list[str] | None:
    """Whether a failure found on a partial curve is final: None while the points to come could still
    undo it, else what made it final (reasons, or none needed)."""
    if finding.cause == "not_finite":
        return []
    train = curves.train_loss
    n = len(train)
    if n < s.watchdog_min_points:
        return None
    back = max(1, math.ceil(s.watchdog_sustain * n))
    stretch = f"the last {back} of the {n} training points logged so far"
    if finding.cause == "stuck_at_zero":
        return (
            [f"it was exactly 0.0 at every one of {stretch}"] if np.all(train.values[-back:] == 0.0) else None
        )
    # ended_above_start: far above its start (twice what makes an overshoot), over a stretch, from its
    # second and third point too (a first point that happened to be low is no rise), and not on its way
    # back down now (a jump that comes back is still learning)
    if finding.evidence.get("value", 0.0) <= s.watchdog_rise_z:
        return None
    earlier = curves_until(curves, int(train.steps[n - back - 1])) if n - back >= 1 else None
    if earlier is None or _cause(earlier, s) != "ended_above_start":
        return None
    if any(_cause(_from_point(curves, k), s) != "ended_above_start" for k in (1, 2)):
        return None
    ev = Evidence(curves, s)
    trend = end_trend(ev.train, s) if ev.train is not None else None
    if trend is not None and trend.z < -s.noise_z:
        return None
    return [
        f"it stayed up over {stretch}, more than {s.watchdog_rise_z:g} noise units above its start, "
        "and is not falling back"
    ]


def _cause(curves: Curves, s: ClassifySettings) -> str | None:
    found = first_finding(Evidence(curves, s), WATCHDOG_RULES)
    return found.cause if found is not None else None


def _from_point(curves: Curves, k: int) -> Curves:
    """The curves with the training loss's first k points left out."""
    train = curves.train_loss
    return dataclasses.replace(
        curves, scalars={**curves.scalars, TRAIN_LOSS: Series(train.steps[k:], train.values[k:])}
    )


def _log_interval(curves: Curves) -> int:
    """The steps between two training log lines (1 when unknown): a run whose last line lies within
    one interval of its planned end reached it."""
    train = curves.train_loss
    if train is None or len(train) < 2:
        return 1
    return max(1, int(np.median(np.diff(train.steps))))


def _figures(curves: Curves, finding: Finding | None) -> dict[str, Any]:
    train, evals = curves.train_loss, curves.eval_loss
    figures: dict[str, Any] = dict.fromkeys(FIGURES)
    figures["best_checkpoint"] = curves.best_checkpoint
    figures["max_steps"] = curves.max_steps
    figures["divergence_step"] = finding.divergence_step if finding is not None else None
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
