"""The real `swift sft -> infer -> export` on the built-in tiny model, on CPU: results, scores and
the merged model land in the job folder, `ckpt=best` is the lowest eval loss, and re-running
export is safe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import compose_config
from helpers_cli import swiftops

from swiftops.configs import job_config
from swiftops.installed_swift import find_swift
from swiftops.job import run_stages
from swiftops.record import read_record
from swiftops.runfolder import choose_checkpoint, resolve_checkpoint
from swiftops.stages.existing import load_run

pytestmark = pytest.mark.integration

# small and quick: the built-in math set (the same bytes everywhere, with or without
# the tutorial's files), an eval and a checkpoint every 3 steps, all kept, without optimizer
# state; 32 new tokens per test answer. The exam scorer applies to its {{ans:N}} answers.
TINY_RUN = [
    "data=tutorial_100",
    "data.dataset=[${swiftops.tiny:math_train_100}]",
    "data.test_dataset=${swiftops.tiny:math_test}",
    "data.split_dataset_ratio=0.1",
    "batch_size=4",
    "grad_accum=1",
    "eval_steps=3",
    "train.save_total_limit=50",
    "+args.save_only_model=true",
    "max_length=512",
    "++infer.max_new_tokens=32",
    "progress=false",
    "report.enabled=false",
]
# overfits within 3 epochs (rank 32 at a constant 3e-2 on 90 problems), so the lowest eval
# loss comes well before the last step and `best` is not `last` (measured: eval loss 2.87 at
# step 36 of 69, 3.60 at the end; a diverging lr 0.1 run kept creeping down and ended lowest)
OVERFITTING = ["lr=3e-2", "epochs=3", "lora_rank=32", "train.lr_scheduler_type=constant"]


def count_rows(path: str) -> int:
    return sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())


def eval_losses(run_dir: Path) -> dict[int, float]:
    """step -> eval loss, straight from logging.jsonl's eval lines."""
    losses = {}
    for line in (run_dir / "logging.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "eval_loss" in row and math.isfinite(row["eval_loss"]):
            losses[int(row["global_step/max_steps"].split("/")[0])] = row["eval_loss"]
    return losses


def lowest_eval_checkpoint(run_dir: Path) -> Path:
    losses = eval_losses(run_dir)
    saved = {s: v for s, v in losses.items() if (run_dir / f"checkpoint-{s}").is_dir()}
    return run_dir / f"checkpoint-{min(saved, key=saved.get)}"


def assert_merged_model(folder: Path) -> None:
    names = {p.name for p in folder.iterdir()}
    assert "config.json" in names, names
    assert any(n.endswith(".safetensors") for n in names), names


@pytest.fixture(scope="module")
def overfitting_job(tmp_path_factory):
    """One real training run, driven through swiftops.job and swiftops.stages in-process, that
    overfits, so the lowest eval loss comes early and `best` is not simply `last`."""
    from swiftops.job import JobContext, run_sft
    from swiftops.prepare import prepare_job

    job_dir = tmp_path_factory.mktemp("stages") / "job"
    cfg = job_config(compose_config([*TINY_RUN, *OVERFITTING, "stages=[sft,infer,export]"]))
    cfg = prepare_job(cfg, job_dir)
    swift_bin = find_swift(None)
    record = run_sft(cfg, JobContext(job_dir=job_dir, swift_bin=swift_bin, progress=False))
    assert record.status == "completed", record.error
    record = run_stages(cfg, record, job_dir=job_dir, swift_bin=swift_bin, progress=False)
    return cfg, record, job_dir, swift_bin


def test_infer_scores_every_test_row_of_the_best_checkpoint(overfitting_job):
    cfg, _, job_dir, _ = overfitting_job
    infer = read_record(job_dir).stages["infer"]
    assert infer["status"] == "completed", infer.get("error")
    result = job_dir / "infer" / "result.jsonl"
    rows = [json.loads(line) for line in result.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == count_rows(cfg["data"]["test_dataset"]) == infer["n"]
    assert all("response" in r and "{{ans:" in r["labels"] for r in rows)
    assert infer["scorer"] == "exam" and 0 <= infer["score"] <= 100
    assert len(json.loads((job_dir / "infer" / "score.json").read_text())["per_item"]) == len(rows)
    baseline = infer["baseline"]
    assert baseline["status"] == "completed" and 0 <= baseline["score"] <= 100
    assert baseline["n"] == len(rows) and (job_dir / "baseline" / "result.jsonl").is_file()


def test_best_is_the_checkpoint_with_the_lowest_eval_loss_in_the_logs(overfitting_job):
    _, record, job_dir, _ = overfitting_job
    run_dir = Path(record.run_dir)
    checkpoints = sorted(run_dir.glob("checkpoint-*"))
    assert len(checkpoints) >= 3, checkpoints
    expected = lowest_eval_checkpoint(run_dir)
    last = max(checkpoints, key=lambda p: int(p.name.split("-")[1]))
    assert expected != last, (
        f"the lowest eval loss came at the last checkpoint, so this run can't tell best from last; "
        f"retune OVERFITTING: {eval_losses(run_dir)}"
    )
    assert resolve_checkpoint(record, "best") == expected
    assert resolve_checkpoint(load_run(run_dir), "best") == expected  # read from the bare run folder
    assert resolve_checkpoint(record, "last") == last
    stages = read_record(job_dir).stages
    assert stages["infer"]["checkpoint"] == stages["export"]["checkpoint"] == str(expected)


def test_export_merges_into_the_job_folder_and_can_run_again(overfitting_job):
    cfg, record, job_dir, swift_bin = overfitting_job
    export = read_record(job_dir).stages["export"]
    assert export["status"] == "completed", export.get("error")
    merged = job_dir / "export" / "merged"
    assert export["output_dir"] == str(merged)
    assert_merged_model(merged)
    first = (merged / "config.json").stat().st_mtime_ns

    again = run_stages(
        {**cfg, "stages": ["export"]}, record, job_dir=job_dir, swift_bin=swift_bin, progress=False
    )
    assert again.stages["export"]["status"] == "completed", again.stages["export"].get("error")
    assert_merged_model(merged)
    assert (merged / "config.json").stat().st_mtime_ns > first  # really written again


def test_ckpt_best_on_a_run_without_checkpoints_is_recorded_with_the_run_named(overfitting_job, tmp_path):
    cfg, _, _, swift_bin = overfitting_job
    empty_run = tmp_path / "output" / "v0-20260101-000000"
    empty_run.mkdir(parents=True)
    (empty_run / "logging.jsonl").write_text("")
    record = load_run(empty_run)
    with pytest.raises(ValueError, match="no checkpoints"):
        choose_checkpoint(record, "best")
    record = run_stages(
        {**cfg, "stages": ["infer"]}, record, job_dir=tmp_path / "job", swift_bin=swift_bin, progress=False
    )
    infer = read_record(tmp_path / "job").stages["infer"]
    assert infer["status"] == "failed" and str(empty_run) in infer["error"]


def test_sft_infer_export_through_the_app(tmp_path):
    """`python -m swiftops stages=[sft,infer,export]`, then `stages=[export] run=JOB` on it."""
    job = tmp_path / "job"
    done = swiftops(*TINY_RUN, "epochs=1", "stages=[sft,infer,export]", f"hydra.run.dir={job}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    record = read_record(job)
    assert record.status == "completed"
    assert [record.stages[s]["status"] for s in ("sft", "infer", "export")] == ["completed"] * 3
    infer = record.stages["infer"]
    assert count_rows(infer["test_dataset"]) == infer["n"] == count_rows(infer["result_path"])
    assert isinstance(infer["score"], float) and isinstance(infer["baseline"]["score"], float)
    assert_merged_model(job / "export" / "merged")

    again = tmp_path / "again"
    done = swiftops(
        *TINY_RUN,
        "epochs=1",
        "stages=[export]",
        f"run={job}",
        "ckpt=last",
        f"hydra.run.dir={again}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    export = read_record(again).stages["export"]
    assert export["status"] == "completed" and export["checkpoint"] == str(resolve_checkpoint(record, "last"))
    assert_merged_model(again / "export" / "merged")
