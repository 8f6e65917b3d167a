"""resume=true: the decision for each job of a sweep re-run into its own folder (kept, re-run,
resumed from its last checkpoint, run), named on the console, in run.json and in the table; and a
changed config refused, naming the keys that changed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import standin_sweep_argv, start_interruptible

from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RUNNING, RunRecord, find_records, read_record
from swiftops.resume import KEEP, RERUN, RESUME, RUN, config_changes, decide, decision_text
from swiftops.runfolder import last_resumable_checkpoint


def record(status: str, **fields) -> RunRecord:
    return RunRecord(status=status, job_dir="/j", argv=[], **fields)


@pytest.mark.parametrize(
    ("earlier", "checkpoint", "action", "why"),
    [
        (None, None, RUN, "never started"),
        (
            record(COMPLETED, verdict="converged"),
            "/c/checkpoint-9",
            KEEP,
            "completed, config unchanged: converged",
        ),
        (record(FAILED), "/c/checkpoint-9", RERUN, "it failed"),
        (record(INTERRUPTED), "/c/checkpoint-9", RESUME, "interrupted"),
        (record(INTERRUPTED), None, RERUN, "interrupted before its first checkpoint"),
        (record(RUNNING), "/c/checkpoint-4", RESUME, "its orchestrator was killed"),
        (record(INTERRUPTED, stages={"sft": {"status": "skipped"}}), None, RUN, "never started: the sweep"),
    ],
)
def test_each_earlier_outcome_has_its_decision(earlier, checkpoint, action, why):
    decision = decide(earlier, checkpoint)
    assert decision.action == action and decision.why.startswith(why)
    assert decision.checkpoint == (checkpoint if action == RESUME else None)


def test_resume_continues_from_the_last_whole_checkpoint_of_the_newest_run(tmp_path):
    def checkpoint(run: str, step: int, *, whole: bool = True) -> Path:
        path = tmp_path / run / f"checkpoint-{step}"
        path.mkdir(parents=True)
        (path / "adapter_config.json").write_text("{}")
        if whole:  # the trainer writes trainer_state.json last
            (path / "trainer_state.json").write_text("{}")
        return path

    assert last_resumable_checkpoint(tmp_path) is None
    checkpoint("v0-20260101-000000", 5)
    checkpoint("v0-20260101-000000", 10, whole=False)  # a stop while it was being saved
    assert last_resumable_checkpoint(tmp_path) == str(tmp_path / "v0-20260101-000000" / "checkpoint-5")
    # a resumed run that saved nothing yet: its earlier run still holds the checkpoint to use
    (tmp_path / "v1-20260101-010000").mkdir()
    assert last_resumable_checkpoint(tmp_path).endswith("v0-20260101-000000/checkpoint-5")
    newest = checkpoint("v1-20260101-010000", 15)
    assert last_resumable_checkpoint(tmp_path) == str(newest)


def test_a_decision_reads_the_same_from_run_json():
    decision = decide(record(INTERRUPTED), "/run/v0/checkpoint-10")
    assert decision.text == "resumed from checkpoint-10 (interrupted)"
    assert decision_text(decision.to_dict()) == decision.text


def test_config_changes_name_each_key_and_ignore_how_the_sweep_runs():
    old = {
        "lr": 0.1,
        "train": {"learning_rate": 0.1, "lora_rank": 8},
        "jobs": 1,
        "progress": True,
        "args": {},
    }
    new = {"lr": 0.05, "train": {"learning_rate": 0.05, "lora_rank": 8}, "jobs": 4, "progress": False}
    new["args"] = {"lora_dropout": 0.1}
    assert config_changes(old, new) == [
        "args.lora_dropout: <unset> -> 0.1",
        "lr: 0.1 -> 0.05",
        "train.learning_rate: 0.1 -> 0.05",
    ]
    assert config_changes(old, {**old, "resume": True, "runtime": {"gpus": [0, 1]}}) == []


# ---------------------------------------------------------------- a sweep, stopped and resumed


def argv(tmp_path: Path, fake_swift: Path, stand_in_files, *overrides: str) -> list[str]:
    # completes, crashes (lr >= 1), is interrupted, never starts
    return standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "lr=1e-3,2,5e-4,2e-4", *overrides)


def interrupted_sweep(tmp_path: Path, fake_swift: Path, stand_in_files) -> None:
    """Jobs 0 and 1 end on their own, job 2 is stopped (SIGTERM) after its first checkpoint,
    job 3 never starts."""
    env = {**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.1", "FAKE_SWIFT_CALLS": str(tmp_path / "calls")}
    proc = start_interruptible(argv(tmp_path, fake_swift, stand_in_files), cwd=tmp_path, env=env)
    deadline = time.monotonic() + 120
    while not last_resumable_checkpoint(tmp_path / "sweep" / "2" / "output"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=90)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, out
    statuses = [read_record(p).status for p in find_records(tmp_path / "sweep")]
    assert statuses == [COMPLETED, FAILED, INTERRUPTED, INTERRUPTED], out


def resume(tmp_path: Path, fake_swift: Path, stand_in_files, *overrides: str):
    env = {**os.environ, "FAKE_SWIFT_CALLS": str(tmp_path / "calls-resumed")}
    command = argv(tmp_path, fake_swift, stand_in_files, "resume=true", *overrides)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.sweep
def test_resume_keeps_completed_jobs_and_runs_the_rest(tmp_path, fake_swift, stand_in_files):
    interrupted_sweep(tmp_path, fake_swift, stand_in_files)
    kept_before = (tmp_path / "sweep" / "0" / "run.json").read_text()
    done = resume(tmp_path, fake_swift, stand_in_files)
    assert done.returncode == 0, done.stdout + done.stderr

    # the decisions, on the console before any job starts
    assert "job 0: kept (completed, config unchanged: " in done.stdout
    assert "job 1: re-run (it failed)" in done.stdout
    assert "job 2: resumed from checkpoint-" in done.stdout
    assert "job 3: run (never started: the sweep was interrupted before it)" in done.stdout

    found = [read_record(p) for p in find_records(tmp_path / "sweep")]
    assert [r.status for r in found] == [COMPLETED, FAILED, COMPLETED, COMPLETED]  # job 1 fails again
    assert [r.resume["action"] for r in found] == [KEEP, RERUN, RESUME, RUN]
    # the kept job trained no more: its verdict and figures are the ones it had
    kept = read_record(tmp_path / "sweep" / "0")
    assert kept.verdict
    assert {**kept.to_dict(), "resume": None} == {**json.loads(kept_before), "resume": None}
    assert (tmp_path / "calls-resumed").read_text().split() == ["sft", "sft", "sft"]
    # the interrupted job continues from its checkpoint
    checkpoint = found[2].resume["checkpoint"]
    assert f"--resume_from_checkpoint {checkpoint}" in " ".join(found[2].argv)
    assert "resume_from_checkpoint" in (tmp_path / "sweep" / "2" / "command.sh").read_text()
    assert "args.resume_from_checkpoint" not in found[2].params  # not a knob to compare runs by

    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert rows[0]["resume"].startswith("kept (completed") and rows[2]["resume"].startswith("resumed from")
    page = next((tmp_path / "reports").glob("*.html")).read_text()
    assert "resumed from checkpoint-" in page and 'data-col="resume"' in page


@pytest.mark.sweep
def test_a_changed_config_in_the_same_folder_is_refused_naming_the_keys(tmp_path, fake_swift, stand_in_files):
    interrupted_sweep(tmp_path, fake_swift, stand_in_files)
    before = {p: p.read_text() for p in (tmp_path / "sweep").glob("*/run.json")}
    done = resume(tmp_path, fake_swift, stand_in_files, "epochs=5")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "lr=0.001 epochs=5) in " in done.stderr
    assert "was run with another config: epochs: 3 -> 5; train.num_train_epochs: 3 -> 5" in done.stderr
    assert "sweep into a new folder" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "calls-resumed").exists()  # nothing ran
    assert {p: p.read_text() for p in before} == before  # nothing was touched


@pytest.mark.sweep
def test_records_from_before_configs_were_kept_are_matched_by_their_overrides(
    tmp_path, fake_swift, stand_in_files
):
    interrupted_sweep(tmp_path, fake_swift, stand_in_files)
    for path in (tmp_path / "sweep").glob("*/run.json"):
        data = json.loads(path.read_text())
        data.pop("config")  # as an earlier swiftops wrote it
        path.write_text(json.dumps(data))
    done = resume(tmp_path, fake_swift, stand_in_files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job 0: kept (completed, config unchanged" in done.stdout
    changed = resume(tmp_path, fake_swift, stand_in_files, "lora_rank=4")
    assert changed.returncode == 2 and "overrides: [" in changed.stderr and "'lora_rank=4'" in changed.stderr


@pytest.mark.sweep
def test_records_with_a_bare_dataset_path_are_the_config_of_today(tmp_path, fake_swift, stand_in_files):
    """A record written when data.dataset=PATH (no brackets) stayed a string reads as the one-item list
    it is today, not as a changed config."""
    interrupted_sweep(tmp_path, fake_swift, stand_in_files)
    for path in (tmp_path / "sweep").glob("*/run.json"):
        data = json.loads(path.read_text())
        data["config"]["data"]["dataset"] = data["config"]["data"]["dataset"][0]  # as an earlier swiftops
        path.write_text(json.dumps(data))
    done = resume(tmp_path, fake_swift, stand_in_files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job 0: kept (completed, config unchanged" in done.stdout
