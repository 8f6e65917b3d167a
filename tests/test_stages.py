"""Checkpoint resolution, reading existing runs, and the infer/export stages driven against the
stand-in swift (tests/fake_swift.py): what each stage records, skips and caches."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from swiftops.job import run_stages
from swiftops.record import RunRecord, read_record, write_record
from swiftops.runfolder import CheckpointError, checkpoints, choose_checkpoint, resolve_checkpoint
from swiftops.stages.entry import print_failures, stage_failures
from swiftops.stages.existing import load_run
from swiftops.stages.infer import baseline_score


def make_run(
    root: Path,
    *,
    evals: dict[int, float] | None = None,
    steps: list[int] = (5, 10, 15),
    summary: bool = True,
    trainer_state: bool = False,
    name: str = "v0-20260101-000000",
) -> Path:
    """A swift run folder as ms-swift 4 leaves it: logging.jsonl, checkpoint-N folders, and the
    summary line naming the best (lowest eval loss) and the last checkpoint."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    evals = evals or {}
    lines = []
    for step in steps:
        ckpt = run_dir / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_config.json").write_text("{}")
        lines.append({"loss": 1.0, "global_step/max_steps": f"{step}/{max(steps)}"})
        if step in evals:
            lines.append({"eval_loss": evals[step], "global_step/max_steps": f"{step}/{max(steps)}"})
    finite = {s: v for s, v in evals.items() if v == v}
    best = str(run_dir / f"checkpoint-{min(finite, key=finite.get)}") if finite else None
    if summary:
        last = str(run_dir / f"checkpoint-{max(steps)}") if steps else None
        lines.append({"last_model_checkpoint": last, "best_model_checkpoint": best, "global_step": 15})
    (run_dir / "logging.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if trainer_state and steps:
        state = {"best_model_checkpoint": best, "global_step": max(steps)}
        (run_dir / f"checkpoint-{max(steps)}" / "trainer_state.json").write_text(json.dumps(state))
    return run_dir


def record_for(run_dir: Path | None, job_dir: Path, **fields) -> RunRecord:
    return RunRecord(
        status=fields.pop("status", "completed"),
        job_dir=str(job_dir),
        argv=["swift", "sft"],
        output_dir=str(run_dir.parent) if run_dir else str(job_dir / "output"),
        run_dir=str(run_dir) if run_dir else None,
        **fields,
    )


# ---------------------------------------------------------------- checkpoints


def test_best_is_the_lowest_eval_loss_and_last_the_highest_step(tmp_path):
    run_dir = make_run(tmp_path, evals={5: 2.0, 10: 1.2, 15: 1.6})
    record = record_for(run_dir, tmp_path)
    assert resolve_checkpoint(record, "best") == run_dir / "checkpoint-10"
    assert resolve_checkpoint(record, "last") == run_dir / "checkpoint-15"
    choice = choose_checkpoint(record, "best")
    assert (choice.rule, choice.note) == ("best", "lowest eval loss")


def test_best_comes_from_the_record_first(tmp_path):
    run_dir = make_run(tmp_path, evals={5: 2.0, 10: 1.2, 15: 1.6})
    record = record_for(run_dir, tmp_path, best_checkpoint=str(run_dir / "checkpoint-5"))
    assert resolve_checkpoint(record, "best") == run_dir / "checkpoint-5"


def test_best_of_a_killed_run_without_summary(tmp_path):
    """No summary line: trainer_state.json of the newest checkpoint, else the eval lines."""
    with_state = make_run(tmp_path / "a", evals={5: 2.0, 10: 1.2, 15: 1.6}, summary=False, trainer_state=True)
    assert resolve_checkpoint(record_for(with_state, tmp_path), "best").name == "checkpoint-10"
    bare = make_run(tmp_path / "b", evals={5: 0.9, 10: 1.2, 15: 1.6}, summary=False)
    assert resolve_checkpoint(record_for(bare, tmp_path), "best").name == "checkpoint-5"


def test_best_falls_back_to_last_when_no_eval_ran_or_eval_was_nan(tmp_path):
    no_eval = make_run(tmp_path / "a", evals={})
    choice = choose_checkpoint(record_for(no_eval, tmp_path), "best")
    assert (choice.path.name, choice.rule) == ("checkpoint-15", "last")
    assert "no eval loss" in choice.note
    nan = make_run(tmp_path / "b", evals={5: float("nan"), 10: float("nan")}, summary=False)
    assert resolve_checkpoint(record_for(nan, tmp_path), "best").name == "checkpoint-15"


def test_checkpoints_sort_by_step_not_by_name(tmp_path):
    run_dir = make_run(tmp_path, steps=[20, 100, 5], summary=False)
    (run_dir / "checkpoint-100-merged").mkdir()  # swift export's default output is not a checkpoint
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-5", "checkpoint-20", "checkpoint-100"]
    assert resolve_checkpoint(record_for(run_dir, tmp_path), "last").name == "checkpoint-100"


def test_a_path_is_taken_as_it_is_and_a_missing_one_is_refused(tmp_path):
    run_dir = make_run(tmp_path, evals={5: 1.0})
    record = record_for(run_dir, tmp_path)
    assert resolve_checkpoint(record, str(run_dir / "checkpoint-10")) == run_dir / "checkpoint-10"
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        resolve_checkpoint(record, str(tmp_path / "nope"))


def test_no_checkpoints_is_a_clear_error_naming_the_run_and_its_contents(tmp_path):
    run_dir = make_run(tmp_path, steps=[], evals={})
    with pytest.raises(CheckpointError) as caught:
        resolve_checkpoint(record_for(run_dir, tmp_path), "best")
    message = str(caught.value)
    assert str(run_dir) in message and "no checkpoints" in message and "logging.jsonl" in message
    job = tmp_path / "job"
    with pytest.raises(CheckpointError, match="the folder does not exist"):
        resolve_checkpoint(record_for(None, job), "last")


def test_recorded_paths_of_a_moved_run_are_found_in_its_new_place(tmp_path):
    run_dir = make_run(tmp_path / "old", evals={5: 2.0, 10: 1.2})
    moved = tmp_path / "new" / run_dir.name
    moved.parent.mkdir()
    run_dir.rename(moved)
    record = record_for(moved, tmp_path, best_checkpoint=str(run_dir / "checkpoint-10"))
    assert resolve_checkpoint(record, "best") == moved / "checkpoint-10"


# ---------------------------------------------------------------- existing runs


def test_load_run_from_a_job_folder_a_run_folder_an_output_dir_or_a_checkpoint(tmp_path):
    job = tmp_path / "job"
    run_dir = make_run(job / "output", evals={5: 2.0, 10: 1.2, 15: 1.6})
    write_record(record_for(run_dir, job, verdict="converged"))
    assert load_run(job).verdict == "converged"
    assert load_run(job / "run.json").run_dir == str(run_dir)

    for given in (run_dir, job / "output", run_dir / "checkpoint-5"):
        record = load_run(given)
        assert (record.status, record.run_dir) == ("completed", str(run_dir))
        assert Path(record.best_checkpoint).name == "checkpoint-10"
        assert Path(record.last_checkpoint).name == "checkpoint-15"
        assert resolve_checkpoint(record, "best") == run_dir / "checkpoint-10"


def test_load_run_takes_the_newest_of_several_runs(tmp_path):
    make_run(tmp_path, name="v0-20260101-000000")
    newest = make_run(tmp_path, name="v11-20260101-000100")
    make_run(tmp_path, name="v2-20260101-000200")
    assert load_run(tmp_path).run_dir == str(newest)


def test_load_run_of_a_moved_job_folder(tmp_path):
    job = tmp_path / "job"
    run_dir = make_run(job / "output", evals={5: 2.0})
    write_record(record_for(run_dir, job))
    job.rename(tmp_path / "elsewhere")
    record = load_run(tmp_path / "elsewhere")
    assert record.run_dir == str(tmp_path / "elsewhere" / "output" / run_dir.name)
    assert resolve_checkpoint(record, "best").name == "checkpoint-5"


def test_load_run_of_something_else_names_the_path_and_what_is_there(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError) as caught:
        load_run(tmp_path)
    assert str(tmp_path) in str(caught.value) and "notes.txt" in str(caught.value)


def test_load_run_of_a_sweep_folder_points_at_its_jobs(tmp_path):
    for num in (10, 2):
        trained_job(tmp_path, name=str(num))
    with pytest.raises(
        CheckpointError, match=f"It is a sweep: give one of its jobs, e.g. run={tmp_path / '2'}"
    ):
        load_run(tmp_path)


# ---------------------------------------------------------------- stages with the stand-in swift


EXAM_ROWS = [("小明有3个苹果，又买了4个，共几个？", "3+4=7 {{ans:7}}"), ("5乘6是多少？", "5×6=30 {{ans:30}}")]


def write_test_set(path: Path, rows) -> Path:
    lines = [
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
        for q, a in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stage_cfg(tmp_path: Path, stages: list[str], *, ckpt: str = "best", **data) -> dict:
    test = write_test_set(tmp_path / "test.jsonl", EXAM_ROWS)
    return {
        "model": {
            "id": str(tmp_path / "base"),
            "model_type": "qwen2",
            "template": "qwen",
            "torch_dtype": None,
        },
        "data": {"test_dataset": str(test), "system": None, "model_name": None, "model_author": None, **data},
        "runtime": {"env": {"CUDA_VISIBLE_DEVICES": ""}, "flags": {"check_model": False, "fp16": False}},
        "stages": stages,
        "ckpt": ckpt,
        "infer": {"max_new_tokens": 16},
    }


@pytest.fixture
def calls(tmp_path, monkeypatch) -> Path:
    """The file the stand-in swift appends each launched command to."""
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_SWIFT_CALLS", str(path))
    return path


def launched(calls: Path) -> list[str]:
    return calls.read_text().split() if calls.exists() else []


def trained_job(tmp_path: Path, name: str = "job", **fields) -> tuple[RunRecord, Path]:
    job = tmp_path / name
    run_dir = make_run(job / "output", evals={5: 2.0, 10: 1.2, 15: 1.6})
    record = record_for(run_dir, job, **fields)
    write_record(record)
    return record, run_dir


def test_infer_and_export_record_results_scores_and_paths(tmp_path, fake_swift, calls, capsys):
    record, run_dir = trained_job(tmp_path)
    job = Path(record.job_dir)
    cfg = stage_cfg(tmp_path, ["sft", "infer", "export"])
    record = run_stages(cfg, record, job_dir=job, swift_bin=str(fake_swift))

    infer = read_record(job).stages["infer"]
    assert infer["status"] == "completed" and infer["exit_code"] == 0
    assert infer["checkpoint"] == str(run_dir / "checkpoint-10") and infer["checkpoint_rule"] == "best"
    rows = (job / "infer" / "result.jsonl").read_text().splitlines()
    assert len(rows) == len(EXAM_ROWS) == infer["n"]
    assert (infer["scorer"], infer["score"]) == ("exam", 100.0)  # the stand-in answers as taught
    assert infer["baseline"]["score"] == 0.0 and infer["baseline"]["status"] == "completed"
    assert Path(infer["baseline"]["path"]) == job / "baseline"  # a single job keeps its own
    assert len(json.loads((job / "infer" / "score.json").read_text())["per_item"]) == 2
    assert "--check_model" not in infer["argv"]  # swift infer rejects it (remaining_argv)
    assert infer["argv"][infer["argv"].index("--max_new_tokens") + 1] == "16"
    assert (job / "infer.log").read_text().startswith("$ ")

    export = read_record(job).stages["export"]
    assert export["status"] == "completed"
    assert export["output_dir"] == str(job / "export" / "merged")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (job / "export" / "merged").iterdir()}
    assert launched(calls) == ["infer", "infer", "export"]
    assert "infer: completed, score 100/100 (exam, 2 rows), base model 0/100" in capsys.readouterr().out

    # again: the result file is replaced, not appended to; the merge overwrites; the baseline is reused
    record = run_stages(cfg, record, job_dir=job, swift_bin=str(fake_swift), progress=False)
    again = read_record(job).stages
    assert len((job / "infer" / "result.jsonl").read_text().splitlines()) == len(EXAM_ROWS)
    assert again["export"]["status"] == "completed" and again["infer"]["baseline"]["cached"] is True
    assert launched(calls) == ["infer", "infer", "export", "infer", "export"]


def test_stages_of_a_failed_run_are_skipped_not_raised(tmp_path, fake_swift, calls):
    record, _ = trained_job(tmp_path, status="failed")
    cfg = stage_cfg(tmp_path, ["sft", "infer", "export"])
    record = run_stages(cfg, record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift), progress=False)
    stages = read_record(record.job_dir).stages
    assert {stages[s]["status"] for s in ("infer", "export")} == {"skipped"}
    assert "failed" in stages["infer"]["reason"]
    assert launched(calls) == [] and stage_failures(record) == []


def test_an_explicit_checkpoint_runs_even_on_a_failed_run(tmp_path, fake_swift, calls):
    record, run_dir = trained_job(tmp_path, status="failed")
    cfg = stage_cfg(tmp_path, ["export"], ckpt=str(run_dir / "checkpoint-5"))
    record = run_stages(cfg, record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift), progress=False)
    export = record.stages["export"]
    assert (export["status"], export["checkpoint_rule"]) == ("completed", "path")
    assert export["checkpoint"] == str(run_dir / "checkpoint-5")


def test_best_on_a_run_without_checkpoints_fails_the_stage_with_the_reason(
    tmp_path, fake_swift, calls, capsys
):
    job = tmp_path / "job"
    run_dir = make_run(job / "output", steps=[], evals={})
    record = record_for(run_dir, job)
    cfg = stage_cfg(tmp_path, ["sft", "infer", "export"])
    record = run_stages(cfg, record, job_dir=job, swift_bin=str(fake_swift), progress=False)
    stages = read_record(job).stages
    assert stages["infer"]["status"] == stages["export"]["status"] == "failed"
    assert str(run_dir) in stages["infer"]["error"] and "no checkpoints" in stages["infer"]["error"]
    assert launched(calls) == []
    assert print_failures(record) == 1
    err = capsys.readouterr().err
    assert "swiftops: infer failed: ckpt=best: the run" in err and "export failed" in err


def test_a_swift_infer_failure_is_recorded_with_its_log_tail(tmp_path, fake_swift, calls):
    record, _ = trained_job(tmp_path)
    cfg = stage_cfg(tmp_path, ["infer"])
    cfg["data"]["test_dataset"] = str(tmp_path / "vanished.jsonl")
    record = run_stages(cfg, record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift), progress=False)
    infer = record.stages["infer"]
    assert infer["status"] == "failed" and infer["exit_code"] == 1
    assert "vanished.jsonl" in infer["error"] and "baseline" not in infer
    assert stage_failures(record)[0].startswith("infer failed: ")


def test_standalone_stages_on_an_existing_run_write_into_the_new_job(tmp_path, fake_swift, calls):
    _, run_dir = trained_job(tmp_path, name="trained")
    before = (tmp_path / "trained" / "run.json").read_text()
    new_job = tmp_path / "standalone"
    record = load_run(run_dir)  # a bare swift run folder
    cfg = stage_cfg(tmp_path, ["infer"], ckpt="last")
    record = run_stages(cfg, record, job_dir=new_job, swift_bin=str(fake_swift), progress=False)
    again = read_record(new_job)
    assert again.job_dir == str(new_job) and again.run_dir == str(run_dir)
    assert again.stages["infer"]["checkpoint"] == str(run_dir / "checkpoint-15")
    assert (new_job / "infer" / "result.jsonl").is_file()
    assert (tmp_path / "trained" / "run.json").read_text() == before  # the original run is left alone


def test_the_baseline_runs_once_per_sweep_and_is_shared(tmp_path, fake_swift, calls):
    sweep = tmp_path / "sweep"
    cfg = stage_cfg(tmp_path, ["infer"])
    for num in range(3):
        record, _ = trained_job(sweep, name=str(num), sweep_dir=str(sweep), job_num=num)
        record = run_stages(
            cfg, record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift), progress=False
        )
        assert record.stages["infer"]["baseline"]["path"] == str(sweep / "baseline")
    assert launched(calls) == ["infer", "infer", "infer", "infer"]  # 3 jobs + 1 baseline
    assert json.loads((sweep / "baseline" / "score.json").read_text())["summary"]["score"] == 0.0

    # another test set in the same sweep gets a baseline of its own, beside the first
    other = stage_cfg(tmp_path, ["infer"])
    other["data"]["test_dataset"] = str(write_test_set(tmp_path / "other.jsonl", EXAM_ROWS[:1]))
    result = baseline_score(other, sweep_dir_or_job_dir=sweep, swift_bin=str(fake_swift))
    assert Path(result["path"]).name.startswith("baseline-") and result["n"] == 1
    assert baseline_score(cfg, sweep_dir_or_job_dir=sweep, swift_bin=str(fake_swift))["path"] == str(
        sweep / "baseline"
    )


def test_parallel_jobs_wait_for_one_baseline(tmp_path, fake_swift, calls):
    sweep = tmp_path / "sweep"
    cfg = stage_cfg(tmp_path, ["infer"])
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                baseline_score(cfg, sweep_dir_or_job_dir=sweep, swift_bin=str(fake_swift))
            )
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert launched(calls) == ["infer"]
    assert sorted(r["cached"] for r in results) == [False, True, True]
    assert {r["score"] for r in results} == {0.0}


def test_a_running_baseline_does_not_hold_up_another_base_models_one(
    tmp_path, fake_swift, calls, monkeypatch
):
    import swiftops.stages.infer as stages

    sweep = tmp_path / "sweep"
    cfg = stage_cfg(tmp_path, ["infer"])
    other = stage_cfg(tmp_path, ["infer"])
    other["data"]["test_dataset"] = str(write_test_set(tmp_path / "other.jsonl", EXAM_ROWS[:1]))
    first_running, release_first = threading.Event(), threading.Event()
    real_infer_run = stages.infer_run

    def infer_run(run_cfg, **kwargs):
        if run_cfg["data"]["test_dataset"] == cfg["data"]["test_dataset"]:
            first_running.set()
            release_first.wait(timeout=60)  # the first base model's swift infer, still running
        return real_infer_run(run_cfg, **kwargs)

    monkeypatch.setattr(stages, "infer_run", infer_run)
    first = threading.Thread(
        target=lambda: baseline_score(cfg, sweep_dir_or_job_dir=sweep, swift_bin=str(fake_swift))
    )
    first.start()
    assert first_running.wait(timeout=60)
    results = []
    second = threading.Thread(
        target=lambda: results.append(
            baseline_score(other, sweep_dir_or_job_dir=sweep, swift_bin=str(fake_swift))
        )
    )
    second.start()
    second.join(timeout=30)
    release_first.set()
    first.join(timeout=60)
    assert results, "the other test set's baseline waited for an unrelated one"
    assert Path(results[0]["path"]).name.startswith("baseline-") and not results[0]["cached"]


def test_a_failed_baseline_is_cached_so_a_sweep_tries_it_once(tmp_path, fake_swift, calls):
    cfg = stage_cfg(tmp_path, ["infer"])
    cfg["data"]["test_dataset"] = str(tmp_path / "gone.jsonl")  # the stand-in crashes on it
    result = baseline_score(cfg, sweep_dir_or_job_dir=tmp_path / "sweep", swift_bin=str(fake_swift))
    assert result["status"] == "failed" and "gone.jsonl" in result["error"]
    again = baseline_score(cfg, sweep_dir_or_job_dir=tmp_path / "sweep", swift_bin=str(fake_swift))
    assert again["status"] == "failed" and again["cached"] is True
    assert launched(calls) == ["infer"]


def test_identity_test_sets_are_filled_and_scored_by_name(tmp_path, fake_swift, calls):
    record, _ = trained_job(tmp_path)
    test = write_test_set(
        tmp_path / "self_cognition.jsonl",
        [
            ("你是谁？", "我是{{NAME}}，由{{AUTHOR}}训练。"),
            ("Who are you?", "I am {{NAME}}, made by {{AUTHOR}}."),
        ],
    )
    cfg = stage_cfg(
        tmp_path, ["infer"], model_name=["小黄", "Xiao Huang"], model_author=["魔搭", "ModelScope"]
    )
    cfg["data"]["test_dataset"] = str(test)
    record = run_stages(cfg, record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift), progress=False)
    infer = record.stages["infer"]
    assert (infer["scorer"], infer["score"], infer["n"]) == ("identity", 100.0, 2)
    assert infer["baseline"]["score"] == 0.0
    filled = Path(infer["test_dataset"]).read_text(encoding="utf-8")
    assert "我是小黄，由魔搭训练" in filled and "I am Xiao Huang, made by ModelScope" in filled
    assert "{{NAME}}" not in filled and "{{" in test.read_text()


def test_a_full_parameter_checkpoint_is_inferred_as_a_model_and_not_merged(tmp_path, fake_swift, calls):
    record, run_dir = trained_job(tmp_path)
    (run_dir / "checkpoint-10" / "adapter_config.json").unlink()
    (run_dir / "checkpoint-10" / "config.json").write_text("{}")
    cfg = stage_cfg(tmp_path, ["infer", "export"])
    cfg["infer"]["baseline"] = False
    record = run_stages(cfg, record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift), progress=False)
    infer, export = record.stages["infer"], record.stages["export"]
    assert infer["argv"][infer["argv"].index("--model") + 1] == str(run_dir / "checkpoint-10")
    assert "--adapters" not in infer["argv"] and "baseline" not in infer
    assert export["status"] == "skipped" and "not a LoRA" in export["reason"]


def merged_from(job: Path) -> str:
    return json.loads((job / "export" / "merged" / "config.json").read_text())["merged_from"]


def test_re_export_replaces_the_merged_model_and_a_failed_one_keeps_it(
    tmp_path, fake_swift, calls, monkeypatch
):
    """swift export skips an existing output folder: a re-run with another checkpoint must not
    leave the old weights in place, and a failed re-run must not lose them."""
    record, run_dir = trained_job(tmp_path)
    job = Path(record.job_dir)
    record = run_stages(
        stage_cfg(tmp_path, ["export"]), record, job_dir=job, swift_bin=str(fake_swift), progress=False
    )
    assert merged_from(job) == str(run_dir / "checkpoint-10")
    last = stage_cfg(tmp_path, ["export"], ckpt="last")
    record = run_stages(last, record, job_dir=job, swift_bin=str(fake_swift), progress=False)
    assert merged_from(job) == str(run_dir / "checkpoint-15")
    assert record.stages["export"]["checkpoint"] == str(run_dir / "checkpoint-15")

    monkeypatch.setenv("FAKE_SWIFT_FAIL", "export")
    record = run_stages(
        stage_cfg(tmp_path, ["export"]), record, job_dir=job, swift_bin=str(fake_swift), progress=False
    )
    assert (
        record.stages["export"]["status"] == "failed"
        and "fake swift export failed" in record.stages["export"]["error"]
    )
    assert merged_from(job) == str(run_dir / "checkpoint-15")
    assert sorted(p.name for p in (job / "export").iterdir()) == ["merged"]


def test_the_baseline_is_the_base_model_the_adapter_was_trained_from(tmp_path, fake_swift, calls):
    """`stages=[infer] run=PATH` of a run trained on another model than the config's default."""
    record, run_dir = trained_job(tmp_path)
    args = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "model_type": "qwen2_5", "template": "qwen2_5"}
    (run_dir / "checkpoint-10" / "args.json").write_text(json.dumps(args))
    record = run_stages(
        stage_cfg(tmp_path, ["infer"]), record, job_dir=Path(record.job_dir), swift_bin=str(fake_swift)
    )
    log_text = (Path(record.job_dir) / "baseline" / "infer.log").read_text()
    assert "--model Qwen/Qwen2.5-1.5B-Instruct --model_type qwen2_5 --template qwen2_5" in log_text
    key = json.loads((Path(record.job_dir) / "baseline" / "score.json").read_text())["key"]
    assert key["model"] == "Qwen/Qwen2.5-1.5B-Instruct"


def test_ctrl_c_in_a_stage_marks_the_job_interrupted_and_skips_the_rest(tmp_path, monkeypatch, calls):
    import swiftops.stages.export
    import swiftops.stages.infer
    from swiftops.runner import Outcome

    for stage in (swiftops.stages.infer, swiftops.stages.export):  # each runs its own swift
        monkeypatch.setattr(stage, "run_swift", lambda argv, **kw: Outcome(-2, True, "now", 0.5))
    record, _ = trained_job(tmp_path)
    cfg = stage_cfg(tmp_path, ["sft", "infer", "export"])
    record = run_stages(cfg, record, job_dir=Path(record.job_dir), swift_bin="swift", progress=False)
    saved = read_record(record.job_dir)
    assert saved.status == "interrupted"  # a sweep starts no more jobs after this one
    assert saved.stages["infer"]["status"] == "interrupted" and "baseline" not in saved.stages["infer"]
    assert saved.stages["export"] == {"status": "skipped", "reason": "an earlier stage was interrupted"}
