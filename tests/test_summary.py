"""swiftops.summary: the one table format behind the console, summary.csv and the report."""

from __future__ import annotations

import csv
import io

from swiftops.record import RunRecord
from swiftops.summary import COLUMNS, markdown_table, summary_csv, summary_rows
from swiftops.swift_log import swift_error_line


def record(num: int, lr: float, **fields) -> RunRecord:
    return RunRecord(job_dir=f"/sweep/{num}", argv=["swift", "sft"], job_num=num, params={"lr": lr}, **fields)


def test_one_row_format_with_why_a_run_did_not_complete():
    records = [
        record(
            0, 1e-3, status="completed", verdict="converged", diagnosis={"next": {"override": "ckpt=best"}}
        ),
        record(1, 1e-1, status="failed", error="...\nValueError: remaining_argv: ['--x']", error_line=None),
        record(2, 1e-2, status="failed", error="tail", error_line="ValueError: remaining_argv: ['--x']"),
        record(3, 1e-4, status="interrupted", error="interrupted by SIGHUP (the terminal closed)\ntail"),
        record(4, 1e-5, status="failed", stopped_by="watchdog", error="the watchdog stopped it at step 10"),
    ]
    rows = summary_rows(records)
    assert list(rows[0]) == ["job", "lr", *COLUMNS]
    assert [r["error"] for r in rows] == [
        None,
        "...",  # no error line recorded: the error's first line
        "ValueError: remaining_argv: ['--x']",
        "interrupted by SIGHUP (the terminal closed)",
        "the watchdog stopped it at step 10",
    ]
    parsed = list(csv.DictReader(io.StringIO(summary_csv(rows))))
    assert [r["job"] for r in parsed] == ["0", "1", "2", "3", "4"] and parsed[2]["error"].startswith(
        "ValueError"
    )
    console = markdown_table(rows)
    assert "failed (watchdog)" in console and "| why" in console and "/sweep/" not in console
    assert "| next" in console and "ckpt=best" in console


def test_the_console_has_no_why_column_when_every_run_completed():
    rows = summary_rows([record(0, 1e-3, status="completed"), record(1, 1e-2, status="completed")])
    assert "why" not in markdown_table(rows)


def test_swift_s_own_error_is_the_traceback_s_last_exception_line():
    log = (
        "[INFO:swift] Start time of running main: 2026-12-02\n"
        "Traceback (most recent call last):\n"
        '  File "/x/swift/cli/sft.py", line 5, in <module>\n'
        "    sft_main()\n"
        "ValueError: remaining_argv: ['--no_such_flag', '1']\n"
        "[rank0]: something after it\n"
    )
    assert (
        swift_error_line(log)
        == "ValueError: remaining_argv: ['--no_such_flag', '1'] (in swift/cli/sft.py: <module>)"
    )
    assert swift_error_line("torch.OutOfMemoryError: CUDA out of memory.\n") == (
        "torch.OutOfMemoryError: CUDA out of memory."
    )
    assert swift_error_line("Killed\n") is None
