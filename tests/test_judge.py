"""judge(): the one reading and judging of a run on disk, for the job, the report and classify."""

from __future__ import annotations

from helpers_events import decay, steps_of, write_jsonl

from swiftops.judge import judge
from swiftops.record import COMPLETED, RUNNING, RunRecord


def record(tmp_path, **fields) -> RunRecord:
    return RunRecord(job_dir=str(tmp_path), argv=["swift", "sft"], **{"status": COMPLETED, **fields})


def test_a_finished_run_is_read_from_its_run_folder_and_judged(tmp_path):
    run = tmp_path / "output" / "v0-20260101-000000"
    steps = steps_of(60)
    write_jsonl(run, (steps, decay(steps, 3.0, 1.0, 0.3)), max_steps=60)
    judged = judge(record(tmp_path, run_dir=str(run), exit_code=0))
    assert judged.has_curves and judged.note is None
    assert judged.diagnosis is not None and judged.diagnosis.verdict == "converged"
    assert judge(record(tmp_path, run_dir=str(run)), diagnose=False).diagnosis is None


def test_a_running_job_is_read_from_its_output_folder_for_the_curve_so_far(tmp_path):
    run = tmp_path / "output" / "v0-20260101-000000"
    steps = steps_of(10)
    write_jsonl(run, (steps, decay(steps, 3.0, 1.0, 0.05)), max_steps=100)
    judged = judge(record(tmp_path, status=RUNNING, output_dir=str(tmp_path / "output")))
    assert judged.has_curves and judged.curves.run_dir == run


def test_no_run_folder_or_an_unreadable_one_gives_empty_curves_and_says_why(tmp_path):
    nothing = judge(record(tmp_path, exit_code=1))
    assert not nothing.has_curves and nothing.note == "swift wrote no run folder"
    assert (
        nothing.diagnosis is not None and nothing.diagnosis.verdict == "failed"
    )  # it ended, logging nothing
    gone = judge(record(tmp_path, run_dir=str(tmp_path / "gone"), exit_code=0))
    assert not gone.has_curves and gone.note.startswith("could not read the curves:")
    # interrupted before its first loss: no evidence, no verdict
    assert judge(record(tmp_path, status="interrupted")).diagnosis is None


def test_a_defect_in_the_diagnosis_comes_back_as_error_with_the_curves_read(tmp_path, monkeypatch):
    import swiftops.judge

    run = tmp_path / "output" / "v0-20260101-000000"
    steps = steps_of(20)
    write_jsonl(run, (steps, decay(steps, 3.0, 1.0, 0.1)), max_steps=20)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in a rule")

    monkeypatch.setattr(swiftops.judge, "diagnose_recorded", broken)
    judged = judge(record(tmp_path, run_dir=str(run), exit_code=0))
    assert judged.has_curves and judged.diagnosis is None
    assert isinstance(judged.error, ZeroDivisionError)
