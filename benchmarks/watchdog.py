"""The live watchdog's two figures: what it saves on doomed runs, and how often it would stop a run
that was not doomed.

    python benchmarks/watchdog.py                       # both: real tiny runs, then the dev corpus
    python benchmarks/watchdog.py multirun/2026-11-29/12-00-00 ...   # replay these sweeps as well
    python benchmarks/watchdog.py --skip-runs           # only the replay (seconds)
    python benchmarks/watchdog.py --no-baseline         # doomed runs with the watchdog only (planned steps)

1. Doomed runs: the built-in tiny model (CPU) trained so that it fails, through `python -m swiftops`
   with the watchdog on (the default) and, as the baseline, with watchdog.enabled=false: LoRA at
   lr 1e3 goes NaN; full tuning at lr 10 explodes. Printed: the step it was stopped at of the planned
   steps, the share of the steps saved (target >= 80%), and the swift seconds with and without it.
2. False stops: the watchdog replayed over every prefix (one training point more each time) of every
   run found under the folders (default: ../shared/diagnosis_corpus/dev, plus the folders given),
   against the run's hand label in a labelled corpus, else the diagnosis of the whole run. A false
   stop is a run it would have stopped that is not labelled (or judged) failed (target 0). Also
   printed: the failed runs it stops, and how early.

The measuring functions (doomed_runs, replay) return plain figures, for benchmarks/autotune.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "diagnosis_corpus" / "dev"
# a name and the overrides that make the tiny model fail; 20 epochs = 240 planned steps
DOOMED = {
    "nan (LoRA, lr 1e3)": ["lr=1e3", "epochs=20"],
    "explode (full, lr 10)": ["train.tuner_type=full", "lr=10", "epochs=20"],
}
TARGET_SAVED = 0.8


@dataclass
class Saving:
    """One doomed run with the watchdog on, and (baseline) the same run with it off."""

    name: str
    overrides: list[str]
    stopped_by: str | None
    stopped_at_step: int | None
    max_steps: int | None
    swift_s: float
    cause: str | None
    baseline_steps: int | None = None  # the run with the watchdog off: steps it trained
    baseline_swift_s: float | None = None
    baseline_verdict: str | None = None

    @property
    def steps_saved(self) -> float | None:
        """The share of the planned steps not trained."""
        if not self.stopped_at_step or not self.max_steps:
            return None
        return 1 - self.stopped_at_step / self.max_steps

    @property
    def seconds_saved(self) -> float | None:
        return None if self.baseline_swift_s is None else self.baseline_swift_s - self.swift_s


def run_job(overrides: list[str], job_dir: Path) -> dict:
    """One single run of `python -m swiftops` with these overrides; its run.json."""
    cmd = [
        sys.executable,
        "-m",
        "swiftops",
        *overrides,
        f"hydra.run.dir={job_dir}",
        "report.enabled=false",
        "progress=false",
    ]
    subprocess.run(cmd, cwd=job_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
    return json.loads((job_dir / "run.json").read_text())


def doomed_runs(work: Path, cases: dict[str, list[str]] = DOOMED, *, baseline: bool = True) -> list[Saving]:
    """Each doomed case with the watchdog on, then (baseline) off."""
    from swiftops.tiny import ensure_tiny_assets

    ensure_tiny_assets()
    out = []
    for i, (name, overrides) in enumerate(cases.items()):
        record = run_job(overrides, work / f"doomed{i}")
        sft = record["stages"].get("sft", {})
        figures = (record.get("diagnosis") or {}).get("figures") or {}
        saving = Saving(
            name=name,
            overrides=overrides,
            stopped_by=record.get("stopped_by"),
            stopped_at_step=sft.get("stopped_at_step") or figures.get("steps"),
            max_steps=sft.get("max_steps") or figures.get("max_steps"),
            swift_s=float(record.get("duration_s") or 0.0),
            cause=(record.get("diagnosis") or {}).get("evidence", {}).get("cause"),
        )
        if baseline:
            full = run_job([*overrides, "watchdog.enabled=false"], work / f"doomed{i}-off")
            saving.baseline_steps = ((full.get("diagnosis") or {}).get("figures") or {}).get("steps")
            saving.baseline_swift_s = float(full.get("duration_s") or 0.0)
            saving.baseline_verdict = full.get("verdict")
        out.append(saving)
    return out


@dataclass
class Replay:
    """The watchdog over every prefix of every run under some folders."""

    runs: int = 0
    failed: int = 0  # runs whose whole-run verdict is failed
    stopped: list[tuple[str, str, int, int]] = field(default_factory=list)  # (run, cause, step, last step)
    false_stops: list[tuple[str, str, str, int]] = field(default_factory=list)  # (run, verdict, cause, step)
    unreadable: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


def corpus_labels(folder: Path) -> dict[str, str]:
    """case -> label, when the folder is a labelled corpus's runs/ (labels.csv beside it)."""
    path = folder.parent / "labels.csv"
    if folder.name != "runs" or not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row["case"]: row["verdict"] for row in csv.DictReader(f)}


def replay(folders: list[Path]) -> Replay:
    """Replay the watchdog over every run under the folders (each read with swiftops.curves, judged
    with the default thresholds)."""
    from swiftops.curves import read_run_dir
    from swiftops.diagnosis import diagnose
    from swiftops.runfolder import NoRunFound, find_run_dirs
    from swiftops.watchdog import first_stop

    figures = Replay(folders=[str(f) for f in folders])
    for folder in folders:
        labels = corpus_labels(Path(folder))
        try:
            run_dirs = find_run_dirs(folder)
        except NoRunFound as exc:
            figures.unreadable.append(str(exc))
            continue
        for run_dir in run_dirs:
            try:
                curves = read_run_dir(run_dir)
                case = run_dir.relative_to(folder).parts[0] if run_dir != Path(folder) else run_dir.name
                # a labelled corpus: the hand label decides what a false stop is, else the whole-run verdict
                verdict = labels.get(case) or diagnose(curves).verdict
                decision = first_stop(curves)
            except Exception as exc:  # a bad file is a figure, never the end of the benchmark
                figures.unreadable.append(f"{run_dir}: {type(exc).__name__}: {exc}")
                continue
            figures.runs += 1
            figures.failed += verdict == "failed"
            if decision is None:
                continue
            name = str(run_dir.relative_to(Path(folder).parent))
            step, last = decision.figures["steps"], int(curves.train_loss.steps[-1])
            cause = decision.evidence.get("cause", "")
            figures.stopped.append((name, cause, step, last))
            if verdict != "failed":
                figures.false_stops.append((name, verdict, cause, step))
    return figures


def format_savings(savings: list[Saving]) -> str:
    lines = [
        "doomed runs on the tiny model (CPU), watchdog on vs off",
        f"{'run':<24} {'stopped at':>14} {'steps saved':>11} {'swift s on':>10} {'off':>7} {'saved s':>8}"
        "  cause",
    ]
    for s in savings:
        at = f"{s.stopped_at_step}/{s.max_steps}" if s.stopped_by else f"not stopped ({s.stopped_at_step})"
        share = f"{s.steps_saved:.0%}" if s.stopped_by and s.steps_saved is not None else "-"
        off = f"{s.baseline_swift_s:.1f}" if s.baseline_swift_s is not None else "-"
        saved = f"{s.seconds_saved:.1f}" if s.seconds_saved is not None else "-"
        lines.append(
            f"{s.name:<24} {at:>14} {share:>11} {s.swift_s:>10.1f} {off:>7} {saved:>8}  {s.cause or '-'}"
        )
    shares = [s.steps_saved for s in savings if s.stopped_by and s.steps_saved is not None]
    met = len(shares) == len(savings) and all(x >= TARGET_SAVED for x in shares)
    low = f"{min(shares):.0%}" if shares else "none stopped"
    lines.append(
        f"target: >= {TARGET_SAVED:.0%} of the steps saved on every doomed run: {'met' if met else 'MISSED'} "
        f"(lowest {low})"
    )
    return "\n".join(lines)


def format_replay(figures: Replay) -> str:
    lines = [
        f"replay over every prefix of {figures.runs} runs ({figures.failed} failed: labelled so, or by their "
        "final verdict where no label is) "
        f"in {', '.join(figures.folders)}"
    ]
    stopped_failed = [s for s in figures.stopped if s[0] not in {f[0] for f in figures.false_stops}]
    lines.append(
        f"stopped: {len(figures.stopped)} runs, {len(stopped_failed)} of the {figures.failed} failed ones"
    )
    for name, cause, step, last in figures.stopped:
        lines.append(
            f"  {name:<44} {cause:<8} at step {step} of the {last} logged ({1 - step / last:.0%} earlier)"
        )
    lines.append(f"false stops (stopped, not labelled or judged failed): {len(figures.false_stops)}")
    for name, verdict, cause, step in figures.false_stops:
        lines.append(f"  {name}: {cause} at step {step}, label or verdict {verdict}")
    lines.append(f"target: 0 false stops: {'met' if not figures.false_stops else 'MISSED'}")
    for problem in figures.unreadable:
        lines.append(f"unreadable: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folders", nargs="*", type=Path, help="sweep or run folders to replay, besides the corpus"
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a folder of runs to replay")
    parser.add_argument("--skip-runs", action="store_true", help="leave out the real doomed runs")
    parser.add_argument("--no-baseline", action="store_true", help="doomed runs with the watchdog on only")
    args = parser.parse_args(argv)

    folders = ([args.corpus / "runs"] if (args.corpus / "runs").is_dir() else []) + list(args.folders)
    if not args.skip_runs:
        with tempfile.TemporaryDirectory(prefix="swiftops-watchdog-") as tmp:
            savings = doomed_runs(Path(tmp), baseline=not args.no_baseline)
            print(format_savings(savings))
            print()
            # the baseline runs trained to their end: the watchdog, replayed, must stop them too
            print(format_replay(replay([*folders, *(p for p in Path(tmp).glob("doomed*-off"))])))
        return 0
    if not folders:
        print(f"nothing to replay: no corpus at {args.corpus} and no folders given", file=sys.stderr)
        return 2
    print(format_replay(replay(folders)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
