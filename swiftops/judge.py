"""A run judged from disk: its curves, its diagnosis and, where either is missing, why.

The one place where a run folder is read for judging: the job (at its end), the report (for each
run of a sweep) and classify (any run on disk) all call judge().
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swiftops.curves import Curves, read_curves, read_run_dir
from swiftops.diagnosis import ClassifySettings, Diagnosis, diagnose_recorded
from swiftops.record import RUNNING, RunRecord
from swiftops.runfolder import NoRunFound


@dataclass
class Judgement:
    curves: Curves  # empty (no scalars) when there are none to read; note says why
    diagnosis: Diagnosis | None  # None: not asked for, no evidence yet (no logged loss), or error
    note: str | None = None  # why the curves are empty
    error: Exception | None = None  # a defect in the diagnosis, its traceback kept

    @property
    def has_curves(self) -> bool:
        return bool(self.curves.scalars)


def no_curves(run_dir: Path | None, why: str) -> Curves:
    """Curves with nothing in them, carrying why as their warning."""
    return Curves(
        run_dir=run_dir, scalars={}, best_checkpoint=None, last_checkpoint=None, source="none", warnings=[why]
    )


def run_curves(record: RunRecord | None, run_dir: Path | None = None) -> tuple[Curves, str | None]:
    """The curves of run_dir when given (that one folder, with the runs it resumed), else of the
    record's run folder, else, for a job still running (the runner records its run folder at the
    end), of its output folder: the curve so far. Empty curves and why, when there are none."""
    if run_dir is not None:
        where, read = Path(run_dir), read_run_dir
    elif record is not None and record.run_dir:
        where, read = Path(record.run_dir), read_curves
    elif record is not None and record.status == RUNNING and record.output_dir:
        where, read = Path(record.output_dir), read_curves
    else:
        why = "swift wrote no run folder"
        return no_curves(None, why), why
    try:
        curves = read(where)
    except (NoRunFound, OSError, ValueError) as exc:
        why = f"could not read the curves: {exc}"
        return no_curves(where, why), why
    except Exception as exc:  # one odd run folder must not cost a sweep its report
        why = f"could not read the curves: {type(exc).__name__}: {exc}"
        return no_curves(where, why), why
    if not curves.scalars:
        return curves, f"no scalar was logged in {curves.run_dir}"
    return curves, None


def judge(
    record: RunRecord | None,
    settings: ClassifySettings | None = None,
    *,
    run_dir: Path | None = None,
    diagnose: bool = True,
) -> Judgement:
    """The run's curves and, unless diagnose is False, its diagnosis with what its record knows
    (diagnosis.diagnose_recorded). A defect in the diagnosis is returned as error, with the curves
    read all the same: the caller decides what it costs (a job its verdict, a report one row's,
    classify its exit status)."""
    curves, note = run_curves(record, run_dir)
    if not diagnose:
        return Judgement(curves, None, note)
    try:
        return Judgement(curves, diagnose_recorded(curves, record, settings, run_dir=run_dir), note)
    except Exception as exc:
        return Judgement(curves, None, note, error=exc)
