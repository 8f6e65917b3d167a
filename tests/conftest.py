"""Shared fixtures: composing swiftops configs in-process, and a stand-in `swift`."""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from swiftops.configs import job_config, register
from swiftops.paths import conf_dir

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
TUTORIAL_DATA = REPO_DIR.parent / "shared" / "tutorial_data"


def compose_config(overrides: list[str] | None = None, *, hydra_node: bool = False):
    """The composed config of `python -m swiftops OVERRIDES`, without running anything."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=overrides or [], return_hydra_config=hydra_node)


@pytest.fixture
def composed():
    """composed(overrides) -> the job's plain config dict (interpolations resolved)."""
    return lambda overrides=None: job_config(compose_config(overrides))


FAKE_SWIFT = TESTS_DIR / "fake_swift.py"


@pytest.fixture
def fake_swift(tmp_path) -> Path:
    """An executable stand-in for `swift` (see tests/fake_swift.py) run by this Python."""
    path = tmp_path / "bin" / "swift"
    path.parent.mkdir()
    path.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nrunpy.run_path({str(FAKE_SWIFT)!r}, run_name='__main__')\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("SWIFTOPS_TUTORIAL_DATA",):
        monkeypatch.delenv(key, raising=False)
    return os.environ


@pytest.fixture
def stand_in_files(tmp_path) -> tuple[Path, Path]:
    """(a model folder, a one-row chat .jsonl): local inputs that pass validation; the stand-in
    swift reads neither."""
    model = tmp_path / "model"
    model.mkdir()
    data = tmp_path / "train.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    )
    return model, data


def sigint_as_from_a_terminal() -> None:
    """preexec_fn for a child that a test Ctrl-Cs: a shell's background job (CI's, or the test
    run's parent) ignores SIGINT, and Python keeps an inherited SIG_IGN, so Ctrl-C would never
    arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
