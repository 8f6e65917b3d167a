"""`python -m swiftops.classify PATH [PATH...] [--json]`: diagnose finished (or running) runs.

PATHs are run folders (swift's vN-timestamp folders), their output folders, Hydra job folders
or whole sweep folders, searched recursively. Prints a table and each run's reasons, or with
--json a list with one object per run: path, verdict, confidence, reasons, figures, next.
A path that does not exist or holds no run, or a run that can't be classified, is an error
printed on stderr (exit 2) after every other run's result; a failed run is a result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from swiftops.diagnosis import NO_EVIDENCE, ClassifySettings
from swiftops.judge import judge
from swiftops.record import RECORD_NAME, RunRecord, find_records, read_record
from swiftops.runfolder import NoRunFound, find_run_dirs, natural_key


@dataclasses.dataclass
class Target:
    """One thing to classify: a run folder, or a job whose swift left no run folder."""

    run_dir: Path | None
    job_dir: Path | None


def find_targets(path: str | os.PathLike) -> list[Target]:
    """Runs under path, each with the Hydra job folder it belongs to (if any); jobs that
    left no run folder (swift failed at once) are targets too.

    Raises:
        NoRunFound: path does not exist, or holds neither a run nor a job.
    """
    root = Path(path)
    try:
        run_dirs = find_run_dirs(root)
    except NoRunFound:
        if not root.exists():
            raise
        run_dirs = []
    targets = [Target(run_dir, job_of(run_dir)) for run_dir in run_dirs]
    claimed = {t.job_dir for t in targets}
    jobs = [p.parent.absolute() for p in find_records(root)] if root.is_dir() else []
    targets += [Target(None, job) for job in jobs if job not in claimed]
    if not targets:
        raise NoRunFound(f"{root}: holds no run and no job (run.json)")
    return sorted(targets, key=lambda t: natural_key(t.run_dir or t.job_dir))


def job_of(run_dir: Path) -> Path | None:
    """The Hydra job folder holding run_dir (job/output/vN-ts): the nearest run.json above it."""
    for parent in list(run_dir.parents)[:3]:
        if (parent / RECORD_NAME).is_file():
            return parent
    return None


def classify_target(target: Target, settings: ClassifySettings) -> dict[str, Any]:
    """The diagnosis of one target as a JSON-safe dict (the --json object)."""
    record: RunRecord | None = None
    if target.job_dir is not None:
        try:
            record = read_record(target.job_dir)
        except (OSError, ValueError, TypeError):
            record = None
    judged = judge(record, settings, run_dir=target.run_dir)
    if judged.error is not None:
        raise judged.error  # main() reports it as this run's error, after every other run's result
    diagnosis = judged.diagnosis
    result = {"path": str(target.run_dir or target.job_dir)}
    result["job_dir"] = str(target.job_dir) if target.job_dir else None
    if diagnosis is None:
        nothing = {"text": "nothing to judge yet: resume or re-run it", "override": None}
        result.update(verdict=None, confidence=None, reasons=[NO_EVIDENCE], figures={}, next=nothing)
    else:
        result.update(diagnosis.to_dict())
    return result


def settings_from(pairs: list[str]) -> ClassifySettings:
    """ClassifySettings with KEY=VALUE changes, each value of its field's type."""
    defaults = ClassifySettings()
    changes: dict[str, Any] = {}
    fields = {f.name for f in dataclasses.fields(ClassifySettings)}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().removeprefix("classify.")
        if not sep or key not in fields:
            raise ValueError(
                f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}"
            )
        kind = type(getattr(defaults, key))
        try:
            changes[key] = kind(float(value)) if kind is int else kind(value)
        except ValueError:
            raise ValueError(f"--set {pair!r}: {value!r} is not a {kind.__name__}") from None
    return dataclasses.replace(defaults, **changes)


# ---- output ----


def _label(path: str, cwd: Path) -> str:
    try:
        return str(Path(path).relative_to(cwd))
    except ValueError:
        return path


def _loss(x: Any) -> str:
    return f"{x:#.3g}".rstrip(".") if isinstance(x, (int, float)) else "-"


def _confidence(x: float | None) -> str:
    return f"{x:.2f}" if x is not None else "-"


def format_table(results: list[dict[str, Any]], cwd: Path | None = None) -> str:
    """The terminal form: one row per run, then each run's reasons and next step."""
    cwd = cwd or Path.cwd()
    header = ("run", "verdict", "conf", "steps", "train loss", "best eval (step)", "next")
    rows = []
    for r in results:
        f = r["figures"]
        train = (
            "-"
            if f.get("first_train_loss") is None and f.get("final_train_loss") is None
            else (f"{_loss(f.get('first_train_loss'))} -> {_loss(f.get('final_train_loss'))}")
        )
        best = (
            f"{_loss(f['best_eval_loss'])} ({f['best_eval_step']})"
            if f.get("best_eval_loss") is not None
            else "-"
        )
        rows.append(
            (
                _label(r["path"], cwd),
                r["verdict"] or "-",
                _confidence(r["confidence"]),
                str(f["steps"]) if f.get("steps") is not None else "-",
                train,
                best,
                r["next"]["override"] or "-",
            )
        )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3}

    def line(cells: tuple) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths)), *(line(row) for row in rows)]
    for r in results:
        out.append("")
        judged = f"{r['verdict']} (confidence {r['confidence']:.2f})" if r["verdict"] else "no verdict"
        out.append(f"{_label(r['path'], cwd)}: {judged}")
        out += [f"  - {reason}" for reason in r["reasons"]]
        nxt = r["next"]
        out.append(f"  next: {nxt['text']}" + (f"  [{nxt['override']}]" if nxt["override"] else ""))
        out += [f"  warning: {w}" for w in r.get("warnings") or []]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swiftops.classify",
        description="Diagnose runs: failed / underfit / overfit / converged, why, and what to try next.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run, job, output or sweep folders")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per run")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a threshold of conf/classify/default.yaml (repeatable), e.g. --set overfit_rise=0.1",
    )
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args.set)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2

    results: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[tuple[Path | None, Path | None]] = set()
    for path in args.paths:
        try:
            targets = find_targets(path)
        except NoRunFound as exc:
            errors.append(str(exc))
            continue
        for target in targets:
            key = (target.run_dir and target.run_dir.resolve(), target.job_dir and target.job_dir.resolve())
            if key in seen:
                continue
            seen.add(key)
            try:
                results.append(classify_target(target, settings))
            except Exception as exc:  # one bad run must never cost the others their verdicts
                where = target.run_dir or target.job_dir
                errors.append(f"{where}: could not be classified: {type(exc).__name__}: {exc}")

    try:
        if args.json:
            print(json.dumps(results, indent=2, allow_nan=False))
        elif results:
            print(format_table(results))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has gone, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
