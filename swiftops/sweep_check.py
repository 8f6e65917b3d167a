"""Check every job of a sweep before the first one starts, so `lr=1e-1,-5` fails at once
instead of after an hour of training the first value."""

from __future__ import annotations

import copy
import itertools
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from swiftops.configs import job_config, with_dataset_lists
from swiftops.installed_swift import find_swift
from swiftops.prepare import check_job
from swiftops.record import read_record
from swiftops.resume import NOT_THE_JOB, config_changes, decide
from swiftops.runfolder import last_resumable_checkpoint
from swiftops.validate import ConfigError, refuse

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


def sweep_job_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, in job-number order, as Hydra's basic sweeper makes them: the named
    sweep's params first, then the command line's, every combination."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    texts = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(texts)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def compose_job(loader: Any, config: DictConfig, overrides: list[str], num: int) -> tuple[DictConfig, Path]:
    """Job num's config, composed by Hydra's config loader as a launcher composes it, and the
    folder Hydra will give it (hydra.sweep.dir / hydra.sweep.subdir)."""
    from omegaconf import open_dict

    job = loader.load_sweep_config(config, list(overrides))
    with open_dict(job):
        job.hydra.job.num = num
    return job, Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)


def sweep_jobs(config: DictConfig) -> list[tuple[int, Path, list[str], dict[str, Any]]]:
    """(job number, job folder, overrides, resolved job config) of every job of the sweep."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    jobs = []
    for num, overrides in enumerate(sweep_job_overrides(config)):
        job, folder = compose_job(loader, config, overrides, num)
        jobs.append((num, folder, list(overrides), job_config(job)))
    return jobs


def job_overrides(overrides: list[str]) -> list[str]:
    """The overrides that change what a job trains (resume=true, jobs=4, progress=false don't)."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in NOT_THE_JOB]


def check_resume(config: DictConfig) -> list[str]:
    """resume=true: refuse (exit 2) when a job of the sweep folder was run with another config,
    naming the keys that changed; else one line per job saying what will be done with it."""
    sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_") or "").rsplit(".", 1)[-1]
    if sweeper != "BasicSweeper":
        refuse(ConfigError([f"resume=true works with Hydra's basic sweeper, not {sweeper}"]))
    problems, lines = [], []
    for num, folder, overrides, plain in sweep_jobs(config):
        try:
            earlier = read_record(folder)
        except (OSError, ValueError):
            earlier = None
        if earlier is not None:
            shown = job_overrides(overrides)
            if earlier.config is not None:
                # read as it is read today: a record from before a bare dataset path became a list
                # would otherwise read as a changed config
                changes = config_changes(with_dataset_lists(copy.deepcopy(earlier.config)), plain)
            else:  # a record from before configs were recorded: its overrides are all there is
                before = job_overrides(earlier.overrides)
                changes = [] if before == shown else [f"overrides: {before} -> {shown}"]
            if changes:
                problems.append(
                    f"job {num} ({' '.join(shown) or 'defaults'}) in {folder} was run with another "
                    f"config: {'; '.join(changes)}"
                )
                continue
        decision = decide(earlier, last_resumable_checkpoint(folder / "output"))
        lines.append(f"  job {num}: {decision.text}")
    if problems:
        problems.append(
            "resume=true continues a sweep with the config it was run with; sweep into a new folder "
            "(leave hydra.sweep.dir out) to run a changed one"
        )
        refuse(ConfigError(problems))
    return lines


def launcher_name(config: DictConfig) -> str:
    """The class name of the sweep's launcher: BasicLauncher, JoblibLauncher, SwiftopsSlurmLauncher."""
    return str(OmegaConf.select(config, "hydra.launcher._target_") or "").rsplit(".", 1)[-1]


def check_launcher(config: DictConfig) -> None:
    """jobs=N is the parallel launcher's: elsewhere it would silently run one job at a time."""
    jobs = config.get("jobs", 1)
    launcher = launcher_name(config)
    if isinstance(jobs, int) and jobs > 1 and launcher != "JoblibLauncher":
        where = (
            "SLURM runs as many array tasks at once as its queue allows (cap them with "
            "hydra.launcher.array_parallelism=N)"
            if "Slurm" in launcher
            else "add hydra/launcher=parallel to run them side by side on this machine"
        )
        refuse(
            ConfigError(
                [f"jobs = {jobs} is for hydra/launcher=parallel, but the launcher is {launcher}; {where}"]
            )
        )


def sweep_size(config: DictConfig) -> int | None:
    """How many jobs the sweep will launch (None when the sweeper decides as it goes: autotune)."""
    sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_") or "")
    if not sweeper.endswith("BasicSweeper"):
        return None
    return len(sweep_job_overrides(config))
