"""early_stop=true: ms-swift's own early stop, recognised in a command line and in the diagnosis of
the run it ended (the real run is in tests/test_integration_watchdog.py)."""

from __future__ import annotations

from helpers_events import decay, steps_of

from swiftops.curves import Curves, series_from_points
from swiftops.diagnosis import diagnose
from swiftops.record import RunRecord


def early_stop_on(*flags: str) -> bool:
    return RunRecord(status="completed", job_dir="/j", argv=["swift", "sft", *flags]).early_stop_on


def test_early_stop_is_read_from_the_recorded_command_line():
    assert early_stop_on("--early_stop_interval", "3", "--seed", "1")
    assert not early_stop_on("--early_stop_interval", "0")
    assert not early_stop_on("--seed", "1")
    assert not early_stop_on("--early_stop_interval")


def ended_early() -> Curves:
    """Stopped by ms-swift at step 60 of 200: the eval loss had its lowest at step 40."""
    steps = steps_of(60)
    train = series_from_points(steps, decay(steps, 3.0, 1.0, 0.05))
    evals = series_from_points([10, 20, 30, 40, 50, 60], [2.5, 1.9, 1.6, 1.5, 1.52, 1.51])
    return Curves(None, {"train/loss": train, "eval/loss": evals}, None, None, "test", max_steps=200)


def test_a_run_ended_by_early_stop_is_complete_not_partial():
    params = {"lr": 1e-4, "epochs": 10}
    cut = diagnose(ended_early(), params=params)
    ended = diagnose(ended_early(), params=params, early_stopped=True)
    assert any("partial" in r for r in cut.reasons)
    assert not any("partial" in r for r in ended.reasons)
    assert "ms-swift's early stop ended the run at step 60 of 200" in ended.reasons[-1]
    assert ended.confidence >= cut.confidence
    assert "Let it finish" not in ended.next.text
