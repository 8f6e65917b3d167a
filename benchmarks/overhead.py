"""What swiftops adds to a job: the same tiny `swift sft` run through `python -m swiftops` and as
its raw argv (with the same environment), alternated, several times. Prints each pair and the
median added seconds. With --sweep N, also one N-job sweep against its N raw runs, where Hydra's
start-up is paid once: the added seconds per job of a sweep.

    python benchmarks/overhead.py [--repeats 5] [--sweep 4] [--report]

Target: <= 0.5 s added per job (swift's own start-up is not ours). The report, written once per
sweep, is timed on its own with --report.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
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


def command_env(job_dir: Path) -> dict[str, str]:
    """The variables swiftops set for swift (runtime.env), read from the job's command.sh, so the
    raw run gets exactly the same environment."""
    line = (job_dir / "command.sh").read_text().splitlines()[1]
    env = {}
    for token in shlex.split(line):
        if "=" not in token or token.startswith("-"):
            break
        key, value = token.split("=", 1)
        env[key] = value
    return env


def through_swiftops(work: Path, name: str, env: dict[str, str]) -> tuple[float, list[str], dict[str, str]]:
    job_dir = work / name
    seconds = timed([sys.executable, "-m", "swiftops", *JOB, f"hydra.run.dir={job_dir}"], env, work)
    record = json.loads((job_dir / "run.json").read_text())
    assert record["status"] == "completed", record.get("error")
    return seconds, record["argv"], dict(env, **command_env(job_dir))


def sweep_against_raw(work: Path, jobs: int, env: dict[str, str]) -> tuple[float, float]:
    """One sweep of `jobs` jobs (seeds 1..jobs) and the same jobs as raw argvs: total seconds each."""
    sweep_dir = work / "sweep"
    seeds = ",".join(str(i) for i in range(1, jobs + 1))
    ours = timed(
        [sys.executable, "-m", "swiftops", "-m", *JOB, f"train.seed={seeds}", f"hydra.sweep.dir={sweep_dir}"],
        env,
        work,
    )
    theirs = 0.0
    for i in range(jobs):
        record = json.loads((sweep_dir / str(i) / "run.json").read_text())
        assert record["status"] == "completed", record.get("error")
        raw_env = dict(env, **command_env(sweep_dir / str(i)))
        theirs += raw(work, f"sweep-raw{i}", record["argv"], raw_env)
    return ours, theirs


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
    parser.add_argument("--sweep", type=int, default=0, metavar="N", help="also time an N-job sweep")
    parser.add_argument("--report", action="store_true", help="also time writing the report of one job")
    args = parser.parse_args()

    from swiftops.tiny import ensure_tiny_assets

    ensure_tiny_assets()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="swiftops-overhead-") as tmp:
        work = Path(tmp)
        _, argv, raw_env = through_swiftops(work, "warmup", env)  # page cache, .pyc files
        rows = []
        for i in range(args.repeats):
            # alternate which goes first, so drift on a shared machine hits both sides
            if i % 2 == 0:
                ours, argv, raw_env = through_swiftops(work, f"swiftops{i}", env)
                theirs = raw(work, f"raw{i}", argv, raw_env)
            else:
                theirs = raw(work, f"raw{i}", argv, raw_env)
                ours, argv, raw_env = through_swiftops(work, f"swiftops{i}", env)
            rows.append((ours, theirs))
            print(f"run {i}: swiftops {ours:6.2f} s   raw {theirs:6.2f} s   added {ours - theirs:+.2f} s")
        added = statistics.median(o - t for o, t in rows)
        print(
            f"\nmedian over {args.repeats}: swiftops {statistics.median(o for o, _ in rows):.2f} s, "
            f"raw {statistics.median(t for _, t in rows):.2f} s, added {added:+.2f} s/job (target <= 0.5 s)"
        )
        if args.sweep:
            ours, theirs = sweep_against_raw(work, args.sweep, env)
            print(
                f"sweep of {args.sweep} jobs: swiftops {ours:.2f} s, raw {theirs:.2f} s, "
                f"added {(ours - theirs) / args.sweep:+.2f} s/job"
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
