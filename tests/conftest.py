"""Shared fixtures: composing swiftops configs in-process, and a stand-in `swift`."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from swiftops.configs import job_config, register
from swiftops.paths import conf_dir

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
SHARED_DIR = REPO_DIR.parent / "shared"  # beside the project here; a fresh clone has none
TUTORIAL_DATA = SHARED_DIR / "tutorial_data"
# The README quickstart's verdicts (python -m swiftops -m lr=1e-1,5e-5 lora_rank=4,8, in job order): at lr
# 0.1 the loss overshoots, comes back and levels off at the sweep's lowest eval loss; at lr 5e-5 both
# losses are still falling at the end
QUICKSTART_VERDICTS = ["converged", "converged", "underfit", "underfit"]


def needs_shared(*parts: str) -> pytest.MarkDecorator:
    """Skip unless ../shared/PARTS exists (the tutorial's data, the diagnosis corpus)."""
    relative = "/".join(parts)
    return pytest.mark.skipif(
        not SHARED_DIR.joinpath(*parts).exists(),
        reason=f"needs ../shared/{relative}: absent in this checkout",
    )


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


def write_fake_swift(folder: Path) -> Path:
    """folder/bin/swift: an executable stand-in for `swift` (see tests/fake_swift.py) run by this
    Python. Its path names every process it runs, so a test can look for them."""
    path = folder / "bin" / "swift"
    path.parent.mkdir(parents=True)
    path.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nrunpy.run_path({str(FAKE_SWIFT)!r}, run_name='__main__')\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def fake_swift(tmp_path) -> Path:
    """An executable stand-in for `swift` (see tests/fake_swift.py) run by this Python."""
    return write_fake_swift(tmp_path)


def processes_with(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line holds marker, this one aside."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if marker in cmdline:  # a zombie's command line is empty: only live ones match
            found.append((int(proc.name), cmdline))
    return found


HOLD_FOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from swiftops.folder_lock import hold_folder
    hold_folder(Path(sys.argv[1]))
    print("held", flush=True)
    time.sleep(60)
    """
)


def process_holding(folder: Path) -> subprocess.Popen:
    """Another process that holds folder until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def wait_until_logging(proc: subprocess.Popen, sweep_dir: Path, jobs: int, timeout: float = 120) -> None:
    """Wait until `jobs` jobs of the sweep in sweep_dir have swift logging steps, while proc (the
    sweep, started with start_interruptible) still runs; fail with its output otherwise."""
    deadline = time.monotonic() + timeout
    while len(list(sweep_dir.glob("*/output/v*/logging.jsonl"))) < jobs:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.1)


def children_of(pid: int, marker: str) -> list[int]:
    """The pids of pid's children whose command line holds marker (a parallel launcher's workers)."""
    return [child for child, _ in processes_with(marker) if parent_of(child) == pid]


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pids: list[int]) -> list[int]:
    """Those of pids that still run (a zombie, waiting for its reaper, has ended)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def commands_with(marker: str) -> list[str]:
    """The command lines of processes_with(marker): what a test prints when some are left."""
    return [cmdline for _, cmdline in processes_with(marker)]


def start_interruptible(command: list[str], **popen: object) -> subprocess.Popen:
    """A child (`python -m swiftops ...`) that a test stops with a signal: SIGINT restored (see
    sigint_as_from_a_terminal), its output captured in one pipe."""
    return subprocess.Popen(
        command,
        preexec_fn=sigint_as_from_a_terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **popen,
    )


def standin_sweep_argv(tmp_path: Path, fake_swift: Path, stand_in_files, *overrides: str) -> list[str]:
    """`python -m swiftops -m ...` on the stand-in swift and local inputs (stand_in_files), into
    tmp_path/sweep with its report in tmp_path/reports."""
    model, data = stand_in_files
    return [
        sys.executable,
        "-m",
        "swiftops",
        "-m",
        f"model.id={model}",
        f"data.dataset=[{data}]",
        f"swift_bin={fake_swift}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"report.dir={tmp_path / 'reports'}",
        *overrides,
    ]


def run_sweep(hydra_sweep_runner, sweep_dir: Path, overrides: list[str]):
    """A multirun of the swiftops app in this process (Hydra's test harness), into sweep_dir."""
    from swiftops.__main__ import run_task

    register()
    return hydra_sweep_runner(
        calling_file=__file__,
        calling_module=None,
        task_function=run_task,
        config_path=str(conf_dir()),
        config_name="config",
        overrides=overrides,
        temp_dir=str(sweep_dir),
    )


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write to: chmod 0o555, or for root (whom permissions never stop) a
    read-only tmpfs where mounting one is allowed; else the test is skipped."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)  # so pytest can clean tmp_path up
        return
    mount = shutil.which("mount")
    done = mount and subprocess.run(
        [mount, "-t", "tmpfs", "-o", "ro,size=64k", "swiftops-test", str(folder)], capture_output=True
    )
    if not done or done.returncode != 0:
        pytest.skip(
            "running as root, where chmod 0o555 does not stop writes, and no read-only tmpfs can be mounted"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


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
