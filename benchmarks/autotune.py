"""Autotune against the tutorial's fixed five runs and a plain grid, all from the tutorial's
run-1 settings (lr 0.1) on the built-in tiny model, CPU, side by side in one run. For each:
the runs, the swift seconds and steps they cost, and the best run's verdict and eval loss.
Then the watchdog's figures (benchmarks/watchdog.py): the steps it saves on doomed runs and
its false stops.

    python benchmarks/autotune.py [--grid-lr 1e-1,1e-3,1e-5] [--grid-epochs 1,3,9 ...] [--skip-watchdog]

The grid's lrs default to the ones autotune's lr/100 steps visit from 0.1, its epochs to its 3x
steps from 1; give --grid-epochs more than once for more grids (e.g. 1,9,27, which reaches the
epochs the tiny model needs to converge). Targets: autotune reaches a converged run in <= 5 runs
and spends <= 50% of the grid's swift seconds; the watchdog saves >= 80% of a doomed run's steps
and stops no healthy run.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START = "experiment=tutorial_tiny_run1"


@dataclass
class Outcome:
    name: str
    command: str
    runs: int
    swift_seconds: float
    steps: int
    wall_seconds: float
    verdicts: list[str]
    best: str  # "job N: verdict, eval loss X"
    converged_at: int | None  # how many runs it took to the first converged one
    watchdog_stops: list[int]  # jobs the live watchdog stopped (it is on, as by default)


def run_strategy(name: str, overrides: list[str], work: Path) -> Outcome:
    """One strategy as a user would type it, then its records read back."""
    from swiftops.record import find_records, read_record

    sweep_dir = work / folder_name(name)
    cmd = [
        sys.executable,
        "-m",
        "swiftops",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        "report.enabled=false",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    records = [read_record(p) for p in find_records(sweep_dir)]
    records = [r for r in records if "sft" in (r.stages or {})]  # training runs only
    verdicts = [r.verdict or r.status for r in records]
    stopped = [r.job_num for r in records if r.stopped_by]
    first = next((i + 1 for i, v in enumerate(verdicts) if v == "converged"), None)
    return Outcome(
        name=name,
        command="python -m swiftops " + " ".join(overrides),
        runs=len(records),
        swift_seconds=sum(r.duration_s or 0.0 for r in records),
        steps=sum(int(((r.diagnosis or {}).get("figures") or {}).get("steps") or 0) for r in records),
        wall_seconds=wall,
        verdicts=verdicts,
        best=best_of(records),
        converged_at=first,
        watchdog_stops=stopped,
    )


def folder_name(name: str) -> str:
    """'grid ep 1,3,9' -> 'grid_ep_1-3-9': no comma or space reaches a Hydra override."""
    return name.replace(" ", "_").replace(",", "-")


def best_of(records) -> str:
    """The converged run with the lowest eval loss, else the lowest eval loss of any run."""

    def eval_loss(r) -> float:
        value = ((r.diagnosis or {}).get("figures") or {}).get("best_eval_loss")
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.inf

    pool = [r for r in records if r.verdict == "converged"] or records
    if not pool:
        return "none"
    best = min(pool, key=eval_loss)
    return f"job {best.job_num}: {best.verdict}, eval loss {eval_loss(best):.4g}"


def print_table(outcomes: list[Outcome]) -> None:
    print(f"\nfrom {START} (lr 0.1, rank 4, 1 epoch), tiny model, CPU\n")
    header = f"{'strategy':<16} {'runs':>4} {'swift s':>8} {'steps':>6} {'wall s':>7}  {'1st conv':>8}  best"
    print(header)
    print("-" * len(header))
    for o in outcomes:
        conv = str(o.converged_at) if o.converged_at else "never"
        print(
            f"{o.name:<16} {o.runs:>4} {o.swift_seconds:>8.1f} {o.steps:>6} "
            f"{o.wall_seconds:>7.1f}  {conv:>8}  {o.best}"
        )
    print()
    for o in outcomes:
        stops = f"; stopped by the watchdog: jobs {o.watchdog_stops}" if o.watchdog_stops else ""
        print(f"{o.name}: {' -> '.join(o.verdicts)}{stops}\n  {o.command}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grid-lr", default="1e-1,1e-3,1e-5", help="the grid's learning rates")
    parser.add_argument("--grid-epochs", action="append", help="the grid's epochs (repeat for more grids)")
    parser.add_argument("--skip-tutorial", action="store_true", help="leave out the fixed five runs")
    parser.add_argument("--skip-watchdog", action="store_true", help="leave out the watchdog's figures")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="swiftops-autotune-") as tmp:
        work = Path(tmp)
        autotune = run_strategy("autotune", ["+sweep=autotune", START], work)
        outcomes = [autotune]
        if not args.skip_tutorial:
            outcomes.append(run_strategy("tutorial", ["+sweep=tutorial_tiny"], work))
        grids = []
        for epochs in args.grid_epochs or ["1,3,9"]:
            name = f"grid ep {epochs}"
            grids.append(run_strategy(name, ["-m", START, f"lr={args.grid_lr}", f"epochs={epochs}"], work))
        outcomes += grids
        print_table(outcomes)
        runs_ok = autotune.converged_at is not None and autotune.converged_at <= 5
        verdict = "met" if runs_ok else "MISSED"
        print(f"\ntarget: autotune converged in <= 5 runs: {verdict} ({autotune.converged_at or 'never'})")
        for grid in grids:
            share = autotune.swift_seconds / grid.swift_seconds if grid.swift_seconds else math.inf
            found = "finds a converged run" if grid.converged_at else "finds no converged run"
            print(
                f"target: <= 50% of the swift seconds of {grid.name} (lr {args.grid_lr}; it {found}): "
                f"{'met' if share <= 0.5 else 'MISSED'} ({share:.0%})"
            )
        if not args.skip_watchdog:
            # its doomed runs, and its replay over the corpus and over every run above (false stops)
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import watchdog

            print()
            watchdog.main([str(work / folder_name(o.name)) for o in outcomes])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
