"""`run=PATH`: the record of an existing run, from a job folder, a swift run folder, an output
folder or a checkpoint."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from swiftops.record import COMPLETED, RECORD_NAME, RunRecord, read_record
from swiftops.runfolder import (
    CHECKPOINT_NAME,
    CheckpointError,
    best_checkpoint,
    folder_listing,
    is_run_dir,
    last_checkpoint,
    natural_key,
    newest_run_dir,
)

log = logging.getLogger("swiftops")


def load_run(path: str | Path) -> RunRecord:
    """The record of an existing run, for `stages=[infer] run=PATH`.

    PATH may be a swiftops job folder (with run.json), a swift run folder (vN-timestamp), an
    output_dir holding vN-* folders (the newest is taken), or a checkpoint-N folder (its run).
    Without run.json a minimal record is built: status completed, checkpoints read from the run.

    Raises:
        CheckpointError: nothing at PATH is a run.
    """
    path = Path(os.path.expanduser(str(path))).resolve()
    if path.name == RECORD_NAME and path.is_file():
        path = path.parent
    if (path / RECORD_NAME).is_file():
        record = read_record(path)
        if record.run_dir and not Path(record.run_dir).is_dir():
            # the job folder was moved: its run is still in output/ under the same name
            moved = path / "output" / Path(record.run_dir).name
            run_dir = str(moved) if moved.is_dir() else record.run_dir
            record = replace(record, run_dir=run_dir, output_dir=str(path / "output"))
        return record
    if CHECKPOINT_NAME.match(path.name) and path.is_dir():
        path = path.parent
    run_dir = path if is_run_dir(path) else (newest_run_dir(path) if path.is_dir() else None)
    if run_dir is None:
        jobs = sorted((p.parent for p in path.glob(f"*/{RECORD_NAME}")), key=natural_key)
        hint = f" It is a sweep: give one of its jobs, e.g. run={jobs[0]}" if jobs else ""
        raise CheckpointError(
            f"run={path}: neither a swiftops job folder (run.json) nor a swift run folder "
            f"(vN-timestamp with logging.jsonl or checkpoint-N); it holds: {folder_listing(path)}.{hint}"
        )
    best, last = best_checkpoint(run_dir), last_checkpoint(run_dir)
    return RunRecord(
        status=COMPLETED,
        job_dir=str(path),
        argv=[],
        output_dir=str(run_dir.parent),
        run_dir=str(run_dir),
        best_checkpoint=str(best) if best else None,
        last_checkpoint=str(last) if last else None,
    )
