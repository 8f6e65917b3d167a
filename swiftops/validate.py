"""Check a resolved config before anything runs: every problem named with its value and
what would be valid, all at once."""

from __future__ import annotations

import difflib
import functools
import math
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from swiftops.command import EARLY_STOP_SINCE, SHORT_KEYS, flag_name, is_list, sft_flags
from swiftops.dataset_files import dataset_entries, file_problem, local_path
from swiftops.installed_swift import Version

STAGES = ("sft", "infer", "export")
CHECKPOINT_CHOICES = ("best", "last")


class ConfigError(ValueError):
    """A config that can't run. The message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"swiftops: the config can't run ({len(problems)} problem(s)):\n{lines}")


def refuse(error: ConfigError) -> None:
    """Stop before anything runs: the reasons on stderr, exit status 2 (a usage error).
    SystemExit, because Hydra turns exceptions raised in callbacks into mere warnings."""
    print(error, file=sys.stderr, flush=True)
    raise SystemExit(2)


# where a config's values go to swift as flags: (config path, the swift command)
PASS_THROUGH = (("args", "sft"), ("infer.args", "infer"), ("export.args", "export"))
# train flags that a short knob feeds besides its own (conf/train/lora.yaml): a NaN there is that knob's
DERIVED_FLAGS = {"per_device_eval_batch_size": "batch_size", "save_steps": "eval_steps"}
# sections with checks of their own, and the short knobs, which reach swift only through train
OWN_CHECKS = frozenset({"classify", "watchdog", *SHORT_KEYS})


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def non_finite(value: Any) -> bool:
    """A float NaN, Inf or -Inf (what Hydra makes of `lr=nan`, `lr=inf`): never a useful setting."""
    return isinstance(value, float) and not math.isfinite(value)


def _name(short: str) -> str:
    return f"{short} (train.{SHORT_KEYS[short]})" if short in SHORT_KEYS else short


# a sensible value of each checked knob, for the messages: `lr=fast` is told "e.g. lr=1e-4"
EXAMPLES = {
    "lr": "1e-4",
    "lora_rank": "8",
    "lora_alpha": "32",
    "epochs": "3",
    "batch_size": "4",
    "grad_accum": "4",
    "max_length": "2048",
    "eval_steps": "50",
    "early_stop_patience": "3",
}


def check_positive(problems: list[str], short: str, value: Any, *, integer: bool = False) -> None:
    number = _number(value)
    kind = "an integer >= 1" if integer else "a number > 0"
    use = f"use {kind}, e.g. {short}={EXAMPLES[short]}"
    if number is not None and not math.isfinite(number):
        problems.append(f"{_name(short)} = {value!r} is not a finite number; {use}")
    elif number is None or (integer and number != int(number)):
        problems.append(f"{_name(short)} = {value!r} is not a number; {use}")
    elif (integer and number < 1) or number <= 0:
        problems.append(f"{_name(short)} = {value!r} is out of range; {use}")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every scalar inside value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif is_list(value):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def non_finite_problems(cfg: Mapping[str, Any], checked: Collection[str] = ()) -> list[str]:
    """Every NaN/Inf number left in the config (train and data flags, args, infer, export, ...),
    named by its key. checked: paths a more specific check has already judged."""
    problems = []
    for path, value in _leaves(cfg, ""):
        if not non_finite(value) or path in checked or path.split(".")[0].split("[")[0] in OWN_CHECKS:
            continue
        section, _, key = path.partition(".")
        if section == "train" and key in DERIVED_FLAGS and non_finite(cfg.get(DERIVED_FLAGS[key])):
            continue  # ${batch_size} or ${eval_steps}: named once, under the knob
        problems.append(
            f"{path} = {value!r} is not a finite number; NaN and Inf are never useful to swift, "
            "give a finite number"
        )
    return problems


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def flag_problem(label: str, command: str, flag: str, names: Collection[str]) -> str | None:
    """Why `swift COMMAND --flag` would be refused (None: it would not), with the closest flags.
    argparse also takes an unambiguous prefix (--lora_drop), so swift does too."""
    if flag in names:
        return None
    # memoized: a sweep checks the same typo in every combination (difflib over ~700 names: 4 ms)
    return _flag_problem(label, command, flag, frozenset(names))


@functools.lru_cache(maxsize=256)
def _flag_problem(label: str, command: str, flag: str, names: frozenset[str]) -> str | None:
    prefixed = sorted(n for n in names if n.startswith(flag))
    if len(prefixed) == 1:
        return None
    if prefixed:
        shown = _or([f"--{n}" for n in prefixed[:5]]) + (", ..." if len(prefixed) > 5 else "")
        return f"{label}: --{flag} is ambiguous for swift {command} (it could be {shown}); write it in full"
    # suggest the canonical spellings, not the --a-b and --no_x aliases
    canonical = sorted(n for n in names if "-" not in n and not (n.startswith("no_") and n[3:] in names))
    close = difflib.get_close_matches(flag, canonical, n=3)
    hint = f"did you mean {_or([f'--{c}' for c in close])}?" if close else f"see `swift {command} --help`"
    return f"{label}: swift {command} has no --{flag}; {hint}"


def unknown_flag_problems(
    cfg: Mapping[str, Any], known: Mapping[str, Collection[str]], version: Version | None = None
) -> list[str]:
    """The pass-through flags (args, infer.args, export.args) the swift that will run does not have.
    known: its flag names per command (swiftops.installed_swift); a command without names is not checked,
    nor one told to ignore them (+args.ignore_args_error=true makes swift only warn)."""
    problems = []
    for path, command in PASS_THROUGH:
        section: Any = cfg
        for part in path.split("."):
            section = section.get(part) if isinstance(section, Mapping) else None
        names = known.get(command)
        ignored = isinstance(section, Mapping) and section.get("ignore_args_error") in (True, "true")
        if not isinstance(section, Mapping) or not names or ignored:
            continue
        for key in section:
            problem = flag_problem(f"{path}.{key}", command, flag_name(str(key), version), names)
            if problem:
                problems.append(problem)
    return problems


def dataset_problems(
    cfg: Mapping[str, Any], path_exists: Callable[[str], bool] = os.path.exists
) -> list[str]:
    """The local files of data.dataset and data.val_dataset (hub ids are swift's to fetch): each
    must exist, and what it holds must be rows swift can read (swiftops.dataset_files). A file
    path_exists counts as present but that is not there yet (the tiny assets, built on first use)
    is not read. `+args.columns` maps other column names, so then the columns are not checked."""
    columns_mapped = bool((cfg.get("args") or {}).get("columns"))
    problems = []
    for key in ("dataset", "val_dataset"):
        for entry in dataset_entries(cfg.get("data") or {}, key):
            local = local_path(entry)
            if local is None:  # a hub id: swift's to fetch
                continue
            if not path_exists(local):
                problems.append(f"data.{key}: {entry!r} does not exist; give an existing file or a hub id")
            elif problem := file_problem(local, columns_mapped):
                problems.append(f"data.{key}: {entry!r} {problem}")
    return problems


def validate_config(
    cfg: Mapping[str, Any],
    path_exists: Callable[[str], bool] = os.path.exists,
    swift_version: Version | None = None,
    swift_flags: Mapping[str, Collection[str]] | None = None,
    gpu_count: int | None = None,
) -> list[str]:
    """Every problem of a resolved config (a plain dict), as sentences. Empty = runnable.
    swift_version: the installed ms-swift's, for what needs a newer one (None: not checked).
    swift_flags: the flag names of that swift per command, for the pass-through args (None: not checked).
    gpu_count: the GPUs this machine shows (None: unknown, runtime.gpus not checked against it)."""
    problems: list[str] = runtime_problems(cfg, gpu_count)
    train = cfg["train"]
    checked = {"train.learning_rate", "train.num_train_epochs", "data.split_dataset_ratio"}
    check_positive(problems, "lr", train.get("learning_rate"))
    check_positive(problems, "epochs", train.get("num_train_epochs"))
    if train.get("tuner_type", "lora") == "lora":
        check_positive(problems, "lora_rank", train.get("lora_rank"), integer=True)
        check_positive(problems, "lora_alpha", train.get("lora_alpha"))
        checked |= {"train.lora_rank", "train.lora_alpha"}
    for short in ("batch_size", "grad_accum", "eval_steps", "max_length"):
        value = train.get(SHORT_KEYS[short])
        if value is not None:
            check_positive(problems, short, value, integer=True)
            checked.add(f"train.{SHORT_KEYS[short]}")

    data = cfg["data"]
    datasets = dataset_entries(data, "dataset")
    if not datasets:
        problems.append("data.dataset is empty; give at least one local .jsonl file or hub id")
    ratio = data.get("split_dataset_ratio")
    if ratio is not None and (_number(ratio) is None or not 0 <= float(ratio) < 1):
        problems.append(f"data.split_dataset_ratio = {ratio!r}; use a share in [0, 1), e.g. 0.1")
    problems.extend(dataset_problems(cfg, path_exists))

    model_id = str(cfg["model"].get("id"))
    if model_id.startswith(("/", "./", "../", "~")) and not path_exists(os.path.expanduser(model_id)):
        problems.append(f"model.id = {model_id!r} does not exist; give a model folder or a hub id")

    problems.extend(classify_problems(cfg.get("classify") or {}))
    problems.extend(early_stop_problems(cfg, swift_version))
    if cfg.get("early_stop") is True:
        checked.add("early_stop_patience")
    problems.extend(non_finite_problems(cfg, checked))
    if swift_flags:
        problems.extend(unknown_flag_problems(cfg, swift_flags, swift_version))

    from swiftops.watchdog import watchdog_problems  # late, as ClassifySettings below

    problems.extend(watchdog_problems(cfg.get("watchdog")))

    stages = list(cfg.get("stages") or [])
    unknown = [s for s in stages if s not in STAGES]
    if not stages or unknown:
        problems.append(f"stages = {stages!r}; use a non-empty subset of {list(STAGES)}, in that order")
    elif stages != sorted(stages, key=STAGES.index) or len(set(stages)) != len(stages):
        problems.append(f"stages = {stages!r} is out of order; use the order {list(STAGES)}")
    if "infer" in stages:
        test = data.get("test_dataset")
        if not test:
            problems.append("stages includes infer but data.test_dataset is null; set it to a .jsonl file")
        elif (local := local_path(test)) is not None and not path_exists(local):
            problems.append(f"data.test_dataset = {test!r} does not exist; the infer stage needs it")
    if "sft" not in stages and set(stages) & {"infer", "export"} and not cfg.get("run"):
        problems.append("stages without sft need run=PATH: the job or run folder to take checkpoints from")
    run = cfg.get("run")
    if run and not path_exists(os.path.expanduser(str(run))):
        problems.append(f"run = {run!r} does not exist; give a job folder or a swift run folder")
    ckpt = cfg.get("ckpt")
    if ckpt not in CHECKPOINT_CHOICES:
        # a bare word (ckpt=newest) is a typo for best/last, not a folder in the working dir
        is_path = os.sep in str(ckpt) or str(ckpt).startswith(("~", "."))
        if not is_path or not path_exists(os.path.expanduser(str(ckpt))):
            problems.append(f"ckpt = {ckpt!r}; use best, last, or an existing checkpoint folder")
    return problems


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def runtime_problems(cfg: Mapping[str, Any], gpu_count: int | None) -> list[str]:
    """`jobs`, `runtime.gpus` and `runtime.gpus_per_job`: a pool of distinct GPU indices this
    machine has, and leases that fit in it."""
    problems = []
    jobs = cfg.get("jobs", 1)
    if not _whole(jobs) or jobs < 1:
        problems.append(f"jobs = {jobs!r}; use a whole number >= 1 (the jobs that run at once)")
    runtime = cfg.get("runtime") or {}
    gpus = runtime.get("gpus") or []
    per_job = runtime.get("gpus_per_job", 1)
    if not is_list(gpus) or not all(_whole(g) and g >= 0 for g in gpus) or len(set(gpus)) != len(gpus):
        return [*problems, f"runtime.gpus = {gpus!r}; use a list of distinct GPU indices, e.g. [0,1], or []"]
    if not _whole(per_job) or per_job < 1:
        problems.append(f"runtime.gpus_per_job = {per_job!r}; use a whole number >= 1")
    elif gpus and per_job > len(gpus):
        problems.append(
            f"runtime.gpus_per_job = {per_job} is more than the {len(gpus)} GPU(s) of runtime.gpus = "
            f"{list(gpus)}; list more GPUs or use gpus_per_job <= {len(gpus)}"
        )
    missing = [g for g in gpus if gpu_count is not None and g >= gpu_count]
    if missing:
        have = f"0-{gpu_count - 1}" if gpu_count > 1 else ("0" if gpu_count else "none")
        problems.append(
            f"runtime.gpus = {list(gpus)} names GPU(s) {missing} that this machine doesn't have; "
            f"it has {gpu_count} (indices {have})"
        )
    return problems


def visible_gpu_count() -> int | None:
    """How many GPUs processes here can use, without importing torch: the entries of an inherited
    CUDA_VISIBLE_DEVICES, else the NVIDIA driver's list of GPUs; None when neither says (no
    driver: CUDA is not visible, and runtime.gpus can't be checked)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    driver = Path("/proc/driver/nvidia/gpus")
    if driver.is_dir():
        return sum(1 for _ in driver.iterdir())
    return None


def classify_problems(settings: Mapping[str, Any]) -> list[str]:
    """The classify group's keys must be fields of ClassifySettings, with numbers for values:
    a typo (+classify.overfit_ris=0.1) would otherwise cost every run its verdict."""
    # here, not at the top: the diagnosis (numpy) stays out of the orchestrator's start-up
    from swiftops.diagnosis import ClassifySettings

    valid = {f.name for f in fields(ClassifySettings)}
    problems = []
    for key, value in settings.items():
        if key not in valid:
            problems.append(f"classify.{key} is not a threshold of the diagnosis; use one of {sorted(valid)}")
        elif _number(value) is None or not math.isfinite(float(value)) or float(value) < 0:
            problems.append(f"classify.{key} = {value!r}; use a finite number >= 0")
    return problems


def early_stop_problems(cfg: Mapping[str, Any], swift_version: Version | None) -> list[str]:
    """early_stop=true needs ms-swift 3.8+ (--early_stop_interval), a patience of whole evals, an eval
    set, and a checkpoint at every eval (save_steps = eval_steps): only then does the lowest eval loss
    have its checkpoint, which transformers' checkpoint rotation never deletes (save_total_limit)."""
    early_stop = cfg.get("early_stop", False)
    if not isinstance(early_stop, bool):
        return [f"early_stop = {early_stop!r}; use true or false"]
    if not early_stop:
        return []
    problems: list[str] = []
    check_positive(problems, "early_stop_patience", cfg.get("early_stop_patience"), integer=True)
    if swift_version is not None and swift_version < EARLY_STOP_SINCE:
        installed = ".".join(str(part) for part in swift_version)
        problems.append(
            f"early_stop=true needs ms-swift 3.8 or newer (--early_stop_interval), but ms-swift {installed} "
            "is installed; pip install -U 'ms-swift>=3.8', or set early_stop=false"
        )
    flags = sft_flags(cfg, "")
    eval_steps, save_steps = flags.get("eval_steps"), flags.get("save_steps")
    if eval_steps != save_steps:
        problems.append(
            f"early_stop=true needs save_steps = eval_steps (a checkpoint at every eval, so the best one "
            f"exists), but save_steps = {save_steps!r} and eval_steps = {eval_steps!r}; set eval_steps=N, "
            "which sets both"
        )
    eval_strategy, save_strategy = (
        flags.get("eval_strategy") or "steps",
        flags.get("save_strategy") or "steps",
    )
    if eval_strategy == "no":
        problems.append("early_stop=true needs evaluation, but eval_strategy = 'no'; leave it at steps")
    elif eval_strategy != save_strategy:
        problems.append(
            f"early_stop=true needs save_strategy = eval_strategy, but they are {save_strategy!r} and "
            f"{eval_strategy!r}; leave both at steps"
        )
    ratio = _number(flags.get("split_dataset_ratio")) or 0.0
    if not flags.get("val_dataset") and ratio <= 0:
        problems.append(
            "early_stop=true needs an eval loss, but there is no eval set; set data.split_dataset_ratio "
            "(e.g. 0.1) or data.val_dataset"
        )
    return problems
