"""The runner's edges: run.json, command.sh, log tails, process-group stops."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from swiftops.job_progress import Progress, progress_text
from swiftops.record import RunRecord, find_records, read_record, write_record
from swiftops.runfolder import LineFollower
from swiftops.runner import (
    Outcome,
    log_tail,
    run_swift,
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


def test_progress_text_and_incremental_reading(tmp_path):
    assert progress_text({}) == ""
    run = tmp_path / "v0-20260101-000000"
    run.mkdir()
    log = run / "logging.jsonl"
    log.write_text(json.dumps({"loss": 2.5, "global_step/max_steps": "3/10", "remaining_time": "7s"}) + "\n")

    sink = io.StringIO()  # not a terminal: plain lines
    progress = Progress("job 1", tmp_path, stream=sink, every_s=0)
    progress.poll()
    with open(log, "a") as f:  # a half-written line must wait for its end
        f.write(json.dumps({"eval_loss": 2.1, "global_step/max_steps": "5/10"}) + "\n" + '{"loss": 1.')
    progress.poll()
    progress.close()
    assert "[job 1] step 3/10  loss 2.5  eta 7s" in sink.getvalue()
    assert "step 5/10  loss 2.5  eval 2.1" in sink.getvalue()


def test_status_follows_exit_code_and_interrupt():
    assert status_of(Outcome(0, False, "", 1.0)) == "completed"
    assert status_of(Outcome(1, False, "", 1.0)) == "failed"
    assert status_of(Outcome(0, True, "", 1.0)) == "interrupted"


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

    # run_swift's own handler takes the Ctrl-C, even where the parent shell ignores SIGINT (a background job)
    threading.Thread(target=interrupt_soon, daemon=True).start()
    t0 = time.monotonic()
    outcome = run_swift([sys.executable, "-c", code], env=os.environ, log_path=tmp_path / "l", cwd=tmp_path)
    assert outcome.interrupted and outcome.stop_signal == "SIGINT"
    assert time.monotonic() - t0 < 30
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert (
        not Path(f"/proc/{grandchild}").exists()
        or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
    )


def run_in(tmp_path: Path, argv: list[str], **kwargs) -> Outcome:
    return run_swift(argv, env=os.environ, log_path=tmp_path / "swift.log", cwd=tmp_path, **kwargs)


def test_garbage_in_logging_jsonl_never_reaches_the_job(tmp_path):
    """Lines that aren't JSON objects, bytes that aren't UTF-8, bare NaN, a nesting deeper than
    the parser's limit: the progress line skips them and the job runs to its end."""
    run_dir = tmp_path / "output" / "v0-20260101-000000"
    code = f"""
import time
from pathlib import Path
lines = [b'[1, 2]', b'3', b'"text"', b'null', b'\\xff\\xfe{{"loss": 1}}', b'[' * 100000,
         b'{{"loss": NaN, "global_step/max_steps": "1/2", "remaining_time": "1s"}}']
Path({str(run_dir)!r}).mkdir(parents=True)
with open({str(run_dir / "logging.jsonl")!r}, "ab") as log:
    for line in lines:
        log.write(line + b"\\n")
        log.flush()
        time.sleep(0.1)
    time.sleep(0.6)
    log.write(b'{{"loss": 1.5, "global_step/max_steps": "2/2", "note": "\\xe9t\\xe9"}}\\n')
"""

    sink = io.StringIO()  # not a terminal: plain lines
    progress = Progress("job 0", tmp_path / "output", stream=sink, every_s=0)
    outcome = run_in(tmp_path, [sys.executable, "-c", code], progress=progress)
    assert outcome.exit_code == 0 and not outcome.interrupted
    assert not progress.off
    assert "step 1/2  loss nan  eta 1s" in sink.getvalue()
    assert "step 2/2  loss 1.5  eta 1s" in sink.getvalue()


def test_a_progress_stream_that_breaks_is_logged_once_and_the_job_goes_on(tmp_path, caplog):
    """After SIGHUP the terminal is gone: a write raises EIO (or BrokenPipeError behind a pipe)."""
    run_dir = tmp_path / "output" / "v0-20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "logging.jsonl").write_text('{"loss": 2.0, "global_step/max_steps": "1/4"}\n')

    class Gone:
        def isatty(self):
            raise OSError(5, "Input/output error")

        def write(self, s):
            raise OSError(5, "Input/output error")

        def flush(self):
            raise BrokenPipeError

    progress = Progress("job 0", tmp_path / "output", stream=Gone(), every_s=0)
    code = "import time; time.sleep(1.0)"
    with caplog.at_level("WARNING", logger="swiftops"):
        outcome = run_in(tmp_path, [sys.executable, "-c", code], progress=progress)
    assert outcome.exit_code == 0 and not outcome.interrupted
    assert progress.off
    assert len([r for r in caplog.records if "progress line" in r.getMessage()]) == 1


def test_a_progress_stand_in_that_raises_is_switched_off(tmp_path, caplog):
    class Broken:
        calls = 0

        def poll(self):
            self.calls += 1
            raise TypeError("'int' object is not iterable")

        def close(self):
            raise TypeError("again")

    broken = Broken()
    with caplog.at_level("WARNING", logger="swiftops"):
        outcome = run_in(tmp_path, [sys.executable, "-c", "import time; time.sleep(1.0)"], progress=broken)
    assert outcome.exit_code == 0 and not outcome.interrupted
    assert broken.calls == 1


def test_a_line_without_end_longer_than_a_read_is_skipped_not_reread(tmp_path, monkeypatch):
    monkeypatch.setattr(LineFollower, "MAX_READ", 64)
    run = tmp_path / "v0-20260101-000000"
    run.mkdir()
    (run / "logging.jsonl").write_bytes(b"\x00" * 200)  # no line end in sight
    progress = Progress("job 1", tmp_path, stream=io.StringIO(), every_s=0)
    for _ in range(4):
        progress.poll()
    assert progress.follower.offset == 192 and not progress.off
    with open(run / "logging.jsonl", "ab") as f:
        f.write(b'\n{"loss": 1.0, "global_step/max_steps": "1/2"}\n')
    progress.poll()
    assert progress_text(progress.state) == "step 1/2  loss 1"
