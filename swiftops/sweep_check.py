"""Check every job of a sweep before the first one starts, so `lr=1e-1,-5` fails at once
instead of after an hour of training the first value."""

from __future__ import annotations

import itertools
import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from swiftops.configs import job_config
from swiftops.validate import ConfigError, find_swift, refuse

log = logging.getLogger("swiftops")
MAX_CHECKED_COMBINATIONS = 2000


def sweep_values(config: DictConfig) -> list[tuple[str, list[Any]]]:
    """(key, values) of every swept plain key: from the command line and from a named
    sweep's hydra.sweeper.params. Config-group choices (data=a,b) are checked per job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = list(config.hydra.overrides.task)
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    texts += [f"{key}={value}" for key, value in params.items()]
    groups = set((OmegaConf.select(config, "hydra.runtime.choices") or {}).keys())
    swept = []
    for override in OverridesParser.create().parse_overrides(texts):
        key = override.key_or_group
        if not override.is_sweep_override() or key in groups or key.lstrip("+~") in groups:
            continue
        swept.append((key.lstrip("+"), list(override.sweep_iterator())))
    return swept


def check_sweep(config: DictConfig) -> None:
    """Refuse the sweep (exit 2) naming every bad value of every combination, deduplicated:
    bad values, and pass-through flags the swift that will run does not have (read once, cached)."""
    problems: list[str] = []
    swept = sweep_values(config)
    keys = [k for k, _ in swept]
    combos = itertools.islice(itertools.product(*(v for _, v in swept)), MAX_CHECKED_COMBINATIONS)
    from swiftops.prepare import check_job

    for combo in combos:
        candidate = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
        candidate.pop("hydra", None)
        for key, value in zip(keys, combo, strict=True):
            OmegaConf.update(candidate, key, value, merge=True, force_add=True)
        try:
            plain = job_config(candidate)
        except Exception as exc:  # an interpolation that can't resolve names the key itself
            problems.append(f"{dict(zip(keys, combo, strict=True))}: {exc}")
            continue
        # per combination: a swept swift_bin is another swift, with its own flags
        for problem in check_job(plain, swift_found=bool(find_swift(plain.get("swift_bin")))):
            if problem not in problems:
                problems.append(problem)
    if problems:
        refuse(ConfigError(problems))
