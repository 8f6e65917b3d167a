"""The next experiment for a verdict, following its cause, computed from the run's own values, as a
runnable override (pure):

    diverged (NaN/Inf, ended above its start)  -> lower the lr
    never learned, at a tiny lr                -> raise it (never when the loss ended above its start)
    never learned, at an ordinary lr           -> the data, the template and the targets; no lr change
    never learned, at chance (ln k)            -> ... and, for a k-class classifier, its labels
    still falling                              -> more epochs, or let it finish
    overfit                                    -> fewer epochs, from the best checkpoint's epoch
    converged                                  -> infer and export it
    interrupted                                -> resume it from its last checkpoint
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swiftops.curves import EPOCH, Curves
from swiftops.diagnosis.evidence import Finding
from swiftops.diagnosis.settings import ClassifySettings

DIVERGED = ("not_finite", "ended_above_start")
_CHECK_LOG = (
    "Read the end of swift.log (run.json's `error` holds its tail): the run stopped before its curves "
    "could say anything; fix the cause and run it again."
)


@dataclass(frozen=True)
class NextStep:
    """The next experiment: what to change and why, and the override that does it."""

    text: str
    override: str | None  # a swiftops override, runnable as is ("lr=1e-3", "epochs=9"); None when none fits


@dataclass(frozen=True)
class RunState:
    """What the advice needs to know of the run beyond its finding."""

    last_step: int | None
    partial: bool = False  # the process did not finish: a still-falling run is let finish first
    interrupted: bool = False  # stopped from outside (Ctrl-C, SIGTERM, SIGHUP): resume it
    lr_decayed: bool = False  # the lr ended under a tenth of its peak
    overshoot: bool = False  # the loss jumped above its start before it came back
    ended_higher: bool = False  # the training loss ended above its start, by any amount


def next_step(
    finding: Finding, state: RunState, curves: Curves, params: dict[str, Any], s: ClassifySettings
) -> NextStep:
    """The tutorial's adjustment for a verdict, following its cause."""
    lr, epochs = _number(params.get("lr")), _number(params.get("epochs"))
    cause = finding.cause
    if state.interrupted and cause not in (*DIVERGED, "crashed", "nothing_logged", "stuck_at_zero"):
        return _resume_step(state, curves)
    if cause in ("crashed", "nothing_logged"):
        return NextStep(_CHECK_LOG, None)
    if cause == "stuck_at_zero":
        return NextStep(
            "Check the data and the template before the learning rate: a loss of exactly 0.0 means no "
            "token was trained on (every label masked) or the model collapsed.",
            None,
        )
    if cause in DIVERGED:
        why = "the loss went NaN" if cause == "not_finite" else "the loss ended above where it started"
        if lr is None:
            return NextStep(f"Lower the learning rate {s.lr_divisor:g}x: {why}.", None)
        new = lr / s.lr_divisor
        return NextStep(
            f"Lower the learning rate {s.lr_divisor:g}x ({_fmt(lr)} -> {_fmt(new)}): {why}.",
            f"lr={_fmt(new)}",
        )
    if cause == "never_learned":
        step = _unlearned_step(lr, state, s)
        k = finding.evidence.get("classes")
        if k:
            step = NextStep(
                f"{step.text} The loss sits at ln {k}, a uniform guess among {k} classes: if this is a "
                f"{k}-class classifier, check its labels first.",
                step.override,
            )
        return step
    if finding.verdict == "underfit":
        return _underfit_step(epochs, state, curves, s)
    if finding.verdict == "overfit":
        return _overfit_step(finding.best_step, epochs, state, curves)
    which = "best" if curves.best_checkpoint else "last"
    where = curves.best_checkpoint or curves.last_checkpoint
    run = f" {_override('run', str(curves.run_dir))}" if curves.run_dir is not None else ""
    return NextStep(
        f"Use it: run infer and export on the {which} checkpoint" + (f" ({where})" if where else "") + ".",
        f"stages=[infer,export]{run} ckpt={which}",
    )


def _unlearned_step(lr: float | None, state: RunState, s: ClassifySettings) -> NextStep:
    """Never learned: steps too small to move the weights (a tiny lr), or something else that keeps the
    model from learning: what it reads (data, template) or what is trained (target modules)."""
    suspects = "the data, the template and the trained modules (target_modules)"
    if state.ended_higher:
        return NextStep(
            f"Check {suspects}, and do not raise the learning rate: the loss never fell and ended above "
            "where it started.",
            None,
        )
    if lr is not None and lr < s.tiny_lr:
        new = lr * s.lr_factor
        return NextStep(
            f"Raise the learning rate {s.lr_factor:g}x ({_fmt(lr)} -> {_fmt(new)}): at {_fmt(lr)} the "
            "loss never fell beyond its noise.",
            f"lr={_fmt(new)}",
        )
    if lr is not None:
        return NextStep(
            f"Check {suspects}: the loss never fell beyond its noise, at an ordinary lr ({_fmt(lr)}).", None
        )
    return NextStep(
        f"Check {suspects}; raise the learning rate only if it was below {_fmt(s.tiny_lr)}: the loss never "
        "fell beyond its noise.",
        None,
    )


def _underfit_step(epochs: float | None, state: RunState, curves: Curves, s: ClassifySettings) -> NextStep:
    if state.partial:
        return NextStep(
            f"Let it finish (or resume it): the loss was still falling at step {state.last_step} of "
            f"{curves.max_steps}.",
            None,
        )
    decayed = " (the schedule took the lr to near 0 at the end; it stretches over more epochs)"
    decayed = decayed if state.lr_decayed else ""
    if epochs is None:
        return NextStep(
            f"Train about {s.epochs_factor:g}x more epochs: the loss was still falling{decayed}.", None
        )
    new_epochs = _int_if_whole(epochs * s.epochs_factor)
    return NextStep(
        f"Train {_fmt(new_epochs)} epochs instead of {_fmt(epochs)}: the loss was still falling at the "
        f"end{decayed}.",
        f"epochs={_fmt(new_epochs)}",
    )


def _overfit_step(best_step: int | None, epochs: float | None, state: RunState, curves: Curves) -> NextStep:
    total = curves.max_steps or state.last_step
    if epochs and best_step and total:
        best_epochs = best_step / total * epochs
    else:
        best_epochs = epoch_at(curves, best_step) if best_step else None
    ckpt = f" This run's best checkpoint ({curves.best_checkpoint}) already holds the lowest-eval weights."
    ckpt = ckpt if curves.best_checkpoint else ""
    more = "More data, or a larger lora_rank together with more data, also lets it train longer."
    if best_epochs is None or (epochs is not None and epochs <= 1):
        return NextStep(
            f"Stop earlier or add data: eval loss was lowest at step {best_step}. {more}{ckpt}", None
        )
    new_epochs = max(1, int(best_epochs + 0.5))
    if epochs is not None and new_epochs >= epochs:
        new_epochs = max(1, math.ceil(epochs) - 1)
    return NextStep(
        f"Train {new_epochs} epoch{'s' if new_epochs > 1 else ''}"
        + (f" instead of {_fmt(epochs)}" if epochs is not None else "")
        + f": eval loss was lowest at step {best_step} (about epoch {best_epochs:.1f}). {more}{ckpt}",
        f"epochs={new_epochs}",
    )


def _resume_step(state: RunState, curves: Curves) -> NextStep:
    """An interrupted run: finish it from its last checkpoint (swift's --resume_from_checkpoint)."""
    where = f"step {state.last_step or 0} of {curves.max_steps or '?'}"
    if curves.last_checkpoint:
        return NextStep(
            f"Resume it: it was interrupted at {where}; swift continues from its last checkpoint "
            f"({Path(curves.last_checkpoint).name}), and the curves of both parts are read as one.",
            _override("+args.resume_from_checkpoint", curves.last_checkpoint),
        )
    return NextStep(f"Run it again: it was interrupted at {where}, before its first checkpoint.", None)


def alternative_steps(
    finding: Finding, state: RunState, params: dict[str, Any], s: ClassifySettings
) -> list[NextStep]:
    """Other steps that also fit, for when the next step was tried already (autotune never runs a
    config twice) or can run beside it: a gentler lr cut after a divergence or an overshoot; more
    epochs beside a raised lr, or a raised lr beside more epochs."""
    lr, epochs = _number(params.get("lr")), _number(params.get("epochs"))
    gentler = None
    if lr is not None and (finding.cause in DIVERGED or state.overshoot):
        new = lr / s.lr_factor
        text = f"Lower the learning rate {s.lr_factor:g}x ({_fmt(lr)} -> {_fmt(new)})"
        text += ": the loss jumped above its start before it came back." if state.overshoot else "."
        gentler = NextStep(text, f"lr={_fmt(new)}")
    if finding.cause in DIVERGED:
        return [gentler] if gentler else []
    if state.partial:
        return []  # a run that did not finish is let finish, or resumed, before anything is changed
    steps = []
    tiny = lr is not None and lr < s.tiny_lr
    if finding.cause == "never_learned" and tiny and epochs is not None and not state.ended_higher:
        # the raised lr comes first; more of the same small steps is the slower way to move it
        new_epochs = _fmt(_int_if_whole(epochs * s.epochs_factor))
        text = f"Train {s.epochs_factor:g}x more epochs ({_fmt(epochs)} -> {new_epochs})."
        steps.append(NextStep(text, f"epochs={new_epochs}"))
    if finding.verdict == "underfit" and tiny:
        new_lr = _fmt(lr * s.lr_factor)
        steps.append(
            NextStep(f"Raise the learning rate {s.lr_factor:g}x ({_fmt(lr)} -> {new_lr}).", f"lr={new_lr}")
        )
    if gentler is not None and finding.verdict != "failed":
        steps.append(gentler)
    return steps


def epoch_at(curves: Curves, step: float) -> float | None:
    """Epochs done at a step, from the train/epoch curve."""
    epoch = curves.scalars.get(EPOCH)
    if epoch is None or not len(epoch) or not np.all(np.isfinite(epoch.values)):
        return None
    return float(np.interp(step, epoch.steps.astype(np.float64), epoch.values))


# ---------------------------------------------------------------------------------------------
# formatting overrides


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
