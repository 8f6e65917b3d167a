"""`python -m swiftops` from the command line: bad input stops it before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def swiftops(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "swiftops", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("lr=-1", "lr (train.learning_rate) = -1 is out of range; use a number > 0"),
        ("lr=abc", "lr (train.learning_rate) = 'abc' is not a number"),
        ("lora_rank=0", "lora_rank (train.lora_rank) = 0 is out of range; use an integer >= 1"),
        ("epochs=0", "epochs (train.num_train_epochs) = 0 is out of range"),
        ("data.dataset=[/no/such/train.jsonl]", "data.dataset: '/no/such/train.jsonl' does not exist"),
        ("model.id=/no/such/model", "model.id = '/no/such/model' does not exist"),
        ("swift_bin=/no/such/swift", "swift (ms-swift) is not installed: `pip install torch==2.13.0` first"),
    ],
)
def test_bad_input_exits_2_naming_the_value_before_any_run(tmp_path, override, expected):
    done = swiftops(override, f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "job" / "run.json").exists()
    assert not (tmp_path / "job" / "output").exists()


def test_unknown_key_is_named(tmp_path):
    done = swiftops("learning_rat=1e-4", cwd=tmp_path)
    assert done.returncode != 0
    assert "learning_rat" in done.stderr


def test_bad_value_in_a_sweep_stops_every_job(tmp_path):
    done = swiftops("-m", "lr=1e-4,0", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert done.returncode == 2
    assert "lr (train.learning_rate) = 0" in done.stderr
    assert not list((tmp_path / "s").glob("*/run.json"))


def test_unknown_named_sweep_lists_the_available_ones(tmp_path):
    done = swiftops("+sweep=nope", cwd=tmp_path)
    assert done.returncode != 0
    assert "nope" in done.stderr and "tutorial" in done.stderr


def test_ls_lists_sweeps_experiments_and_groups(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "swiftops.ls"], capture_output=True, text=True, check=True
    ).stdout
    for needle in (
        "+sweep=tutorial",
        "experiment=tutorial_run3",
        "model=tiny",
        "data=tutorial_100",
        "runtime=gpu",
    ):
        assert needle in out


def test_ls_describes_each_entry_by_the_first_sentence_of_its_comment(tmp_path):
    from swiftops.ls import describe

    preset = tmp_path / "x.yaml"
    preset.write_text(
        "# @package _global_\n# python -m swiftops experiment=x\n#\n"
        "# The first sentence runs over\n# two lines. The second is left out.\n#\n# Details.\nlr: 1\n"
    )
    assert describe(preset) == "The first sentence runs over two lines."
    assert describe(preset, width=20) == "The first sentence ..."


def test_a_single_run_that_failed_ends_with_swift_s_own_error_and_its_log(
    tmp_path, fake_swift, stand_in_files
):
    model, data = stand_in_files
    env = {**os.environ, "FAKE_SWIFT_FAIL": "sft"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swiftops",
            f"swift_bin={fake_swift}",
            f"model.id={model}",
            f"data.dataset=[{data}]",
            "data.test_dataset=null",
            "report.enabled=false",
            f"hydra.run.dir={tmp_path / 'job'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    log = tmp_path / "job" / "swift.log"
    assert last == f"swiftops: the run failed: RuntimeError: fake swift sft failed (its log: {log})"
    assert (
        "| why" in done.stdout and "RuntimeError: fake swift sft failed" in done.stdout
    )  # the table says it too


@pytest.mark.parametrize(
    "args",
    [("dry_run=true",), ("lr=fast",), ("-m", "dry_run=true", "lr=1e-4,1e-3"), ("-m", "lr=fast,1e-3")],
    ids=["dry run", "refused run", "dry sweep", "refused sweep"],
)
def test_dry_and_refused_runs_leave_no_empty_output_folder(tmp_path, args):
    (tmp_path / "outputs" / "mine").mkdir(parents=True)  # a folder of the user's own stays
    done = swiftops(*args, cwd=tmp_path)
    assert done.returncode in (0, 2), done.stdout + done.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "outputs",
        "outputs/mine",
    ]


def test_a_given_run_folder_that_held_files_before_is_kept(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "notes.txt").write_text("mine\n")
    assert swiftops("dry_run=true", f"hydra.run.dir={job}", cwd=tmp_path).returncode == 0
    assert (job / "notes.txt").is_file() and (job / ".hydra").is_dir()
