"""run_stage: one stage after training (infer or export) on a run, into its run.json entry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swiftops.record import COMPLETED, INTERRUPTED, RunRecord
from swiftops.stages.entry import AFTER_TRAINING, SKIPPED
from swiftops.stages.export import export_stage
from swiftops.stages.infer import infer_stage


def run_stage(
    stage: str, cfg: Mapping[str, Any], record: RunRecord, *, job_dir: Path, swift_bin: str, ckpt: str
) -> dict[str, Any]:
    """One stage after training (infer or export) on the record's run: its run.json entry
    (`completed`, `failed` with the error, `interrupted`, or `skipped` with the reason)."""
    reason = skip_reason(record, ckpt)
    if reason:
        return {"status": SKIPPED, "reason": reason}
    if stage == "infer":
        return infer_stage(cfg, record, job_dir, swift_bin, ckpt)
    return export_stage(cfg, record, job_dir, swift_bin, ckpt)


def skip_reason(record: RunRecord, ckpt: str) -> str | None:
    if record.status == COMPLETED:
        return None
    stopped = [n for n in AFTER_TRAINING if record.stages.get(n, {}).get("status") == INTERRUPTED]
    if record.status == INTERRUPTED and stopped:
        return "an earlier stage was interrupted"
    if ckpt not in ("best", "last"):
        return None  # an explicit checkpoint folder: the user chose it knowing the run's state
    return f"the training run is {record.status}, so it has no checkpoint to trust (give ckpt=PATH to force)"
