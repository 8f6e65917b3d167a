"""Bad input: every problem named with its value and what would be valid."""

from __future__ import annotations

import pytest

from swiftops.validate import ConfigError, looks_like_local_path, validate_config


def problems_for(composed, overrides, exists=lambda p: True):
    return validate_config(composed(overrides), exists)


def test_defaults_are_valid(composed):
    assert problems_for(composed, []) == []


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("lr=0", ["lr", "0", "> 0"]),
        ("lr=-1e-4", ["lr", "-0.0001", "> 0"]),
        ("lr=fast", ["lr", "'fast'", "not a number"]),
        ("lora_rank=0", ["lora_rank", "0", ">= 1"]),
        ("lora_rank=2.5", ["lora_rank", "2.5", "integer"]),
        ("epochs=0", ["epochs", "0", "> 0"]),
        ("epochs=-3", ["epochs", "-3"]),
        ("batch_size=0", ["batch_size", ">= 1"]),
        ("data.split_dataset_ratio=1.5", ["split_dataset_ratio", "1.5", "[0, 1)"]),
        ("stages=[infer,sft]", ["stages", "order"]),
        ("stages=[train]", ["stages", "'train'", "sft"]),
        ("ckpt=newest", ["ckpt", "'newest'", "best, last"]),
    ],
)
def test_bad_values_are_named_with_what_is_valid(composed, override, names):
    problems = problems_for(composed, [override])
    assert len(problems) == 1, problems
    for name in names:
        assert name in problems[0]


def test_missing_local_paths_are_named(composed):
    problems = problems_for(
        composed,
        [
            "data.dataset=['/nope/train.jsonl','AI-ModelScope/alpaca-gpt4-data-zh#500']",
            "model=qwen2_5_1_5b",
            "model.id=/nope/model",
        ],
        exists=lambda p: not p.startswith("/nope"),
    )
    assert any("'/nope/train.jsonl' does not exist" in p for p in problems)
    assert any("'/nope/model' does not exist" in p for p in problems)
    assert not any("alpaca" in p for p in problems)  # hub ids are not paths


def test_infer_needs_an_existing_test_set(composed):
    problems = problems_for(
        composed,
        ["stages=[sft,infer]", "data.test_dataset=/nope/test.jsonl"],
        exists=lambda p: "nope" not in p,
    )
    assert problems == ["data.test_dataset = '/nope/test.jsonl' does not exist; the infer stage needs it"]


def test_all_problems_come_at_once():
    cfg = {
        "train": {"learning_rate": 0, "num_train_epochs": 0, "lora_rank": 0, "lora_alpha": 32},
        "data": {"dataset": []},
        "model": {"id": "x/y"},
        "stages": ["sft"],
        "ckpt": "best",
    }
    error = ConfigError(validate_config(cfg))
    assert len(error.problems) == 4
    assert "4 problem(s)" in str(error)


@pytest.mark.parametrize(
    ("entry", "local"),
    [
        ("/data/a.jsonl", True),
        ("./a.jsonl", True),
        ("a.jsonl#20", True),
        ("~/x", True),
        ("AI-ModelScope/alpaca-gpt4-data-zh#500", False),
        ("swift/self-cognition", False),
    ],
)
def test_local_paths_and_hub_ids(entry, local):
    assert looks_like_local_path(entry) is local


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("+classify.overfit_ris=0.1", ["classify.overfit_ris", "overfit_rise"]),
        ("classify.noise_z=high", ["classify.noise_z", "'high'", "number"]),
    ],
)
def test_classify_thresholds_are_checked_before_any_run(composed, override, names):
    problems = problems_for(composed, [override])
    assert len(problems) == 1, problems
    assert all(n in problems[0] for n in names), problems[0]
