"""The command line's keys and group options, judged before Hydra composes (pure parts)."""

from __future__ import annotations

from swiftops.overrides import config_keys, is_open, key_problem, option_problem

CONFIG = {
    "lr": 1e-3,
    "lora_rank": 8,
    "lora_alpha": 32,
    "train": {"learning_rate": "${lr}", "lora_rank": "${lora_rank}"},
    "args": {},
    "infer": {"max_new_tokens": 256, "args": {}},
    "watchdog": {"enabled": True, "every_s": 1.0},
    "hydra": {"run": {"dir": "x"}},
}


def test_config_keys_are_every_dotted_path_but_hydra_s():
    keys = config_keys(CONFIG)
    assert {"lr", "train", "train.lora_rank", "infer.args", "watchdog.every_s"} <= keys
    assert not any(k.startswith("hydra") for k in keys)


def test_swift_flag_subtrees_are_open_and_swiftops_own_are_closed():
    assert is_open("args.lora_dropout") and is_open("infer.args.max_batch_size") and is_open("train.foo")
    assert is_open("runtime.flags.bf16") and is_open("hydra.launcher.n_jobs")
    assert not is_open("lora_rnak") and not is_open("watchdog.patience") and not is_open("infer.baseline2")
    assert not is_open("arguments") and not is_open("runtime.gpu")


def test_a_known_or_open_key_passes():
    known = config_keys(CONFIG)
    assert key_problem("lora_rank=4", "lora_rank", known) is None
    assert key_problem("+args.lora_dropout=0.1", "args.lora_dropout", known) is None


def test_an_unknown_key_is_named_with_the_closest_known_ones():
    known = config_keys(CONFIG)
    problem = key_problem("+lora_rnak=8", "lora_rnak", known)
    assert problem is not None
    assert problem.startswith("+lora_rnak=8: swiftops has no key 'lora_rnak'; did you mean lora_rank")
    assert "+args.lora_rnak" in problem  # where a swift flag would go
    nested = key_problem("watchdog.enabeld=false", "watchdog.enabeld", known)
    assert nested is not None and "did you mean watchdog.enabled" in nested
    assert "+args." not in nested


def test_an_unknown_key_with_nothing_close_points_to_the_help():
    problem = key_problem("zzz=1", "zzz", config_keys(CONFIG))
    assert problem is not None and "--help" in problem and "did you mean" not in problem


def test_an_unknown_option_is_named_with_the_closest_and_all_options():
    options = ["demo", "mixed", "tutorial_100"]
    assert option_problem("data=demo", "data", "demo", options) is None
    problem = option_problem("data=demmo", "data", "demmo", options)
    assert problem == (
        "data=demmo: data has no option 'demmo'; did you mean data=demo? "
        "the options: demo, mixed, tutorial_100"
    )
    plus = option_problem("+sweep=tutorail", "sweep", "tutorail", ["tutorial", "autotune"], "+sweep")
    assert plus is not None and "did you mean +sweep=tutorial?" in plus


def test_a_changed_key_must_exist_even_in_an_open_section():
    known = config_keys(CONFIG)
    assert key_problem("+train.warmup_ratio=0.1", "train.warmup_ratio", known) is None
    problem = key_problem("train.learning_rat=1", "train.learning_rat", known, open_ok=False)
    assert problem is not None and "did you mean train.learning_rate" in problem
    assert "+train.learning_rat=1" in problem  # how a new swift flag is added there
