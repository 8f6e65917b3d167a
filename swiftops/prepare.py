"""The last checks and preparations before a job launches swift: the built-in tiny assets,
path checks that know about them, and self-cognition data with its names filled in."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swiftops.dataset_files import local_path, strip_sampling
from swiftops.installed_swift import SWIFT_MISSING, installed_swift_version, swift_args_for
from swiftops.validate import validate_config, visible_gpu_count

IDENTITY_PLACEHOLDERS = ("{{NAME}}", "{{AUTHOR}}")


def tiny_root() -> str:
    from swiftops.tiny import tiny_assets  # late, as in configs.tiny_path

    return str(tiny_assets().root)


def uses_tiny(cfg: Mapping[str, Any]) -> bool:
    """Whether any path in the config points into the built-in tiny assets."""
    root = tiny_root()

    def walk(value: Any) -> bool:
        if isinstance(value, str):
            return value.startswith(root)
        if isinstance(value, Mapping):
            return any(walk(v) for v in value.values())
        if isinstance(value, list | tuple):
            return any(walk(v) for v in value)
        return False

    return walk(cfg)


def check_job(cfg: Mapping[str, Any], *, swift_found: bool) -> list[str]:
    """Every reason this job can't run. Built-in tiny paths count as present: the job
    builds them on first use. Pass-through flags are checked against the names of the swift
    that will run (cached; the first check of a swift imports it in a subprocess, 8-18 s)."""
    root = tiny_root()
    answer = swift_args_for(cfg.get("swift_bin")) if swift_found else None
    problems = validate_config(
        cfg,
        lambda p: p.startswith(root) or os.path.exists(p),
        swift_version=installed_swift_version(cfg.get("swift_bin")),
        swift_flags=answer.names if answer is not None else None,
        gpu_count=visible_gpu_count() if (cfg.get("runtime") or {}).get("gpus") else None,
    )
    if not swift_found and not cfg.get("dry_run"):
        problems.append(SWIFT_MISSING)
    return problems


def pair(value: Any) -> tuple[str, str] | None:
    """model_name / model_author as (Chinese, English), as swift reads them."""
    if value is None:
        return None
    if isinstance(value, str):
        return value, value
    values = list(value)
    return (values[0], values[-1]) if values else None


def fill_identity(text: str, name: tuple[str, str] | None, author: tuple[str, str] | None) -> str:
    """Fill {{NAME}}/{{AUTHOR}} in one sample: the Chinese form where the text has Chinese
    characters, else the English one (what swift does for its swift/self-cognition set)."""
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in text)
    if name:
        text = text.replace("{{NAME}}", name[0] if chinese else name[1])
    if author:
        text = text.replace("{{AUTHOR}}", author[0] if chinese else author[1])
    return text


def materialize_identity(path: Path, out_dir: Path, name, author) -> Path:
    """A copy of a local self-cognition file with its placeholders filled, in the job folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    filled = []
    for line in lines:
        if not line.strip():
            continue
        row = json.loads(line)
        for message in row.get("messages", []):
            message["content"] = fill_identity(message["content"], name, author)
        filled.append(json.dumps(row, ensure_ascii=False))
    out.write_text("\n".join(filled) + "\n", encoding="utf-8")
    return out


def prepare_job(cfg: dict[str, Any], job_dir: Path) -> dict[str, Any]:
    """Build the tiny assets if the job uses them and fill self-cognition placeholders in
    local data files (swift itself fills them only in its hub set). Returns the config to run."""
    if uses_tiny(cfg):
        from swiftops.tiny import ensure_tiny_assets

        ensure_tiny_assets()
    data = cfg["data"]
    name, author = pair(data.get("model_name")), pair(data.get("model_author"))
    if name or author:
        for key in ("dataset", "val_dataset"):
            entries = []
            for entry in data.get(key) or []:
                local = local_path(entry)
                if local and Path(local).is_file() and has_identity_placeholders(Path(local)):
                    filled = materialize_identity(Path(local), job_dir / "data", name, author)
                    entry = str(filled) + entry[len(strip_sampling(entry)) :]
                entries.append(entry)
            data[key] = entries
    return cfg


def has_identity_placeholders(path: Path) -> bool:
    """Whether a local data file holds {{NAME}} or {{AUTHOR}}, which materialize_identity fills."""
    text = path.read_text(encoding="utf-8", errors="ignore")
    return any(p in text for p in IDENTITY_PLACEHOLDERS)
