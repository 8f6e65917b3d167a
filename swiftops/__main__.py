"""`python -m swiftops [-m] [overrides]`: the Hydra app. Thin on purpose: it turns Hydra's
config and job folder into a plain dict and a JobContext, hands them to job.run, and turns a
single run's end into the exit status."""

from __future__ import annotations

import copy
import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from swiftops import job
from swiftops.autotune import LINEAGE_KEYS, is_lineage
from swiftops.callbacks import in_sweep, remove_unused_folder
from swiftops.configs import job_config, register
from swiftops.installed_swift import find_swift
from swiftops.job import JobContext
from swiftops.overrides import check_command_line
from swiftops.paths import conf_dir
from swiftops.record import FAILED, INTERRUPTED
from swiftops.stops import (
    follow_launcher,
    handle_stop_signals,
    join_sweep_stops,
    launched_here,
    stop_handling,
)
from swiftops.summary import why_line

log = logging.getLogger("swiftops")

# A single run (no -m) always runs in this process (Hydra launches only sweeps), so its status can
# live here until main() turns it into the exit status. A sweep's state never does: its jobs may run
# in other processes, and share the sweep's stop through the sweep folder (stops.share_sweep_stops).
_single_status: str | None = None
_single_why: str | None = None


def context_from_hydra(swift_bin: str, plain: dict, autotune: dict | None = None):
    hc = HydraConfig.get()
    multirun = in_sweep(hc)
    autotune = autotune or {}
    return JobContext(
        job_dir=Path(hc.runtime.output_dir),
        overrides=[o for o in hc.overrides.task if not is_lineage(o)],
        sweep_dir=Path(hc.sweep.dir).resolve() if multirun else None,
        job_num=hc.job.num if multirun else None,
        swift_bin=swift_bin,
        # a sweep's progress is drawn by the process that launched it (swiftops.sweep_progress)
        progress=bool(plain.get("progress", True)) and not multirun,
        lineage={k: autotune.get(k) for k in LINEAGE_KEYS} if autotune.get("parent") is not None else None,
        config=copy.deepcopy(plain),
    )


def run_task(cfg: DictConfig) -> str:
    """One job: validate, build, launch, record. Returns the job's status; never raises for
    a failing swift (Hydra would then skip the end-of-sweep table). Runs in the launching process
    or in a parallel launcher's worker process alike."""
    global _single_status, _single_why

    plain = job_config(cfg)
    swift_bin = find_swift(plain.get("swift_bin")) or ""
    ctx = context_from_hydra(swift_bin or "swift", plain, plain.get("autotune"))
    worker = ctx.sweep_dir is not None and not launched_here(ctx.sweep_dir)
    if worker:
        quiet_terminal()
        follow_launcher()  # a launcher killed with kill -9 takes its workers with it
    join_sweep_stops(ctx.sweep_dir)
    with stop_handling(worker):
        try:
            record = job.run(plain, ctx, bool(swift_bin))
        except SystemExit:  # refused: the folder Hydra made for the run holds nothing of it
            if ctx.sweep_dir is None:
                remove_unused_folder(ctx.job_dir)
            raise
    if ctx.sweep_dir is None and record is not None:
        _single_status, _single_why = record.status, failure_sentence(record)
    return record.status if record is not None else "dry_run"


def quiet_terminal() -> None:
    """In a worker process: its console log lines say only warnings and errors when they would go to
    a terminal, where the launching process draws the sweep's live display (the job's own log file
    keeps everything)."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if console and stream is not None and hasattr(stream, "isatty") and stream.isatty():
            handler.setLevel(logging.WARNING)


def failure_sentence(record) -> str | None:
    """A failed single run's last word: swift's own error line and where the whole log is."""
    why = why_line(record) if record.status == FAILED else None
    if why is None:
        return None
    where = f" (its log: {record.log_path})" if record.log_path else ""
    return f"swiftops: the run failed: {why}{where}"


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> str:
    return run_task(cfg)


def main() -> None:
    register()
    # bad overrides (an unknown key, group option or syntax; whatever Hydra would refuse) exit 2
    # here, before Hydra composes the config and would exit 1 with its own advice
    check_command_line(sys.argv[1:])
    # SIGINT, SIGTERM and SIGHUP for the app's whole life: a running swift is stopped and
    # recorded, the jobs after it are recorded as not started, the table and report still written
    with handle_stop_signals() as stops:
        try:
            hydra_main()
        except KeyboardInterrupt:  # the third signal while no swift ran: quit at once
            raise SystemExit(128 + signal.Signals[stops.first or "SIGINT"]) from None
    if stops.first:  # as a shell reports a process stopped by that signal: 130, 143, 129
        raise SystemExit(128 + signal.Signals[stops.first])
    # a single run that failed exits non-zero, so scripts can tell; in a sweep, failed runs
    # are results (the table and report show them) and the sweep itself succeeded
    if _single_why:  # after the table: the last line a person sees says why
        print(_single_why, file=sys.stderr, flush=True)
    if _single_status in (FAILED, INTERRUPTED):
        raise SystemExit(1 if _single_status == FAILED else 130)


if __name__ == "__main__":
    main()
