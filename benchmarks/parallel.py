"""Side by side against one at a time: the quickstart sweep (`-m lr=1e-1,5e-5 lora_rank=4,8`, 4 real
tiny jobs) run with the default launcher and with `hydra/launcher=parallel jobs=N`, each from a fresh
sweep folder. Prints both walls, their ratio and each sweep's verdicts by job number. Then what the
orchestrator adds to each job: every job of the sequential sweep is run again as its raw command
(its command.sh, which sets the job's environment) and timed.

    python benchmarks/parallel.py [--repeats 1] [--jobs 2] [--keep]

A job's wall inside the sweep is read from its folder: from the mtime of `.hydra/overrides.yaml`
(the last file Hydra writes before it calls the task function) to the mtime of the final run.json
(the job's last write: swiftops.job writes it once swift ended and its curves were judged). It holds
everything swiftops does for the job (the config checks, command.sh, run.json, the supervisor that
starts swift, the curves and diagnosis). Columns of the table:
  hydra     Hydra's own setup of the job (its config composed, its folder, its logging): from the
            previous job's final run.json to this job's overrides.yaml (none for job 0)
  in sweep  the job's wall inside the sweep, as above
  swift     swift's own wall, as the runner measured it (run.json's duration_s)
  outside   in sweep - swift: the job's time outside swift's process, from one run, so free of
            run-to-run noise, but blind to the supervisor's start-up (inside swift's wall)
  raw       the job's command.sh run on its own
  overhead  in sweep - raw: the target's figure
The last line, (the sequential sweep's wall - the raw commands') / jobs, means the same per job of
the sweep as a whole: it adds Python's and Hydra's start-up, the sweep check, Hydra's per-job setup,
the table and the report, paid once per sweep.

Targets: parallel/sequential <= 0.7 (2 jobs on 2 cores); overhead <= 0.5 s per job (median).
Warm-up (untimed in both figures): the tiny model is built if missing, then one single tiny run
(epochs=1, with its report) fills the flag-name cache, the page cache and matplotlib's font cache.
Each sweep runs with progress=false (no live display). A raw command's run lands beside the job's
own in its output/ (swift numbers it v1-...). Exits non-zero only when a run fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from overhead import timed  # benchmarks/overhead.py, beside this file

from swiftops.record import COMPLETED, RunRecord, find_records, read_record

SWEEP = ["lr=1e-1,5e-5", "lora_rank=4,8"]  # the quickstart's sweep: 4 jobs
QUIET = ["progress=false"]
RATIO_TARGET = 0.7
OVERHEAD_TARGET_S = 0.5


@dataclass
class Job:
    """One job of a sweep as its folder tells it (times are epoch seconds, from file mtimes)."""

    record: RunRecord
    began: float  # .hydra/overrides.yaml written: Hydra hands the job to swiftops
    ended: float  # the final run.json written: the job's last write

    @property
    def wall(self) -> float:
        return self.ended - self.began


@dataclass
class Sweep:
    name: str
    wall: float  # the whole `python -m swiftops -m ...` command
    launched: float  # epoch seconds when the command was started
    jobs: list[Job]

    @property
    def verdicts(self) -> list[str | None]:
        return [job.record.verdict for job in self.jobs]


def mtime(path: Path) -> float:
    return path.stat().st_mtime_ns / 1e9


def read_jobs(sweep_dir: Path) -> list[Job]:
    """The sweep's jobs in job order; exits when one did not complete (a failed run)."""
    jobs = []
    for path in find_records(sweep_dir):
        record = read_record(path)
        if record.status != COMPLETED:
            sys.exit(f"job {record.job_num} {record.status} in {path.parent}: {record.error_line or ''}")
        jobs.append(Job(record, mtime(path.parent / ".hydra" / "overrides.yaml"), mtime(path)))
    return jobs


def run_sweep(work: Path, name: str, launcher: list[str], env: dict[str, str]) -> Sweep:
    sweep_dir = work / name
    launched = time.time()
    wall = timed(
        [
            sys.executable,
            "-m",
            "swiftops",
            "-m",
            *launcher,
            *SWEEP,
            *QUIET,
            f"hydra.sweep.dir={sweep_dir}",
            f"report.dir={work / 'reports'}",
        ],
        env,
        work,
    )
    jobs = read_jobs(sweep_dir)
    if len(jobs) != 4:
        sys.exit(f"{name}: {len(jobs)} jobs in {sweep_dir}, expected 4")
    return Sweep(name, wall, launched, jobs)


def raw_walls(sweep: Sweep, env: dict[str, str]) -> list[float]:
    """Each job's command.sh run as it stands, from its job folder (where swiftops ran swift)."""
    return [
        timed([str(Path(job.record.job_dir) / "command.sh")], env, Path(job.record.job_dir))
        for job in sweep.jobs
    ]


def print_sweep(sweep: Sweep) -> None:
    first = min(job.began for job in sweep.jobs)
    spans = "  ".join(
        f"{job.record.job_num}: {job.began - first:.1f}-{job.ended - first:.1f}" for job in sweep.jobs
    )
    print(f"  {sweep.name}: {sweep.wall:.2f} s, verdicts by job {sweep.verdicts}")
    print(
        f"    first job handed over {first - sweep.launched:.2f} s after the command started; "
        f"jobs from-to (s after that): {spans}"
    )


def print_overheads(sweep: Sweep, raws: list[float]) -> list[float]:
    """The table of each job's figures; returns the overheads."""
    header = ("job", "verdict", "hydra", "in sweep", "swift", "outside", "raw", "overhead")
    print("    {:>3}  {:9}  {:>6}  {:>8}  {:>6}  {:>7}  {:>6}  {:>8}".format(*header))
    overheads = []
    for i, (job, raw) in enumerate(zip(sweep.jobs, raws, strict=True)):
        hydra = f"{job.began - sweep.jobs[i - 1].ended:6.2f}" if i else f"{'-':>6}"
        swift = job.record.duration_s or 0.0
        overheads.append(job.wall - raw)
        print(
            f"    {job.record.job_num:>3}  {job.record.verdict or '-':9}  {hydra}  {job.wall:8.2f}  "
            f"{swift:6.2f}  {job.wall - swift:7.2f}  {raw:6.2f}  {job.wall - raw:+8.2f}"
        )
    return overheads


def verdict(met: bool) -> str:
    return "target met" if met else "target missed"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="jobs at once in the parallel sweep")
    parser.add_argument("--keep", action="store_true", help="keep the sweep folders and reports")
    args = parser.parse_args()
    parallel = ["hydra/launcher=parallel", f"jobs={args.jobs}"]

    from swiftops.tiny import ensure_tiny_assets

    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    t0 = time.perf_counter()
    ensure_tiny_assets()
    built = time.perf_counter() - t0
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="swiftops-parallel-"))
    keep = args.keep
    try:
        warmup = timed(
            [sys.executable, "-m", "swiftops", "epochs=1", *QUIET, f"hydra.run.dir={work / 'warmup'}"],
            env,
            work,
        )
        print(
            f"warm-up (untimed below): tiny model ready in {built:.1f} s, then one single tiny run "
            f"(epochs=1, with its report) in {warmup:.1f} s"
        )
        ratios, overheads, per_sweep_job, same = [], [], [], True
        for r in range(args.repeats):
            print(f"\nrepeat {r + 1}/{args.repeats}")
            # alternate which launcher goes first, so drift on a shared machine hits both
            if r % 2 == 0:
                seq = run_sweep(work, f"sequential{r}", [], env)
                raws = raw_walls(seq, env)
                par = run_sweep(work, f"parallel{r}", parallel, env)
            else:
                par = run_sweep(work, f"parallel{r}", parallel, env)
                seq = run_sweep(work, f"sequential{r}", [], env)
                raws = raw_walls(seq, env)
            print_sweep(seq)
            print_sweep(par)
            ratios.append(par.wall / seq.wall)
            same = same and seq.verdicts == par.verdicts
            print("  the sequential sweep's jobs (s; overhead = in sweep - raw command.sh):")
            overheads += print_overheads(seq, raws)
            per_sweep_job.append((seq.wall - sum(raws)) / len(raws))
            print(f"  the raw commands: {sum(raws):.2f} s in all")

        ratio = statistics.median(ratios)
        added = statistics.median(overheads)
        print(
            f"\nwall, parallel (jobs={args.jobs}) / sequential: {ratio:.2f}"
            + (f" (median of {args.repeats})" if args.repeats > 1 else "")
            + f" (target <= {RATIO_TARGET}): {verdict(ratio <= RATIO_TARGET)}"
        )
        print(f"verdicts by job identical in both: {'yes' if same else 'NO'}")
        print(
            f"overhead per job (its wall in the sweep - its raw command's), median of {len(overheads)}: "
            f"{added:+.2f} s (target <= {OVERHEAD_TARGET_S} s): {verdict(added <= OVERHEAD_TARGET_S)}"
        )
        print(
            f"per job of the sweep as a whole ((sequential sweep's wall - raw commands') / jobs): "
            f"{statistics.median(per_sweep_job):+.2f} s (start-up, sweep check, table and report included)"
        )
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    except BaseException:
        keep = True  # a failed run: its folders hold the logs
        raise
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
