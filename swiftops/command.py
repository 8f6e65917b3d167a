"""Config -> `swift` argv. Pure functions: no files, no processes, no imports of swift. What the
installed swift is (its version, its flag names) is swiftops.installed_swift's, asked by the caller.

Config keys are named as the flags of ms-swift 4 (`tuner_type`, `learning_rate`, ...); the one
place that adapts them to an older installed ms-swift is `RENAMED_IN_3X` below.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swiftops.installed_swift import Version

# ms-swift 4.0 renamed these flags; the config uses the new names and 3.x gets the old ones.
RENAMED_IN_3X = {"tuner_type": "train_type"}

# data keys that are swiftops' own, not `swift sft` flags
DATA_KEYS_NOT_FLAGS = frozenset({"test_dataset"})

# the first ms-swift with --early_stop_interval (swift/llm/train/sft.py adds its EarlyStopCallback)
EARLY_STOP_SINCE = (3, 8)


def flag_name(key: str, version: Version | None) -> str:
    """The flag a config key becomes under the given ms-swift version."""
    if version is not None and version < (4,):
        return RENAMED_IN_3X.get(key, key)
    return key


def is_list(value: Any) -> bool:
    """A list-like value (list, tuple, OmegaConf's ListConfig), not a string."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def plain(value: Any) -> Any:
    """Mappings and lists (plain, or OmegaConf's DictConfig/ListConfig) as dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if is_list(value):
        return [plain(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept: what ms-swift's JSON flags (--model_kwargs, --generation_config,
    --columns, ...) parse, and how its own config-file loader writes a dict."""
    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"), default=str)


def format_value(value: Any) -> str:
    """One flag value as swift's argument parser reads it: a dict as JSON, never a Python repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return to_json(value)
    return str(value)


def flag_values(value: Any) -> list[str]:
    """The values after one flag: a list of scalars becomes several (`--dataset a b`, as swift's
    list flags expect), a list holding any dict or list one JSON value."""
    if not is_list(value):
        return [format_value(value)]
    if any(isinstance(v, Mapping) or is_list(v) for v in value):
        return [to_json(value)]
    return [format_value(v) for v in value]


def flags_to_argv(flags: Mapping[str, Any], version: Version | None = None) -> list[str]:
    """{key: value} -> ['--key', 'value', ...]. None and [] leave the flag out; see flag_values."""
    argv: list[str] = []
    for key, value in flags.items():
        if value is None or (is_list(value) and not value):
            continue
        argv.append(f"--{flag_name(key, version)}")
        argv.extend(flag_values(value))
    return argv


def _ordered_merge(*sections: Mapping[str, Any]) -> dict[str, Any]:
    """Later sections override earlier keys in place, so a flag appears once, where it first did."""
    merged: dict[str, Any] = {}
    for section in sections:
        merged.update(section)
    return merged


def model_flags(model: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "model": model["id"],
        "model_type": model.get("model_type"),
        "template": model.get("template"),
        "torch_dtype": model.get("torch_dtype"),
    }


def data_flags(data: Mapping[str, Any]) -> dict[str, Any]:
    flags = {k: v for k, v in data.items() if k not in DATA_KEYS_NOT_FLAGS}
    if flags.get("val_dataset"):
        # swift ignores the ratio when a validation set is given; leaving it out avoids a mixed message
        flags.pop("split_dataset_ratio", None)
    return flags


def early_stop_flags(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """early_stop=true -> ms-swift's own early stop: training ends after early_stop_patience saves
    (one per eval, as save_steps = eval_steps) without a new lowest eval loss. Same flag in 3.8+ and 4.x."""
    return {"early_stop_interval": cfg.get("early_stop_patience")} if cfg.get("early_stop") is True else {}


def sft_flags(cfg: Mapping[str, Any], output_dir: str) -> dict[str, Any]:
    """All `swift sft` flags of a resolved config, in the order they are written."""
    return _ordered_merge(
        model_flags(cfg["model"]),
        data_flags(cfg["data"]),
        cfg["train"],
        early_stop_flags(cfg),
        cfg["runtime"].get("flags") or {},
        {"output_dir": output_dir},
        cfg.get("args") or {},
    )


def build_sft_argv(
    cfg: Mapping[str, Any], output_dir: str, swift_bin: str = "swift", version: Version | None = None
) -> list[str]:
    """The `swift sft` command of a resolved config (a plain dict, interpolations resolved).

    Args:
        cfg: the job's config as a dict with model, data, train, runtime and args sections.
        output_dir: where swift writes its vN-timestamp run folder.
        swift_bin: the swift executable.
        version: the installed ms-swift version, for flag renames (None = current names).
    """
    return [swift_bin, "sft", *flags_to_argv(sft_flags(cfg, output_dir), version)]


def build_infer_argv(
    cfg: Mapping[str, Any],
    *,
    test_dataset: str,
    result_path: str,
    adapters: str | None = None,
    swift_bin: str = "swift",
    max_new_tokens: int = 256,
    extra: Mapping[str, Any] | None = None,
    version: Version | None = None,
) -> list[str]:
    """`swift infer` of a checkpoint (adapters) or, without one, of the base model itself.

    With adapters, swift reads the base model, its type and template from the checkpoint's
    args.json; without, they come from the model section.
    """
    source = {"adapters": adapters} if adapters else model_flags(cfg["model"])
    flags = _ordered_merge(
        source,
        {
            "val_dataset": test_dataset,
            "max_new_tokens": max_new_tokens,
            "temperature": 0,  # greedy: the score of a checkpoint must not depend on sampling
            "stream": False,
            "max_batch_size": 8,
            "result_path": result_path,
        },
        extra or {},
    )
    return [swift_bin, "infer", *flags_to_argv(flags, version)]


def build_export_argv(
    *,
    adapters: str,
    output_dir: str,
    swift_bin: str = "swift",
    extra: Mapping[str, Any] | None = None,
    version: Version | None = None,
) -> list[str]:
    """`swift export --merge_lora true` of a checkpoint into output_dir; safe to re-run."""
    flags = _ordered_merge(
        {"adapters": adapters, "merge_lora": True, "output_dir": output_dir, "exist_ok": True},
        extra or {},
    )
    return [swift_bin, "export", *flags_to_argv(flags, version)]


def swift_env(cfg: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """The swift process's environment: the current one plus the runtime's env section."""
    env = dict(base)
    for key, value in (cfg["runtime"].get("env") or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[str(key)] = format_value(value)
    return env


def run_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs a person compares runs by, under their short names, read from the train
    flags they feed (so `train.learning_rate=...` counts as well as `lr=...`), plus the
    model, the data and any pass-through flag. Stored in run.json as `params`."""
    params: dict[str, Any] = {short: cfg["train"].get(flag) for short, flag in SHORT_KEYS.items()}
    params["model"] = cfg["model"]["id"]
    params["dataset"] = list(cfg["data"].get("dataset") or [])
    params["system"] = cfg["data"].get("system")
    for key, value in (cfg.get("args") or {}).items():
        if key != "resume_from_checkpoint":  # where a run continued from (run.json's resume), not a knob
            params[f"args.{key}"] = value
    return params


# short top-level keys and the train flag each one feeds
SHORT_KEYS = {
    "lr": "learning_rate",
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "max_length": "max_length",
    "eval_steps": "eval_steps",
}
