"""Stop signals: SIGINT (Ctrl-C), a second one during the grace, SIGTERM and SIGHUP, and the
orchestrator's own death. First run_swift with small stand-in children, then whole sweeps of
`python -m swiftops` with a stand-in swift of two processes (a leader and its worker, as the real
CLI starts): every job recorded, the table and report written, no stand-in process left."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FAKE_SWIFT, commands_with, start_interruptible

from swiftops import runner, stops
from swiftops.record import find_records, read_record
from swiftops.runner import Outcome, run_swift
from swiftops.stops import handle_stop_signals, stop_requested


def alive(pid: int) -> bool:
    """Running (a zombie is not: it has ended, only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies left for init to reap aside)."""
    members = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(proc.name))
    return members


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def quiet_stop_signals():
    """Handlers that only note SIGINT/SIGTERM/SIGHUP, so a runner that failed to handle one makes
    its test fail instead of killing (or Ctrl-C-ing) the whole test session."""
    seen: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: seen.append(signum)) for sig in stops.STOP_SIGNALS
    }
    yield seen
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.fixture
def short_graces(monkeypatch):
    def set_graces(first: float, second: float, leftover: float = 5.0) -> None:
        monkeypatch.setattr(runner, "STOP_GRACE_SECONDS", (first, second))
        monkeypatch.setattr(runner, "LEFTOVER_GRACE_SECONDS", leftover)

    return set_graces


def send_when(ready: Callable[[], bool], *signals: int, gap: float = 0.3) -> list[float]:
    """From a thread: once ready(), send each signal to this process, gap seconds apart. Returns
    the list that will hold the send times (monotonic)."""
    sent: list[float] = []

    def go():
        if wait_for(ready, 30):
            for sig in signals:
                sent.append(time.monotonic())
                os.kill(os.getpid(), sig)
                time.sleep(gap)

    threading.Thread(target=go, daemon=True).start()
    return sent


def child(tmp_path: Path, code: str, *args: str) -> list[str]:
    script = tmp_path / f"child{len(list(tmp_path.glob('child*.py')))}.py"
    script.write_text(code)
    return [sys.executable, str(script), *args]


def run(argv: list[str], tmp_path: Path, **kwargs) -> Outcome:
    return run_swift(argv, env=os.environ, log_path=tmp_path / "swift.log", cwd=tmp_path, **kwargs)


# a child that ignores SIGINT (SIG_IGN is inherited: a grandchild would ignore it too) and ends
# on SIGTERM, noting it; with "--ignore-term" it ignores SIGTERM as well
STUBBORN = """
import os, signal, sys, time
from pathlib import Path
here = Path(sys.argv[1])
signal.signal(signal.SIGINT, signal.SIG_IGN)
def on_term(signum, frame):
    (here / "got-sigterm").write_text("")
    sys.exit(143)
signal.signal(signal.SIGTERM, signal.SIG_IGN if "--ignore-term" in sys.argv else on_term)
(here / "pid").write_text(str(os.getpid()))
time.sleep(15)
"""

# a leader that starts a worker in its group and ends at once on SIGINT (KeyboardInterrupt); the
# worker takes a second to end after SIGINT (saving, say) and notes whether it got SIGTERM
LEADER = """
import os, subprocess, sys, time
from pathlib import Path
here = Path(sys.argv[1])
worker = subprocess.Popen([sys.executable, sys.argv[2], sys.argv[1]])
(here / "worker.pid").write_text(str(worker.pid))
if "--exit-at-once" in sys.argv:
    sys.exit(0)
time.sleep(15)
"""
WORKER = """
import signal, sys, time
from pathlib import Path
here = Path(sys.argv[1])
def on_int(signum, frame):
    time.sleep(1.0)
    (here / "worker-done").write_text("")
    sys.exit(0)
def on_term(signum, frame):
    (here / "worker-got-sigterm").write_text("")
    sys.exit(1)
signal.signal(signal.SIGINT, on_int)
signal.signal(signal.SIGTERM, on_term)
(here / "worker-ready").write_text("")
time.sleep(15)
"""


@pytest.fixture(params=["1", "0"], ids=["supervised", "direct"])
def launch_mode(request, monkeypatch):
    """Both ways swift starts: under the parent-death supervisor (Linux) and directly."""
    monkeypatch.setenv(runner.SUPERVISE_ENV, request.param)
    return request.param


def test_sigint_to_a_child_that_ignores_it_escalates_to_sigterm_after_the_grace(
    tmp_path, quiet_stop_signals, short_graces, launch_mode
):
    short_graces(0.8, 30)
    sent = send_when((tmp_path / "pid").exists, signal.SIGINT)
    outcome = run(child(tmp_path, STUBBORN, str(tmp_path)), tmp_path)
    took = time.monotonic() - sent[0]
    assert outcome.interrupted and outcome.stop_signal == "SIGINT"
    assert (tmp_path / "got-sigterm").exists() and outcome.exit_code == 143
    assert 0.8 <= took < 8
    assert not alive(int((tmp_path / "pid").read_text()))
    assert quiet_stop_signals == []  # run_swift's own handler took it


def test_a_second_signal_during_the_grace_sends_sigterm_at_once(tmp_path, quiet_stop_signals, short_graces):
    short_graces(30, 30)
    sent = send_when((tmp_path / "pid").exists, signal.SIGINT, signal.SIGINT)
    outcome = run(child(tmp_path, STUBBORN, str(tmp_path)), tmp_path)
    assert len(sent) == 2 and time.monotonic() - sent[0] < 10  # not the 30 s grace
    assert outcome.interrupted and outcome.stop_signal == "SIGINT"
    assert (tmp_path / "got-sigterm").exists() and outcome.exit_code == 143


def test_a_third_signal_sends_sigkill_at_once_and_run_swift_still_returns(
    tmp_path, quiet_stop_signals, short_graces
):
    short_graces(30, 30)
    sent = send_when((tmp_path / "pid").exists, signal.SIGINT, signal.SIGTERM, signal.SIGINT)
    outcome = run(child(tmp_path, STUBBORN, str(tmp_path), "--ignore-term"), tmp_path)
    assert len(sent) == 3 and time.monotonic() - sent[0] < 10
    assert outcome.interrupted and outcome.stop_signal == "SIGINT" and outcome.exit_code == -signal.SIGKILL
    assert not alive(int((tmp_path / "pid").read_text()))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_swift_and_name_the_signal(tmp_path, quiet_stop_signals, monkeypatch, sig):
    detached = []
    # the real one points this process's stdout/stderr (pytest's) at /dev/null: the sweep tests run it
    monkeypatch.setattr(stops, "detach_from_terminal", lambda: detached.append(True))
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(15)"
    pid_file = tmp_path / "pid"
    send_when(pid_file.exists, sig)
    t0 = time.monotonic()
    outcome = run([sys.executable, "-c", code, str(pid_file)], tmp_path)
    assert time.monotonic() - t0 < 10
    assert outcome.interrupted and outcome.stop_signal == sig.name
    assert outcome.exit_code == -signal.SIGINT  # the first step of the stop was enough
    assert detached == ([True] if sig == signal.SIGHUP else [])
    assert not alive(int(pid_file.read_text()))
    assert quiet_stop_signals == []


def test_the_stop_waits_for_the_whole_group_not_the_leader(tmp_path, quiet_stop_signals, launch_mode):
    worker = child(tmp_path, WORKER)[1]
    sent = send_when((tmp_path / "worker-ready").exists, signal.SIGINT)
    outcome = run(child(tmp_path, LEADER, str(tmp_path), worker), tmp_path)
    assert outcome.interrupted
    # the worker finished its own stop (a second after the leader was gone), unhurried
    assert (tmp_path / "worker-done").exists() and not (tmp_path / "worker-got-sigterm").exists()
    assert time.monotonic() - sent[0] >= 1.0
    assert not alive(int((tmp_path / "worker.pid").read_text()))


def test_a_leader_that_ends_on_its_own_leaves_nothing_running(tmp_path, short_graces, launch_mode):
    short_graces(5, 5, leftover=0.5)
    worker = child(tmp_path, WORKER)[1]
    outcome = run(child(tmp_path, LEADER, str(tmp_path), worker, "--exit-at-once"), tmp_path)
    worker_pid = int((tmp_path / "worker.pid").read_text())
    try:
        assert outcome.exit_code == 0 and not outcome.interrupted and outcome.stop_signal is None
        assert not alive(worker_pid)  # stopped after the leftover grace, as a stop is
        assert (tmp_path / "worker-done").exists()
    finally:
        if alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


def test_swift_dying_of_a_signal_and_exit_codes_pass_through_the_supervisor(tmp_path, launch_mode):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        code = f"import os; os.kill(os.getpid(), {int(sig)})"
        assert run([sys.executable, "-c", code], tmp_path).exit_code == -sig
    assert "Traceback" not in (tmp_path / "swift.log").read_text()
    assert run([sys.executable, "-c", "raise SystemExit(7)"], tmp_path).exit_code == 7
    missing = run([str(tmp_path / "nope")], tmp_path)
    assert missing.exit_code == 127 and "could not start" in (tmp_path / "swift.log").read_text()


def test_the_supervisor_stops_swift_when_its_orchestrator_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(30)"
    orchestrator = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys; from pathlib import Path; from swiftops.runner import run_swift\n"
            f"run_swift([sys.executable, '-c', {code!r}, {str(pid_file)!r}], env=os.environ,"
            f" log_path=Path({str(tmp_path / 'swift.log')!r}), cwd=Path({str(tmp_path)!r}))",
        ],
        env={**os.environ, runner.SUPERVISE_ENV: "1"},
    )
    assert wait_for(pid_file.exists, 30)
    swift = int(pid_file.read_text())
    orchestrator.kill()
    orchestrator.wait()
    assert wait_for(lambda: not alive(swift), 5)


def test_the_supervisor_ignores_a_parent_death_signal_while_its_parent_lives(tmp_path, monkeypatch):
    """The kernel sends it when the parent's THREAD that started swift ends, too."""
    monkeypatch.setenv(runner.SUPERVISE_ENV, "1")
    group_file = tmp_path / "pgid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpgrp())); time.sleep(1.5)"

    def poke():
        if wait_for(group_file.exists, 30):
            os.kill(int(group_file.read_text()), signal.SIGUSR1)  # the group's leader is the supervisor

    threading.Thread(target=poke, daemon=True).start()
    outcome = run([sys.executable, "-c", code, str(group_file)], tmp_path)
    assert outcome.exit_code == 0 and not outcome.interrupted


def test_the_apps_handlers_turn_signals_into_requests_and_a_third_outside_swift_quits(
    tmp_path, quiet_stop_signals
):
    before = signal.getsignal(signal.SIGTERM)
    marker = tmp_path / "started"
    with handle_stop_signals() as requests:
        assert stop_requested() is None
        os.kill(os.getpid(), signal.SIGTERM)  # between jobs: noted, nothing raised
        assert stop_requested() == "SIGTERM" and requests.count == 1
        outcome = run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], tmp_path)
        assert outcome.interrupted and outcome.stop_signal == "SIGTERM" and outcome.exit_code is None
        assert not marker.exists()  # a stop that came first: swift never starts
        assert "not started" in (tmp_path / "swift.log").read_text()
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert stop_requested() is None and signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------- whole sweeps, stand-in swift

# swift's CLI as the real one is built: a leader that starts the worker (the stand-in) and waits
STANDIN_LEADER = """\
#!{python}
import os, signal, subprocess, sys
if os.environ.get("STANDIN_IGNORE_SIGINT"):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: the worker ignores it too
worker = subprocess.Popen([sys.executable, {fake!r}, *sys.argv[1:]])
with open(os.environ["STANDIN_PIDS"], "a") as pids:
    pids.write(f"{{os.getpid()}} {{worker.pid}} {{os.getpgrp()}}\\n")
try:
    code = worker.wait()
except KeyboardInterrupt:
    code = worker.wait()
after = os.environ.get("STANDIN_SIGNAL_AFTER")  # SIGNAL:PIDFILE: once this group is gone, signal PID
if after and code == 0 and not os.path.exists(os.environ["STANDIN_PIDS"] + ".signalled"):
    open(os.environ["STANDIN_PIDS"] + ".signalled", "w").close()
    name, pid_file = after.split(":", 1)
    helper = (
        "import os, signal, sys, time\\n"
        "while True:\\n"
        "    try:\\n"
        "        os.killpg(int(sys.argv[1]), 0)\\n"
        "    except ProcessLookupError:\\n"
        "        break\\n"
        "    time.sleep(0.01)\\n"
        "os.kill(int(open(sys.argv[2]).read()), getattr(signal, sys.argv[3]))\\n"
    )
    args = [sys.executable, "-c", helper, str(os.getpgrp()), pid_file, name]
    subprocess.Popen(args, start_new_session=True)
sys.exit(code if code >= 0 else 128 - code)
"""


@pytest.fixture
def standin(tmp_path) -> Path:
    path = tmp_path / "bin" / "swift"
    path.parent.mkdir()
    path.write_text(STANDIN_LEADER.format(python=sys.executable, fake=str(FAKE_SWIFT)))
    path.chmod(0o755)
    return path


def swiftops_command(tmp_path: Path, standin: Path, *overrides: str) -> list[str]:
    """`python -m swiftops [-m] ...` on local stand-in inputs (a "-m" in overrides goes first)."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    data = tmp_path / "train.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    return [
        sys.executable,
        "-m",
        "swiftops",
        *[o for o in overrides if o == "-m"],
        f"model.id={model}",
        f"data.dataset=[{data}]",
        "data.test_dataset=null",
        "progress=false",
        f"swift_bin={standin}",
        f"report.dir={tmp_path / 'reports'}",
        *[o for o in overrides if o != "-m"],
    ]


def start_swiftops(command: list[str], tmp_path: Path, **env: str) -> subprocess.Popen:
    return start_interruptible(
        command,
        cwd=tmp_path,
        env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.2", "STANDIN_PIDS": str(tmp_path / "pids"), **env},
    )


def wait_for_training(proc: subprocess.Popen, job_dir: Path) -> None:
    """Until the stand-in has logged its first steps."""
    assert wait_for(lambda: bool(list(job_dir.glob("output/v*/logging.jsonl"))) or proc.poll() is not None)
    assert proc.poll() is None, proc.stdout.read().decode()
    time.sleep(0.5)


def standin_pids(tmp_path: Path) -> list[tuple[int, int, int]]:
    text = (tmp_path / "pids").read_text() if (tmp_path / "pids").exists() else ""
    return [tuple(int(x) for x in line.split()) for line in text.splitlines()]


def assert_no_standin_left(tmp_path: Path, marker: Path) -> None:
    pids = standin_pids(tmp_path)
    assert pids, "the stand-in never started"
    gone = wait_for(lambda: not any(alive(p) or alive(w) or group_exists(g) for p, w, g in pids), 5)
    assert gone, [(p, w, g, alive(p), alive(w), group_exists(g)) for p, w, g in pids]
    assert commands_with(str(marker)) == []


def assert_sweep_closed(sweep_dir: Path, tmp_path: Path, statuses: list[str]) -> list:
    records = [read_record(p) for p in find_records(sweep_dir)]
    assert [r.status for r in records] == statuses
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert [row["status"] for row in rows] == statuses
    assert list((tmp_path / "reports").rglob("*.html")), "no report"
    return records


@pytest.mark.sweep
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_mid_job_records_every_job_and_closes_the_sweep(tmp_path, standin, sig):
    sweep_dir = tmp_path / "sweep"
    command = swiftops_command(tmp_path, standin, "-m", "epochs=5,0.2", f"hydra.sweep.dir={sweep_dir}")
    proc = start_swiftops(command, tmp_path)
    wait_for_training(proc, sweep_dir / "0")
    proc.send_signal(sig)
    out = proc.communicate(timeout=90)[0].decode()
    records = assert_sweep_closed(sweep_dir, tmp_path, ["interrupted", "interrupted"])
    assert proc.returncode == 128 + sig, out  # as a shell reports a process stopped by sig
    assert records[0].error.startswith(f"interrupted by {stops.STOP_CAUSES[sig.name]}"), records[0].error
    assert records[0].run_dir and records[0].exit_code is not None
    assert records[1].error == f"not started: the sweep was interrupted ({sig.name})"
    assert_no_standin_left(tmp_path, sweep_dir)


@pytest.mark.sweep
def test_a_second_ctrl_c_cuts_the_grace_of_a_swift_that_ignores_the_first(tmp_path, standin):
    sweep_dir = tmp_path / "sweep"
    command = swiftops_command(tmp_path, standin, "-m", "epochs=5,0.2", f"hydra.sweep.dir={sweep_dir}")
    proc = start_swiftops(command, tmp_path, STANDIN_IGNORE_SIGINT="1")
    wait_for_training(proc, sweep_dir / "0")
    first = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    ((leader, worker, pgid),) = standin_pids(tmp_path)
    assert alive(leader) and alive(worker)  # it ignored the first
    proc.send_signal(signal.SIGINT)
    assert wait_for(lambda: not group_exists(pgid), 10)
    assert time.monotonic() - first < runner.STOP_GRACE_SECONDS[0] - 1  # SIGTERM came at once
    out = proc.communicate(timeout=90)[0].decode()
    assert proc.returncode == 130, out
    records = assert_sweep_closed(sweep_dir, tmp_path, ["interrupted", "interrupted"])
    assert records[0].exit_code == -signal.SIGTERM and "Ctrl-C" in records[0].error
    assert_no_standin_left(tmp_path, sweep_dir)


@pytest.mark.sweep
def test_sighup_with_the_terminal_gone_still_records_and_closes_the_sweep(tmp_path, standin):
    """The reader of the orchestrator's output is gone (a closed ssh session): every write to it
    would raise BrokenPipeError."""
    sweep_dir = tmp_path / "sweep"
    command = swiftops_command(tmp_path, standin, "-m", "epochs=5,0.2", f"hydra.sweep.dir={sweep_dir}")
    proc = start_swiftops(command, tmp_path)
    wait_for_training(proc, sweep_dir / "0")
    proc.stdout.close()
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=90) == 128 + signal.SIGHUP  # not 120: Python's exit flush did not fail
    records = assert_sweep_closed(sweep_dir, tmp_path, ["interrupted", "interrupted"])
    assert "SIGHUP" in records[0].error and "SIGHUP" in records[1].error
    assert_no_standin_left(tmp_path, sweep_dir)


@pytest.mark.sweep
def test_sigterm_between_jobs_records_the_rest_as_not_started(tmp_path, standin):
    """The signal lands once job 0's swift is gone, while its run is diagnosed: job 0 keeps its
    own end (completed), job 1 never starts."""
    sweep_dir = tmp_path / "sweep"
    pid_file = tmp_path / "orchestrator.pid"
    command = swiftops_command(tmp_path, standin, "-m", "epochs=0.2,5", f"hydra.sweep.dir={sweep_dir}")
    proc = start_swiftops(command, tmp_path, STANDIN_SIGNAL_AFTER=f"SIGTERM:{pid_file}")
    pid_file.write_text(str(proc.pid))
    out = proc.communicate(timeout=90)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, out
    records = assert_sweep_closed(sweep_dir, tmp_path, ["completed", "interrupted"])
    assert records[1].error == "not started: the sweep was interrupted (SIGTERM)"
    assert len(standin_pids(tmp_path)) == 1  # job 1's swift never ran
    assert_no_standin_left(tmp_path, sweep_dir)


@pytest.mark.sweep
def test_kill_9_of_the_orchestrator_leaves_no_swift_running(tmp_path, standin):
    """Nothing can record a kill -9 (run.json stays `running`), but swift must not train on as an
    orphan: the supervisor stops its group when its parent dies."""
    job = tmp_path / "job"
    proc = start_swiftops(swiftops_command(tmp_path, standin, "epochs=5", f"hydra.run.dir={job}"), tmp_path)
    wait_for_training(proc, job)
    ((leader, worker, pgid),) = standin_pids(tmp_path)
    proc.kill()
    proc.wait(timeout=10)
    t0 = time.monotonic()
    # their last zombies are init's to reap (and on its own time): what counts is that none runs
    assert wait_for(lambda: not live_members(pgid), 10), (alive(leader), alive(worker))
    assert time.monotonic() - t0 < 3  # the stand-in ends on the first step (SIGINT)
    assert commands_with(str(job)) == []
    assert read_record(job).status == "running"
