"""config -> swift argv: exact lists, version renames, pass-through flags."""

from __future__ import annotations

from helpers_cli import argv_to_flags

from swiftops.command import (
    build_export_argv,
    build_infer_argv,
    build_sft_argv,
    flag_name,
    flags_to_argv,
    format_value,
    run_params,
)

# The self-cognition walkthrough of ms-swift's README (4.x flag names), flag by flag.
WALKTHROUGH_7B = {
    "model": ["Qwen/Qwen2.5-7B-Instruct"],
    "tuner_type": ["lora"],
    "dataset": [
        "AI-ModelScope/alpaca-gpt4-data-zh#500",
        "AI-ModelScope/alpaca-gpt4-data-en#500",
        "swift/self-cognition#500",
    ],
    "torch_dtype": ["bfloat16"],
    "num_train_epochs": ["1"],
    "per_device_train_batch_size": ["1"],
    "per_device_eval_batch_size": ["1"],
    "learning_rate": ["0.0001"],
    "lora_rank": ["8"],
    "lora_alpha": ["32"],
    "target_modules": ["all-linear"],
    "gradient_accumulation_steps": ["16"],
    "eval_steps": ["50"],
    "save_steps": ["50"],
    "save_total_limit": ["2"],
    "logging_steps": ["5"],
    "max_length": ["2048"],
    "output_dir": ["output"],
    "system": ["You are a helpful assistant."],
    "warmup_ratio": ["0.05"],
    "dataloader_num_workers": ["4"],
    "model_author": ["swift"],
    "model_name": ["swift-robot"],
}


def test_walkthrough_7b_self_cognition_command_is_reproduced(composed):
    cfg = composed(["experiment=walkthrough_7b"])
    argv = build_sft_argv(cfg, "output", version=(4, 6, 0))
    assert argv[:2] == ["swift", "sft"]
    flags = argv_to_flags(argv)
    for name, values in WALKTHROUGH_7B.items():
        assert flags.get(name) == values, f"--{name}: {flags.get(name)} != walkthrough's {values}"
    # what swiftops adds on purpose: evaluation on, NaN visible, TensorBoard for the diagnosis
    assert flags["split_dataset_ratio"] == ["0.01"]
    assert flags["logging_nan_inf_filter"] == ["false"]
    assert flags["report_to"] == ["tensorboard"]


def test_walkthrough_on_ms_swift_3_uses_train_type(composed):
    cfg = composed(["experiment=walkthrough_7b"])
    flags = argv_to_flags(build_sft_argv(cfg, "output", version=(3, 12, 6)))
    assert flags["train_type"] == ["lora"]
    assert "tuner_type" not in flags


def test_default_tiny_config_builds_exact_argv(composed):
    from swiftops.tiny import tiny_assets

    assets = tiny_assets()
    cfg = composed([])
    argv = build_sft_argv(cfg, "/jobs/0/output", swift_bin="/venv/bin/swift", version=(4, 6, 0))
    assert argv == [
        "/venv/bin/swift",
        "sft",
        "--model",
        str(assets.model_dir),
        "--model_type",
        "qwen2",
        "--template",
        "qwen",
        "--torch_dtype",
        "float32",
        "--dataset",
        str(assets.demo_train),
        "--split_dataset_ratio",
        "0.1",
        "--tuner_type",
        "lora",
        "--learning_rate",
        "0.001",
        "--lora_rank",
        "8",
        "--lora_alpha",
        "32",
        "--target_modules",
        "all-linear",
        "--num_train_epochs",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "4",
        "--gradient_accumulation_steps",
        "4",
        "--eval_steps",
        "5",
        "--save_steps",
        "5",
        "--save_total_limit",
        "2",
        "--logging_steps",
        "1",
        "--max_length",
        "512",
        "--warmup_ratio",
        "0.05",
        "--lr_scheduler_type",
        "constant_with_warmup",
        "--seed",
        "42",
        "--logging_nan_inf_filter",
        "false",
        "--report_to",
        "tensorboard",
        "--fp16",
        "false",
        "--bf16",
        "false",
        "--check_model",
        "false",
        "--dataloader_num_workers",
        "0",
        "--gradient_checkpointing",
        "false",
        "--output_dir",
        "/jobs/0/output",
    ]


def test_short_overrides_feed_their_flags(composed):
    cfg = composed(["lr=5e-5", "lora_rank=4", "epochs=50", "batch_size=16", "grad_accum=1", "eval_steps=20"])
    flags = argv_to_flags(build_sft_argv(cfg, "o"))
    assert flags["learning_rate"] == ["5e-05"]
    assert flags["lora_rank"] == ["4"]
    assert flags["num_train_epochs"] == ["50"]
    assert flags["per_device_train_batch_size"] == ["16"]
    assert flags["per_device_eval_batch_size"] == ["16"]
    assert flags["gradient_accumulation_steps"] == ["1"]
    assert flags["eval_steps"] == ["20"] and flags["save_steps"] == ["20"]


def test_pass_through_adds_new_flags_and_overrides_existing_ones_in_place(composed):
    cfg = composed(["+args.lora_dropout=0.1", "+args.warmup_ratio=0.2", "+args.use_hf=true"])
    argv = build_sft_argv(cfg, "o")
    flags = argv_to_flags(argv)
    assert flags["lora_dropout"] == ["0.1"]
    assert flags["warmup_ratio"] == ["0.2"]  # once, with the pass-through's value
    assert flags["use_hf"] == ["true"]
    assert argv.index("--warmup_ratio") < argv.index("--output_dir")


def test_null_leaves_a_flag_out_and_val_dataset_drops_the_ratio(composed):
    cfg = composed(["model=qwen2_5_1_5b", "data=mixed", "data.val_dataset=[/data/val.jsonl]"])
    flags = argv_to_flags(build_sft_argv(cfg, "o"))
    assert "model_type" not in flags and "template" not in flags
    assert flags["val_dataset"] == ["/data/val.jsonl"]
    assert "split_dataset_ratio" not in flags


def test_flag_renames_follow_the_version():
    assert flag_name("tuner_type", (4, 0, 0)) == "tuner_type"
    assert flag_name("tuner_type", (3, 12, 6)) == "train_type"
    assert flag_name("learning_rate", (3, 12, 6)) == "learning_rate"
    assert flag_name("tuner_type", None) == "tuner_type"


def test_flags_to_argv_formats_values():
    assert flags_to_argv({"a": True, "b": False, "c": None, "d": [], "e": [1, "x"], "f": 1e-4}) == [
        "--a",
        "true",
        "--b",
        "false",
        "--e",
        "1",
        "x",
        "--f",
        "0.0001",
    ]


def test_infer_argv_with_adapters_and_for_the_base_model(composed):
    cfg = composed([])
    tuned = build_infer_argv(cfg, test_dataset="t.jsonl", result_path="r.jsonl", adapters="/ck/checkpoint-6")
    assert tuned == [
        "swift",
        "infer",
        "--adapters",
        "/ck/checkpoint-6",
        "--val_dataset",
        "t.jsonl",
        "--max_new_tokens",
        "256",
        "--temperature",
        "0",
        "--stream",
        "false",
        "--max_batch_size",
        "8",
        "--result_path",
        "r.jsonl",
    ]  # no runtime flag: they are training flags, and swift infer rejects --check_model
    base = build_infer_argv(cfg, test_dataset="t.jsonl", result_path="r.jsonl")
    assert base[2:4] == ["--model", str(cfg["model"]["id"])]
    assert argv_to_flags(base)["template"] == ["qwen"]


def test_export_argv_merges_and_may_rerun():
    assert build_export_argv(adapters="/ck/checkpoint-6", output_dir="/job/merged") == [
        "swift",
        "export",
        "--adapters",
        "/ck/checkpoint-6",
        "--merge_lora",
        "true",
        "--output_dir",
        "/job/merged",
        "--exist_ok",
        "true",
    ]


def test_run_params_read_the_train_flags(composed):
    params = run_params(composed(["train.learning_rate=3e-4", "lora_rank=4", "+args.lora_dropout=0.2"]))
    assert params["lr"] == 3e-4
    assert params["lora_rank"] == 4
    assert params["args.lora_dropout"] == 0.2
    assert params["dataset"]


def test_early_stop_feeds_ms_swifts_own_flag_only_when_on(composed):
    assert "early_stop_interval" not in argv_to_flags(build_sft_argv(composed([]), "o"))
    flags = argv_to_flags(build_sft_argv(composed(["early_stop=true", "early_stop_patience=4"]), "o"))
    assert flags["early_stop_interval"] == ["4"]
    assert flags["eval_steps"] == flags["save_steps"]  # the best checkpoint exists (see validate)
    # the same flag name in ms-swift 3.8+ as in 4.x
    assert "--early_stop_interval" in build_sft_argv(composed(["early_stop=true"]), "o", version=(3, 8, 0))


def test_dicts_go_to_swift_as_compact_json_not_python_repr(composed):
    cfg = composed(["+args.model_kwargs={a:1,b:[x,{c:true}]}", "+args.generation_config={temperature:0.5}"])
    flags = argv_to_flags(build_sft_argv(cfg, "o"))
    assert flags["model_kwargs"] == ['{"a":1,"b":["x",{"c":true}]}']
    assert flags["generation_config"] == ['{"temperature":0.5}']


def test_json_values_from_omegaconf_and_plain_containers_alike():
    from omegaconf import OmegaConf

    node = OmegaConf.create(
        {"k": {"name": "模型", "n": None}, "l": [{"a": 1}, {"b": [1, 2]}], "s": ["a", "b"]}
    )
    for flags in (node, OmegaConf.to_container(node)):
        assert flags_to_argv(flags) == [
            "--k",
            '{"name":"模型","n":null}',  # non-ASCII kept, as swift's own config loader writes it
            "--l",
            '[{"a":1},{"b":[1,2]}]',  # a list of dicts: one JSON value, not one repr per item
            "--s",
            "a",
            "b",  # a list of scalars: several values after one flag, as before
        ]
    assert format_value({"a": 1}) == '{"a":1}'


def test_infer_and_export_pass_through_dicts_as_json(composed):
    infer = build_infer_argv(
        composed([]), test_dataset="t", result_path="r", extra={"generation_config": {"top_k": 1}}
    )
    assert infer[infer.index("--generation_config") + 1] == '{"top_k":1}'
    export = build_export_argv(adapters="a", output_dir="o", extra={"quant_kwargs": {"bits": 4}})
    assert export[export.index("--quant_kwargs") + 1] == '{"bits":4}'
