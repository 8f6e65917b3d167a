"""GPU leases: each job holds gpus_per_job GPUs of runtime.gpus for its whole life, and no GPU is
ever held by two jobs, whichever process or sweep on this machine the jobs belong to.

A lease is an exclusive lock on one file per GPU (filelock, on flock(2)). The kernel drops a
process's locks when it ends, however it ends, so a crashed or killed job frees its GPUs without
anyone cleaning up. A job that finds too few GPUs free waits, polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from swiftops.paths import cache_dir
from swiftops.stops import in_slurm_task, stop_requested

log = logging.getLogger("swiftops")

MASTER_PORT_BASE = 29500  # torchrun's default; a job's port is this plus its first GPU's index
WAIT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Lease:
    """The GPUs a job holds, and the environment that gives them to swift."""

    gpus: tuple[int, ...]

    @property
    def master_port(self) -> int:
        # distinct between concurrent jobs: their GPU sets never overlap, so their first GPUs differ
        return MASTER_PORT_BASE + self.gpus[0]

    def env(self) -> dict[str, str]:
        env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, self.gpus)), "MASTER_PORT": str(self.master_port)}
        if len(self.gpus) > 1:
            env["NPROC_PER_NODE"] = str(len(self.gpus))  # swift runs torchrun over them
        return env


def lease_dir() -> Path:
    """Where this machine's GPU locks live: under the swiftops cache, per host (a home folder
    shared between cluster nodes must not make two machines' GPU 0 one GPU)."""
    return cache_dir() / "gpu-leases" / socket.gethostname()


def _try_lock(path: Path) -> FileLock | None:
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


@contextlib.contextmanager
def gpu_lease(
    pool: Sequence[int],
    per_job: int,
    *,
    folder: Path | None = None,
    label: str = "job",
    should_stop=lambda: False,
) -> Iterator[Lease | None]:
    """Hold per_job GPUs of pool for the block; None (never waits) once should_stop() says so.

    The choice is made under one pool lock, so two jobs can't each take half of what both need;
    the first free GPUs in pool order are taken."""
    folder = folder or lease_dir()
    folder.mkdir(parents=True, exist_ok=True)
    held: list[FileLock] = []
    waited = False
    try:
        while True:
            with FileLock(folder / "pool.lock"):
                gpus = []
                for gpu in pool:
                    lock = _try_lock(folder / f"gpu-{gpu}.lock")
                    if lock is not None:
                        held.append(lock)
                        gpus.append(gpu)
                        if len(gpus) == per_job:
                            break
                if len(gpus) == per_job:
                    break
                for lock in held:
                    lock.release()
                held.clear()
            if should_stop():
                yield None
                return
            if not waited:
                log.info("%s waits for %d free GPU(s) of %s", label, per_job, list(pool))
                waited = True
            time.sleep(WAIT_POLL_SECONDS)
        lease = Lease(tuple(gpus))
        log.info("%s holds GPU(s) %s (MASTER_PORT %d)", label, ",".join(map(str, gpus)), lease.master_port)
        yield lease
    finally:
        for lock in held:
            lock.release()


def thread_share(cfg: Mapping[str, Any], cores: int) -> dict[str, Any]:
    """cfg with OMP_NUM_THREADS capped so `jobs` concurrent jobs share the cores: at most
    cores // jobs each (at least 1), never more than the runtime asks for."""
    jobs = cfg.get("jobs") or 1
    if jobs <= 1:
        return cfg
    share = max(1, cores // jobs)
    asked = (cfg["runtime"].get("env") or {}).get("OMP_NUM_THREADS")
    try:
        threads = min(share, int(asked)) if asked is not None else share
    except (TypeError, ValueError):
        threads = share
    return with_env(cfg, {"OMP_NUM_THREADS": str(threads)})


def with_env(cfg: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """cfg with env added to the environment of its swift (a lease's GPUs, a task's port)."""
    return {**cfg, "runtime": {**cfg["runtime"], "env": {**(cfg["runtime"].get("env") or {}), **env}}}


def slurm_task_env(per_job: int, job_id: str) -> dict[str, str]:
    """In a SLURM task, whose GPUs SLURM chose: torchrun over several, on a port of the task's own
    (array tasks sharing a node have distinct job ids)."""
    if per_job <= 1:
        return {}
    return {"NPROC_PER_NODE": str(per_job), "MASTER_PORT": str(20000 + int(job_id) % 10000)}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def job_lease(cfg: Mapping[str, Any], ctx: Any) -> Iterator[dict[str, Any] | None]:
    """The job's config for its whole life: its share of the cores when jobs run side by side, and
    its GPUs leased from runtime.gpus (outside SLURM, which hands out GPUs itself). None when a
    stop came while the job waited for GPUs."""
    cfg = thread_share(cfg, available_cores())
    runtime = cfg.get("runtime") or {}
    pool = list(runtime.get("gpus") or [])
    per_job = int(runtime.get("gpus_per_job") or 1)
    if not pool:
        yield dict(cfg)
    elif in_slurm_task():  # SLURM handed out the task's GPUs (its own CUDA_VISIBLE_DEVICES)
        yield with_env(cfg, slurm_task_env(per_job, os.environ["SLURM_JOB_ID"]))
    else:
        with gpu_lease(pool, per_job, label=ctx.label, should_stop=stop_requested) as lease:
            yield with_env(cfg, lease.env()) if lease is not None else None
