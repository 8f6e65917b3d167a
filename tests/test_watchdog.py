"""The live watchdog: the diagnosis's failure rules on partial curves (which runs it stops, and when),
replayed over every prefix of real runs, and wired into the runner and the job with the stand-in swift.
The curves are built here with the shape described; none is copied from a corpus."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_DIR, needs_shared
from helpers_events import decay, steps_of, write_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swiftops.curves import Curves, read_curves, read_live_curves, series_from_points
from swiftops.diagnosis import ClassifySettings, diagnose, watchdog_verdict
from swiftops.job import JobContext, run_sft
from swiftops.record import read_record
from swiftops.runner import run_swift
from swiftops.summary import why_line
from swiftops.watchdog import Watchdog, first_stop

NAN, INF = float("nan"), float("inf")
PARAMS = {"lr": 0.1, "epochs": 3}


def curves_of(train, evals=None, *, grad=None, max_steps=None) -> Curves:
    """Curves of a run as the live reader gives them: train/loss (steps 1..n unless given as
    (steps, values)), eval/loss as (steps, values), train/grad_norm."""
    if not isinstance(train, tuple):
        train = (steps_of(len(train)), train)
    scalars = {"train/loss": series_from_points(*train)}
    if evals is not None:
        scalars["eval/loss"] = series_from_points(*evals)
    if grad is not None:
        scalars["train/grad_norm"] = series_from_points(train[0], grad)
    return Curves(None, scalars, None, None, "logging.jsonl", max_steps=max_steps or int(train[0][-1]) * 3)


def stop_step(curves: Curves, s: ClassifySettings | None = None) -> int | None:
    """The step of the prefix where the watchdog would have stopped this run, or None."""
    decision = first_stop(curves, s, PARAMS)
    return None if decision is None else decision.figures["steps"]


def noisy_decay(n, noise, seed, start=3.0, floor=1.0, rate=0.02):
    rng = np.random.default_rng(seed)
    return [
        v * math.exp(noise * e)
        for v, e in zip(decay(steps_of(n), start, floor, rate), rng.standard_normal(n), strict=True)
    ]


# ---- what it stops, and when ----


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_a_nan_or_inf_loss_stops_the_run_at_the_point_it_appears(bad):
    train = [3.0, 2.9, 2.85, 2.8, bad, bad, bad]
    assert watchdog_verdict(curves_of(train[:4])) is None
    d = watchdog_verdict(curves_of(train[:5], max_steps=60), params=PARAMS)
    assert d is not None and d.verdict == "failed" and d.evidence["cause"] == "not_finite"
    assert d.figures["steps"] == 5 and d.figures["max_steps"] == 60
    assert "NaN/Inf in training loss at step 5" in d.reasons[0]
    assert d.next.override == "lr=1e-3"


def test_a_nan_eval_loss_stops_at_once():
    d = watchdog_verdict(curves_of([3.0, 2.9, 2.8, 2.7], ([2, 4], [3.1, NAN])))
    assert d is not None and "eval loss at step 4" in d.reasons[0]


def test_a_nan_logged_as_zero_is_read_back_as_nan_from_the_live_log(tmp_path):
    """ms-swift's logging_nan_inf_filter logs a NaN loss as 0.0; grad_norm still shows NaN."""
    run = tmp_path / "v0-20250101-120000"
    write_jsonl(
        run, (steps_of(6), [3.0, 2.9, 2.8, 0.0, 0.0, 0.0]), max_steps=60, grad_norm=[1, 1, 1, NAN, NAN, NAN]
    )
    curves = read_live_curves(run)
    assert curves.max_steps == 60 and math.isnan(curves.train_loss.values[3])
    d = watchdog_verdict(curves)
    assert d is not None and d.evidence["cause"] == "not_finite" and d.figures["divergence_step"] == 4


def test_a_half_written_last_line_is_left_for_the_next_reading(tmp_path):
    run = tmp_path / "v0-20250101-120000"
    write_jsonl(run, (steps_of(5), [3.0, 2.9, 2.8, 2.7, 2.6]), max_steps=50, cut_last_line=True)
    curves = read_live_curves(run)
    assert list(curves.train_loss.steps) == [1, 2, 3, 4] and curves.warnings == []


def test_nan_in_grad_norm_with_a_finite_falling_loss_never_stops_a_run():
    """A NaN/Inf grad_norm is an optimizer step skipped (an fp16 overflow): the loss decides."""
    train = [3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4]
    assert stop_step(curves_of(train, grad=[1, 1, 1, 1, INF, 1, 1])) is None
    assert stop_step(curves_of(train, grad=[NAN, 1, 1, 1, INF, NAN, NAN])) is None
    assert diagnose(curves_of(train, grad=[NAN, 1, 1, 1, INF, NAN, NAN])).verdict != "failed"


def test_an_exploding_loss_stops_once_the_rise_is_sustained():
    train = [3.0 * 1.2**s for s in range(40)]
    assert stop_step(curves_of(train)) == 20  # watchdog_min_points
    d = first_stop(curves_of(train), params=PARAMS)
    assert d.evidence["cause"] == "ended_above_start" and d.next.override == "lr=1e-3"


def test_a_spike_at_the_newest_point_decides_nothing():
    train = [*noisy_decay(30, 0.02, 1), 40.0]
    assert diagnose(curves_of(train)).verdict != "failed"
    assert watchdog_verdict(curves_of(train)) is None
    assert stop_step(curves_of([*train, 1.2, 1.1, 1.15])) is None


def test_a_sustained_rise_stops_the_run():
    train = [3.0 * (1 + 0.05 * s) + 0.01 * math.sin(1.7 * s) for s in range(1, 80)]
    assert stop_step(curves_of(train)) == 20  # watchdog_min_points
    d = first_stop(curves_of(train), params=PARAMS)
    assert d.evidence["cause"] == "ended_above_start" and "not falling back" in d.reasons[-1]
    assert stop_step(curves_of(train), ClassifySettings(watchdog_min_points=40)) == 40


def test_a_rise_that_stays_up_stops_once_it_stops_falling_back():
    """The tutorial's failed run, longer: up to 2.3x its start in 12 steps, then back to a level far
    above it (4.5 where it started at 3.0)."""
    up = [3.0 + 0.35 * s for s in range(12)]
    back = [4.5 + 2.4 * math.exp(-s / 8) for s in range(70)]
    train = [v * math.exp(0.01 * math.sin(1.7 * i)) for i, v in enumerate(up + back)]
    step = stop_step(curves_of(train))
    assert step is not None and step > 40  # not while it was still coming down
    assert diagnose(curves_of(train)).verdict == "failed"


def test_a_small_rise_is_left_to_the_end_of_the_run():
    """2-4 noise units above its start: failed if it ends there, but not decided while it runs."""
    rng = np.random.default_rng(3)
    train = [3.0 * math.exp(0.03 + 0.01 * e) for e in rng.standard_normal(80)]
    train[0] = 3.0
    assert diagnose(curves_of(train)).verdict == "failed"
    assert stop_step(curves_of(train)) is None


def test_a_loss_stuck_at_zero_stops_after_a_stretch():
    train = [2.0, 1.5, 1.0, 0.5] + [0.0] * 60
    step = stop_step(curves_of(train))
    assert step == 20
    d = first_stop(curves_of(train), params=PARAMS)
    assert d.evidence["cause"] == "stuck_at_zero" and d.next.override is None  # the data, not the lr


# ---- what it leaves alone: every prefix of a run that is still learning ----


@pytest.mark.parametrize("seed", range(10))
def test_noisy_but_falling_runs_are_never_stopped(seed):
    assert stop_step(curves_of(noisy_decay(300, 0.08, seed))) is None


def test_spiky_runs_are_never_stopped():
    train = noisy_decay(200, 0.02, 7)
    for at in (5, 40, 43, 120, 199):  # lone 10x spikes: early, two close together, one at the very end
        train[at] *= 10
    assert diagnose(curves_of(train[:150])).verdict != "failed"
    assert stop_step(curves_of(train)) is None


@pytest.mark.parametrize("seed", range(10))
def test_slow_runs_that_barely_move_are_never_stopped(seed):
    train = noisy_decay(400, 0.01, seed, start=3.0, floor=2.9, rate=0.005)
    assert stop_step(curves_of(train)) is None


def test_a_run_that_jumped_and_came_back_is_never_stopped():
    """The quickstart's lr 0.1 shape (measured: +70% over steps 4-8), then falling for 200 steps."""
    head = [5.28, 5.52, 4.13, 9.02, 9.87, 8.79, 7.19, 7.70, 6.03, 5.72, 5.30, 5.05, 4.92, 4.74, 4.71]
    train = head + [4.7 * decay([s], 1.0, 0.6, 0.01)[0] for s in range(200)]
    found = diagnose(curves_of(train))
    assert found.verdict != "failed" and any("jumped" in w for w in found.warnings)
    assert stop_step(curves_of(train)) is None


def test_an_eval_loss_that_falls_keeps_a_rising_training_loss_going():
    """Training loss above its start while the eval loss falls: judged on the eval, not stopped."""
    train = [3.0 * (1 + 0.01 * s) for s in range(60)]
    evals = (steps_of(60, every=5, first=5), [3.0 - 0.05 * i for i in range(12)])
    assert stop_step(curves_of(train, evals)) is None


@pytest.mark.parametrize(
    "train",
    [[], [3.0], [3.0, NAN], [0.0], [3.0, 3.0], [1e-12, 1e-12, 1e-12], [5.0] * 30],
    ids=["empty", "one", "nan-second", "zero-one", "two", "tiny", "flat"],
)
def test_odd_short_curves_never_raise(train):
    curves = Curves(None, {"train/loss": series_from_points(steps_of(len(train)), train)}, None, None, "x")
    decision = watchdog_verdict(curves)
    assert decision is None or decision.evidence["cause"] == "not_finite"
    assert watchdog_verdict(Curves(None, {}, None, None, "none")) is None


# ---- properties ----


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(1, 150),
    noise=st.floats(0.0, 0.3),
    fall=st.floats(0.0, 2.0),
    noise_draws=st.lists(st.floats(-1.0, 1.0), min_size=150, max_size=150),
)
def test_a_falling_curve_with_bounded_noise_is_never_stopped(n, noise, fall, noise_draws):
    """log(loss) = a fall faster than twice the noise bound over the first 15 points (the earliest
    last quarter the rising rule reads), then still falling, plus any noise within the bound."""
    drop = 2 * noise + 0.01
    trend = [-(drop + fall) * min(i, 15) / 15 - 0.001 * i for i in range(n)]
    train = [3.0 * math.exp(t + noise * e) for t, e in zip(trend, noise_draws, strict=False)]
    assert stop_step(curves_of(train)) is None


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(20, 160),
    drift=st.floats(-0.03, 0.03),
    noise=st.floats(0.001, 0.3),
    seed=st.integers(0, 2**31),
    jump=st.tuples(st.integers(0, 100), st.integers(1, 80), st.floats(-1.0, 1.5)),
)
def test_a_stop_is_never_contradicted_by_the_verdict_at_the_end(n, drift, noise, seed, jump):
    """Random walks with a drift, a step change and heavy-tailed noise: wherever the watchdog
    stops one, the diagnosis of the whole run says failed too."""
    rng = np.random.default_rng(seed)
    y = math.log(3.0) + drift * np.arange(n) + noise * rng.standard_t(3, n)
    y[jump[0] : jump[0] + jump[1]] += jump[2]
    curves = curves_of(np.exp(y).tolist())
    if first_stop(curves) is not None:
        assert diagnose(curves).verdict == "failed"


# ---- replayed over real runs ----

CORPUS = REPO_DIR.parent / "shared" / "diagnosis_corpus" / "dev"


@needs_shared("diagnosis_corpus", "dev", "runs")
def test_replayed_over_every_prefix_of_the_dev_corpus_it_stops_only_failed_runs():
    stopped, false_stops = [], []
    runs = sorted(p for p in (CORPUS / "runs").iterdir() if p.is_dir())
    for run in runs:
        curves = read_curves(run)
        decision = first_stop(curves)
        if decision is None:
            continue
        stopped.append(run.name)
        if diagnose(curves).verdict != "failed":
            false_stops.append((run.name, decision.reasons))
    print(f"watchdog replay: {len(stopped)} of {len(runs)} dev runs stopped, {len(false_stops)} false stops")
    assert false_stops == []
    assert len(stopped) >= 4  # NaN, exploding, zero-loss and rising runs are in the corpus


# ---- in the runner and the job ----


def test_the_watchdog_reads_only_when_the_log_grew_and_not_too_often(tmp_path, monkeypatch):
    import swiftops.curves
    import swiftops.watchdog

    reads = []
    real = swiftops.curves.read_live_curves
    monkeypatch.setattr(swiftops.watchdog, "read_live_curves", lambda d: reads.append(d) or real(d))
    monkeypatch.setattr(swiftops.watchdog, "BUSY_FACTOR", 0.0)  # a loaded test machine: every_s alone
    run = tmp_path / "out" / "v0-20250101-120000"
    write_jsonl(run, (steps_of(3), [3.0, 2.9, 2.8]), max_steps=30)
    watchdog = Watchdog(tmp_path / "out", every_s=0.2)
    assert watchdog.poll() is None and len(reads) == 1
    write_jsonl(run, (steps_of(4), [3.0, 2.9, 2.8, 2.7]), max_steps=30)
    assert watchdog.poll() is None and len(reads) == 1  # grown, but too soon
    time.sleep(0.25)
    assert watchdog.poll() is None and len(reads) == 2
    time.sleep(0.25)
    assert watchdog.poll() is None and len(reads) == 2  # nothing new
    write_jsonl(run, (steps_of(5), [3.0, 2.9, 2.8, NAN, NAN]), max_steps=30)
    assert watchdog.poll() is not None and len(reads) == 3


def test_a_slow_check_spaces_out_the_next_one(tmp_path, monkeypatch):
    """However long the log grows, the watchdog keeps to a small share of one CPU."""
    import swiftops.curves
    from swiftops.watchdog import BUSY_FACTOR

    real = swiftops.curves.read_live_curves
    monkeypatch.setattr(swiftops.watchdog, "read_live_curves", lambda d: time.sleep(0.05) or real(d))
    write_jsonl(tmp_path / "out" / "v0-20250101-120000", (steps_of(3), [3.0, 2.9, 2.8]), max_steps=30)
    watchdog = Watchdog(tmp_path / "out", every_s=0.1)
    watchdog.poll()
    assert watchdog.next_check - time.monotonic() >= BUSY_FACTOR * 0.05 - 0.1


def test_the_watchdog_finds_the_log_of_a_run_without_a_version_folder(tmp_path):
    """--add_version false: swift writes into output_dir itself."""
    write_jsonl(tmp_path / "out", (steps_of(4), [3.0, 2.9, NAN, NAN]), max_steps=40)
    decision = Watchdog(tmp_path / "out").poll()
    assert decision is not None and decision.figures["max_steps"] == 40


class Raising:
    def __init__(self):
        self.calls = 0

    def poll(self):
        self.calls += 1
        raise RuntimeError("a bug in the watchdog")


def test_a_watchdog_that_raises_is_logged_once_and_switched_off(tmp_path, caplog):
    watchdog = Raising()
    with caplog.at_level(logging.ERROR, logger="swiftops"):
        outcome = run_swift(
            [sys.executable, "-c", "import time; time.sleep(1.2)"],
            env=os.environ,
            log_path=tmp_path / "l",
            cwd=tmp_path,
            watchdog=watchdog,
        )
    assert outcome.exit_code == 0 and outcome.stopped_by is None
    assert watchdog.calls == 1
    assert [r.message for r in caplog.records].count(
        "the watchdog failed and is off for the rest of this run"
    ) == 1


def fake_job(composed, tmp_path, fake_swift, monkeypatch, shape, *overrides, step_seconds=0.2):
    monkeypatch.setenv("FAKE_SWIFT_SHAPES", json.dumps([[{}, shape]]))
    monkeypatch.setenv("FAKE_SWIFT_STEP_SECONDS", str(step_seconds))
    cfg = composed(["epochs=6", *overrides])  # the stand-in plans 10 steps an epoch: 60
    return run_sft(cfg, JobContext(job_dir=tmp_path / "job", swift_bin=str(fake_swift), progress=False))


def processes_under(folder: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.parametrize("shape", ["nan", "explode"])
def test_the_job_stops_a_failed_run_early_and_records_why(composed, tmp_path, fake_swift, monkeypatch, shape):
    record = fake_job(composed, tmp_path, fake_swift, monkeypatch, shape)
    assert record.status == "failed" and record.stopped_by == "watchdog" and record.verdict == "failed"
    figures = record.diagnosis["figures"]
    # NaN at once (step 3 or 4); an exploding loss once its rise held over watchdog_min_points (20)
    assert figures["max_steps"] == 60 and figures["steps"] <= (15 if shape == "nan" else 25), figures
    first = record.diagnosis["reasons"][0]
    assert first.startswith(f"stopped by the watchdog at step {figures['steps']} of 60: ")
    assert ("NaN/Inf" if shape == "nan" else "training loss rose") in first
    assert (
        record.diagnosis["next"]["override"] == "lr=1e-5"
    )  # the config's lr 1e-3 / 100, not "read swift.log"
    sft = record.stages["sft"]
    assert sft["stopped_by"] == "watchdog" and sft["stopped_at_step"] == figures["steps"]
    assert sft["max_steps"] == 60
    assert read_record(tmp_path / "job").stopped_by == "watchdog"
    assert record.error.startswith("stopped by the watchdog")
    # the table's why and a single run's last line: the stop's sentence, not the KeyboardInterrupt
    assert record.error_line == first and why_line(record) == first
    time.sleep(0.2)
    assert processes_under(tmp_path / "job") == []


def test_with_the_watchdog_off_a_failed_run_trains_to_its_end(composed, tmp_path, fake_swift, monkeypatch):
    record = fake_job(
        composed, tmp_path, fake_swift, monkeypatch, "nan", "watchdog.enabled=false", step_seconds=0.02
    )
    assert record.stopped_by is None and record.exit_code == 0
    assert record.verdict == "failed" and record.diagnosis["figures"]["steps"] == 60
    assert "stopped_by" not in record.stages["sft"]


def test_a_healthy_run_is_never_stopped(composed, tmp_path, fake_swift, monkeypatch):
    record = fake_job(composed, tmp_path, fake_swift, monkeypatch, "converged", step_seconds=0.02)
    assert record.status == "completed" and record.stopped_by is None
    assert record.diagnosis["figures"]["steps"] == 60
