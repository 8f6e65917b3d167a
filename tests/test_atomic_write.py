"""One atomic write for every file swiftops replaces (run.json, the report, autotune.json, caches)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from swiftops.atomic_write import write_text_atomically


def test_the_new_text_replaces_the_old_and_no_temporary_file_stays(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("old\n")
    assert write_text_atomically(path, "新\n") == path
    assert path.read_text(encoding="utf-8") == "新\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_a_write_that_fails_part_way_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text("old\n")
    real_write_text = Path.write_text

    def full_disk(self, data, *args, **kwargs):
        real_write_text(self, data[:2], *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_text_atomically(path, "new and longer\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
