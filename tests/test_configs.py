"""Every shipped experiment and sweep composes; the tutorial's five runs build the tutorial's flags."""

from __future__ import annotations

import pytest
from conftest import TUTORIAL_DATA, compose_config, needs_shared
from helpers_cli import argv_to_flags
from omegaconf import OmegaConf

from swiftops.command import build_sft_argv
from swiftops.configs import available_sweeps, job_config
from swiftops.paths import conf_dir

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))

# the tutorial's table (../shared/tutorial_data/README.md): lr, rank, epochs, dataset, batch, eval_steps
TUTORIAL_TABLE = {
    1: ("0.1", "4", "1", "train_100", "8", "1"),
    2: ("5e-05", "4", "1", "train_100", "8", "1"),
    3: ("5e-05", "4", "50", "train_100", "16", "20"),
    4: ("5e-05", "8", "3", "train_1k", "16", "20"),
    5: ("5e-05", "8", "15", "train_1k", "16", "20"),
}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(name):
    plain = job_config(compose_config([f"experiment={name}"]))
    assert build_sft_argv(plain, "out")[:2] == ["swift", "sft"]


@pytest.mark.parametrize("name", available_sweeps())
def test_every_named_sweep_is_a_multirun_over_composable_jobs(name):
    cfg = compose_config([f"+sweep={name}"], hydra_node=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    if cfg.hydra.sweeper._target_.endswith("AutotuneSweeper"):
        # its jobs come from the verdicts, not from a list: the start config must build
        assert build_sft_argv(job_config(compose_config([f"+sweep={name}"])), "out")
        return
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, f"sweeps/{name}.yaml sweeps nothing"
    for key, values in params.items():
        for value in str(values).split(","):
            plain = job_config(compose_config([f"+sweep={name}", f"{key}={value}"]))
            assert build_sft_argv(plain, "out")


def test_an_unknown_sweep_lists_the_available_ones():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException) as error:
        compose_config(["+sweep=nope"])
    message = str(error.value)
    assert "nope" in message
    for name in available_sweeps():
        assert name in message


@needs_shared("tutorial_data", "zh")  # where the configs point when the files are there
@pytest.mark.parametrize("run", sorted(TUTORIAL_TABLE))
def test_tutorial_runs_build_the_tutorials_flags(run, monkeypatch):
    monkeypatch.setenv("SWIFTOPS_TUTORIAL_DATA", str(TUTORIAL_DATA / "zh"))
    lr, rank, epochs, dataset, batch, eval_steps = TUTORIAL_TABLE[run]
    flags = argv_to_flags(
        build_sft_argv(job_config(compose_config([f"experiment=tutorial_run{run}"])), "out")
    )
    assert flags["model"] == ["Qwen/Qwen2.5-1.5B-Instruct"]
    assert flags["learning_rate"] == [lr]
    assert flags["lora_rank"] == [rank]
    assert flags["num_train_epochs"] == [epochs]
    assert flags["dataset"] == [str(TUTORIAL_DATA / "zh" / f"{dataset}.jsonl")]
    assert flags["per_device_train_batch_size"] == [batch]
    assert int(batch) * int(flags["gradient_accumulation_steps"][0]) == 16  # the tutorial's effective batch
    assert flags["eval_steps"] == [eval_steps] and flags["save_steps"] == [eval_steps]
    # ms-swift 2.4's defaults, written out
    assert flags["lora_alpha"] == ["32"]
    assert flags["lora_dropout"] == ["0.05"]
    assert flags["target_modules"] == ["q_proj", "k_proj", "v_proj"]
    assert flags["split_dataset_ratio"] == ["0.01"]
    assert flags["max_length"] == ["512"]
    assert flags["lr_scheduler_type"] == ["cosine"]
    assert flags["warmup_ratio"] == ["0.05"]


def test_tutorial_data_falls_back_to_the_built_in_math_set(monkeypatch, tmp_path):
    from swiftops.tiny import tiny_assets

    monkeypatch.setenv("SWIFTOPS_TUTORIAL_DATA", str(tmp_path / "absent"))
    plain = job_config(compose_config(["data=tutorial_1k"]))
    assert plain["data"]["dataset"] == [str(tiny_assets().math_train_1k)]
    assert plain["data"]["test_dataset"] == str(tiny_assets().math_test)


# sweeps/tutorial_tiny.yaml: the five runs scaled for the tiny model on CPU (see each experiment's header):
# lr, rank, epochs, tutorial file, batch, accumulation, eval_steps
TUTORIAL_TINY_TABLE = {
    1: ("0.1", "4", "1", "train_100", "8", "2", "1"),
    2: ("0.003", "4", "1", "train_100", "4", "1", "2"),
    3: ("0.003", "4", "50", "train_100", "4", "1", "44"),
    4: ("0.003", "8", "1", "train_1k", "32", "1", "2"),
    5: ("0.003", "8", "5", "train_1k", "32", "1", "6"),
}


def test_the_tiny_tutorial_keeps_the_tutorials_proportions():
    """As the tutorial: runs 2-5 share one learning rate, ranks 4, 4, 8, 8; runs 2 and 3 differ only
    in epochs, 1 and 50; runs 4 and 5 only in epochs, in the tutorial's 3:15; 4-5 on the 1k set."""
    lrs = {TUTORIAL_TINY_TABLE[run][0] for run in (2, 3, 4, 5)}
    assert len(lrs) == 1
    assert [TUTORIAL_TINY_TABLE[run][1] for run in (2, 3, 4, 5)] == ["4", "4", "8", "8"]
    epochs = {run: int(TUTORIAL_TINY_TABLE[run][2]) for run in (2, 3, 4, 5)}
    assert epochs[3] / epochs[2] == 50 and epochs[5] / epochs[4] == 15 / 3
    for a, b in ((2, 3), (4, 5)):
        same = [i for i in (1, 3, 4, 5) if TUTORIAL_TINY_TABLE[a][i] != TUTORIAL_TINY_TABLE[b][i]]
        assert same == [], (a, b)  # only epochs and eval_steps (points on the curve) differ


def test_the_tiny_tutorial_sweep_runs_the_five_tiny_experiments_in_order():
    cfg = compose_config(["+sweep=tutorial_tiny"], hydra_node=True)
    assert str(cfg.hydra.sweeper.params.experiment).split(",") == [
        f"tutorial_tiny_run{run}" for run in sorted(TUTORIAL_TINY_TABLE)
    ]


@pytest.mark.parametrize(
    "source", [pytest.param("zh", marks=needs_shared("tutorial_data", "zh")), "built_in"]
)
@pytest.mark.parametrize("run", sorted(TUTORIAL_TINY_TABLE))
def test_tiny_tutorial_runs_build_their_flags_on_the_tiny_model(run, source, monkeypatch, tmp_path):
    from swiftops.configs import TUTORIAL_FILES
    from swiftops.tiny import tiny_assets

    folder = TUTORIAL_DATA / "zh" if source == "zh" else tmp_path / "absent"
    monkeypatch.setenv("SWIFTOPS_TUTORIAL_DATA", str(folder))
    lr, rank, epochs, name, batch, accum, eval_steps = TUTORIAL_TINY_TABLE[run]
    flags = argv_to_flags(
        build_sft_argv(job_config(compose_config([f"experiment=tutorial_tiny_run{run}"])), "out")
    )
    assets = tiny_assets()
    expected = folder / f"{name}.jsonl" if source == "zh" else getattr(assets, TUTORIAL_FILES[name])
    assert flags["dataset"] == [str(expected)]
    assert flags["model"] == [str(assets.model_dir)] and flags["model_type"] == ["qwen2"]
    assert flags["learning_rate"] == [lr]
    assert flags["lora_rank"] == [rank]
    assert flags["num_train_epochs"] == [epochs]
    assert flags["per_device_train_batch_size"] == [batch]
    assert flags["gradient_accumulation_steps"] == [accum]
    assert flags["eval_steps"] == [eval_steps] and flags["save_steps"] == [eval_steps]
    # shared by all five (conf/train/tutorial_tiny.yaml and the experiments)
    assert flags["lr_scheduler_type"] == ["constant_with_warmup"]
    assert flags["warmup_ratio"] == ["0.05"]
    assert flags["target_modules"] == ["all-linear"]
    assert flags["lora_alpha"] == ["32"] and flags["lora_dropout"] == ["0.05"]
    assert flags["max_length"] == ["320"]
    assert flags["split_dataset_ratio"] == ["0.1"]
    assert flags["logging_steps"] == ["1"]  # every step: run 1 has only 5-6 of them
    # the CPU runtime
    assert flags["fp16"] == ["false"] and flags["check_model"] == ["false"]


@pytest.mark.parametrize("key", ["dataset", "val_dataset"])
def test_a_dataset_path_without_brackets_is_a_list_of_one(key):
    """As Hydra composes `data.dataset=/data/mine.jsonl`: a string, which the job config makes a
    one-item list, so the command gets one --dataset value (not one per character)."""
    plain = job_config(compose_config([f"data.{key}=/data/mine.jsonl"]))
    assert plain["data"][key] == ["/data/mine.jsonl"]
    flags = argv_to_flags(build_sft_argv(plain, "out"))
    assert flags[key] == ["/data/mine.jsonl"]
