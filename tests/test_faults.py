"""The fault catalogue on the stand-in swift. Whatever one job suffers (swift crashing or killed,
damaged logs and event files, a full disk, a corrupt run.json, the orchestrator killed), the
sweep goes on, every other job's record is intact, the table and the report are written, and no
swift is left running. A parallel sweep's workers end with its launcher. Output folders that can't
be written, datasets swift can't read and folders in use by another sweep are refused before any
job starts.
(SIGINT, SIGTERM and SIGHUP are tests/test_signals.py's.)"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    alive,
    children_of,
    commands_with,
    process_holding,
    processes_with,
    run_sweep,
    standin_sweep_argv,
    start_interruptible,
    wait_until_logging,
    write_fake_swift,
)
from omegaconf import OmegaConf

from swiftops.callbacks import check_output_dirs, close_sweep, unwritable
from swiftops.folder_lock import LOCK_NAME
from swiftops.record import RecordError, find_records, read_record

pytestmark = pytest.mark.sweep

VERDICTS = {"failed", "underfit", "overfit", "converged"}
LRS = "lr=1e-4,2e-4,3e-4"  # job 1 (lr 2e-4) is the faulty one
FAULTY = {"learning_rate": 2e-4}


def make_inputs(folder: Path, fake_swift: Path, report_dir: Path) -> list[str]:
    """Overrides for a sweep on the stand-in swift: a local model folder and a one-row dataset
    (each job trains 10 steps unless told epochs=N)."""
    model = folder / "model"
    model.mkdir()
    data = folder / "train.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    return [
        f"model.id={model}",
        f"data.dataset=[{data}]",
        "data.test_dataset=null",
        "progress=false",
        "epochs=1",
        f"swift_bin={fake_swift}",
        f"report.dir={report_dir}",
    ]


@pytest.fixture
def inputs(tmp_path, fake_swift) -> list[str]:
    return make_inputs(tmp_path, fake_swift, tmp_path / "reports")


def table(sweep_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep_dir / "summary.csv").open(encoding="utf-8")))


def assert_healthy(record) -> None:
    """A job the fault did not touch: trained all 10 steps, judged, its run folder there."""
    assert record.status == "completed" and record.exit_code == 0, record
    assert record.verdict in VERDICTS and record.diagnosis["figures"]["steps"] == 10
    assert Path(record.run_dir).is_dir() and record.best_checkpoint


def assert_sweep_whole(sweep_dir: Path, report_dir: Path, fake_swift: Path, jobs: list[int]) -> list:
    """The records of jobs, the table and the report of the sweep, no stand-in left: the records."""
    records = [read_record(p) for p in find_records(sweep_dir)]
    assert [r.job_num for r in records] == jobs
    for record in records:
        if record.job_num != 1:
            assert_healthy(record)
    rows = table(sweep_dir)
    assert [row["job"] for row in rows] == [str(j) for j in jobs]
    assert [row["status"].split(" ")[0] for row in rows] == [r.status for r in records]
    (report,) = report_dir.glob("*.html")
    assert "job 0" in report.read_text(encoding="utf-8")
    assert processes_with(str(fake_swift)) == []
    return records


# ---------------------------------------------------------------------------------------------
# one job's swift crashes, is killed, or leaves damaged logs


@dataclass
class Fault:
    fault: str | None  # FAKE_SWIFT_FAULTS for job 1
    shape: str | None  # FAKE_SWIFT_SHAPES for job 1
    check: Callable  # (job 1's record, its job folder) -> asserts


def _run_dir(record) -> Path:
    assert record.run_dir, record
    return Path(record.run_dir)


def _crash_at_start(r, job):
    assert r.status == "failed" and r.exit_code == 1 and r.run_dir is None and r.verdict == "failed"
    assert "could not import" in r.error


def _crash_mid_run(r, job):
    assert r.status == "failed" and r.exit_code == 1 and r.verdict == "failed"
    assert "fake swift crashed" in r.error
    assert len((_run_dir(r) / "logging.jsonl").read_text().splitlines()) == 2


def _stop_iteration(r, job):
    """swift's error line is the exception and swift's innermost frame, in the record and the table's
    why: never the source line above it (`result = self.run()`), as it read before."""
    assert r.status == "failed" and r.exit_code == 1 and r.run_dir is None
    assert r.error_line == "StopIteration (in swift/dataset/loader.py: _load_dataset_path)", r.error_line
    assert "result = self.run()" in r.error  # the tail keeps the whole traceback
    (row,) = [row for row in table(job.parent) if row["job"] == "1"]
    assert row["error"] == r.error_line


def _killed(r, job):
    assert r.status == "failed" and r.exit_code != 0 and r.verdict == "failed", r
    assert len((_run_dir(r) / "logging.jsonl").read_text().splitlines()) == 3  # then no summary line


def _garbage_lines(r, job):
    assert r.status == "completed" and r.verdict in VERDICTS
    assert r.diagnosis["figures"]["steps"] == 10
    assert "this is not json" in (_run_dir(r) / "logging.jsonl").read_text()


def _nan_inf(r, job):
    assert r.verdict == "failed" and "NaN/Inf" in r.diagnosis["reasons"][0], r.diagnosis
    assert "Infinity" in (_run_dir(r) / "logging.jsonl").read_text()


def _non_utf8(r, job):
    assert r.status == "completed" and r.verdict in VERDICTS
    assert b"\xff\xfe" in (job / "swift.log").read_bytes()
    assert b"\xff\xfe" in (_run_dir(r) / "logging.jsonl").read_bytes()


def _non_utf8_crash(r, job):
    assert r.status == "failed" and r.verdict == "failed"
    assert "\ufffd" in r.error and "fake swift crashed" in r.error  # the tail, bad bytes replaced


def _corrupt_events(r, job):
    assert r.status == "completed" and r.verdict in VERDICTS, r
    (events,) = (_run_dir(r) / "runs").glob("events.out.tfevents.*")
    assert b"\xde\xad\xbe\xef" in events.read_bytes()
    assert r.diagnosis["figures"]["steps"] >= 3, r.diagnosis  # at least the steps before the damage


def _truncated_events(r, job):
    assert r.status == "completed" and r.verdict in VERDICTS, r
    assert r.diagnosis["figures"]["steps"] >= 3, r.diagnosis


FAULTS = {
    "crash_at_start": Fault("crash_at_start", None, _crash_at_start),
    "crash_mid_run": Fault(None, "crash", _crash_mid_run),
    "stop_iteration_traceback": Fault("stop_iteration", None, _stop_iteration),
    "kill_9_of_swift": Fault("killed", None, _killed),
    "garbage_lines": Fault("garbage_lines", None, _garbage_lines),
    "nan_infinity_lines": Fault("nan_inf", None, _nan_inf),
    "non_utf8_logs": Fault("non_utf8", None, _non_utf8),
    "non_utf8_log_tail_of_a_crash": Fault("non_utf8", "crash", _non_utf8_crash),
    "corrupt_event_file": Fault("corrupt_events", None, _corrupt_events),
    "truncated_event_file": Fault("truncated_events", None, _truncated_events),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_one_faulty_swift_leaves_the_rest_of_the_sweep_whole(
    name, hydra_sweep_runner, tmp_path, fake_swift, inputs, monkeypatch
):
    fault = FAULTS[name]
    monkeypatch.setenv("FAKE_SWIFT_FAULTS", json.dumps([[FAULTY, fault.fault]] if fault.fault else []))
    monkeypatch.setenv("FAKE_SWIFT_SHAPES", json.dumps([[FAULTY, fault.shape]] if fault.shape else []))
    sweep_dir = tmp_path / "sweep"
    with run_sweep(hydra_sweep_runner, sweep_dir, [*inputs, LRS]) as sweep:
        records = assert_sweep_whole(sweep_dir, tmp_path / "reports", fake_swift, [0, 1, 2])
        fault.check(records[1], sweep_dir / "1")
        assert [r.return_value for r in sweep.returns[0]] == [r.status for r in records]


def test_a_swift_killed_by_sigkill_is_recorded_with_that_signal(tmp_path, fake_swift, monkeypatch):
    from swiftops.runner import run_swift

    monkeypatch.setenv("FAKE_SWIFT_FAULTS", json.dumps([[{}, "killed"]]))
    log = tmp_path / "swift.log"
    outcome = run_swift(
        [str(fake_swift), "sft", "--output_dir", str(tmp_path / "output")],
        env=os.environ,
        log_path=log,
        cwd=tmp_path,
    )
    assert outcome.exit_code == -signal.SIGKILL and "Traceback" not in log.read_text(), log.read_text()


# ---------------------------------------------------------------------------------------------
# a full disk while writing run.json


@pytest.mark.parametrize("when", ["from_the_start", "after_swift_ran"])
def test_a_full_disk_writing_one_record_leaves_the_rest_of_the_sweep_whole(
    when, hydra_sweep_runner, tmp_path, fake_swift, inputs, monkeypatch, capsys
):
    """ENOSPC for every write of job 1's run.json (or every one after its first, `running`, one):
    the stand-in writes half the file, then raises, as a filling disk does."""
    sweep_dir = tmp_path / "sweep"
    real_write_text = Path.write_text
    refused = []

    def write_text(self, data, *args, **kwargs):
        if self.name.startswith(".run.json.") and self.parent == sweep_dir / "1":
            ok_once = when == "after_swift_ran" and not (sweep_dir / "1" / "run.json").exists()
            if not ok_once:
                refused.append(self)
                real_write_text(self, data[: len(data) // 2], *args, **kwargs)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with run_sweep(hydra_sweep_runner, sweep_dir, [*inputs, LRS]) as sweep:
        assert refused, "the stand-in never refused a write: does write_record still use Path.write_text?"
        assert [r.return_value for r in sweep.returns[0]] == ["completed", "failed", "completed"]
        if when == "from_the_start":
            assert_sweep_whole(sweep_dir, tmp_path / "reports", fake_swift, [0, 2])
            assert not (sweep_dir / "1" / "run.json").exists()
            assert not (sweep_dir / "1" / "output").exists()  # swift never started without its record
        else:
            records = assert_sweep_whole(sweep_dir, tmp_path / "reports", fake_swift, [0, 1, 2])
            assert records[1].status == "running"  # the last record the disk took
        assert not list((sweep_dir / "1").glob(".run.json.*"))  # no half-written file left taking space
    out = "".join(capsys.readouterr())  # Hydra's log handlers write there, not to caplog
    # the app catches it: the job's error logged, naming the job, and that its record could not be written
    assert f"job {sweep_dir / '1'} failed inside swiftops" in out, out
    assert f"could not write the record of {sweep_dir / '1'}" in out and "No space left" in out, out


def test_a_job_that_raises_out_of_the_app_is_recorded_failed_and_the_sweep_closes(
    hydra_sweep_runner, tmp_path, fake_swift, inputs, monkeypatch
):
    """A defect that escapes even the app's own catch (here its record of the failure raises too)
    would make Hydra skip the end of the sweep: the callback turns the job into a failed one."""
    import swiftops.job as job

    real_run_job, real_new_record = job.run_job, job.new_record

    def broken_in_job_1(run):
        def call(cfg, ctx):
            if ctx.job_num == 1:
                raise RuntimeError("a defect in swiftops")
            return run(cfg, ctx)

        return call

    monkeypatch.setattr(job, "run_job", broken_in_job_1(real_run_job))
    monkeypatch.setattr(job, "new_record", broken_in_job_1(real_new_record))
    sweep_dir = tmp_path / "sweep"
    with run_sweep(hydra_sweep_runner, sweep_dir, [*inputs, LRS]) as sweep:
        assert [r.return_value for r in sweep.returns[0]] == ["completed", "failed", "completed"]
        records = assert_sweep_whole(sweep_dir, tmp_path / "reports", fake_swift, [0, 1, 2])
    assert records[1].status == "failed" and "RuntimeError: a defect in swiftops" in records[1].error


# ---------------------------------------------------------------------------------------------
# a corrupt run.json


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """A finished 3-job sweep on the stand-in swift (no report), made once for this module."""
    root = tmp_path_factory.mktemp("finished")
    fake = write_fake_swift(root)
    sweep = root / "sweep"
    cmd = [sys.executable, "-m", "swiftops", "-m", *make_inputs(root, fake, root / "reports"), LRS]
    done = subprocess.run(
        [*cmd, "report.enabled=false", f"hydra.sweep.dir={sweep}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("FAKE_SWIFT")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return sweep


CORRUPT = {
    "garbage_bytes": b"\x00\xff\xfe\x9cgarbage\x00",
    "truncated_json": None,  # the first 40% of the real record
    "json_list": b"[1, 2, 3]\n",
    "empty_file": b"",
    "json_without_the_fields": b'{"status": "completed", "params": []}\n',
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_run_json_is_an_unreadable_row_and_the_rest_goes_on(
    kind, finished_sweep, tmp_path, capsys, caplog
):
    sweep = tmp_path / "sweep"
    shutil.copytree(finished_sweep, sweep)
    bad = sweep / "1" / "run.json"
    data = CORRUPT[kind]
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) * 2 // 5] if data is None else data)
    with pytest.raises(ValueError):  # what the table and the report must survive
        read_record(bad)
    caplog.set_level(logging.WARNING, logger="swiftops")
    config = OmegaConf.create({"report": {"enabled": True, "dir": str(tmp_path / "reports")}})

    report = close_sweep(sweep, config)

    assert any(str(bad) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    rows = table(sweep)
    assert [(row["job"], row["status"]) for row in rows] == [
        ("0", "completed"),
        ("1", "unreadable"),
        ("2", "completed"),
    ]
    assert rows[0]["verdict"] in VERDICTS and rows[2]["verdict"] in VERDICTS
    assert "unreadable" in capsys.readouterr().out  # the console table too
    assert report is not None and report.is_file(), caplog.text
    assert "unreadable" in report.read_text(encoding="utf-8")


def test_a_json_list_is_a_record_error_not_an_attribute_error(tmp_path):
    (tmp_path / "run.json").write_text("[]")
    with pytest.raises(RecordError, match="JSON list"):
        read_record(tmp_path)


# ---------------------------------------------------------------------------------------------
# kill -9 of the orchestrator mid-run


@dataclass
class KilledSweep:
    sweep: Path
    fake_swift: Path
    left_behind: list[tuple[int, str]]  # stand-in processes alive 15 s after the orchestrator died
    command: list[str]  # the sweep's command, less its hydra.sweep.dir
    root: Path


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory) -> KilledSweep:
    """A 2-job sweep whose orchestrator got SIGKILL while job 0's swift was at step 3 or so of 200.
    Any stand-in swift still alive 15 s later is noted, then killed (by its pid)."""
    root = tmp_path_factory.mktemp("killed")
    fake = write_fake_swift(root)
    sweep = root / "sweep"
    command = [sys.executable, "-m", "swiftops", "-m", *make_inputs(root, fake, root / "reports")]
    command += ["lr=1e-4,2e-4"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_SWIFT")}
    with open(root / "orchestrator.log", "wb") as out:
        proc = subprocess.Popen(
            [*command, "epochs=20", f"hydra.sweep.dir={sweep}"],
            env=dict(env, FAKE_SWIFT_STEP_SECONDS="0.2"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        log = sweep / "0" / "output"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            lines = [p.read_text().count("\n") for p in log.glob("v*/logging.jsonl")]
            if lines and lines[0] >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, (root / "orchestrator.log").read_text()
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 15  # time for a runner that stops its swift (with graces) when it dies
    while processes_with(str(fake)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left_behind = processes_with(str(fake))
    for pid, _ in left_behind:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes_with(str(fake)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(str(fake)) == [], "a left-behind stand-in swift would not die"
    return KilledSweep(sweep, fake, left_behind, command, root)


def test_kill_9_of_the_orchestrator_leaves_its_job_recorded_running(killed_sweep):
    """The `running` run.json written before swift started is all there is: no exit code, no
    duration, no run folder, no verdict. Job 1 never started; no table was written."""
    record = read_record(killed_sweep.sweep / "0")
    assert record.status == "running" and record.started
    assert (record.exit_code, record.duration_s, record.run_dir, record.verdict) == (None,) * 4
    assert record.argv[1] == "sft" and record.params["lr"] == 1e-4
    assert list((killed_sweep.sweep / "0" / "output").glob("v*/logging.jsonl"))
    assert not (killed_sweep.sweep / "1" / "run.json").exists()
    assert not (killed_sweep.sweep / "summary.csv").exists()


def test_kill_9_of_the_orchestrator_leaves_no_swift_behind(killed_sweep):
    assert killed_sweep.left_behind == []


def test_classify_and_report_still_read_a_killed_sweep(killed_sweep):
    classify = subprocess.run(
        [sys.executable, "-m", "swiftops.classify", str(killed_sweep.sweep), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert classify.returncode == 0, classify.stdout + classify.stderr
    results = json.loads(classify.stdout)
    results = results if isinstance(results, list) else [results]
    assert len(results) == 1 and results[0]["verdict"] in VERDICTS, results
    out = killed_sweep.root / "killed.html"
    report = subprocess.run(
        [sys.executable, "-m", "swiftops.report", str(killed_sweep.sweep), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0 and out.is_file(), report.stdout + report.stderr


def test_a_rerun_after_kill_9_into_a_new_folder_runs_every_job(killed_sweep):
    sweep = killed_sweep.root / "rerun"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_SWIFT")}
    done = subprocess.run(
        [*killed_sweep.command, f"hydra.sweep.dir={sweep}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [read_record(p).status for p in find_records(sweep)] == ["completed", "completed"]
    assert len(table(sweep)) == 2 and done.stdout.strip().splitlines()[-1].startswith("report: ")
    assert read_record(killed_sweep.sweep / "0").status == "running"  # the killed sweep left as it was
    assert processes_with(str(killed_sweep.fake_swift)) == []


# ---------------------------------------------------------------------------------------------
# output folders that can't be written: refused before any job


@pytest.mark.parametrize(
    "key, sweep",
    [("hydra.run.dir", False), ("hydra.sweep.dir", True), ("report.dir", True), ("report.dir", False)],
)
def test_a_read_only_output_folder_is_refused_before_any_job(key, sweep, read_only_dir, tmp_path, inputs):
    target = read_only_dir / "x"
    out_key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    outputs = {out_key: tmp_path / "out", "report.dir": tmp_path / "reports", key: target}
    calls = tmp_path / "calls.txt"
    swept = ["-m", "lr=1e-4,2e-4"] if sweep else []
    done = subprocess.run(
        [sys.executable, "-m", "swiftops", *swept, *inputs, *(f"{k}={v}" for k, v in outputs.items())],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, FAKE_SWIFT_CALLS=str(calls)),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{key} = {target}" in done.stderr and "is not writable" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not calls.exists()  # no swift ran
    assert not (tmp_path / "out").exists()  # nor any job: Hydra makes job folders after the check


def test_a_dry_run_writes_no_report_so_its_folder_is_not_checked(read_only_dir, tmp_path):
    config = OmegaConf.create({"dry_run": True, "report": {"enabled": True, "dir": str(read_only_dir)}})
    check_output_dirs(config, [("hydra.run.dir", tmp_path / "job")])  # no SystemExit
    config.dry_run = False
    with pytest.raises(SystemExit) as stop:
        check_output_dirs(config, [("hydra.run.dir", tmp_path / "job")])
    assert stop.value.code == 2


def test_unwritable_names_the_folder_that_stops_it(tmp_path):
    (tmp_path / "file").write_text("")
    assert unwritable(tmp_path / "a" / "b") is None  # made as needed
    assert unwritable(tmp_path / "file" / "job") == f"{tmp_path / 'file'} is not a folder"


# ---------------------------------------------------------------------------------------------
# dataset files swift can't read: refused before any job, not 12-16 s into swift

GOOD_ROW = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'
BAD_DATASETS = {  # name -> (file text, what the refusal says)
    "empty_file": ("", "is empty (0 bytes)"),
    "not_json": ("hello\n", "line 1 is not JSON"),
    "a_line_that_is_a_list": (f'{GOOD_ROW}\n["hi", "hello"]\n', "line 2 is a JSON list"),
    "no_known_columns": ('{"prompt_text": "hi", "reply": "hello"}\n', "line 1 has no column swift knows"),
    "line_57_alone_bad": (
        "\n".join([GOOD_ROW] * 56 + ["{oops"] + [GOOD_ROW] * 43) + "\n",
        "line 57 is not JSON",
    ),
}


def run_app(tmp_path, inputs, *overrides: str, swept: bool = False) -> subprocess.CompletedProcess:
    calls = tmp_path / "calls.txt"
    out = ["hydra.sweep.dir" if swept else "hydra.run.dir", tmp_path / "out"]
    keys = {o.split("=", 1)[0] for o in overrides}
    inputs = [o for o in inputs if o.split("=", 1)[0] not in keys]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "swiftops",
            *(["-m"] if swept else []),
            *inputs,
            *overrides,
            f"{out[0]}={out[1]}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, FAKE_SWIFT_CALLS=str(calls)),
    )


@pytest.mark.parametrize("name", list(BAD_DATASETS))
@pytest.mark.parametrize("swept", [False, True], ids=["single", "sweep"])
def test_a_dataset_swift_cant_read_is_refused_before_any_job(name, swept, tmp_path, inputs):
    text, said = BAD_DATASETS[name]
    bad = tmp_path / f"{name}.jsonl"
    bad.write_text(text, encoding="utf-8")
    good = next(o for o in inputs if o.startswith("data.dataset=")).split("[", 1)[1].rstrip("]")
    # in a sweep, the bad file is the second job's dataset: still refused before the first job
    dataset = f"data.dataset={good},{bad}" if swept else f"data.dataset=[{bad}]"
    done = run_app(tmp_path, inputs, dataset, swept=swept)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"data.dataset: {str(bad)!r} {said}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "calls.txt").exists()  # no swift ran
    assert not list((tmp_path / "out").rglob("run.json"))  # nor any job (a single run's folder is Hydra's)


def test_an_unbracketed_dataset_path_is_one_dataset(tmp_path, inputs):
    """data.dataset=/x.jsonl without brackets: a missing one is refused before launch (it was read one
    character at a time, which skipped the check); an existing one reaches swift as one value."""
    missing = tmp_path / "nope" / "mine.jsonl"
    done = run_app(tmp_path, inputs, f"data.dataset={missing}")
    assert done.returncode == 2 and f"data.dataset: {str(missing)!r} does not exist" in done.stderr, (
        done.stderr
    )
    assert not (tmp_path / "calls.txt").exists()

    data = tmp_path / "mine.jsonl"
    data.write_text(GOOD_ROW + "\n", encoding="utf-8")
    done = run_app(tmp_path, inputs, f"data.dataset={data}")
    assert done.returncode == 0, done.stdout + done.stderr
    record = read_record(tmp_path / "out")
    argv = record.argv
    after = argv[argv.index("--dataset") + 1 :]
    assert after[0] == str(data) and after[1].startswith("--"), argv  # one value, the whole path
    assert record.config["data"]["dataset"] == [str(data)]


# ---------------------------------------------------------------------------------------------
# the launching process of a parallel sweep killed: its workers go with it


def test_workers_end_with_a_launcher_killed_with_sigkill(tmp_path, fake_swift, stand_in_files):
    """kill -9 of a parallel sweep's launching process alone. Seen: both workers and their swifts
    still training 30 s later, six processes, nobody left to write the table; on GPUs they hold the
    cards. Now they stop their swifts and end within 10 s, and the jobs that ran are recorded
    interrupted, so resume=true continues them."""
    sweep_dir = tmp_path / "sweep"
    proc = start_interruptible(
        standin_sweep_argv(
            tmp_path, fake_swift, stand_in_files, "hydra/launcher=parallel", "jobs=2", "lr=1e-3,5e-4,2e-4"
        ),
        cwd=tmp_path,
        env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.3"},
    )
    wait_until_logging(proc, sweep_dir, 2)
    workers = children_of(proc.pid, "LokyProcess")
    assert len(workers) == 2, commands_with("loky")
    proc.kill()
    proc.wait()
    left_by = time.monotonic() + 10
    while (alive(workers) or commands_with(str(fake_swift))) and time.monotonic() < left_by:
        time.sleep(0.1)
    assert commands_with(str(fake_swift)) == []
    assert alive(workers) == []
    ran = [read_record(p) for p in find_records(sweep_dir)]  # the third job was never handed out
    assert [r.status for r in ran] == ["interrupted", "interrupted"]
    assert all("the process that launched the sweep" in r.error.splitlines()[0] for r in ran)


# ---------------------------------------------------------------------------------------------
# two launches into one folder: one run or sweep per folder (swiftops.folder_lock)


@pytest.mark.parametrize("second", [[], ["resume=true"]], ids=["again", "resume"])
def test_a_second_sweep_into_a_folder_in_use_exits_2_before_any_job(
    tmp_path, fake_swift, stand_in_files, second
):
    """The same sweep launched twice into one hydra.sweep.dir (two terminals, or a re-run while the
    first still runs). Seen: both ran job 0, whose output/ held v0-… and v1-…, and both wrote its
    run.json and the report. Now the second exits 2 at once, naming the first, which is untouched."""
    sweep_dir = tmp_path / "sweep"
    argv = standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "lr=1e-3,5e-4")
    first = start_interruptible(argv, cwd=tmp_path, env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.2"})
    try:
        wait_until_logging(first, sweep_dir, 1)
        started = time.monotonic()
        done = subprocess.run([*argv, *second], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert (
            f"hydra.sweep.dir = {sweep_dir}: {sweep_dir} is in use by another swiftops run or sweep"
            in done.stderr
        )
        assert (
            f"(pid {first.pid} on " in done.stderr
            and "choose another folder with hydra.sweep.dir=PATH" in done.stderr
        )
        assert time.monotonic() - started < 30
        assert len(list((sweep_dir / "0" / "output").iterdir())) == 1  # the second started no job
        out = first.communicate(timeout=180)[0].decode()
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out
    assert not (sweep_dir / LOCK_NAME).exists()  # let go when the sweep ended
    assert len(list((sweep_dir / "0" / "output").iterdir())) == 1


def test_a_single_run_into_a_folder_in_use_exits_2(tmp_path, fake_swift, stand_in_files):
    other = process_holding(tmp_path / "run")
    try:
        argv = standin_sweep_argv(tmp_path, fake_swift, stand_in_files)
        del argv[3]  # python -m swiftops [-m]: a single run
        done = subprocess.run(
            [*argv, f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        other.kill()
        other.wait()
    assert done.returncode == 2, done.stderr
    assert f"hydra.run.dir = {tmp_path / 'run'}: " in done.stderr and f"(pid {other.pid} on " in done.stderr
    assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK_NAME]  # the holder's, untouched


def test_a_sweep_killed_with_sigkill_leaves_a_lock_the_next_one_takes(tmp_path, fake_swift, stand_in_files):
    sweep_dir = tmp_path / "sweep"
    argv = standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "lr=1e-3")
    first = start_interruptible(argv, cwd=tmp_path, env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.2"})
    wait_until_logging(first, sweep_dir, 1)
    first.kill()
    first.wait()
    assert (sweep_dir / LOCK_NAME).is_file()
    time.sleep(1)  # the stand-in's supervisor stops it
    done = subprocess.run([*argv, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert not (sweep_dir / LOCK_NAME).exists()
