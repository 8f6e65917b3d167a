"""One run or sweep per folder (swiftops.folder_lock): a second launch into a folder in use is refused
before any job, naming the holder; a dead holder's lock is taken over; the lock goes with the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import standin_sweep_argv, start_interruptible

from swiftops.folder_lock import LOCK_NAME, FolderInUse, hold_folder

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from swiftops.folder_lock import hold_folder
    hold_folder(Path(sys.argv[1]))
    print("held", flush=True)
    time.sleep(60)
    """
)


def holding(folder: Path) -> subprocess.Popen:
    """Another process that holds folder until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_held_folder_is_refused_naming_its_holder(tmp_path):
    other = holding(tmp_path / "sweep")
    try:
        with pytest.raises(FolderInUse) as caught:
            hold_folder(tmp_path / "sweep")
        assert caught.value.holder.pid == other.pid
        assert f"pid {other.pid} on " in str(caught.value) and ", since 20" in str(caught.value)
        # a run into a job folder of the sweep is refused too
        with pytest.raises(FolderInUse):
            hold_folder(tmp_path / "sweep" / "0")
        assert not (tmp_path / "sweep" / "0").exists()
    finally:
        other.kill()
        other.wait()


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    other = holding(tmp_path / "sweep")
    other.kill()  # kill -9: its lock file stays, and nobody holds it
    other.wait()
    assert json.loads((tmp_path / "sweep" / LOCK_NAME).read_text())["pid"] == other.pid
    lock = hold_folder(tmp_path / "sweep")
    assert json.loads((tmp_path / "sweep" / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "sweep" / LOCK_NAME).exists()
    lock.release()  # twice is harmless


def test_a_released_folder_can_be_held_again(tmp_path):
    hold_folder(tmp_path / "run").release()
    lock = hold_folder(tmp_path / "run")
    lock.release()


@pytest.mark.sweep
@pytest.mark.parametrize("second", [[], ["resume=true"]], ids=["again", "resume"])
def test_a_second_sweep_into_a_folder_in_use_exits_2_before_any_job(
    tmp_path, fake_swift, stand_in_files, second
):
    """The same sweep launched twice into one folder (two terminals, or a re-run while the first
    still runs): the second is refused at once, naming the first; the first is untouched."""
    sweep_dir = tmp_path / "sweep"
    argv = standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "lr=1e-3,5e-4")
    first = start_interruptible(argv, cwd=tmp_path, env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.2"})
    try:
        deadline = time.monotonic() + 120
        while not list(sweep_dir.glob("0/output/v*/logging.jsonl")):
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read().decode()
            time.sleep(0.1)
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


@pytest.mark.sweep
def test_a_single_run_into_a_folder_in_use_exits_2(tmp_path, fake_swift, stand_in_files):
    other = holding(tmp_path / "run")
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


@pytest.mark.sweep
def test_a_sweep_killed_with_sigkill_leaves_a_lock_the_next_one_takes(tmp_path, fake_swift, stand_in_files):
    sweep_dir = tmp_path / "sweep"
    argv = standin_sweep_argv(tmp_path, fake_swift, stand_in_files, "lr=1e-3")
    first = start_interruptible(argv, cwd=tmp_path, env={**os.environ, "FAKE_SWIFT_STEP_SECONDS": "0.2"})
    deadline = time.monotonic() + 120
    while not list(sweep_dir.glob("0/output/v*/logging.jsonl")):
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read().decode()
        time.sleep(0.1)
    first.kill()
    first.wait()
    assert (sweep_dir / LOCK_NAME).is_file()
    time.sleep(1)  # the stand-in's supervisor stops it
    done = subprocess.run([*argv, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert not (sweep_dir / LOCK_NAME).exists()
