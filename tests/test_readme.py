"""Every `python -m swiftops ...` line of the README, and every command in a sweeps/*.yaml header,
runs as written with dry_run=true: an example can't go stale without a test failing."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_DIR
from report_fixtures import RUN_NAME, FakeRun, make_job

pytestmark = pytest.mark.sweep

APP = ["python", "-m", "swiftops"]


def readme_commands() -> list[str]:
    """The app's command lines in the README's bash blocks, continuation lines joined."""
    text = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    return [line for line in lines if shlex.split(line, comments=True)[:3] == APP]


def sweep_header_commands() -> list[str]:
    """The commands each named sweep's header comment gives."""
    return [
        line.removeprefix("# ")
        for path in sorted((REPO_DIR / "sweeps").glob("*.yaml"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("# python -m swiftops ")
    ]


def test_the_examples_are_found():
    assert len(readme_commands()) >= 25 and len(sweep_header_commands()) >= 5


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory) -> Path:
    """A working folder holding what the examples name: a dataset of one's own, an earlier job
    folder and an earlier swift run folder."""
    cwd = tmp_path_factory.mktemp("readme")
    (cwd / "data").mkdir()
    row = '{"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}\n'
    (cwd / "data" / "mine.jsonl").write_text(row * 4, encoding="utf-8")
    job = cwd / "multirun" / "2026-11-29" / "12-00-00" / "3"
    make_job(job, FakeRun("converged", seed=1))
    shutil.copytree(job / "output" / RUN_NAME, cwd / "path" / "to" / "output" / "v0-20261129-120000")
    return cwd


@pytest.mark.parametrize("line", readme_commands() + sweep_header_commands())
def test_every_example_runs_as_written(example_dir, line):
    records_before = sorted(example_dir.rglob("run.json"))
    # four GPUs, as the GPU examples assume (the count is read from CUDA_VISIBLE_DEVICES)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    args = shlex.split(line, comments=True)[3:]
    done = subprocess.run(
        [sys.executable, "-m", "swiftops", *args, "dry_run=true"],
        cwd=example_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "swift " in done.stdout, done.stdout[-2000:]  # the commands it would run
    assert sorted(example_dir.rglob("run.json")) == records_before  # and it ran none


def test_the_layout_names_every_module_of_the_package_and_no_other():
    """The README's Layout block, swiftops/ part: one entry per module and package, so the tree can
    be read there; a module added, split or renamed without its line fails here."""
    text = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    package = block.split("\nswiftops/", 1)[1].split("\nreports/", 1)[0]
    listed = set()
    for line in package.splitlines():
        names = re.match(r"  ([^\s,]+(?:, [^\s,]+)*)", line)
        if names:
            listed |= set(names.group(1).split(", "))
    root = REPO_DIR / "swiftops"
    on_disk = {p.name for p in root.glob("*.py") if p.name != "__init__.py"}
    on_disk |= {f"{p.name}/" for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert listed == on_disk
