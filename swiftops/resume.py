"""resume=true: what to do with each job of a sweep re-run into its own folder. Pure: a job's
earlier record (or none) -> keep it, run it again, or resume it from its last checkpoint; and the
keys whose values changed between the config a job was run with and the one asked for now.

  completed, config unchanged      kept: its record and verdict stay as they are
  failed                           run again from the start
  interrupted (or left `running`   resumed from its last checkpoint (--resume_from_checkpoint),
  by an orchestrator killed -9)      else run again from the start
  not started, or no record        run
A changed config is not a decision but an error (the sweep would silently mix two experiments):
see config_changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from swiftops.record import COMPLETED, FAILED, INTERRUPTED, RUNNING, RunRecord

KEEP, RERUN, RESUME, RUN = "kept", "re-run", "resumed", "run"
# keys that say how a sweep is run, not what a job trains: changing them never changes a job
NOT_THE_JOB = ("resume", "progress", "jobs", "dry_run", "report", "runtime.gpus", "watchdog.every_s")
LINEAGE = ("autotune.parent", "autotune.change", "autotune.why")  # set per job by the autotune sweeper


@dataclass(frozen=True)
class Decision:
    """What resume=true does with one job, and why (run.json's `resume`, the report's column)."""

    action: str  # kept | re-run | resumed | run
    why: str
    checkpoint: str | None = None  # resumed: the checkpoint training continues from

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def text(self) -> str:
        """'resumed from checkpoint-10 (interrupted by Ctrl-C (SIGINT))'."""
        what = f"resumed from {Path(self.checkpoint).name}" if self.checkpoint else self.action
        return f"{what} ({self.why})"


def decision_text(recorded: Mapping[str, Any]) -> str:
    """A decision as run.json holds it, in words (the table's and the report's `resume` column)."""
    return Decision(str(recorded.get("action")), str(recorded.get("why")), recorded.get("checkpoint")).text


def decide(record: RunRecord | None, last_checkpoint: str | None) -> Decision:
    """The decision for a job whose earlier record is `record` (None: it has none, or none that
    can be read) and whose run's last checkpoint is last_checkpoint."""
    if record is None:
        return Decision(RUN, "never started")
    sft = (record.stages or {}).get("sft") or {}
    if record.status == COMPLETED:
        verdict = f": {record.verdict}" if record.verdict else ""
        return Decision(KEEP, f"completed, config unchanged{verdict}")
    if record.status == FAILED:
        return Decision(RERUN, "it failed")
    if record.status == INTERRUPTED and sft.get("status") == "skipped":
        return Decision(RUN, "never started: the sweep was interrupted before it")
    if record.status in (INTERRUPTED, RUNNING):
        how = "interrupted" if record.status == INTERRUPTED else "its orchestrator was killed"
        if last_checkpoint:
            return Decision(RESUME, how, checkpoint=str(last_checkpoint))
        return Decision(RERUN, f"{how} before its first checkpoint")
    return Decision(RERUN, f"its record says {record.status!r}")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}, 'c': {}} -> {'a.b': 1}; lists stay values."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value} if prefix else {}


def _counts(key: str) -> bool:
    return not any(key == k or key.startswith(f"{k}.") for k in (*NOT_THE_JOB, *LINEAGE))


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ, as 'lr: 0.1 -> 0.05' (a key added: '<unset> -> v'), in key
    order; keys that only say how the sweep runs (NOT_THE_JOB) don't count."""
    before, after = flatten(old), flatten(new)
    changes = []
    for key in sorted(set(before) | set(after)):
        if not _counts(key) or before.get(key, _UNSET) == after.get(key, _UNSET):
            continue
        changes.append(f"{key}: {_show(before.get(key, _UNSET))} -> {_show(after.get(key, _UNSET))}")
    return changes


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
