"""What the rules read and what they return: a run's Evidence (its curves as signals on a log
scale, with their noise, prepared once) and a rule's Finding (verdict, cause, confidence, reasons)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from swiftops.curves import LEARNING_RATE, Curves
from swiftops.diagnosis.settings import ClassifySettings
from swiftops.diagnosis.signal import Level, Signal, learned, level, prepare

MIN_EVAL_POINTS = 3  # an eval curve shows a rise after its minimum from 3 points on


@dataclass(frozen=True)
class Finding:
    """What one rule found: the verdict, its cause, how sure, and the sentences with the numbers."""

    verdict: str
    cause: str  # the rule's name
    confidence: float
    reasons: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)  # the deciding test: rule, value, limit, ...
    divergence_step: int | None = None  # where a broken run broke
    best_step: int | None = None  # where the eval loss was lowest (overfit)


@dataclass(frozen=True)
class Evidence:
    """Everything the rules read, prepared once: the curves, the signals on a log scale with their
    noise, and the exit code of the process when it ended."""

    curves: Curves
    settings: ClassifySettings
    exit_code: int | None = None

    @cached_property
    def train(self) -> Signal | None:
        """The finite training loss, every point: where it started, where it ended, its noise."""
        return prepare("training loss", self.curves.train_loss, self.settings)

    @cached_property
    def train_trend(self) -> Signal | None:
        """The training loss for trends: a long one as MAX_BINS medians (pairwise slopes stay cheap)."""
        return prepare("training loss", self.curves.train_loss, self.settings, binned=True)

    @cached_property
    def eval(self) -> Signal | None:
        return prepare("eval loss", self.curves.eval_loss, self.settings)

    @cached_property
    def deciding(self) -> Signal | None:
        """The loss whose end decides underfit or converged: the eval loss when its noise can be
        measured, else the training loss (which can't show overfitting)."""
        if self.eval is not None and self.eval.measured:
            return self.eval
        return self.train_trend if self.train_trend is not None else self.eval

    @cached_property
    def train_level(self) -> Level | None:
        return level(self.train) if self.train is not None else None

    @cached_property
    def eval_level(self) -> Level | None:
        return level(self.eval) if self.eval is not None else None

    @cached_property
    def eval_fell(self) -> bool:
        """The eval loss, with enough points to show a trend, went below its first value beyond its
        noise: then it, not a rising training loss, says whether the run learned."""
        sig = self.eval
        return sig is not None and len(sig) >= MIN_EVAL_POINTS and learned(sig, self.settings)

    @cached_property
    def peak_lr(self) -> float | None:
        """The highest learning rate logged, None when none was."""
        lr = self.curves.scalars.get(LEARNING_RATE)
        if lr is None or not len(lr) or not np.isfinite(lr.values).all() or lr.values.max() <= 0:
            return None
        return float(lr.values.max())

    @cached_property
    def lr_decayed(self) -> bool:
        """The learning rate ended under a tenth of its peak."""
        lr = self.curves.scalars.get(LEARNING_RATE)
        return self.peak_lr is not None and bool(lr.values[-1] < 0.1 * self.peak_lr)

    @cached_property
    def weight(self) -> float:
        """How much a learning verdict can rest on: fewer points, or no eval curve, weigh less."""
        sig = self.deciding
        points = len(sig) if sig is not None else 1
        return min(1.0, 0.5 + points / 20) * (1.0 if self.eval is not None and len(self.eval) >= 3 else 0.85)
