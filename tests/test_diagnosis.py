"""swiftops.diagnosis: every verdict, each failure mode real runs showed, and the readers'
oddities, each from REAL run folders (tensorboard's own writer, ms-swift's logging.jsonl,
HF's trainer_state.json, LLaMA-Factory's trainer_log.jsonl) read back by swiftops.curves.
The curves are built here with the shape described; none is copied from a corpus."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex

import numpy as np
import pytest
from helpers_events import decay, make_run, noisy, steps_of, write_events, write_jsonl, write_trainer_state

from swiftops.curves import Curves, read_curves, series_from_points
from swiftops.diagnosis import VERDICTS, ClassifySettings, Diagnosis, diagnose
from swiftops.paths import conf_dir

NAN = float("nan")


def judge(
    tmp_path,
    train,
    evals=None,
    *,
    params=None,
    exit_code=None,
    settings=None,
    extra=None,
    name="v0-20250101-120000",
) -> Diagnosis:
    """Write a real run folder, read it back, diagnose it."""
    run = make_run(tmp_path, train, evals, extra=extra, name=name)
    curves = read_curves(run)
    return diagnose(curves, settings, exit_code=exit_code, params=params or {"lr": 1e-4, "epochs": 3})


def text(d: Diagnosis) -> str:
    return " | ".join(d.reasons)


def cosine(steps, peak=1e-4, warmup=0.05):
    """A warmup-then-cosine learning rate over the given steps, as HF and ms-swift log it."""
    total = steps[-1]
    out = []
    for s in steps:
        if s < warmup * total:
            out.append(peak * s / (warmup * total))
        else:
            done = (s - warmup * total) / ((1 - warmup) * total)
            out.append(peak * 0.5 * (1 + math.cos(math.pi * done)))
    return out


# ---- failed: each needs positive evidence that the run broke ----


def test_a_loss_that_rises_and_stays_up_is_failed(tmp_path):
    """LoRA at lr 0.1 on the tiny model, logged every step: 3.5 -> peaks of 10+ -> 5.8."""
    d = judge(
        tmp_path,
        ([1, 2, 3, 4, 5, 6], [3.5, 6.1, 10.4, 8.2, 5.9, 5.8]),
        ([3, 6], [3.6, 5.9]),
        params={"lr": 0.1, "epochs": 1},
    )
    assert d.verdict == "failed" and d.confidence >= 0.7
    assert "training loss rose: 3.50 at step 1, 5.80 over the last point" in text(d)
    assert "+66%" in text(d)  # the sign and size match the numbers
    assert d.figures["divergence_step"] == 2
    assert d.next.override == "lr=1e-3" and "100x" in d.next.text
    assert d.evidence["cause"] == "ended_above_start"


def test_an_overshoot_that_came_back_is_a_warning_not_a_verdict(tmp_path):
    """The quickstart's lr 0.1 under a cosine schedule (measured shape, logged every step): +70%
    in the first steps, then the decaying lr brings it down to the lowest losses of its sweep. It is
    judged by where it ended; the jump is a warning with a lower-lr alternative."""
    loss = [5.28, 5.52, 4.13, 9.02, 9.87, 8.79, 7.19, 7.70, 6.03, 5.72, 5.30, 5.05, 4.92, 4.74, 4.71, 4.67]
    loss += [4.57, 4.71, 4.68, 4.39, 4.49, 4.60, 4.37, 4.60, 4.48, 4.44, 4.36, 4.48, 4.37, 4.36, 4.31]
    evals = ([5, 10, 15, 20, 25, 30], [9.35, 5.31, 4.62, 4.40, 4.34, 4.30])
    d = judge(tmp_path, (steps_of(len(loss)), loss), evals, params={"lr": 0.1, "epochs": 3})
    assert d.verdict == "converged", text(d)
    assert any("jumped +71% above its start (5.28 at step 1 -> 9.02 at step 4" in w for w in d.warnings)
    assert d.figures["divergence_step"] is None
    assert [a.override for a in d.alternatives] == ["lr=0.01"] and "jumped" in d.alternatives[0].text


def test_a_noisy_warmup_wobble_is_not_a_jump(tmp_path):
    """Two points a few percent above the start in a noisy curve: within its noise."""
    steps = steps_of(200)
    loss = noisy(decay(steps, 2.0, 1.0, 0.02), 0.04, seed=11)
    loss[1:3] = [2.08, 2.06]
    d = judge(tmp_path, (steps, loss), (steps_of(200, 20), decay(steps_of(200, 20), 1.9, 1.05, 0.02)))
    assert d.verdict != "failed", text(d)


def test_nan_loss_logged_as_zero_is_failed(tmp_path):
    run = make_run(tmp_path, None)
    write_events(
        run / "runs",
        {
            "train/loss": ([1, 5, 10, 15], [2.0, 1.7, 0.0, 0.0]),
            "train/grad_norm": ([1, 5, 10, 15], [1.0, 3.0, NAN, NAN]),
        },
    )
    d = diagnose(read_curves(run), params={"lr": 1.0})
    assert d.verdict == "failed" and d.confidence >= 0.95
    assert "NaN/Inf in training loss at step 10" in text(d)
    assert d.figures["divergence_step"] == 10
    assert d.next.override == "lr=0.01"
    assert any("logged as 0.0" in w for w in d.warnings)


def test_nan_in_eval_loss_is_failed(tmp_path):
    d = judge(tmp_path, (steps_of(10), decay(steps_of(10), 2, 1, 0.3)), ([5, 10], [1.5, NAN]))
    assert d.verdict == "failed" and "eval loss at step 10" in text(d)


def test_a_warmup_spike_far_above_the_start_that_came_back_is_no_failure(tmp_path):
    """58x the first loss during warm-up, then a run that trained well (eval 3.5 -> 1.08)."""
    steps = steps_of(200)
    loss = decay(steps, 3.4, 0.9, 0.03)
    loss[3:6] = [58 * 3.4, 40.0, 9.0]
    evals = steps_of(200, 20, first=20)
    d = judge(tmp_path, (steps, noisy(loss, 0.02, seed=5)), (evals, decay(evals, 3.5, 1.08, 0.03)))
    assert d.verdict in ("underfit", "converged"), text(d)
    assert any("jumped" in w and "came back" in w for w in d.warnings)


def test_mid_run_spikes_that_recovered_on_a_flat_end_are_converged(tmp_path):
    steps = steps_of(300)
    loss = noisy(decay(steps, 2.5, 1.0, 0.05), 0.02, seed=8)
    for at in (120, 200):  # two spikes, each back within 30 steps
        for k in range(30):
            loss[at + k] *= 1 + 4.0 * math.exp(-k / 6)
    evals = steps_of(300, 20, first=20)
    d = judge(tmp_path, (steps, loss), (evals, decay(evals, 2.4, 1.1, 0.05)))
    assert d.verdict == "converged", text(d)


@pytest.mark.parametrize("first", [0.0, 0.0328])
def test_a_loss_of_exactly_zero_is_degenerate_not_a_crash(tmp_path, first):
    """Zero throughout (or from the second log on): a division by the first loss used to raise."""
    steps = steps_of(100, 10, first=10)
    loss = [first] + [0.0] * (len(steps) - 1)
    d = judge(tmp_path, (steps, loss), params={"lr": 2e-4, "epochs": 3})
    assert d.verdict == "failed" and "exactly 0.0" in text(d)
    assert d.next.override is None and "label masked" in d.next.text
    json.dumps(d.to_dict(), allow_nan=False)


def test_a_non_zero_exit_is_failed_whatever_the_curves(tmp_path):
    d = judge(tmp_path, (steps_of(20), decay(steps_of(20), 2, 1, 0.2)), exit_code=1)
    assert d.verdict == "failed" and d.confidence == 1.0
    assert "swift exited with code 1" in text(d) and "until then training loss went from 1.82" in text(d)
    assert d.next.override is None and "swift.log" in d.next.text


def test_a_run_with_no_step_logged_is_failed(tmp_path):
    run = make_run(tmp_path, None)  # args.json only: swift died before its first log
    d = diagnose(read_curves(run))
    assert d.verdict == "failed" and "no training step was logged" in text(d)
    assert d.figures["steps"] is None


def test_no_curves_at_all_is_failed_without_an_exception():
    curves = Curves(None, {}, None, None, "none", ["swift wrote no run folder"])
    d = diagnose(curves, exit_code=2)
    assert d.verdict == "failed" and d.warnings == ["swift wrote no run folder"]


# ---- a run that never learned is failed, and its next step follows the cause ----


def test_a_steady_fall_of_a_fraction_of_a_percent_on_a_smooth_eval_is_learning(tmp_path):
    """Eval falls at every eval, 0.4% in all, with no noise of its own; the training loss is batch
    noise. The eval curve decides (training noise no longer vetoes it): it learned, slowly, and is
    still falling at its own pace at the end."""
    steps = steps_of(400)
    evals = steps_of(400, 40, first=40)
    d = judge(
        tmp_path,
        (steps, noisy([2.30] * 400, 0.03, seed=4)),
        (evals, [2.300 - 0.001 * i for i in range(len(evals))]),
        params={"lr": 2e-5, "epochs": 1},
    )
    assert d.verdict == "underfit", text(d)
    assert d.confidence < 0.7  # its end alone can't resolve the fall
    assert [a.override for a in d.alternatives] == ["lr=2e-4"]


def test_a_handful_of_steps_that_barely_move_is_failed_and_told_to_raise_a_tiny_lr(tmp_path):
    d = judge(
        tmp_path, ([1, 2, 3, 4, 5, 6], [3.1, 3.0, 3.2, 3.05, 3.1, 3.0]), params={"lr": 1e-5, "epochs": 1}
    )
    assert d.verdict == "failed" and d.evidence["cause"] == "never_learned"
    assert d.next.override == "lr=1e-4" and "Raise" in d.next.text
    assert d.confidence < 0.8


def test_flat_at_an_ordinary_lr_is_failed_and_points_at_the_data_not_the_lr(tmp_path):
    d = judge(tmp_path, (steps_of(100), noisy([2.0] * 100, 0.03, seed=1)), params={"lr": 0.1, "epochs": 3})
    assert d.verdict == "failed" and d.evidence["cause"] == "never_learned"
    assert d.next.override is None and "template" in d.next.text and "target_modules" in d.next.text


# ---- failure mode 2: overfitting measured against the curve's own fall and noise ----


def test_a_small_rise_after_a_small_fall_is_overfit_whatever_the_loss_level(tmp_path):
    """3.2 -> 3.1, then up to 3.25: under 5% of the level, but more than all it had gained."""
    steps = steps_of(600)
    evals = steps_of(600, 40, first=40)
    eval_values = [3.2 - 0.1 * min(s, 200) / 200 + 0.15 * max(s - 200, 0) / 400 for s in evals]
    d = judge(tmp_path, (steps, noisy(decay(steps, 3.6, 2.4, 0.01), 0.01, seed=2)), (evals, eval_values))
    assert d.verdict == "overfit" and d.confidence >= 0.8, text(d)
    assert d.figures["best_eval_step"] == 200
    assert "to 3.10 at step 200, then rose to 3.2" in text(d) and "of its earlier fall" in text(d)


def test_an_eval_that_rises_at_every_eval_from_its_first_is_overfit(tmp_path):
    steps = steps_of(1400)
    evals = steps_of(1400, 100, first=100)
    d = judge(
        tmp_path,
        (steps, noisy(decay(steps, 1.0, 0.01, 0.004), 0.05, seed=3)),
        (evals, [0.300 * (1 + 0.003 * i) for i in range(len(evals))]),  # +4% over 14 evals
        params={"lr": 1e-5, "epochs": 10},
    )
    assert d.verdict == "overfit", text(d)
    assert "lowest at its first point" in text(d)


def test_an_eval_that_gives_back_a_little_of_a_large_fall_is_converged(tmp_path):
    """Fell 0.64 -> 0.467, then +1.3%: a small share of what it gained."""
    steps = steps_of(1400)
    evals = steps_of(1400, 100, first=100)
    eval_values = [0.467 + 0.177 * math.exp(-(s - 100) / 150) for s in evals]
    eval_values[-2:] = [0.475, 0.473]
    d = judge(tmp_path, (steps, noisy(decay(steps, 2.0, 0.35, 0.01), 0.03)), (evals, eval_values))
    assert d.verdict == "converged", text(d)
    assert "that counts as overfitting" in text(d)


def test_eval_loss_rising_after_its_minimum_is_overfit_with_the_best_epoch(tmp_path):
    steps = steps_of(350, 5, first=5)
    evals = steps_of(350, 10, first=10)
    eval_values = [
        2.31 + (1.20 - 2.31) * (s - 10) / 130 if s <= 140 else 1.20 + 0.22 * (s - 140) / 210 for s in evals
    ]
    d = judge(
        tmp_path,
        (steps, noisy(decay(steps, 2.2, 0.2, 0.015), 0.03)),
        (evals, eval_values),
        params={"lr": 5e-5, "epochs": 5},
    )
    assert d.verdict == "overfit" and d.confidence >= 0.8
    assert d.figures["best_eval_loss"] == pytest.approx(1.20, rel=1e-6) and d.figures["best_eval_step"] == 140
    assert d.next.override == "epochs=2"  # 140 / 350 * 5 epochs
    assert "lora_rank" in d.next.text


def test_an_overfit_long_run_of_25k_steps(tmp_path):
    steps = steps_of(25_000)
    evals = steps_of(25_000, 500, first=500)
    eval_values = [1.0 + math.exp(-s / 2000) + 4e-5 * max(s - 10_000, 0) for s in evals]
    d = judge(tmp_path, (steps, decay(steps, 2.0, 0.3, 3e-4)), (evals, eval_values), params={"epochs": 10})
    assert d.verdict == "overfit"
    assert d.figures["steps"] == 25_000 and d.figures["train_points"] == 25_000
    assert d.next.override == "epochs=4"  # best at step 10000 of 25000, 10 epochs


# ---- failure mode 3: a decaying schedule, and "still falling" against the run's own pace ----


def test_a_fall_that_stops_only_where_the_lr_reaches_zero_is_underfit(tmp_path):
    """Eval falls steadily while the lr is high and flattens only over the last tenth, where
    the cosine schedule has taken the lr to ~0."""
    steps = steps_of(1000)
    evals = steps_of(1000, 50, first=50)
    eval_values = [2.0 * math.exp(-0.5 * min(s, 900) / 900) for s in evals]
    lr = cosine(steps)
    d = judge(
        tmp_path,
        (steps, noisy([2.1 * math.exp(-0.6 * min(s, 900) / 900) for s in steps], 0.02)),
        (evals, eval_values),
        extra={"train/learning_rate": (steps, lr)},
        params={"lr": 1e-4, "epochs": 2},
    )
    assert d.verdict == "underfit", text(d)
    assert d.next.override == "epochs=6" and "schedule" in d.next.text


def test_a_curve_that_levelled_off_long_before_the_end_is_converged(tmp_path):
    steps = steps_of(300)
    evals = steps_of(300, 20, first=20)
    run = make_run(
        tmp_path, (steps, noisy(decay(steps, 2, 0.5, 0.05), 0.02)), (evals, decay(evals, 2, 0.8, 0.05))
    )
    best = run / "checkpoint-280"
    best.mkdir()
    write_jsonl(
        run,
        (steps, [1.0] * 300),
        max_steps=300,
        summary={"best_model_checkpoint": str(best), "last_model_checkpoint": str(best)},
    )
    d = diagnose(read_curves(run), params={"lr": 5e-5, "epochs": 15})
    assert d.verdict == "converged" and d.confidence >= 0.7
    assert d.figures["best_checkpoint"] == str(best)
    assert d.next.override == f"stages=[infer,export] run={run} ckpt=best"


def test_still_falling_at_the_runs_own_pace_is_underfit(tmp_path):
    """Both curves falling as steeply at the end as before it: a short first epoch."""
    steps = steps_of(13)
    d = judge(
        tmp_path,
        (steps, noisy(decay(steps, 1.5, 0.2, 0.03), 0.02)),
        (steps, decay(steps, 1.45, 0.3, 0.03)),
        params={"lr": 5e-5, "epochs": 1},
    )
    assert d.verdict == "underfit" and d.confidence >= 0.6
    assert "still falling, more training will help" in text(d)
    assert d.next.override == "epochs=3"


def test_a_slow_decline_inside_the_noise_band_is_still_seen(tmp_path):
    steps = steps_of(2000)
    values = [2.0 - 0.4 * s / 2000 for s in steps]  # -7% over the last 30%, noise 5% a point
    d = judge(tmp_path, (steps, noisy(values, 0.05, seed=3)))
    assert d.verdict == "underfit"


def test_batch_noise_around_a_plateau_is_not_a_trend(tmp_path):
    steps = steps_of(400)
    values = [1.0 + 1.5 * math.exp(-s / 20) for s in steps]
    d = judge(tmp_path, (steps, noisy(values, 0.10, seed=7)))
    assert d.verdict == "converged", text(d)


# ---- evidence and confidence ----


def test_a_two_point_run_gets_a_verdict_with_low_confidence(tmp_path):
    d = judge(tmp_path, ([1, 2], [2.0, 1.5]), params={"epochs": 2})
    assert d.verdict in VERDICTS and d.confidence < 0.6
    assert "only 2 training points" in text(d)


def test_a_single_point_run_is_too_short_to_judge(tmp_path):
    d = judge(tmp_path, ([1], [2.0]))
    assert d.verdict == "underfit" and d.confidence <= 0.3 and "too short" in text(d)


def test_without_eval_the_verdict_rests_on_training_loss_alone_with_lower_confidence(tmp_path):
    steps = steps_of(200)
    train = (steps, noisy(decay(steps, 2.0, 0.5, 0.004), 0.02))
    with_eval = judge(tmp_path / "a", train, (steps_of(200, 20), decay(steps_of(200, 20), 2.1, 0.7, 0.004)))
    without = judge(tmp_path / "b", train)
    assert with_eval.verdict == without.verdict == "underfit"
    assert "no eval loss was logged: the end is judged on the training loss" in text(without)
    assert "judged on the training loss" not in text(with_eval)
    assert without.confidence < with_eval.confidence


def test_a_single_eval_point_is_no_eval_curve(tmp_path):
    steps = steps_of(100)
    d = judge(tmp_path, (steps, noisy(decay(steps, 1.6, 0.1, 0.1), 0.02)), ([100], [0.1]))
    assert d.verdict == "converged" and "eval loss was logged only once" in text(d)


def test_a_partial_curve_still_falling_is_told_to_finish(tmp_path):
    steps = steps_of(50)
    run = make_run(
        tmp_path,
        (steps, decay(steps, 3, 0.5, 0.03)),
        (steps_of(50, 10), decay(steps_of(50, 10), 3, 0.7, 0.03)),
    )
    write_jsonl(run, (steps, decay(steps, 3, 0.5, 0.03)), max_steps=200)  # no summary: still running
    d = diagnose(read_curves(run), params={"epochs": 4})
    assert d.verdict == "underfit" and "step 50 of 200" in text(d)
    assert d.next.override is None and "Let it finish" in d.next.text
    assert d.figures["max_steps"] == 200


@pytest.mark.parametrize("scale", [1e-4, 1e-2, 300.0])
@pytest.mark.parametrize(
    "shape",
    ["failed", "underfit", "overfit", "converged"],
)
def test_the_verdict_does_not_depend_on_the_loss_level(tmp_path, shape, scale):
    """The same run with its loss multiplied by 1e-4 .. 300 gets the same verdict."""
    steps = steps_of(300)
    evals = steps_of(300, 20, first=20)
    train = noisy(decay(steps, 2.0, 0.6, 0.02), 0.03, seed=9)
    eval_values = {
        "failed": None,
        "underfit": [2.0 - 0.003 * s for s in evals],
        "overfit": [1.0 + 0.5 * math.exp(-s / 30) + 0.001 * max(s - 100, 0) for s in evals],
        "converged": decay(evals, 2.0, 0.8, 0.05),
    }[shape]
    if shape == "failed":
        train = [2.0, 4.5, 5.0, *noisy([4.0] * 297, 0.03, seed=9)]
    base = judge(tmp_path / "base", (steps, train), (evals, eval_values) if eval_values else None)
    scaled = judge(
        tmp_path / "scaled",
        (steps, [v * scale for v in train]),
        (evals, [v * scale for v in eval_values]) if eval_values else None,
    )
    assert base.verdict == scaled.verdict == shape, text(base)
    assert base.confidence == pytest.approx(scaled.confidence, abs=0.02)


def test_an_isolated_inf_grad_norm_is_an_fp16_overflow_not_a_failure(tmp_path):
    steps = steps_of(100)
    grad = [1.0] * 100
    grad[2] = float("inf")
    run = make_run(tmp_path, None)
    write_events(
        run / "runs", {"train/loss": (steps, decay(steps, 2, 0.5, 0.2)), "train/grad_norm": (steps, grad)}
    )
    d = diagnose(read_curves(run))
    assert d.verdict == "converged" and any("fp16 overflow" in w for w in d.warnings)


# ---- failure mode 6: the formats and shapes real runs have ----


def test_llama_factory_trainer_log_is_read(tmp_path):
    """current_steps / total_steps / lr; every line written twice by two ranks."""
    run = tmp_path / "saves"
    run.mkdir()
    lines = []
    for step in range(5, 205, 5):
        line = {"current_steps": step, "total_steps": 400, "loss": 2.0 * math.exp(-step / 80) + 0.5}
        line.update(lr=1e-4, epoch=step / 100, percentage=step / 4, elapsed_time="0:00:10")
        lines += [line, dict(line, elapsed_time="0:00:11")]
        if step % 50 == 0:
            lines.append(
                {"current_steps": step, "total_steps": 400, "eval_loss": 2.1 * math.exp(-step / 80) + 0.6}
            )
    (run / "trainer_log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    curves = read_curves(run)
    assert curves.source == "trainer_log.jsonl" and curves.max_steps == 400
    assert len(curves.train_loss) == 40 and len(curves.eval_loss) == 4
    assert "train/learning_rate" in curves.scalars
    d = diagnose(curves)
    assert d.verdict in VERDICTS and "step 200 of 400" in text(d)


def test_bare_nan_eval_values_in_trainer_state_are_read_and_failed(tmp_path):
    path = write_trainer_state(
        tmp_path / "run" / "trainer_state.json",
        (steps_of(100, 10, first=10), decay(steps_of(100, 10, first=10), 6, 5, 0.01)),
        (steps_of(100, 50, first=50), [NAN, NAN]),
        max_steps=100,
    )
    assert "NaN" in path.read_text()  # Python's json writes bare NaN, as real runs have it
    d = diagnose(read_curves(path.parent))
    assert d.verdict == "failed" and "NaN/Inf in eval loss at step 50" in text(d)


def test_a_checkpoint_saved_before_max_steps_is_judged_on_what_it_has(tmp_path):
    steps = steps_of(1400, 50, first=50)
    path = write_trainer_state(
        tmp_path / "run" / "trainer_state.json",
        (steps, noisy(decay(steps, 2.0, 0.3, 0.003), 0.02)),
        (steps_of(1400, 200, first=200), decay(steps_of(1400, 200, first=200), 1.0, 0.22, 0.002)),
        max_steps=10_000,
    )
    d = diagnose(read_curves(path.parent))
    assert d.verdict in VERDICTS and "step 1400 of 10000" in text(d)
    assert d.confidence < 0.95  # a partial curve never gets full confidence


# ---- settings, figures, output ----


def test_thresholds_change_the_verdict(tmp_path):
    steps = steps_of(600)
    evals = steps_of(600, 40, first=40)
    eval_values = [3.2 - 0.1 * min(s, 200) / 200 + 0.04 * max(s - 200, 0) / 400 for s in evals]  # 40% back
    train = (steps, noisy(decay(steps, 3.6, 2.4, 0.01), 0.01, seed=2))
    default = judge(tmp_path / "a", train, (evals, eval_values))
    eager = judge(tmp_path / "b", train, (evals, eval_values), settings=ClassifySettings(overfit_share=0.25))
    assert (default.verdict, eager.verdict) == ("converged", "overfit")


def test_figures(tmp_path):
    d = judge(tmp_path, ([1, 2, 3, 4], [3.0, 2.0, 1.0, 1.5]), ([2, 4], [2.5, 2.0]))
    f = d.figures
    assert (f["first_train_loss"], f["min_train_loss"], f["final_train_loss"]) == (3.0, 1.0, 1.5)
    assert (f["first_eval_loss"], f["best_eval_loss"], f["best_eval_step"], f["final_eval_loss"]) == (
        2.5,
        2.0,
        4,
        2.0,
    )
    assert f["train_eval_gap"] == pytest.approx(2.0 - np.median([3.0, 2.0, 1.0, 1.5]))
    assert (f["steps"], f["train_points"], f["eval_points"]) == (4, 4, 2)


def test_to_dict_is_json_safe(tmp_path):
    d = judge(tmp_path, ([1, 2, 3], [NAN, NAN, NAN]))
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["verdict"] == "failed" and data["figures"]["first_train_loss"] is None
    assert set(data) == {
        "verdict",
        "confidence",
        "reasons",
        "figures",
        "next",
        "warnings",
        "evidence",
        "alternatives",
    }
    assert set(data["next"]) == {"text", "override"}
    assert d.verdict in VERDICTS and 0 <= d.confidence <= 1


@pytest.mark.parametrize(
    ("params", "train", "expected"),
    [
        ({"lr": 0.1}, [3.5, 6, 10.4, 8, 5.9, 5.8], {"lr": 0.001}),
        ({"lr": 5e-5}, [3.5, 6, 10.4, 8, 5.9, 5.8], {"lr": 5e-7}),
        ({"lr": 2.5e-3}, [3.5, 6, 10.4, 8, 5.9, 5.8], {"lr": 2.5e-5}),
        ({"lr": 5e-5}, [3.1, 3.0, 3.2, 3.05, 3.1, 3.0], {"lr": 5e-4}),
        ({"epochs": 3}, [2.0, 1.8, 1.6, 1.4, 1.2, 1.0], {"epochs": 9}),
    ],
)
def test_next_step_overrides_parse_in_hydra_as_numbers(tmp_path, params, train, expected):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    d = judge(tmp_path, (steps_of(len(train)), train), params=params)
    parsed = OverridesParser.create().parse_overrides([d.next.override])
    assert {o.key_or_group: o.value() for o in parsed} == expected
    assert all(type(o.value()) is type(expected[o.key_or_group]) for o in parsed)


def test_the_converged_override_parses_in_hydra(tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    steps = steps_of(100)
    d = judge(tmp_path / "odd dir, with=signs", (steps, noisy(decay(steps, 2, 1, 0.2), 0.02)))
    assert d.verdict == "converged", text(d)
    tokens = shlex.split(d.next.override)  # as a shell hands them to python -m swiftops
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(tokens)}
    assert parsed["stages"] == ["infer", "export"] and parsed["ckpt"] == "last"
    assert parsed["run"] == str(tmp_path / "odd dir, with=signs" / "v0-20250101-120000")


def test_settings_mirror_the_config_group():
    """conf/classify/default.yaml holds every ClassifySettings field, in order, each commented,
    with the dataclass's default."""
    from omegaconf import OmegaConf

    path = conf_dir() / "classify" / "default.yaml"
    loaded = OmegaConf.to_container(OmegaConf.load(path))
    fields = dataclasses.fields(ClassifySettings)
    assert list(loaded) == [f.name for f in fields]
    assert ClassifySettings(**loaded) == ClassifySettings()
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            assert "#" in line, f"uncommented key: {line}"


def test_an_eval_first_measured_after_a_divergence_does_not_hide_it(tmp_path):
    """Eval first measured after the loss blew up: it falls a little, yet training ended far
    above where it started."""
    d = judge(
        tmp_path,
        ([1, 2, 3, 4, 5, 6], [3.5, 6.1, 10.4, 8.2, 5.9, 5.8]),
        ([5, 6], [6.6, 5.9]),
        params={"lr": 0.1, "epochs": 1},
    )
    assert d.verdict == "failed" and d.next.override == "lr=1e-3"


def test_a_short_curves_passing_bump_is_noise_not_a_failure(tmp_path):
    """Five points (the tutorial's 1-epoch runs): the median of 3 second differences can sit on
    two near-equal values and make the noise ~0; the short curve is judged against the larger
    spread instead. Measured on the tiny model, tutorial data, lr 1e-3."""
    d = judge(
        tmp_path, ([1, 2, 3, 4, 5], [9.563, 9.638, 9.843, 9.500, 9.299]), params={"lr": 1e-3, "epochs": 1}
    )
    assert d.verdict != "failed", d.reasons
    # a real overshoot on as few points still fails
    d = judge(
        tmp_path / "b", ([1, 2, 3, 4, 5], [9.56, 11.0, 12.1, 11.5, 10.2]), params={"lr": 0.1, "epochs": 1}
    )
    assert d.verdict == "failed"


@pytest.mark.parametrize(
    ("train", "lr", "next_override", "alternatives"),
    [
        # still falling at a tiny lr: 3x the epochs, else a 10x higher lr
        ([3.0 - 0.1 * i for i in range(20)], 5e-5, "epochs=3", ["lr=5e-4"]),
        # still falling at an ordinary lr: 3x the epochs, and no lr to raise
        ([3.0 - 0.1 * i for i in range(20)], 1e-3, "epochs=3", []),
        # never learned at a tiny lr: a 10x higher lr, else 3x the epochs
        ([3.0 + 0.001 * math.sin(i) for i in range(20)], 5e-5, "lr=5e-4", ["epochs=3"]),
        # never learned at an ordinary lr: the data, no knob
        ([3.0 + 0.001 * math.sin(i) for i in range(20)], 1e-4, None, []),
        # ended above its start: lr / 100, else lr / 10
        ([3.0, 4.0, 6.0, 9.0, 12.0, 14.0], 0.1, "lr=1e-3", ["lr=0.01"]),
    ],
)
def test_the_alternative_is_the_other_knob_that_fits(tmp_path, train, lr, next_override, alternatives):
    d = judge(tmp_path, (list(range(1, len(train) + 1)), train), params={"lr": lr, "epochs": 1})
    assert d.next.override == next_override
    assert [a.override for a in d.alternatives] == alternatives


def test_converged_and_overfit_runs_have_no_alternative_knob(tmp_path):
    steps = list(range(1, 41))
    d = judge(tmp_path, (steps, decay(steps, 3.0, 0.5, 5)), params={"lr": 1e-3, "epochs": 3})
    assert d.verdict == "converged" and d.alternatives == []


# ---------------------------------------------------------------------------------------------
# partial = the process did not finish


def still_falling(max_steps: int = 200, last_checkpoint: str | None = None) -> Curves:
    """60 logged steps of a loss still falling fast, of max_steps planned."""
    steps = steps_of(60)
    train = series_from_points(steps, decay(steps, 3.0, 0.5, 0.02))
    return Curves(None, {"train/loss": train}, None, last_checkpoint, "test", max_steps=max_steps)


def test_a_finished_run_is_never_partial_whatever_its_step_count():
    finished = diagnose(still_falling(), exit_code=0, params={"lr": 1e-4, "epochs": 1})
    assert not any("partial" in r or "interrupted" in r for r in finished.reasons)
    assert "Let it finish" not in finished.next.text and finished.next.override == "epochs=3"
    unknown = diagnose(still_falling(), params={"lr": 1e-4, "epochs": 1})  # a run seen from disk alone
    assert any("partial" in r for r in unknown.reasons)


def test_an_interrupted_run_is_judged_on_what_it_logged_and_told_to_resume():
    ckpt = "/runs/job 1/output/v0-20260101-000000/checkpoint-50"
    found = diagnose(still_falling(last_checkpoint=ckpt), exit_code=-2, interrupted=True, params={"lr": 1e-4})
    assert found.verdict == "underfit"  # not "failed: exit code -2": the stop came from outside
    assert any("interrupted at step 60 of 200" in r for r in found.reasons)
    assert found.next.text.startswith("Resume it") and "checkpoint-50" in found.next.text
    # one shell word that Hydra reads back as the path, spaces included
    assert shlex.split(found.next.override) == [f'+args.resume_from_checkpoint="{ckpt}"']
    assert found.alternatives == []
    no_ckpt = diagnose(still_falling(), exit_code=-2, interrupted=True, params={"lr": 1e-4})
    assert no_ckpt.next.override is None and no_ckpt.next.text.startswith("Run it again")


def test_an_interrupted_run_that_had_already_diverged_is_still_failed():
    steps = steps_of(30)
    values = [3.0] * 20 + [float("nan")] * 10
    curves = Curves(None, {"train/loss": series_from_points(steps, values)}, None, None, "t", max_steps=100)
    found = diagnose(curves, exit_code=-2, interrupted=True, params={"lr": 1e-1})
    assert found.verdict == "failed" and found.next.override == "lr=1e-3"


def test_the_record_says_interrupted_and_the_diagnosis_follows():
    from swiftops.diagnosis import diagnose_recorded
    from swiftops.record import RunRecord

    record = RunRecord(status="interrupted", job_dir="/j", argv=["swift", "sft"], exit_code=-2)
    found = diagnose_recorded(still_falling(), record)
    assert found.verdict == "underfit" and any("interrupted" in r for r in found.reasons)
    record.status, record.exit_code = "completed", 0
    assert not any("partial" in r for r in diagnose_recorded(still_falling(), record).reasons)


# ---------------------------------------------------------------------------------------------
# the failure modes seen on runs the diagnosis was never tuned on, each on a curve built here


@pytest.mark.parametrize(
    "train",
    [
        [4.19, 11.5, 6.6],  # the tutorial's run 1 on a real model: +57% at the end, 3 points
        [2.0, 2.3, 2.8],  # +40%, 3 points: no noise to measure
        [1.0, 1.3, 2.1, 2.76],  # +176%, 4 points
    ],
)
def test_a_short_run_that_ended_above_its_start_is_failed_never_underfit(tmp_path, train):
    d = judge(tmp_path, (steps_of(len(train)), train), params={"lr": 0.1, "epochs": 1})
    assert d.verdict == "failed" and d.evidence["cause"] == "ended_above_start", text(d)
    assert d.next.override == "lr=1e-3" and "Lower" in d.next.text


def test_a_noisy_run_whose_loss_rose_is_never_told_to_raise_the_lr(tmp_path):
    """+40% at the end, but noisy enough that the rise is inside its noise: it never learned, and
    a run whose loss ended higher is never told to raise its lr, however small."""
    steps = steps_of(50)
    loss = noisy([0.85 + 0.35 * s / 50 for s in steps], 0.35, seed=2)
    d = judge(tmp_path, (steps, loss), params={"lr": 1e-5, "epochs": 1})
    assert d.verdict == "failed", text(d)
    assert d.next.override is None or not d.next.override.startswith("lr=1e-4")
    assert "Raise" not in d.next.text


def test_hundreds_of_steps_within_half_a_percent_of_the_start_are_failed(tmp_path):
    steps = steps_of(690, 20, first=20)
    d = judge(tmp_path, (steps, noisy([4.686] * len(steps), 0.002, seed=6)), params={"lr": 2e-4, "epochs": 1})
    assert d.verdict == "failed" and d.evidence["cause"] == "never_learned", text(d)
    assert "never fell beyond its noise" in text(d)
    assert d.next.override is None and "template" in d.next.text


def test_a_noisy_band_with_no_trend_is_failed_not_converged(tmp_path):
    steps = steps_of(1000, 10, first=10)
    d = judge(tmp_path, (steps, noisy([2.2] * len(steps), 0.06, seed=12)), params={"lr": 2e-4, "epochs": 1})
    assert d.verdict == "failed" and d.evidence["cause"] == "never_learned", text(d)


def test_a_classifier_at_chance_level_is_failed_and_its_labels_named(tmp_path):
    """A 3-class head sitting at ln 3 = 1.0986 from start to end."""
    steps = steps_of(500, 10, first=10)
    d = judge(tmp_path, (steps, noisy([math.log(3)] * len(steps), 0.01, seed=3)), params={"lr": 2e-5})
    assert d.verdict == "failed" and d.evidence["classes"] == 3, text(d)
    assert "ln 3" in d.next.text and "labels" in d.next.text


def test_a_long_u_shaped_eval_under_a_noisy_training_loss_is_overfit(tmp_path):
    """120 evals: lowest at 20% of the run, then a sustained rise while training fell slowly under
    heavy batch noise (it moved under two of its own noise units)."""
    steps = steps_of(6000)
    evals = steps_of(6000, 50, first=50)
    train = noisy([2.0 - 0.05 * s / 6000 for s in steps], 0.25, seed=4)
    eval_values = [
        1.6 + 0.6 * (1200 - s) / 1200 if s < 1200 else 1.6 + 0.3 * (s - 1200) / 4800 for s in evals
    ]
    d = judge(tmp_path, (steps, train), (evals, noisy(eval_values, 0.005, seed=5)), params={"epochs": 5})
    assert d.verdict == "overfit", text(d)
    assert 1000 <= d.figures["best_eval_step"] <= 1400
    assert d.next.override == "epochs=1"


def test_a_nan_grad_norm_at_the_first_step_with_a_falling_loss_is_no_divergence(tmp_path):
    steps = steps_of(100)
    grad = [float("nan")] + [1.0] * 99
    run = make_run(tmp_path, None)
    write_events(
        run / "runs",
        {"train/loss": (steps, decay(steps, 4.31, 0.42, 0.08)), "train/grad_norm": (steps, grad)},
    )
    d = diagnose(read_curves(run))
    assert d.verdict != "failed", text(d)
    assert any("grad_norm was NaN/Inf" in w and "no divergence" in w for w in d.warnings)


def test_a_final_line_whose_step_goes_backwards_is_not_the_runs_end(tmp_path):
    """An older LLaMA-Factory log: its last line evaluates the reloaded best checkpoint, with
    current_steps = the number of eval batches (8), so the step goes backwards."""
    run = tmp_path / "saves"
    run.mkdir()
    lines = []
    evals = {100: 1.5, 200: 1.2, 300: 1.3, 400: 1.6, 500: 1.9, 600: 2.2, 700: 2.38}
    for step in range(10, 710, 10):
        lines.append({"current_steps": step, "total_steps": 700, "loss": 2.0 * math.exp(-step / 150) + 0.2})
        if step in evals:
            lines.append({"current_steps": step, "total_steps": 700, "eval_loss": evals[step]})
    lines.append({"current_steps": 8, "total_steps": 700, "eval_loss": 1.2})  # the best, evaluated again
    (run / "trainer_log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    curves = read_curves(run)
    assert list(curves.eval_loss.steps) == sorted(evals) and curves.eval_loss.values[-1] == 2.38
    assert any("went back" in w for w in curves.warnings)
    d = diagnose(curves)
    assert d.verdict == "overfit" and d.figures["best_eval_step"] == 200, text(d)


def test_a_two_point_run_follows_its_evidence_never_barely_moved(tmp_path):
    tripled = judge(tmp_path / "a", ([1, 2], [2.0, 6.1]), params={"lr": 0.1, "epochs": 1})
    assert tripled.verdict == "failed" and tripled.evidence["cause"] == "ended_above_start"
    fell = judge(tmp_path / "b", ([1, 2], [2.0, 1.5]), params={"lr": 1e-4, "epochs": 1})
    assert fell.verdict == "underfit" and fell.confidence < 0.6
    assert "barely moved" not in text(tripled) + text(fell)


def test_a_short_run_that_crashed_is_failed_by_its_exit_whatever_its_points(tmp_path):
    d = judge(tmp_path, ([1, 2, 3], [2.0, 1.9, 1.95]), exit_code=1, params={"lr": 1e-4, "epochs": 1})
    assert d.verdict == "failed" and d.evidence["cause"] == "crashed" and d.confidence == 1.0
    assert "swift.log" in d.next.text and "barely moved" not in text(d)


def test_the_rules_run_in_the_order_the_docstring_lists_them():
    """The module docstring's table, the README's table and RULES list the same rules in one order."""
    from swiftops.diagnosis import RULES, rules
    from swiftops.paths import conf_dir

    names = [r.__name__ for r in RULES]
    row = re.compile(r"^    (\w+) +(failed|underfit|overfit|converged) ")
    table = [m.group(1) for m in map(row.match, rules.__doc__.splitlines()) if m]
    assert table == names
    readme = (conf_dir().parent / "README.md").read_text(encoding="utf-8")
    in_readme = [n for n in names if f"`{n}`" in readme]
    assert in_readme == names
    assert sorted(names, key=lambda n: readme.index(f"`{n}`")) == names
