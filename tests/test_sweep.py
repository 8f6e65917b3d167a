"""Sweeps in-process through Hydra with a stand-in swift: every job recorded, the
end-of-multirun table written even when a job failed, bad values refused up front."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_sweep, start_interruptible

from swiftops.record import find_records, read_record

pytestmark = pytest.mark.sweep


@pytest.fixture
def local_inputs(stand_in_files) -> list[str]:
    """Overrides pointing model and data at small local stand-ins."""
    model, data = stand_in_files
    return [
        f"model.id={model}",
        f"data.dataset=[{data}]",
        "data.test_dataset=null",
        "progress=false",
        "report.enabled=false",
    ]


def test_four_jobs_one_failing_all_recorded_and_table_written(
    hydra_sweep_runner, tmp_path, fake_swift, local_inputs, capsys
):
    sweep_dir = tmp_path / "sweep"
    overrides = [*local_inputs, f"swift_bin={fake_swift}", "lr=1e-4,2.0", "lora_rank=4,8"]
    with run_sweep(hydra_sweep_runner, sweep_dir, overrides) as sweep:
        assert [[r.return_value for r in batch] for batch in sweep.returns] == [
            ["completed", "completed", "failed", "failed"]
        ]
        records = [read_record(p) for p in find_records(sweep_dir)]
        assert [r.job_num for r in records] == [0, 1, 2, 3]
        assert [Path(r.job_dir) for r in records] == [sweep_dir / str(i) for i in range(4)]
        assert [(r.params["lr"], r.params["lora_rank"]) for r in records] == [
            (1e-4, 4),
            (1e-4, 8),
            (2.0, 4),
            (2.0, 8),
        ]
        failed = records[2]
        assert failed.status == "failed" and failed.exit_code == 1
        assert "fake swift crashed" in failed.error
        done = records[0]
        assert done.status == "completed" and done.exit_code == 0
        assert Path(done.run_dir).parent == sweep_dir / "0" / "output"
        assert done.best_checkpoint and Path(done.best_checkpoint).name.startswith("checkpoint-")
        assert (sweep_dir / "0" / "command.sh").read_text().count("--learning_rate 0.0001") == 1
        assert "--lora_rank 8" in (sweep_dir / "1" / "command.sh").read_text()

        rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
        assert [row["status"] for row in rows] == ["completed", "completed", "failed", "failed"]
        assert {"lr", "lora_rank", "verdict", "next_override", "error"} <= set(rows[0])
    out = capsys.readouterr().out
    assert "| job |" in out.replace("|   job |", "| job |") or "job" in out.splitlines()[0] or "job" in out


def test_a_bad_value_anywhere_in_the_sweep_stops_it_before_any_job(
    hydra_sweep_runner, tmp_path, fake_swift, local_inputs, capsys
):
    sweep_dir = tmp_path / "sweep"
    overrides = [*local_inputs, f"swift_bin={fake_swift}", "lr=1e-4,-5", "epochs=1,0"]
    with pytest.raises(SystemExit) as stop, run_sweep(hydra_sweep_runner, sweep_dir, overrides):
        pass
    assert stop.value.code == 2
    message = capsys.readouterr().err
    assert "lr (train.learning_rate) = -5" in message
    assert "epochs (train.num_train_epochs) = 0" in message
    assert not find_records(sweep_dir)


def test_dry_run_prints_every_command_and_runs_nothing(
    hydra_sweep_runner, tmp_path, fake_swift, local_inputs, capsys
):
    sweep_dir = tmp_path / "sweep"
    overrides = [*local_inputs, f"swift_bin={fake_swift}", "lr=1e-1,5e-5", "dry_run=true"]
    with run_sweep(hydra_sweep_runner, sweep_dir, overrides):
        assert not find_records(sweep_dir)
        assert not list(sweep_dir.glob("*/output"))
    out = capsys.readouterr().out
    assert out.count(f"{fake_swift} sft ") == 2
    assert "--learning_rate 0.1" in out and "--learning_rate 5e-05" in out


def test_interrupted_sweep_records_the_rest_and_still_writes_the_table(tmp_path, fake_swift, local_inputs):
    """SIGINT to the orchestrator mid-job: that job is interrupted, the rest never start, table written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sweep_dir = tmp_path / "sweep"
    env = dict(os.environ, FAKE_SWIFT_STEP_SECONDS="1")
    cmd = [
        sys.executable,
        "-m",
        "swiftops",
        "-m",
        *local_inputs,
        f"swift_bin={fake_swift}",
        "lr=1e-4,5e-5,3e-5",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = start_interruptible(
        cmd,
        env=env,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(sweep_dir.glob("0/output/v*/logging.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    records = [read_record(p) for p in find_records(sweep_dir)]
    assert [r.status for r in records] == ["interrupted"] * 3, out
    assert records[0].run_dir and records[0].exit_code is not None
    assert "not started" in records[1].error
    assert (sweep_dir / "summary.csv").exists(), out
    # no stand-in swift left running
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(fake_swift) not in ps
    assert json.loads((sweep_dir / "0" / "run.json").read_text())["status"] == "interrupted"
