"""`python -m swiftops` from the command line: bad input stops it before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_cli import swiftops


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


@pytest.mark.parametrize(
    ("overrides", "named", "closest"),
    [
        (["lora_rnak=8"], "swiftops has no key 'lora_rnak'", "did you mean lora_rank"),
        (["+lora_rnak=8"], "+lora_rnak=8: swiftops has no key 'lora_rnak'", "did you mean lora_rank"),
        (["++lora_rnak=8"], "swiftops has no key 'lora_rnak'", "did you mean lora_rank"),
        (["learning_rat=1e-4"], "swiftops has no key 'learning_rat'", "train.learning_rate"),
        (["+watchdog.enabeld=false"], "no key 'watchdog.enabeld'", "did you mean watchdog.enabled"),
        (["+infer.max_new_token=64"], "no key 'infer.max_new_token'", "did you mean infer.max_new_tokens"),
        # a swift-flag section takes new keys with +, but a changed one must be there
        (["train.warmup_rati=0.1"], "no key 'train.warmup_rati'", "did you mean train.warmup_ratio"),
        (["data.datset=[x.jsonl]"], "no key 'data.datset'", "did you mean data.dataset"),
        # every combination of a sweep: a key the second model option doesn't have either
        (["-m", "model=tiny,qwen2_5_1_5b", "+model.idd=x"], "no key 'model.idd'", "did you mean model.id"),
        (["-m", "lr=1e-4,1e-3", "+lora_rnak=4,8"], "+lora_rnak=4,8: swiftops has no key", "lora_rank"),
        (["-m", "experiment=glob(tutorial_tiny_*)", "lora_rnak=4"], "no key 'lora_rnak'", "lora_rank"),
    ],
)
def test_an_unknown_key_is_refused_with_or_without_plus_before_any_job(tmp_path, overrides, named, closest):
    done = swiftops(
        *overrides, f"hydra.run.dir={tmp_path / 'job'}", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and closest in done.stderr, done.stderr
    assert "To append to your config use" not in done.stderr  # Hydra's advice is not passed on
    assert not (tmp_path / "job").exists() and not (tmp_path / "s").exists()


def test_swift_flag_sections_stay_open(tmp_path):
    # their keys are swift's: checked against the swift that will run (tests/test_installed_swift.py)
    done = swiftops(
        "+args.lora_dropout=0.1",
        "+train.weight_decay=0.01",
        "dry_run=true",
        f"hydra.run.dir={tmp_path / 'job'}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "--lora_dropout 0.1" in done.stdout and "--weight_decay 0.01" in done.stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "+experiment=nosuch",
            "experiment has no option 'nosuch'; the options: tutorial_run1, tutorial_run2",
        ),
        ("experiment=tutorial_rn3", "did you mean experiment=tutorial_run3"),
        ("+sweep=tutorail", "did you mean +sweep=tutorial"),
        ("+sweep=nope", "sweep has no option 'nope'; the options: autotune, tutorial, tutorial_tiny"),
        ("model=nosuch", "model has no option 'nosuch'; the options: qwen2_5_1_5b, qwen2_5_7b, tiny"),
        ("data=demmo", "data=demmo: data has no option 'demmo'; did you mean data=demo?"),
        ("hydra/launcher=paralel", "did you mean hydra/launcher=parallel?"),
    ],
)
def test_an_unknown_group_option_gets_did_you_mean_and_the_options(tmp_path, override, expected):
    done = swiftops(override, f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["lr=[1"], "lr=[1: not an override Hydra can read"),
        (["lr=1e-4,1e-3"], "To sweep over it, add --multirun"),
        (["+lr=3"], "An item is already at 'lr'"),
        (["~lr"], "Interpolation key 'lr' not found"),
        (["hydra.job.chdir=maybe"], "hydra.job.chdir=maybe"),
        (["hydra.run.dri=x"], "Hydra has no key 'hydra.run.dri'; did you mean hydra.run.dir"),
        (["-m", "hydra/launcher=parallel", "hydra.launcher.n_job=2"], "did you mean hydra.launcher.n_jobs"),
        (["-m", "hydra.job.chdir=true,false"], "Sweeping over Hydra's configuration is not supported"),
    ],
)
def test_hydra_s_own_config_errors_exit_2_with_its_message(tmp_path, overrides, expected):
    done = swiftops(*overrides, f"hydra.run.dir={tmp_path / 'job'}", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr, done.stderr
    assert not (tmp_path / "job").exists()


def test_bad_value_in_a_sweep_stops_every_job(tmp_path):
    done = swiftops("-m", "lr=1e-4,0", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert done.returncode == 2
    assert "lr (train.learning_rate) = 0" in done.stderr
    assert not list((tmp_path / "s").glob("*/run.json"))


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


def test_ls_lists_the_launchers_and_sweepers():
    out = subprocess.run(
        [sys.executable, "-m", "swiftops.ls"], capture_output=True, text=True, check=True
    ).stdout
    section = out.split("hydra: launchers and sweepers", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in section.strip().splitlines()[1:]]
    assert names == [
        "hydra/launcher=basic",
        "hydra/launcher=parallel",
        "hydra/launcher=slurm",
        "hydra/sweeper=basic",
        "hydra/sweeper=autotune",
    ]
    assert "up to `jobs` jobs at once on this machine" in section  # each described by its own file


def test_help_is_swiftops_own_and_lists_every_key_option_sweep_and_launcher(tmp_path):
    from swiftops.ls import config_knobs, hydra_entries, listing

    done = swiftops("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "powered by Hydra" not in text
    assert text.count("python -m swiftops ") >= 3  # the examples
    for _, key, default, meaning in config_knobs():
        assert f"{key}={default}" in text and meaning in text, key
    assert "lr=1e-3" in text and "--lora_rank; higher = more trainable parameters" in text
    groups = text.split("\nGroups (", 1)[1].split("\nNamed sweeps", 1)[0]
    words = set(groups.replace("=", " ").split())
    for title, entries in listing():
        if title.startswith(("named sweeps", "hydra")):
            continue
        for name, _ in entries:
            group, option = name.split("=", 1)
            assert group in words and option in words, name
    for sweep in sorted(p.stem for p in (Path(__file__).parents[1] / "sweeps").glob("*.yaml")):
        assert f"+sweep={sweep}" in text
    for name, _ in hydra_entries():
        assert name in text
    assert "--multirun,-m" in text  # Hydra's flags, still there


def test_config_knobs_read_defaults_and_meanings_from_the_comments(tmp_path):
    from swiftops.ls import config_knobs

    conf = tmp_path / "config.yaml"
    conf.write_text(
        "defaults:\n  - _self_\n  - model: tiny  # not a key\n"
        "# ---- the knobs ----\n"
        "lr: 1e-3   # --learning_rate; suits the tiny model. More words\n"
        "           #   that continue it.\n"
        "args: {}\n"
        "watchdog:  # the watchdog\n"
        "  enabled: true  # false: no watchdog, e.g. for a test\n"
        "  parent: null   # set by the sweeper: the job,\n"
        "  change: null   #   the change\n"
        "hydra:\n  job:\n    chdir: false  # not a key either\n"
    )
    assert config_knobs(conf) == [
        ("the knobs", "lr", "1e-3", "--learning_rate; suits the tiny model."),
        ("the knobs", "args", "{}", "the knobs"),
        ("the knobs", "watchdog.enabled", "true", "false: no watchdog, e.g. for a test"),
        ("the knobs", "watchdog.parent", "null", "set by the sweeper: the job, the change"),
        ("the knobs", "watchdog.change", "null", "see watchdog.parent"),
    ]


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
