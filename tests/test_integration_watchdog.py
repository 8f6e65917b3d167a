"""The live watchdog and ms-swift's early stop on the REAL swift CLI with the built-in tiny model (CPU)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import commands_with
from helpers_cli import swiftops

from swiftops.record import read_record
from swiftops.runfolder import choose_checkpoint

pytestmark = pytest.mark.integration


def test_the_watchdog_stops_a_real_nan_run_early_and_leaves_no_swift_behind(tmp_path):
    """LoRA at lr 1e3 goes NaN by step 8 of 240; trained to its end it would take about 80 s."""
    job = tmp_path / "job"
    done = swiftops("lr=1e3", "epochs=20", f"hydra.run.dir={job}", "report.enabled=false", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # a single failed run exits 1
    record = read_record(job)
    assert record.status == "failed" and record.stopped_by == "watchdog" and record.verdict == "failed"
    sft = record.stages["sft"]
    assert sft["stopped_by"] == "watchdog" and sft["max_steps"] == 240
    assert sft["stopped_at_step"] <= 24, sft  # 90% of the planned steps not trained
    first = record.diagnosis["reasons"][0]
    assert re.match(r"stopped by the watchdog at step \d+ of 240: NaN/Inf in training loss", first), first
    assert record.diagnosis["next"]["override"] == "lr=10"
    assert commands_with(str(job / "output")) == []
    # what the console says last is the stop's sentence, not swift's KeyboardInterrupt
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"swiftops: the run failed: {first}"), last
    assert "KeyboardInterrupt" not in done.stdout


def test_early_stop_ends_a_real_run_on_its_best_checkpoint(tmp_path):
    """lr 1e-2 on the demo data: the eval loss stops reaching new lows after about 85 of 240 steps.
    With a patience of 2 evals and save_total_limit 2, the checkpoint saved after the best one is
    rotated away while the best one is kept: the verdict, the record and ckpt=best name the same one."""
    job = tmp_path / "job"
    done = swiftops(
        "lr=1e-2",
        "epochs=20",
        "eval_steps=4",
        "early_stop=true",
        "early_stop_patience=2",
        f"hydra.run.dir={job}",
        "report.enabled=false",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = read_record(job)
    assert "--early_stop_interval" in record.argv
    assert "Training stop because of eval metric is stable" in Path(record.log_path).read_text()
    figures = record.diagnosis["figures"]
    assert figures["steps"] < figures["max_steps"] == 240, figures
    best = Path(record.best_checkpoint)
    assert best.is_dir() and best.name == f"checkpoint-{figures['best_eval_step']}"
    assert figures["best_checkpoint"] == record.best_checkpoint
    assert record.last_checkpoint != record.best_checkpoint
    # save_total_limit 2 deleted the checkpoints between the best and the last, never the best
    kept = sorted(p.name for p in Path(record.run_dir).glob("checkpoint-*"))
    assert kept == sorted({best.name, Path(record.last_checkpoint).name}), kept
    assert figures["steps"] == int(Path(record.last_checkpoint).name.split("-")[1])
    assert choose_checkpoint(record, "best").path == best.resolve()
    # the verdict agrees: a complete curve whose best checkpoint is the one to use
    reasons = " | ".join(record.diagnosis["reasons"])
    assert "ms-swift's early stop ended the run" in reasons and "partial" not in reasons
    assert record.verdict in ("overfit", "converged"), reasons
    if record.verdict == "converged":
        assert record.diagnosis["next"]["override"].endswith("ckpt=best")
    else:
        assert record.best_checkpoint in record.diagnosis["next"]["text"]
