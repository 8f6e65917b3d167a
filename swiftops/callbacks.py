"""The Hydra callback that opens and closes every run and sweep: before any job, the output
folders must be writable; at the end, the comparison table (CSV + markdown on the console) and
the HTML report. Hydra reaches the end even when jobs failed, because jobs never raise (see
swiftops.job), and a job that raises all the same is turned into a failed one here."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from swiftops.folder_lock import LOCK_NAME, FolderInUse, hold_folder
from swiftops.record import (
    FAILED,
    INTERRUPTED,
    RUNNING,
    RunRecord,
    find_records,
    read_record,
    unreadable_record,
    write_record,
)
from swiftops.stops import share_sweep_stops
from swiftops.summary import markdown_table, summary_csv, summary_rows
from swiftops.sweep_check import check_launcher, check_resume, check_sweep, sweep_size
from swiftops.sweep_progress import SweepProgress
from swiftops.validate import ConfigError, refuse

log = logging.getLogger("swiftops")


class SweepSummary(Callback):
    progress: Any = None  # the sweep's live display, in the launching process only
    folder_lock: Any = None  # this process's hold on its run or sweep folder (swiftops.folder_lock)

    def __getstate__(self) -> dict[str, Any]:
        # Hydra sends its callbacks to a parallel launcher's workers: the display (a thread) and the
        # folder's lock stay here
        return {k: v for k, v in self.__dict__.items() if k not in ("progress", "folder_lock")}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra creates the run folder after this callback: a read-only one would end in its traceback
        check_output_dirs(config, [("hydra.run.dir", config.hydra.run.dir)])
        self.folder_lock = hold_output_dir(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_output_dirs(config, [("hydra.sweep.dir", config.hydra.sweep.dir)])
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.folder_lock = hold_output_dir(config, "hydra.sweep.dir")
        try:
            # every combination is checked before the first job starts
            check_sweep(config)
            check_launcher(config)
            if config.get("resume"):
                lines = check_resume(config)
                print(f"resume: {sweep_dir}\n" + "\n".join(lines), flush=True)
        except BaseException:  # refused: the folder is let go, and removed if this made it for nothing
            self.release_folder()
            remove_unused_folder(sweep_dir)
            raise
        # this process launched the sweep: its stop signals reach every job, wherever it runs
        share_sweep_stops(sweep_dir, owner=True)
        self.progress = start_sweep_progress(config, sweep_dir)

    def release_folder(self) -> None:
        lock, self.folder_lock = self.folder_lock, None
        if lock is not None:
            lock.release()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A sweep job that raised makes Hydra skip on_multirun_end, and with it the table and the
        # report of every other job: it becomes a failed job instead, its traceback logged.
        if job_return.status == JobStatus.FAILED and in_sweep(config.hydra):
            error = job_return._return_value  # the exception (the public getter re-raises it)
            job_dir = Path(str(config.hydra.runtime.output_dir))
            log.error(
                "job %s raised out of swiftops: recorded as failed, the sweep goes on",
                job_dir,
                exc_info=(type(error), error, error.__traceback__),
            )
            record_raised_job(job_dir, config, error)
            job_return.status, job_return.return_value = JobStatus.COMPLETED, "failed"

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        progress, self.progress = self.progress, None
        if progress is not None:
            progress.stop()
        close_sweep(Path(config.hydra.sweep.dir), config)
        self.release_folder()
        remove_unused_folder(Path(config.hydra.sweep.dir))
        share_sweep_stops(None)  # the sweep is over: a later one in this process starts clean

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_sweep(Path(config.hydra.runtime.output_dir), config)
        self.release_folder()
        remove_unused_folder(Path(config.hydra.runtime.output_dir))


def hold_output_dir(config: DictConfig, key: str) -> Any:
    """Hold the run's or sweep's folder for this process (swiftops.folder_lock); refuse (exit 2)
    before any job when a live run or sweep holds it already: two into one folder would overwrite
    each other's records, logs and report. resume=true is no exception."""
    folder = OmegaConf.select(config, key)
    try:
        return hold_folder(Path(str(folder)))
    except FolderInUse as exc:
        refuse(
            ConfigError(
                [f"{key} = {folder}: {exc}; wait until it ends, or choose another folder with {key}=PATH"]
            )
        )


def start_sweep_progress(config: DictConfig, sweep_dir: Path) -> Any:
    """The sweep's live display (progress=true), drawn here from what the jobs write to disk,
    wherever they run; None when off or it can't start (it only displays)."""
    if not config.get("progress", True) or config.get("dry_run"):
        return None
    try:
        progress = SweepProgress(sweep_dir, sweep_size(config))
        progress.start()
        return progress
    except Exception:
        log.warning("the sweep's progress display could not start; the sweep runs without it", exc_info=True)
        return None


def in_sweep(hydra: DictConfig) -> bool:
    """Whether the job of this `hydra` node runs in a sweep. Hydra's test harness leaves
    hydra.mode unset in sweep jobs: a job number means a sweep."""
    return hydra.mode == RunMode.MULTIRUN or OmegaConf.select(hydra, "job.num") is not None


def unwritable(path: str | os.PathLike) -> str | None:
    """Why files can't be created at path (a folder, made if missing), or None when they can."""
    target = Path(os.path.abspath(path))
    existing = target
    while not _exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    # os.access sees permissions and read-only mounts; as root, permissions never refuse
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable" + ("" if existing == target else f", so {target} can't be made")
    return None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # under a folder we may not search (no x bit): its parent says why
        return False


def check_output_dirs(config: DictConfig, dirs: list[tuple[str, Any]]) -> None:
    """Refuse the run (exit 2) before any job when a folder it writes to is not writable: Hydra's
    job folders, and the report's folder (unless no report will be written)."""
    report = config.get("report") or {}
    if report.get("enabled", True) and not config.get("dry_run"):
        dirs = [*dirs, ("report.dir", report.get("dir", "reports"))]
    problems = []
    for key, path in dirs:
        why = unwritable(str(path))
        if why:
            problems.append(f"{key} = {path}: {why}; choose another with {key}=PATH")
    if problems:
        refuse(ConfigError(problems))


# what Hydra writes into every run, sweep and job folder, whatever the job does (and our lock, held
# while the run lasts)
HYDRA_OWN_FILES = frozenset({".hydra", "__main__.log", "multirun.yaml", LOCK_NAME})


def holds_only_hydra_files(folder: Path) -> bool:
    """Whether folder holds nothing but Hydra's own files, in itself and in its job folders (0/, 1/)."""
    for entry in folder.iterdir():
        if entry.name in HYDRA_OWN_FILES:
            continue
        if entry.is_dir() and entry.name.isdigit() and holds_only_hydra_files(entry):
            continue
        return False
    return True


def remove_unused_folder(folder: Path) -> None:
    """Remove the folder Hydra made for a run or sweep that left nothing of its own in it (a dry run,
    a refused run): otherwise every such try leaves an empty outputs/<date>/<time>/. Its parents go
    too while they are empty and inside the working folder (outputs/<date>/, outputs/)."""
    import shutil

    folder = folder.resolve()
    try:
        if not folder.is_dir() or not holds_only_hydra_files(folder):
            return
        shutil.rmtree(folder)
        parent, cwd = folder.parent, Path.cwd().resolve()
        while parent != cwd and parent.is_relative_to(cwd) and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    except OSError as exc:  # only tidying: a folder that can't go stays
        log.debug("could not remove %s: %s", folder, exc)


def record_raised_job(job_dir: Path, config: DictConfig, error: BaseException) -> None:
    """Mark the job of an exception failed in its run.json (one left `running`, or a new one)."""
    record_ended_job(
        job_dir,
        [str(o) for o in config.hydra.overrides.task],
        OmegaConf.select(config, "hydra.job.num"),
        f"swiftops error: {type(error).__name__}: {error}",
    )


def record_ended_job(
    job_dir: Path,
    overrides: list[str],
    job_num: int | None,
    why: str,
    detail: str | None = None,
    *,
    interrupted: bool = False,
) -> None:
    """Record in run.json a job that ended without recording its end (it raised, or the scheduler
    stopped it), where the disk lets us: on a full disk the log line is all there is. Failed, or
    with interrupted=True (the scheduler stopped it) interrupted, so resume=true continues it; a
    job that recorded itself completed keeps its record."""
    status = INTERRUPTED if interrupted else FAILED
    try:
        record = read_record(job_dir)
    except (OSError, ValueError):
        record = RunRecord(status=status, job_dir=str(job_dir), argv=[], overrides=overrides, job_num=job_num)
    # a job that recorded its own end keeps it; one stopped from outside is resumable, whatever it said
    replaceable = (RUNNING, FAILED, INTERRUPTED) if interrupted else (RUNNING, FAILED)
    if record.status not in replaceable:
        return
    error = "\n".join(line for line in (why, detail, record.error) if line)
    record = replace(record, status=status, error=error)
    try:
        write_record(record, job_dir)
    except OSError as exc:
        log.error("the record of %s could not be written either: %s", job_dir, exc)


def read_records(paths: list[Path]) -> list[Any]:
    """The records at paths, in order; one that can't be read is logged, naming its file, and
    stands in the table as an `unreadable` row."""
    records = []
    for path in paths:
        try:
            records.append(read_record(path))
        except (OSError, ValueError) as exc:
            log.warning("%s can't be read, shown as unreadable: %s", path, exc)
            records.append(unreadable_record(path, exc))
    return records


def close_sweep(folder: Path, config: DictConfig) -> Path | None:
    """Table and report for every run.json under folder; returns the report's path. Never
    raises: a broken report must not hide the table, nor the table the runs."""
    try:
        paths = find_records(folder) if folder.is_dir() else []
    except OSError:
        log.exception("could not list the records of %s", folder)
        paths = []
    if not paths:
        return None  # dry runs and runs stopped by a config error leave no records
    records = read_records(paths)
    try:
        rows = summary_rows(records)
        print(f"\n{markdown_table(rows)}\n", flush=True)
        # after the console table: a full disk must not hide it
        (folder / "summary.csv").write_text(summary_csv(rows), encoding="utf-8")
    except Exception:
        log.exception("could not write the summary table of %s", folder)
    report_cfg = config.get("report") or {}
    if not report_cfg.get("enabled", True):
        return None
    try:
        # imported here, inside the try: the report (numpy, jinja2, plots) is a third of the start-up
        # time, and a report that can't even be imported must not cost the table and the runs
        from swiftops.report.render import write_report

        path = write_report(folder, report_dir=report_cfg.get("dir", "reports"))
    except Exception:
        log.exception("could not write the report of %s", folder)
        return None
    print(f"report: {path}", flush=True)
    return path
