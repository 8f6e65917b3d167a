"""What swiftops adds to a job: the same tiny `swift sft` run through `python -m swiftops` and as
its raw argv, alternated, several times. Prints each pair and the median added seconds.

    python benchmarks/overhead.py [--repeats 5] [--report]

Target: <= 0.5 s added per job (swift's own start-up is not ours). The report, written once per
sweep, is timed on its own with --report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = ["epochs=1", "report.enabled=false"]


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}")
    return elapsed


def through_swiftops(work: Path, name: str, env: dict[str, str]) -> tuple[float, list[str]]:
    job_dir = work / name
    seconds = timed([sys.executable, "-m", "swiftops", *JOB, f"hydra.run.dir={job_dir}"], env, work)
    record = json.loads((job_dir / "run.json").read_text())
    assert record["status"] == "completed", record.get("error")
    return seconds, record["argv"]


def raw(work: Path, name: str, argv: list[str], env: dict[str, str]) -> float:
    argv = list(argv)
    argv[argv.index("--output_dir") + 1] = str(work / name / "output")
    (work / name).mkdir()
    return timed(argv, env, work / name)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--report", action="store_true", help="also time writing the report of one job")
    args = parser.parse_args()

    from swiftops.tiny import ensure_tiny_assets

    ensure_tiny_assets()
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # what runtime=cpu gives the raw run too
    with tempfile.TemporaryDirectory(prefix="swiftops-overhead-") as tmp:
        work = Path(tmp)
        _, argv = through_swiftops(work, "warmup", env)  # page cache, .pyc files
        rows = []
        for i in range(args.repeats):
            # alternate which goes first, so drift on a shared machine hits both sides
            if i % 2 == 0:
                ours, argv = through_swiftops(work, f"swiftops{i}", env)
                theirs = raw(work, f"raw{i}", argv, env)
            else:
                theirs = raw(work, f"raw{i}", argv, env)
                ours, argv = through_swiftops(work, f"swiftops{i}", env)
            rows.append((ours, theirs))
            print(f"run {i}: swiftops {ours:6.2f} s   raw {theirs:6.2f} s   added {ours - theirs:+.2f} s")
        added = statistics.median(o - t for o, t in rows)
        print(
            f"\nmedian over {args.repeats}: swiftops {statistics.median(o for o, _ in rows):.2f} s, "
            f"raw {statistics.median(t for _, t in rows):.2f} s, added {added:+.2f} s/job (target <= 0.5 s)"
        )
        if args.report:
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "swiftops.report",
                    str(work / "swiftops0"),
                    "-o",
                    str(work / "r.html"),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(f"report of one job: {time.perf_counter() - t0:.2f} s (once per sweep, not per job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
