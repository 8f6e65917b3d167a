"""The command line's overrides, checked before Hydra composes the app's config: a key swiftops
doesn't know (`lora_rnak=8`, `+lora_rnak=8`), a config group option that doesn't exist
(`model=nosuch`, `+sweep=tutorail`), bad override syntax and Hydra's own composition errors are
all refused with exit status 2, naming the bad text and the closest valid ones. Hydra alone would
say "use +lora_rnak=8" (which then runs silently with the default rank) and exit 1."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from swiftops.command import DATA_KEYS_NOT_FLAGS, flag_name
from swiftops.configs import job_config
from swiftops.installed_swift import swift_args_for
from swiftops.paths import conf_dir
from swiftops.validate import ConfigError, _or, flag_problem, refuse

# Subtrees whose keys are swift flags or environment variables (open: any key may be added with
# +KEY; the pass-through args are checked against swift's own flags later, see validate.py), and
# hydra.* (+hydra.* is Hydra's to judge; a plain hydra.KEY=V must name a key of the composed hydra
# node). Every other key must already be in the composed config.
OPEN_SUBTREES = (
    *("train", "data", "runtime.flags", "runtime.env"),
    *("args", "infer.args", "export.args", "hydra"),
)
# the sections whose keys become `swift sft` flags as they are (command.sft_flags)
SFT_SECTIONS = ("train", "data", "runtime.flags")
# group choices of a sweep composed for the key check (each combination is one composition, ~0.1 s)
MAX_GROUP_COMBINATIONS = 32


def config_keys(cfg: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every dotted key of a config (its sections too), without the hydra node."""
    keys: set[str] = set()
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if path == "hydra":
            continue
        keys.add(path)
        if isinstance(value, Mapping):
            keys |= config_keys(value, f"{path}.")
    return keys


def is_open(key: str) -> bool:
    """Whether key lies inside a subtree whose keys are swift's (or Hydra's), not swiftops' own."""
    return any(key == root or key.startswith(f"{root}.") for root in OPEN_SUBTREES)


def key_problem(
    text: str, key: str, known: Collection[str], *, open_ok: bool = True, owner: str = "swiftops"
) -> str | None:
    """Why the override `text` of `key` is refused (None: its key is known, or lies in an open
    subtree when open_ok: an added key, +KEY). A changed key (no +) must be known everywhere."""
    if key in known or (open_ok and is_open(key)):
        return None
    close = difflib.get_close_matches(key, sorted(known), n=3)
    hint = f"did you mean {_or(close)}?" if close else "`python -m swiftops --help` lists the keys"
    if "." not in key:
        hint += f" (any other swift sft flag: +args.{key}=...)"
    elif is_open(key) and owner == "swiftops":
        hint += f" (a new swift flag there is added with a +: +{text.lstrip('+')})"
    return f"{text}: {owner} has no key '{key}'; {hint}"


def option_problem(text: str, group: str, option: str, options: Sequence[str], key: str = "") -> str | None:
    """Why `group=option` is refused (None: the group has that option). key: the override's key
    as written (+sweep), for the suggestions."""
    if option in options:
        return None
    close = difflib.get_close_matches(option, options, n=3)
    hint = f"did you mean {_or([f'{key or group}={c}' for c in close])}? " if close else ""
    return f"{text}: {group} has no option '{option}'; {hint}the options: {', '.join(sorted(options))}"


def hydra_error(exc: BaseException) -> str:
    """Hydra's own message, as Hydra prints it (with OmegaConf's cause where there is one)."""
    message = "\n    ".join(str(exc).strip().splitlines())
    cause = exc.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in message:
        message += f" ({str(cause).strip().splitlines()[0]})"
    return message


def group_choices(override: Any) -> list[Any]:
    """The options an override of a config group names: one, a list (+experiment=[a,b]), or a sweep."""
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    value = override.value()
    return list(value) if isinstance(value, list) else [value]


def parse(texts: Iterable[str]) -> tuple[list[Any], list[str]]:
    """The parsed overrides, and the syntax errors, one per bad override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed, problems = [], []
    for text in texts:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except OverrideParseException as exc:
            problems.append(
                f"{text}: not an override Hydra can read ({exc.message.splitlines()[0]}); write key=value, "
                "quote lists and commas ('key=[a,b]'), see https://hydra.cc/docs/advanced/override_grammar/basic"
            )
    return parsed, problems


def check_command_line(argv: Sequence[str]) -> None:
    """Refuse (exit 2) a command line whose overrides can't be what the user meant, before Hydra
    composes anything; return when it is fine. A custom config (-cp, -cn, --config-dir) is left
    to Hydra alone."""
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(list(argv))
    if args.shell_completion or args.info or args.config_path or args.config_name or args.config_dir:
        return
    if args.experimental_rerun:
        return
    if not args.overrides:  # the defaults: nothing to check (a composition costs ~0.15 s)
        return
    parsed, problems = parse(args.overrides)
    if problems:
        refuse(ConfigError(problems))
    problems = overrides_problems(parsed, multirun=bool(args.multirun))
    if problems:
        refuse(ConfigError(problems))


def overrides_problems(parsed: list[Any], *, multirun: bool) -> list[str]:
    """Every problem of the parsed overrides: unknown group options, unknown keys (for each
    combination of swept group options, with a named sweep's own params), and whatever Hydra
    itself refuses when it composes the first combination."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return _problems(parsed, multirun=multirun)
    finally:
        GlobalHydra.instance().clear()  # hydra.main initializes its own


def _problems(parsed: list[Any], *, multirun: bool) -> list[str]:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    hydra = GlobalHydra.instance().hydra
    assert hydra is not None
    repository = hydra.config_loader.repository  # type: ignore[attr-defined]

    def is_group(key: str) -> bool:
        return repository.group_exists(key)

    def options_of(group: str) -> list[str]:
        return list(repository.get_group_options(group))

    group_overrides = [o for o in parsed if not o.is_delete() and is_group(o.key_or_group)]
    for override in group_overrides:
        override.config_loader = hydra.config_loader  # experiment=glob(*) lists the group's options
    others = [o for o in parsed if o not in group_overrides]
    problems = choice_problems(group_overrides, options_of)
    if problems:
        return problems

    per_group = [[(o, c) for c in group_choices(o)] for o in group_overrides]
    combos = list(itertools.islice(itertools.product(*per_group), MAX_GROUP_COMBINATIONS))
    first_cfg = None
    for combo in combos:
        chosen = [choice_text(o, choice) for o, choice in combo]
        try:
            cfg = hydra.compose_config("config", chosen, run_mode=RunMode.RUN, validate_sweep_overrides=False)
        except Exception as exc:  # Hydra's own refusal (a group added without +, a broken config file)
            return [hydra_error(exc)]
        first_cfg = first_cfg if first_cfg is not None else cfg
        for problem in combination_problems(cfg, others, is_group, options_of):
            if problem not in problems:
                problems.append(problem)
    if problems or first_cfg is None:
        return problems

    # What Hydra itself refuses when it applies the remaining overrides, as it does after composing
    # (an item already there for +key, ~key of nothing, a sweep without -m), on the first combination.
    mode = RunMode.MULTIRUN if multirun or first_cfg.hydra.mode == RunMode.MULTIRUN else RunMode.RUN
    values = [o for o in others if not o.is_sweep_override()]
    from omegaconf import OmegaConf

    composed = config_keys(OmegaConf.to_container(first_cfg, resolve=False))  # type: ignore[arg-type]
    try:
        ConfigLoaderImpl.validate_sweep_overrides_legal(parsed, run_mode=mode, from_shell=True)
        ConfigLoaderImpl._apply_overrides_to_config(values, first_cfg)
        if mode == RunMode.RUN:
            job_config(first_cfg)  # a deleted key that another one interpolates, a ??? left unset
    except Exception as exc:
        return [hydra_error(exc)]
    added = [o for o in others if (o.is_add() or o.is_force_add()) and o.key_or_group not in composed]
    return added_flag_problems(added, first_cfg)


def sft_flag_of(key: str) -> str | None:
    """The `swift sft` flag a key of train, data or runtime.flags becomes (None: another key)."""
    for section in SFT_SECTIONS:
        if key.startswith(f"{section}."):
            return key[len(section) + 1 :].split(".", 1)[0]
    return None


def added_flag_problems(added: Iterable[Any], cfg: Any) -> list[str]:
    """Keys added to the sections that become `swift sft` flags (+train.warmup_rati=0.1) that the
    swift which will run doesn't have: the same check as +args.* (validate.flag_problem), for the
    added keys only (the shipped ones are the project's own)."""
    from omegaconf import OmegaConf

    flags = [(o, sft_flag_of(o.key_or_group)) for o in added]
    own = {f"data.{key}" for key in DATA_KEYS_NOT_FLAGS}  # swiftops' own data keys, not flags
    flags = [(o, f) for o, f in flags if f and o.key_or_group not in own]
    if not flags or OmegaConf.select(cfg, "args.ignore_args_error") in (True, "true"):
        return []

    answer = swift_args_for(OmegaConf.select(cfg, "swift_bin"))
    names = answer.names.get("sft") if answer is not None else None
    if not names:
        return []
    version = answer.parsed_version if answer is not None else None
    problems = []
    for override, flag in flags:
        problem = flag_problem(override.input_line, "sft", flag_name(flag, version), names)
        if problem:
            problems.append(problem)
    return problems


def choice_text(override: Any, choice: Any) -> str:
    """One option of a group override, as an override of its own."""
    value = f"[{','.join(str(c) for c in choice)}]" if isinstance(choice, list) else choice
    return f"{override.get_key_element()}={'null' if value is None else value}"


def choice_problems(overrides: Iterable[Any], options_of) -> list[str]:
    problems = []
    for override in overrides:
        group = override.key_or_group
        for choice in group_choices(override):
            for option in choice if isinstance(choice, list) else [choice]:
                if option is None:
                    continue
                problem = option_problem(
                    override.input_line, group, str(option), options_of(group), override.get_key_element()
                )
                if problem and problem not in problems:
                    problems.append(problem)
    return problems


def combination_problems(cfg: Any, overrides: Iterable[Any], is_group, options_of) -> list[str]:
    """Unknown keys of one composed combination: the command line's, and a named sweep's params."""
    from omegaconf import OmegaConf

    container: Any = OmegaConf.to_container(cfg, resolve=False)
    known = config_keys(container)
    # A key that isn't there can't be changed without + (Hydra would say "use +KEY", which for a
    # closed key runs silently and for its own typed nodes fails too); +hydra.* is Hydra's to judge
    hydra_keys = {f"hydra.{k}" for k in config_keys(container.get("hydra") or {})}
    problems = []
    for override in overrides:
        key, text = override.key_or_group, override.input_line
        adds = override.is_add() or override.is_force_add()
        if override.is_hydra_override():
            problem = None if adds else key_problem(text, key, hydra_keys, open_ok=False, owner="Hydra")
        else:
            problem = key_problem(text, key, known, open_ok=adds)
        if problem:
            problems.append(problem)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    parsed, syntax = parse(f"{key}={value}" for key, value in params.items())
    problems += syntax
    for override in parsed:
        if is_group(override.key_or_group):
            problems += choice_problems([override], options_of)
        else:
            text = f"hydra.sweeper.params: {override.input_line}"
            problem = key_problem(text, override.key_or_group, known)
            if problem:
                problems.append(problem)
    return problems
