"""The sweep report at scale: 100 synthetic runs x 5k steps (targets: <= 10 s, <= 5 MB of HTML).

    python benchmarks/report.py                        # 100 runs x 5000 steps, ours vs the alternatives
    python benchmarks/report.py --runs 20 --steps 1000  # a quick look
    python benchmarks/report.py --work /tmp/bench       # keep (and reuse) the synthetic sweep there

The sweep is a 10 x 10 grid (lr x lora_rank) of REAL run folders: TensorBoard event files from
tensorboard's own writer (tests/report_fixtures.py), run.json with the diagnosis the runner would
have stored. Making it takes about a minute; only write_report() is timed, in this process,
which includes reading every curve back. Then the same report drawn the obvious other ways:
plots as SVG instead of PNG, and every point drawn (no min/max decimation).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the synthetic-sweep builder lives with the tests

from report_fixtures import FakeRun, make_sweep  # noqa: E402

from swiftops.report import plots  # noqa: E402
from swiftops.report.render import write_report  # noqa: E402

TARGET_S, TARGET_MB = 10.0, 5.0
# a sweep's usual mix: mostly healthy runs, a few that failed in each way, one still running
SHAPES = ["converged", "overfit", "underfit", "converged", "overfit"] * 2


def shape_of(i: int, j: int, side: int) -> str:
    if i == side - 1:
        return "diverged"  # the highest lr
    if (i, j) == (side - 2, 0):
        return "nan"
    if (i, j) == (0, 1):
        return "crashed"
    if (i, j) == (0, 2):
        return "interrupted"
    if (i, j) == (1, 3):
        return "running"
    return SHAPES[(i + j) % len(SHAPES)]


def build_sweep(sweep_dir: Path, runs: int, steps: int) -> Path:
    side = max(2, round(runs**0.5))
    lrs = [float(f"{1e-5 * 2**i:.3g}") for i in range(side)]
    ranks = [4 * (j + 1) for j in range(side)]
    specs = []
    for i, lr in enumerate(lrs):
        for j, rank in enumerate(ranks):
            if len(specs) < runs:
                specs.append(
                    FakeRun(
                        shape_of(i, j, side),
                        {"lr": lr, "lora_rank": rank},
                        steps=steps,
                        eval_every=max(steps // 100, 1),
                        seed=i * side + j,
                    )
                )
    overrides = [f"lr={','.join(map(str, lrs))}", f"lora_rank={','.join(map(str, ranks))}"]
    return make_sweep(sweep_dir, specs, overrides=overrides)


@contextmanager
def patched(**changes):
    """Swap functions of swiftops.report.plots for one measurement."""
    saved = {name: getattr(plots, name) for name in changes}
    for name, value in changes.items():
        setattr(plots, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(plots, name, value)


def svg_uri(fig, dpi: int) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def every_point(steps, values, max_points):
    return steps, values


def measure(sweep: Path, out: Path, repeats: int) -> tuple[float, float]:
    """Median seconds of write_report over repeats, and the HTML's size in MB."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        path = write_report(sweep, out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), path.stat().st_size / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--work", type=Path, help="folder for the synthetic sweep (reused when it exists)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--repeats", type=int, default=3, help="timings per variant (the median is shown)")
    parser.add_argument("--only-ours", action="store_true", help="skip the alternatives")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="swiftops-bench-report-"))
    sweep = work / f"multirun-{args.runs}x{args.steps}" / "2026-11-24" / "10-00-00"
    try:
        if not (sweep / "multirun.yaml").is_file():
            t0 = time.perf_counter()
            build_sweep(sweep, args.runs, args.steps)
            print(f"built {args.runs} runs x {args.steps} steps in {time.perf_counter() - t0:.1f} s: {sweep}")
        else:
            print(f"reusing {sweep}")
        variants = [("swiftops: PNG, min/max decimation", {})]
        if not args.only_ours:
            variants += [
                ("SVG plots, min/max decimation", {"to_data_uri": svg_uri}),
                ("PNG, every point drawn", {"decimate": every_point}),
            ]
        title = f"report of {args.runs} runs x {args.steps} steps (median of {args.repeats})"
        print(f"\n{title:<52} {'time':>8} {'HTML':>9}")
        for name, changes in variants:
            with patched(**changes):
                seconds, mb = measure(sweep, work / f"report-{len(name)}.html", args.repeats)
            print(f"{name:<52} {seconds:7.2f}s {mb:7.2f} MB")
            if not changes:
                ours = (seconds, mb)
        met = ours[0] <= TARGET_S and ours[1] <= TARGET_MB
        print(
            f"\ntargets: <= {TARGET_S:g} s and <= {TARGET_MB:g} MB; "
            f"swiftops: {ours[0]:.2f} s, {ours[1]:.2f} MB ({'met' if met else 'MISSED'})"
        )
    finally:
        if args.keep or args.work:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
