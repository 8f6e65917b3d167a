"""Bad input: every problem named with its value and what would be valid."""

from __future__ import annotations

import pytest

from swiftops.dataset_files import looks_like_local_path
from swiftops.validate import ConfigError, validate_config


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


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["early_stop=true", "train.save_steps=7"], ["save_steps = 7", "eval_steps = 5", "eval_steps=N"]),
        (["early_stop=true", "+args.save_steps=10"], ["save_steps = 10", "eval_steps = 5"]),
        (["early_stop=true", "early_stop_patience=0"], ["early_stop_patience", "0", ">= 1"]),
        (["early_stop=true", "early_stop_patience=2.5"], ["early_stop_patience", "2.5", "integer"]),
        (
            ["early_stop=true", "data.split_dataset_ratio=0"],
            ["eval set", "split_dataset_ratio", "val_dataset"],
        ),
        (["early_stop=true", "+args.eval_strategy=no"], ["eval_strategy", "'no'"]),
        (["early_stop=yes"], ["early_stop", "'yes'", "true or false"]),
    ],
)
def test_early_stop_refuses_what_would_lose_the_best_checkpoint(composed, overrides, names):
    problems = problems_for(composed, overrides)
    assert len(problems) == 1, problems
    assert all(n in problems[0] for n in names), problems[0]


def test_early_stop_needs_ms_swift_3_8(composed):
    cfg = composed(["early_stop=true"])
    assert validate_config(cfg, lambda p: True, swift_version=(4, 6, 0)) == []
    assert validate_config(cfg, lambda p: True, swift_version=(3, 8, 0)) == []
    (problem,) = validate_config(cfg, lambda p: True, swift_version=(3, 7, 3))
    assert "ms-swift 3.8 or newer" in problem and "3.7.3" in problem and "early_stop=false" in problem
    # off, the installed version does not matter
    assert validate_config(composed([]), lambda p: True, swift_version=(3, 7, 3)) == []


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("watchdog.enabled=maybe", ["watchdog.enabled", "'maybe'", "true or false"]),
        ("watchdog.every_s=0", ["watchdog.every_s", "0", "> 0"]),
        ("watchdog.every_s=soon", ["watchdog.every_s", "'soon'", "> 0"]),
        ("+watchdog.patience=3", ["watchdog.patience", "every_s", "enabled"]),
        ("+classify.watchdog_rise=8", ["classify.watchdog_rise", "watchdog_rise_z"]),
    ],
)
def test_watchdog_settings_are_checked_before_any_run(composed, override, names):
    problems = problems_for(composed, [override])
    assert len(problems) == 1, problems
    assert all(n in problems[0] for n in names), problems[0]


def test_the_watchdog_is_on_by_default_and_its_section_is_valid(composed):
    cfg = composed([])
    assert cfg["watchdog"]["enabled"] is True
    assert problems_for(composed, ["watchdog.enabled=false", "watchdog.every_s=0.5"]) == []


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("lr=nan", ["lr (train.learning_rate)", "nan", "not a finite number", "> 0"]),
        ("lr=inf", ["lr (train.learning_rate)", "inf", "> 0"]),
        ("epochs=-inf", ["epochs", "-inf", "> 0"]),
        ("lora_rank=inf", ["lora_rank", "inf", ">= 1"]),
        ("lora_alpha=nan", ["lora_alpha", "nan", "> 0"]),
        ("batch_size=nan", ["batch_size", "nan", ">= 1"]),  # once, though it feeds two flags
        ("eval_steps=inf", ["eval_steps", "inf", ">= 1"]),  # and save_steps
        ("max_length=inf", ["max_length", "inf"]),
        ("data.split_dataset_ratio=nan", ["split_dataset_ratio", "nan", "[0, 1)"]),
        ("classify.noise_z=inf", ["classify.noise_z", "inf", "finite number >= 0"]),
        ("classify.overfit_rise=nan", ["classify.overfit_rise", "nan"]),
        ("+args.weight_decay=nan", ["args.weight_decay", "nan", "finite number"]),
        ("+args.model_kwargs={a:inf}", ["args.model_kwargs.a", "inf", "finite number"]),
        ("train.warmup_ratio=-inf", ["train.warmup_ratio", "-inf"]),
        ("+train.weight_decay=nan", ["train.weight_decay", "nan"]),
        ("infer.max_new_tokens=inf", ["infer.max_new_tokens", "inf"]),
        ("+export.args.max_shard_size=nan", ["export.args.max_shard_size", "nan"]),
        ("watchdog.every_s=inf", ["watchdog.every_s", "inf", "> 0"]),
    ],
)
def test_nan_and_inf_are_refused_by_key_with_what_is_valid(composed, override, names):
    problems = problems_for(composed, [override])
    assert len(problems) == 1, problems
    assert all(n in problems[0] for n in names), problems[0]


def test_nan_of_early_stop_patience_is_named_once(composed):
    (problem,) = problems_for(composed, ["early_stop=true", "early_stop_patience=nan"])
    assert problem == (
        "early_stop_patience = nan is not a finite number; use an integer >= 1, e.g. early_stop_patience=3"
    )


@pytest.mark.parametrize(
    ("override", "example"),
    [
        ("lr=fast", "e.g. lr=1e-4"),
        ("lr=0", "e.g. lr=1e-4"),
        ("lora_rank=many", "e.g. lora_rank=8"),
        ("lora_alpha=-1", "e.g. lora_alpha=32"),
        ("epochs=soon", "e.g. epochs=3"),
        ("batch_size=big", "e.g. batch_size=4"),
        ("grad_accum=0", "e.g. grad_accum=4"),
        ("max_length=long", "e.g. max_length=2048"),
        ("eval_steps=often", "e.g. eval_steps=50"),
    ],
)
def test_each_knob_s_message_gives_an_example_of_that_knob(composed, override, example):
    (problem,) = problems_for(composed, [override])
    assert problem.endswith(example), problem


def test_every_example_is_a_value_its_own_check_accepts():
    from swiftops.validate import EXAMPLES, check_positive

    integers = {"lora_rank", "batch_size", "grad_accum", "max_length", "eval_steps", "early_stop_patience"}
    for short, example in EXAMPLES.items():
        problems: list[str] = []
        value = int(example) if short in integers else float(example)
        check_positive(problems, short, value, integer=short in integers)
        assert problems == [], (short, example)


SFT_FLAGS = {"learning_rate", "learning-rate", "lora_rank", "lora_alpha", "lora_dropout", "lr_scheduler_type"}
SFT_FLAGS |= {"use_hf", "no_use_hf", "train_type", "warmup_ratio", "warmup_steps"}
KNOWN = {"sft": SFT_FLAGS, "infer": {"max_batch_size", "max_new_tokens"}, "export": {"merge_lora"}}


def flag_problems(composed, overrides, known=KNOWN, version=None):
    return validate_config(composed(overrides), lambda p: True, swift_version=version, swift_flags=known)


def test_an_unknown_flag_is_named_with_its_command_and_the_closest_valid_names(composed):
    assert flag_problems(composed, ["+args.learnig_rate=1e-4"]) == [
        "args.learnig_rate: swift sft has no --learnig_rate; did you mean --learning_rate?"
    ]
    (infer,) = flag_problems(composed, ["+infer.args.max_batch_sise=4"])
    assert (
        infer
        == "infer.args.max_batch_sise: swift infer has no --max_batch_sise; did you mean --max_batch_size?"
    )
    (export,) = flag_problems(composed, ["+export.args.merge_lroa=true"])
    assert "swift export has no --merge_lroa; did you mean --merge_lora?" in export
    (far,) = flag_problems(composed, ["+args.no_such_flag=1"])
    assert far == "args.no_such_flag: swift sft has no --no_such_flag; see `swift sft --help`"


def test_suggestions_are_canonical_names_and_list_several(composed):
    (problem,) = flag_problems(composed, ["+args.lora_rnak=4"])
    assert "did you mean --lora_rank" in problem
    (problem,) = flag_problems(composed, ["+args.warmup_ration=0.1"])
    assert "--warmup_ratio" in problem and "-ratio" not in problem.replace("--warmup_ratio", "")


def test_what_swift_accepts_is_not_refused(composed):
    accepted = [
        "+args.lora_dropout=0.1",
        "+args.learning-rate=1e-4",
        "+args.no_use_hf=true",
        "+args.lora_drop=0.1",
    ]
    assert (
        flag_problems(composed, accepted) == []
    )  # aliases and an unambiguous prefix, as argparse takes them
    (ambiguous,) = flag_problems(composed, ["+args.warmup=0.1"])
    assert "--warmup is ambiguous for swift sft" in ambiguous and "--warmup_ratio" in ambiguous


def test_swiftops_own_flags_and_unread_commands_need_no_check(composed):
    assert flag_problems(composed, ["stages=[sft,infer]"], known={"sft": {"x"}}) == []  # train/runtime flags
    assert flag_problems(composed, ["+infer.args.anything=1"], known={"sft": SFT_FLAGS}) == []
    assert flag_problems(composed, ["+args.anything=1", "+args.ignore_args_error=true"]) == []  # swift warns
    assert problems_for(composed, ["+args.anything=1"]) == []  # no names: not checked


def test_flag_names_follow_the_version_of_the_swift_that_will_run(composed):
    # tuner_type goes to a 3.x swift as --train_type, which it has
    assert flag_problems(composed, ["+args.tuner_type=full"], version=(3, 12, 6)) == []
    (problem,) = flag_problems(composed, ["+args.tuner_type=full"], version=(4, 6, 0))
    assert "swift sft has no --tuner_type" in problem
