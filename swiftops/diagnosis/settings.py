"""The diagnosis's thresholds: one dataclass, whose field comments are the one place each is explained
(conf/classify/default.yaml sets the same keys and points here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClassifySettings:
    """Thresholds of the diagnosis. Every trend is measured on log(loss), against the curve's own noise
    and its own earlier change, so none of these is a share of the loss level (the same run scaled 100x
    gets the same verdict), except unmeasured_rise, which stands in for a noise that can't be measured."""

    noise_z: float = 2.0  # a change counts only beyond this many standard errors of the curve's own noise
    unmeasured_rise: float = 0.25  # a curve of under 5 points has no measurable noise: its rise above its
    #   start counts as a failure only past this share of the start (batch noise is seldom larger)
    tail_fraction: float = 0.3  # "the end": this share of the run's steps, counted back from the last point
    min_tail_points: int = 2  # ... but at least this many points (a slope needs 2; borrowing more from
    #   before the end would judge the middle of a sparsely evaluated run)
    settle_ratio: float = 0.2  # still falling = the end falls at least at this share of the run's average
    #   pace before the end; slower means the curve is levelling off (converged)
    overfit_share: float = 0.5  # overfit = eval loss rose after its minimum, beyond its noise, by at least
    #   this share of what it had fallen from its first value to that minimum ...
    overfit_rise: float = 0.1  # ... or by this much of its minimum, whichever is smaller: giving back half
    #   of a small gain is overfitting, and so is a 10% rise after a large one
    overshoot_z: float = 4.0  # training loss (3-point median) this many noise units above its start before
    #   it came back = the steps overshoot: a warning with a lower-lr alternative, not a verdict
    chance_band: float = 0.03  # a run that never learned and ends within this share of ln k (k = 2..10)
    #   sits at chance level, a uniform guess among k classes: its advice names the labels (no verdict rests
    #   on it: an LLM's loss lies near some ln k as often as not)
    zero_share: float = 0.5  # training loss exactly 0.0 at this share of its points = degenerate (failed)
    resolution: float = 1e-3  # the smallest relative change a log resolves (4-digit logs, float32): the
    #   floor of every noise estimate, so a perfectly smooth curve does not make every wiggle significant
    tiny_lr: float = 1e-4  # a run that never learned below this lr (ms-swift's LoRA default) is told to
    #   raise it; at or above it the data, the template and the target modules are the suspects
    lr_factor: float = 10.0  # never learned at a tiny lr: the next lr is this many times larger; an
    #   overshoot that came back: the alternative lr is this many times smaller
    lr_divisor: float = 100.0  # diverged (NaN/Inf, or ended above its start): the next lr is this many
    #   times smaller
    epochs_factor: float = 3.0  # underfit: the next run trains this many times more epochs
    watchdog_min_points: int = 20  # the live watchdog stops a rising or zero loss only from this many
    #   training points on: the noise a rise is measured against is steady from about 20 points
    watchdog_sustain: float = 0.3  # ... and only when the rise already held this share of the points
    #   earlier (or the loss was exactly 0.0 at every one of them): a passing jump is no failure yet
    watchdog_rise_z: float = 8.0  # ... and only this many noise units above its start, twice overshoot_z,
    #   not falling back at the end: a warm-up spike that comes back is never stopped
