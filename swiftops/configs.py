"""What Hydra needs before it composes a swiftops config: the `${swiftops.*:}` resolvers and
the named sweeps of `sweeps/` as the config group `sweep` (so `+sweep=NAME` works from a
source checkout and from an installed wheel alike)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from swiftops.ls import help_part as generate
from swiftops.paths import PACKAGE_DIR, sweeps_dir

# the tutorial's files, and the built-in file of the same kind used where they are absent
TUTORIAL_FILES = {"train_100": "math_train_100", "train_1k": "math_train_1k", "test": "math_test"}


def tutorial_data_dir() -> Path | None:
    """The tutorial's data folder: $SWIFTOPS_TUTORIAL_DATA, else ../shared/tutorial_data/zh
    beside the working directory or beside the project checkout, where it exists."""
    if os.environ.get("SWIFTOPS_TUTORIAL_DATA"):
        return Path(os.path.abspath(os.path.expanduser(os.environ["SWIFTOPS_TUTORIAL_DATA"])))
    for base in (Path.cwd(), PACKAGE_DIR.parent):
        candidate = base.parent / "shared" / "tutorial_data" / "zh"
        if (candidate / "train_100.jsonl").is_file():
            # normalised, not resolved: a symlinked shared/ stays as the user sees it
            return Path(os.path.abspath(candidate))
    return None


def tutorial_file(name: str) -> str:
    """`${swiftops.tutorial:train_100}` -> the tutorial's file, or the built-in stand-in."""
    if name not in TUTORIAL_FILES:
        raise ValueError(f"unknown tutorial file {name!r}; use one of {sorted(TUTORIAL_FILES)}")
    folder = tutorial_data_dir()
    if folder is not None and (folder / f"{name}.jsonl").is_file():
        return str(folder / f"{name}.jsonl")
    return tiny_path(TUTORIAL_FILES[name])


def tiny_path(name: str) -> str:
    """`${swiftops.tiny:model_dir}` -> a path inside the built-in tiny assets (not built here:
    the job builds them on first use)."""
    from swiftops.tiny import tiny_assets  # late: only configs that name the tiny model pay for it

    return str(getattr(tiny_assets(), name))


def help_part(part: str) -> str:
    """`${swiftops.help:keys}` -> a generated part of the --help text (conf/hydra/help/swiftops.yaml)."""
    return generate(part)


def register_resolvers() -> None:
    for name, func in (
        ("swiftops.tiny", tiny_path),
        ("swiftops.tutorial", tutorial_file),
        ("swiftops.help", help_part),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, func)


def available_sweeps() -> list[str]:
    return sorted(p.stem for p in sweeps_dir().glob("*.yaml"))


def register_sweeps() -> None:
    """Each sweeps/NAME.yaml becomes the option `sweep/NAME` (package _global_)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path in sorted(sweeps_dir().glob("*.yaml")):
        store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_")


def register() -> None:
    """Everything to call once before composing a config (the app and tests do)."""
    register_resolvers()
    register_sweeps()


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """A composed config as a plain dict with interpolations resolved, without the hydra node."""
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    copy.pop("hydra", None)  # its ${now:} and ${hydra:} need Hydra's runtime; jobs don't read it
    plain: dict[str, Any] = OmegaConf.to_container(copy, resolve=True)  # type: ignore[assignment]
    return with_dataset_lists(plain)


# the data keys that hold a list of datasets (swift's --dataset a b, --val_dataset c)
DATASET_LIST_KEYS = ("dataset", "val_dataset")


def with_dataset_lists(plain: dict[str, Any]) -> dict[str, Any]:
    """`data.dataset=/data/mine.jsonl` without brackets is a string: as a one-item list, so the path
    check, the command and everything after see the list they would with brackets (a string would
    be read one character at a time). An empty string is no dataset."""
    data = plain.get("data")
    if isinstance(data, dict):
        for key in DATASET_LIST_KEYS:
            if isinstance(data.get(key), str):
                data[key] = [data[key]] if data[key].strip() else []
    return plain
