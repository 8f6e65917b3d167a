"""The sweep's live progress, drawn from job folders on disk (no swift, no Hydra)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import pytest

from swiftops import sweep_progress
from swiftops.record import RunRecord, write_record
from swiftops.sweep_progress import (
    JobView,
    SweepProgress,
    SweepWatcher,
    job_line,
    live_lines,
    sweep_line,
    sweep_parts,
)

RUN = "v0-20260101-120000"  # swift's vN-timestamp run folder


def step_row(step: int, max_steps: int = 40, loss: float = 2.3) -> dict:
    """One training line of logging.jsonl as ms-swift writes it."""
    return {
        "loss": loss,
        "grad_norm": 1.0,
        "learning_rate": 1e-4,
        "epoch": step / 10,
        "global_step/max_steps": f"{step}/{max_steps}",
        "remaining_time": "0:00:21",
    }


def make_job(sweep: Path, num: int, status: str | None = None, rows=(), **fields) -> Path:
    """sweep/num/: a job folder, with run.json when status is given and logging.jsonl lines."""
    folder = sweep / str(num)
    folder.mkdir(parents=True, exist_ok=True)
    if status is not None:
        record = RunRecord(
            status=status,
            job_dir=str(folder),
            argv=["swift", "sft"],
            output_dir=str(folder / "output"),
            job_num=num,
            **fields,
        )
        write_record(record)
    if rows:
        append_rows(folder, rows)
    return folder


def append_rows(folder: Path, rows, tail: str = "") -> Path:
    path = folder / "output" / RUN / "logging.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(row) + "\n" for row in rows) + tail)
    return path


class TtyIO(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# the pure core


def test_sweep_line_names_how_jobs_ended_apart_from_their_verdicts():
    views = [
        JobView("job 0", "completed", verdict="converged"),
        JobView("job 1", "completed", verdict="failed"),
        JobView("job 2", "running", "step 3/40"),
        JobView("job 3", "queued"),
        JobView("job 4", "failed", verdict="failed"),
    ]
    ends = "sweep: 3 ended (2 completed, 1 crashed)"
    assert sweep_line(views, None) == f"{ends}, 1 running, 1 queued; verdicts: 1 converged, 2 failed"
    assert sweep_line(views, 8).startswith(f"{ends}, 1 running, 4 queued;")
    assert sweep_line(views, 3).startswith(f"{ends}, 1 running, 1 queued;")  # autotune's extra jobs
    assert sweep_line([], 4) == "sweep: 0 ended, 0 running, 4 queued"
    more = [
        *views,
        JobView("job 5", "interrupted"),
        JobView("job 6", "failed", verdict="failed", stopped_by="watchdog"),
    ]
    assert sweep_line(more, None) == (
        "sweep: 5 ended (2 completed, 1 crashed, 1 stopped by watchdog, 1 interrupted), 1 running, "
        "1 queued; verdicts: 1 converged, 3 failed"
    )


def test_job_line_per_state():
    progress = "step 12/40  loss 2.314  eta 0:00:21"
    assert job_line(JobView("job 3", "running", progress)) == f"job 3  running  {progress}"
    assert job_line(JobView("job 3", "running")) == "job 3  running"
    assert job_line(JobView("job 3", "queued")) == "job 3  queued"
    done = JobView("job 3", "completed", progress, "converged", 15.24)
    assert job_line(done) == "job 3  completed: converged  (15.2 s)"
    stopped = JobView("job 1", "failed", verdict="failed", duration_s=8.1, stopped_by="watchdog")
    assert job_line(stopped) == "job 1  failed  (stopped by watchdog, 8.1 s)"
    assert job_line(JobView("job 2", "completed", verdict="failed", duration_s=725)) == (
        "job 2  completed: failed  (0:12:05)"
    )
    assert job_line(JobView("job 4", "interrupted")) == "job 4  interrupted"


def test_live_lines_one_per_running_job_then_the_sweep_line():
    views = [JobView(f"job {i}", "running", f"step {i}/40") for i in range(5)]
    views.append(JobView("job 5", "completed", verdict="converged"))
    lines = live_lines(views, 6)
    assert lines == [*(f"job {i}  running  step {i}/40" for i in range(5)), *sweep_parts(views, 6)]
    capped = live_lines(views, 6, max_running=3)
    assert capped[:2] == ["job 0  running  step 0/40", "job 1  running  step 1/40"]
    assert capped[2] == "... and 3 more running"
    assert len(capped) == 5  # 2 running, "... and 3 more", the states, the verdicts


# ---------------------------------------------------------------------------------------------
# the watcher: folders -> views


def test_states_from_folders(tmp_path):
    make_job(tmp_path, 0, "completed", [step_row(40, loss=0.51)], verdict="converged", duration_s=15.2)
    make_job(tmp_path, 1, "failed", verdict="failed", duration_s=8.1, stopped_by="watchdog")
    make_job(tmp_path, 2, "running", [step_row(1), step_row(3, loss=2.25), {"eval_loss": 2.1}])
    make_job(tmp_path, 3)  # Hydra made the folder; swift has not started
    (tmp_path / ".hydra").mkdir()  # not a job
    (tmp_path / "multirun.yaml").write_text("{}\n")
    make_job(tmp_path, 10, "interrupted")  # job 10 after job 9, not after job 1

    views = SweepWatcher(tmp_path, expected=12).views()

    assert [(v.label, v.state) for v in views] == [
        ("job 0", "completed"),
        ("job 1", "failed"),
        ("job 2", "running"),
        ("job 3", "queued"),
        ("job 10", "interrupted"),
    ]
    assert views[0].verdict == "converged" and views[0].duration_s == 15.2
    assert views[0].progress == ""  # finished before the watcher came: its log is not read
    assert views[1].stopped_by == "watchdog"
    assert views[2].progress == "step 3/40  loss 2.25  eval 2.1  eta 0:00:21"
    assert sweep_line(views, 12) == (
        "sweep: 3 ended (1 completed, 1 stopped by watchdog, 1 interrupted), 1 running, 8 queued; "
        "verdicts: 1 converged, 1 failed"
    )


def test_a_sweep_folder_not_made_yet_is_all_queued(tmp_path):
    watcher = SweepWatcher(tmp_path / "not-yet", expected=3)
    assert watcher.views() == []
    assert sweep_line(watcher.views(), 3) == "sweep: 0 ended, 0 running, 3 queued"


def test_appended_log_lines_are_read_incrementally(tmp_path):
    folder = make_job(tmp_path, 0, "running")
    watcher = SweepWatcher(tmp_path)
    assert watcher.views()[0].progress == ""  # swift has not written its log yet

    log = append_rows(folder, [step_row(1)])
    assert watcher.views()[0].progress.startswith("step 1/40")
    follower = watcher._jobs[0].follower

    append_rows(folder, [step_row(2), step_row(3, loss=1.9)], tail='{"loss": 1.8, "global_st')  # half a line
    assert watcher.views()[0].progress.startswith("step 3/40  loss 1.9")
    assert watcher._jobs[0].follower is follower  # kept between polls
    assert follower.offset == log.stat().st_size - len('{"loss": 1.8, "global_st')  # read only whole lines

    with open(log, "a", encoding="utf-8") as f:  # the rest of the line, and the next
        f.write('ep/max_steps": "4/40"}\n' + json.dumps(step_row(5, loss=1.7)) + "\n")
    assert watcher.views()[0].progress.startswith("step 5/40  loss 1.7")
    assert follower.offset == log.stat().st_size


def test_a_job_that_finishes_between_polls_keeps_its_last_lines_and_drops_its_follower(tmp_path):
    folder = make_job(tmp_path, 0, "running", [step_row(1)])
    watcher = SweepWatcher(tmp_path)
    watcher.views()
    append_rows(folder, [step_row(40, loss=0.5)])
    make_job(tmp_path, 0, "completed", verdict="converged", duration_s=3.0)
    (view,) = watcher.views()
    assert (view.state, view.verdict) == ("completed", "converged")
    assert view.progress.startswith("step 40/40  loss 0.5")
    assert watcher._jobs[0].follower is None


def test_a_re_run_job_ignores_the_log_an_earlier_attempt_left(tmp_path):
    folder = make_job(tmp_path, 0, "completed", [step_row(40, loss=0.5)], verdict="converged")
    old_log = folder / "output" / RUN / "logging.jsonl"
    past = time.time() - 600
    os.utime(old_log, (past, past))
    watcher = SweepWatcher(tmp_path)
    assert watcher.views()[0].state == "completed"

    make_job(tmp_path, 0, "running")  # resume=true re-runs it in the same folder
    (view,) = watcher.views()
    assert view.state == "running" and view.progress == ""  # not the old run's step 40/40

    new_log = folder / "output" / "v1-20260101-130000" / "logging.jsonl"
    new_log.parent.mkdir()
    new_log.write_text(json.dumps(step_row(2)) + "\n")
    assert watcher.views()[0].progress.startswith("step 2/40")


def test_a_newer_run_folder_is_followed_once_swift_starts_it(tmp_path):
    folder = make_job(tmp_path, 0, "running", [step_row(5)])
    watcher = SweepWatcher(tmp_path)
    assert watcher.views()[0].progress.startswith("step 5/40")
    newer = folder / "output" / "v1-20260101-130000" / "logging.jsonl"
    newer.parent.mkdir()
    newer.write_text(json.dumps({"loss": 1.0, "global_step/max_steps": "6/40"}) + "\n")
    assert watcher.views()[0].progress == "step 6/40  loss 1"  # its own lines only, no stale eta


@pytest.mark.parametrize(
    "content",
    [b"", b'{"status": "runn', b"[1, 2]", b'{"status": "completed"}', b"\xff\xfe not utf-8", b"[" * 100_000],
    ids=["empty", "cut", "list", "fields-missing", "not-utf8", "deep"],
)
def test_an_unreadable_run_json_does_not_raise(tmp_path, content):
    folder = make_job(tmp_path, 0)
    (folder / "run.json").write_bytes(content)
    watcher = SweepWatcher(tmp_path, expected=1)
    assert [v.state for v in watcher.views()] == ["running"]  # it exists: the job has started

    make_job(tmp_path, 0, "completed", verdict="converged")  # rewritten whole: read again
    assert [v.state for v in watcher.views()] == ["completed"]


def test_a_run_json_that_turns_unreadable_keeps_the_last_state_read(tmp_path):
    folder = make_job(tmp_path, 0, "running", [step_row(2)])
    watcher = SweepWatcher(tmp_path)
    assert watcher.views()[0].state == "running"
    (folder / "run.json").write_text('{"status": "compl')  # a non-atomic writer caught mid-write
    (view,) = watcher.views()
    assert view.state == "running" and view.progress.startswith("step 2/40")
    (folder / "run.json").unlink()
    (folder / "run.json").mkdir()  # not even a file
    assert watcher.views()[0].state == "running"


def test_run_json_is_read_again_only_when_it_changed(tmp_path, monkeypatch):
    make_job(tmp_path, 0, "completed", verdict="converged")
    make_job(tmp_path, 1, "running")
    reads = []
    real = sweep_progress.read_record
    monkeypatch.setattr(sweep_progress, "read_record", lambda path: reads.append(path) or real(path))
    watcher = SweepWatcher(tmp_path)
    for _ in range(5):
        watcher.views()
    assert len(reads) == 2
    make_job(tmp_path, 1, "failed")
    assert [v.state for v in watcher.views()] == ["completed", "failed"]
    assert len(reads) == 3


# ---------------------------------------------------------------------------------------------
# plain lines (not a terminal)


def test_plain_lines_say_state_changes_at_once_and_do_not_flood(tmp_path):
    out = io.StringIO()
    progress = SweepProgress(tmp_path, 3, stream=out, every_s=3600)
    assert not progress.tty
    progress.poll()
    assert out.getvalue() == "sweep: 0 ended, 0 running, 3 queued\n"

    make_job(tmp_path, 0)  # a folder, no run.json: still queued, nothing to say
    progress.poll()
    progress.poll()
    assert out.getvalue().count("\n") == 1

    folder = make_job(tmp_path, 0, "running", [step_row(1)])
    progress.poll()
    assert out.getvalue().splitlines()[1:] == [
        "job 0  running  step 1/40  loss 2.3  eta 0:00:21",
        "sweep: 0 ended, 1 running, 2 queued",
    ]

    for step in range(2, 30):  # progress every poll: at most one line per every_s
        append_rows(folder, [step_row(step)])
        progress.poll()
    assert out.getvalue().count("\n") == 3

    make_job(tmp_path, 0, "completed", verdict="converged", duration_s=12.0)
    make_job(tmp_path, 1, "failed", duration_s=1.0)
    progress.poll()
    assert out.getvalue().splitlines()[3:] == [
        "job 0  completed: converged  (12.0 s)",
        "job 1  failed  (1.0 s)",
        "sweep: 2 ended (1 completed, 1 crashed), 0 running, 1 queued; verdicts: 1 converged",
    ]
    progress.poll()
    progress.stop()  # nothing changed since: nothing more to say
    assert out.getvalue().count("\n") == 6


def test_plain_progress_lines_only_when_the_text_changed(tmp_path):
    out = io.StringIO()
    folder = make_job(tmp_path, 0, "running", [step_row(1)])
    progress = SweepProgress(tmp_path, 1, stream=out, every_s=0)
    progress.poll()
    progress.poll()
    append_rows(folder, [step_row(2)])
    progress.poll()
    progress.poll()
    assert out.getvalue().splitlines() == [
        "job 0  running  step 1/40  loss 2.3  eta 0:00:21",
        "sweep: 0 ended, 1 running, 0 queued",
        "job 0  running  step 2/40  loss 2.3  eta 0:00:21",
    ]


def test_stop_draws_the_final_state_and_joins_the_thread(tmp_path):
    out = io.StringIO()
    folder = make_job(tmp_path, 0, "running", [step_row(1)])
    progress = SweepProgress(tmp_path, 2, stream=out, every_s=3600, poll_s=0.01)
    progress.start()
    wait_for(lambda: "job 0  running" in out.getvalue())
    thread = progress._thread
    append_rows(folder, [step_row(7)])  # throttled while it runs; the final state says it
    progress.stop()
    assert not thread.is_alive()
    assert out.getvalue().splitlines()[-1] == "job 0  running  step 7/40  loss 2.3  eta 0:00:21"
    size = len(out.getvalue())
    progress.stop()  # once only
    progress.poll()  # nor after stop
    assert len(out.getvalue()) == size


def test_a_display_that_raises_turns_off_and_logs_once(tmp_path, monkeypatch, caplog):
    make_job(tmp_path, 0, "running", [step_row(1)])

    def broken(view):
        raise RuntimeError("a bug in the display")

    monkeypatch.setattr(sweep_progress, "job_line", broken)
    out = io.StringIO()
    progress = SweepProgress(tmp_path, 1, stream=out)
    with caplog.at_level(logging.WARNING, logger="swiftops"):
        for _ in range(3):
            progress.poll()  # never raises
        progress.stop()
    assert progress.off
    assert len(caplog.records) == 1
    assert "live progress of sweep" in caplog.records[0].getMessage()
    assert "it is off from now on" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info[0] is RuntimeError


def test_a_broken_stream_turns_the_display_off(tmp_path, caplog):
    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("stdout closed")

        def isatty(self):
            raise ValueError("I/O operation on closed file")

    progress = SweepProgress(tmp_path, 1, stream=Broken(), poll_s=0.01)
    with caplog.at_level(logging.WARNING, logger="swiftops"):
        progress.start()
        wait_for(lambda: progress.off)
        progress.stop()
    assert len(caplog.records) == 1


# ---------------------------------------------------------------------------------------------
# rich Live (a terminal)


def test_rich_live_draws_one_line_per_running_job(tmp_path):
    make_job(tmp_path, 0, "completed", verdict="converged", duration_s=9.0)
    for num in (1, 2, 3):
        make_job(tmp_path, num, "running", [step_row(num)])
    make_job(tmp_path, 4)
    out = TtyIO()
    progress = SweepProgress(tmp_path, 6, stream=out, poll_s=0.01)
    assert progress.tty
    progress.start()
    wait_for(lambda: "job 3  running" in ANSI.sub("", out.getvalue()))
    running = [f"job {n}  running  step {n}/40  loss 2.3  eta 0:00:21" for n in (1, 2, 3)]
    assert progress.drawn == [
        *running,
        "sweep: 1 ended (1 completed), 3 running, 2 queued",
        "verdicts: 1 converged",
    ]

    make_job(tmp_path, 2, "failed", verdict="failed", duration_s=4.0, stopped_by="watchdog")
    wait_for(lambda: len(progress.drawn) == 4)
    progress.stop()
    ended = [
        "sweep: 2 ended (1 completed, 1 stopped by watchdog), 2 running, 2 queued",
        "verdicts: 1 converged, 1 failed",
    ]
    assert progress.drawn == [running[0], running[2], *ended]

    text = ANSI.sub("", out.getvalue())
    for line in (*running, *ended):
        assert line in text
    # each finished job is printed once, above the live lines
    # a job that had ended before the display started is counted, not printed (resume=true)
    assert "job 0" not in text
    assert text.count("job 2  failed  (stopped by watchdog, 4.0 s)") == 1
    assert "job 4" not in text  # queued jobs are counted, not listed


def test_rich_live_that_raises_turns_off_and_hands_the_terminal_back(tmp_path, monkeypatch, caplog):
    make_job(tmp_path, 0, "running", [step_row(1)])
    out = TtyIO()
    progress = SweepProgress(tmp_path, 1, stream=out, poll_s=0.01)
    with caplog.at_level(logging.WARNING, logger="swiftops"):
        progress.start()
        wait_for(lambda: "job 0  running" in ANSI.sub("", out.getvalue()))
        monkeypatch.setattr(sweep_progress, "live_lines", lambda *a, **k: 1 / 0)
        wait_for(lambda: progress.off)
        progress.stop()
    assert progress._live is None
    assert len(caplog.records) == 1


def test_rich_live_on_stdout_prints_this_process_s_output_above_it(tmp_path, monkeypatch):
    terminal = TtyIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    handler = logging.StreamHandler(sys.stdout)  # as Hydra's console handler: the stream at start-up
    log = logging.getLogger("swiftops.test_sweep_progress")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        make_job(tmp_path, 0, "running", [step_row(1)])
        progress = SweepProgress(tmp_path, 1, poll_s=0.01)  # stream: sys.stdout
        progress.start()
        assert sys.stdout is not terminal and handler.stream is sys.stdout  # both go through Live
        print("a print of the launcher")
        log.info("a log line of the launcher")
        progress.stop()
        assert sys.stdout is terminal and handler.stream is terminal  # put back
    finally:
        log.removeHandler(handler)
    text = ANSI.sub("", terminal.getvalue())
    assert "a print of the launcher\n" in text
    assert "a log line of the launcher\n" in text
    assert "job 0  running  step 1/40" in text
