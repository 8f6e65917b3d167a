"""swiftops.job's pure parts: the record fields of how swift's process ended."""

from __future__ import annotations

from dataclasses import replace

from swiftops.diagnosis import NO_EVIDENCE
from swiftops.job import judgement, process_fields
from swiftops.record import RunRecord
from swiftops.runner import Outcome
from swiftops.summary import summary_rows


def planned(tmp_path) -> RunRecord:
    (tmp_path / "output" / "v0-20260101-000000").mkdir(parents=True)
    return RunRecord(
        status="running",
        job_dir=str(tmp_path),
        argv=["swift"],
        output_dir=str(tmp_path / "output"),
        log_path=str(tmp_path / "swift.log"),
    )


def test_a_failed_run_gets_the_log_tail_and_swift_s_own_error_line(tmp_path):
    record = planned(tmp_path)
    (tmp_path / "swift.log").write_text("Traceback\n  File x\nValueError: remaining_argv: ['--nope']\ndone\n")
    fields = process_fields(record, Outcome(1, False, "t", 2.0))
    assert fields["status"] == "failed" and fields["exit_code"] == 1
    assert "remaining_argv" in fields["error"]
    assert fields["error_line"] == "ValueError: remaining_argv: ['--nope']"
    assert fields["run_dir"] == str(tmp_path / "output" / "v0-20260101-000000")


def test_an_interrupted_run_names_the_signal_first(tmp_path):
    record = planned(tmp_path)
    (tmp_path / "swift.log").write_text("KeyboardInterrupt\n")
    fields = process_fields(record, Outcome(-2, True, "t", 2.0, stop_signal="SIGHUP"))
    assert fields["status"] == "interrupted" and fields["error_line"] is None
    assert fields["error"].splitlines() == [
        "interrupted by SIGHUP (the terminal or ssh session closed)",
        "KeyboardInterrupt",
    ]


def test_a_completed_run_has_no_error(tmp_path):
    record = planned(tmp_path)
    (tmp_path / "swift.log").write_text("ValueError: a warning swift printed and survived\n")
    fields = process_fields(record, Outcome(0, False, "t", 2.0))
    assert fields["status"] == "completed" and fields["error"] is None and fields["error_line"] is None


def ended(tmp_path, outcome: Outcome) -> RunRecord:
    record = planned(tmp_path)
    (tmp_path / "swift.log").write_text("loading the model\n")
    return replace(record, **process_fields(record, outcome))


def test_a_run_interrupted_before_its_first_logged_step_has_no_verdict(tmp_path):
    outcome = Outcome(-2, True, "t", 2.0, stop_signal="SIGINT")
    record = ended(tmp_path, outcome)
    fields = judgement(record, {}, outcome)
    assert fields["verdict"] is None and fields["diagnosis"]["reasons"] == [NO_EVIDENCE]
    row = summary_rows([replace(record, **fields)])[0]
    assert row["status"] == "interrupted" and row["verdict"] is None and row["confidence"] is None


def test_a_run_that_ended_on_its_own_without_logging_a_step_failed(tmp_path):
    outcome = Outcome(1, False, "t", 2.0)
    fields = judgement(ended(tmp_path, outcome), {}, outcome)
    assert fields["verdict"] == "failed" and fields["diagnosis"]["evidence"]["cause"] == "crashed"
