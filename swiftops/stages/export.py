"""The export stage: `swift export --merge_lora true` of the chosen checkpoint into
JOB/export/merged, swapped in only once it is whole."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swiftops.command import build_export_argv, swift_env
from swiftops.installed_swift import installed_swift_version
from swiftops.record import COMPLETED, FAILED, RunRecord
from swiftops.runfolder import folder_listing
from swiftops.runner import run_swift
from swiftops.stages.entry import SKIPPED, finish_entry, start_entry
from swiftops.stages.infer import is_adapter

log = logging.getLogger("swiftops")


def export_argv(cfg: Mapping[str, Any], *, adapters: str, output_dir: str, swift_bin: str) -> list[str]:
    """`swift export --merge_lora true` as the export stage runs it: the export section's args."""
    return build_export_argv(
        adapters=adapters,
        output_dir=output_dir,
        swift_bin=swift_bin,
        extra=(cfg.get("export") or {}).get("args"),
        version=installed_swift_version(swift_bin),
    )


def export_stage(
    cfg: Mapping[str, Any], record: RunRecord, job_dir: Path, swift_bin: str, ckpt: str
) -> dict[str, Any]:
    """swift export --merge_lora true of the chosen checkpoint into job_dir/export/merged."""
    entry, choice = start_entry(record, ckpt)
    if choice is None:
        return entry
    if not is_adapter(choice.path):
        return {
            "status": SKIPPED,
            "reason": f"{choice.path} is a whole model (full-parameter training), not a LoRA to merge",
            "checkpoint": str(choice.path),
        }
    output_dir = job_dir / "export" / "merged"
    # swift export skips the merge when its output folder exists (even with --exist_ok true, even
    # half-written), so a re-run would keep the old weights: merge into a fresh folder, then swap
    staging = job_dir / "export" / "merged.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    log_path = job_dir / "export.log"
    argv = export_argv(cfg, adapters=str(choice.path), output_dir=str(staging), swift_bin=swift_bin)
    entry.update(argv=argv, output_dir=str(output_dir))
    log.info("launching swift export in %s", staging.parent)
    outcome = run_swift(argv, env=swift_env(cfg, os.environ), log_path=log_path, cwd=job_dir)
    finish_entry(entry, outcome, log_path)
    if entry["status"] == COMPLETED and not is_model_folder(staging):
        entry.update(
            status=FAILED,
            error=f"swift export exited 0 but wrote no model: {staging} holds {folder_listing(staging)}",
        )
    if entry["status"] == COMPLETED:
        shutil.rmtree(output_dir, ignore_errors=True)
        staging.rename(output_dir)
    else:  # a failed or stopped merge leaves the previous merged model as it was
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def is_model_folder(path: Path) -> bool:
    """config.json plus weights (safetensors or bin, whole or sharded)."""
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin")] if path.is_dir() else []
    return (path / "config.json").is_file() and bool(weights)
