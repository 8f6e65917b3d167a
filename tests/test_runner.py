"""The runner's edges: run.json, command.sh, log tails, process-group stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from swiftops.record import RunRecord, find_records, read_record, write_record
from swiftops.runner import (
    Outcome,
    Progress,
    finish_record,
    log_tail,
    newest_run_dir,
    progress_text,
    run_swift,
    start_record,
    status_of,
    write_command_script,
)


def test_record_round_trip_and_atomic_write(tmp_path):
    record = RunRecord(status="running", job_dir=str(tmp_path), argv=["swift", "sft"], params={"lr": 1e-4})
    path = write_record(record)
    assert path == tmp_path / "run.json"
    assert not list(tmp_path.glob("*.tmp"))
    again = read_record(tmp_path)
    assert again == record
    data = json.loads(path.read_text())
    assert {
        "status",
        "exit_code",
        "argv",
        "overrides",
        "run_dir",
        "best_checkpoint",
        "last_checkpoint",
        "started",
        "duration_s",
        "error",
    } <= set(data)


def test_records_are_found_in_job_order(tmp_path):
    for num in (0, 2, 10, 1):
        write_record(RunRecord(status="completed", job_dir=str(tmp_path / str(num)), argv=[]))
    assert [p.parent.name for p in find_records(tmp_path)] == ["0", "1", "2", "10"]


def test_command_script_is_shell_quoted_and_runs(tmp_path):
    script = tmp_path / "command.sh"
    write_command_script(
        script,
        [sys.executable, "-c", "import os,sys; print(sys.argv[1], os.environ['X'])", "it's a $HOME"],
        {"X": "a b"},
    )
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "it's a $HOME a b"


def test_log_tail_keeps_the_last_state_of_progress_bars(tmp_path):
    log = tmp_path / "swift.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "Train: 10%\rTrain: 50%\rTrain: 90%\nboom\n")
    tail = log_tail(log, lines=3)
    assert tail.splitlines() == ["line 99", "Train: 90%", "boom"]


def test_newest_run_dir_orders_by_version_number(tmp_path):
    for name in ("v2-20260101-000000", "v10-20250101-000000", "v9-20270101-000000", "vx-not-a-run"):
        (tmp_path / name).mkdir()
    assert newest_run_dir(tmp_path).name == "v10-20250101-000000"
    assert newest_run_dir(tmp_path / "v2-20260101-000000") is None


def test_progress_text_and_incremental_reading(tmp_path):
    assert progress_text({}) == ""
    run = tmp_path / "v0-20260101-000000"
    run.mkdir()
    log = run / "logging.jsonl"
    log.write_text(json.dumps({"loss": 2.5, "global_step/max_steps": "3/10", "remaining_time": "7s"}) + "\n")

    class Sink:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return False

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    sink = Sink()
    progress = Progress("job 1", tmp_path, stream=sink, every_s=0)
    progress.poll()
    with open(log, "a") as f:  # a half-written line must wait for its end
        f.write(json.dumps({"eval_loss": 2.1, "global_step/max_steps": "5/10"}) + "\n" + '{"loss": 1.')
    progress.poll()
    progress.close()
    assert "[job 1] step 3/10  loss 2.5  eta 7s" in sink.text
    assert "step 5/10  loss 2.5  eval 2.1" in sink.text


def test_status_follows_exit_code_and_interrupt():
    assert status_of(Outcome(0, False, "", 1.0)) == "completed"
    assert status_of(Outcome(1, False, "", 1.0)) == "failed"
    assert status_of(Outcome(0, True, "", 1.0)) == "interrupted"


def test_failed_record_gets_the_log_tail(tmp_path):
    record = RunRecord(
        status="running", job_dir=str(tmp_path), argv=["swift"], log_path=str(tmp_path / "swift.log")
    )
    start_record(record, {})
    assert read_record(tmp_path).status == "running"
    assert (tmp_path / "command.sh").exists()
    (tmp_path / "swift.log").write_text("Traceback\nValueError: remaining_argv: ['--nope']\n")
    finish_record(record, Outcome(1, False, "t", 2.0), tmp_path / "output")
    assert record.status == "failed"
    assert "remaining_argv" in record.error


def test_run_swift_records_exit_code_and_output(tmp_path):
    log = tmp_path / "swift.log"
    outcome = run_swift(
        [sys.executable, "-c", "print('hello'); raise SystemExit(3)"],
        env=os.environ,
        log_path=log,
        cwd=tmp_path,
    )
    assert outcome.exit_code == 3 and not outcome.interrupted
    assert "hello" in log.read_text()


def test_run_swift_missing_executable_is_a_failure_not_an_exception(tmp_path):
    outcome = run_swift([str(tmp_path / "nope")], env=os.environ, log_path=tmp_path / "l", cwd=tmp_path)
    assert outcome.exit_code == 127
    assert "could not start" in (tmp_path / "l").read_text()


def test_interrupt_stops_the_whole_process_group(tmp_path):
    # a parent that starts a grandchild and ignores SIGINT, like a stubborn wrapper
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )

    def interrupt_soon():
        while not pid_file.exists():
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    # Ctrl-C must reach this process even where its parent shell ignores SIGINT (a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_soon, daemon=True).start()
        t0 = time.monotonic()
        outcome = run_swift(
            [sys.executable, "-c", code], env=os.environ, log_path=tmp_path / "l", cwd=tmp_path
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert outcome.interrupted
    assert time.monotonic() - t0 < 30
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert (
        not Path(f"/proc/{grandchild}").exists()
        or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
    )
