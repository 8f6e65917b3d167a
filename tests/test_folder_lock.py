"""One run or sweep per folder (swiftops.folder_lock): a second launch into a folder in use is refused
before any job, naming the holder; a dead holder's lock is taken over; the lock goes with the run."""

from __future__ import annotations

import json
import os

import pytest
from conftest import process_holding

from swiftops.folder_lock import LOCK_NAME, FolderInUse, hold_folder


def test_a_held_folder_is_refused_naming_its_holder(tmp_path):
    other = process_holding(tmp_path / "sweep")
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
    other = process_holding(tmp_path / "sweep")
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
