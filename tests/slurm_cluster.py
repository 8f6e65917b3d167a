"""A REAL single-node SLURM cluster for tests: munged, slurmctld and slurmd started as root on this
machine, every file they write under one folder, and stopped by pid.

Test modules load the fixture with `pytest_plugins = ["slurm_cluster"]` (tests/ is on sys.path the
way `helpers_events` is: rootdir conftest, no __init__.py). The fixture skips where the cluster cannot
run (not root, a binary missing: `apt-get install slurm-wlm munge`) unless SWIFTOPS_REQUIRE_SLURM=1,
where it fails instead (CI sets it).

No cgroups, no systemd, no accounting: proctrack/linuxproc, task/none, accounting_storage/none. So the
real `sacct` only answers "Slurm accounting storage is disabled", as on small clusters without a
database: the SLURM launcher must (and does) learn how a task ended from squeue.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRE_ENV = "SWIFTOPS_REQUIRE_SLURM"  # "1": a missing cluster fails the tests instead of skipping them
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol")
PARTITION = "debug"
KILL_WAIT_S = 5  # slurm.conf KillWait: SIGTERM to SIGKILL of a cancelled or timed-out job
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
MAX_SOCKET_PATH = 100  # a Unix socket's path holds at most 107 bytes
MIN_JOB_AGE_S = 3600  # slurm.conf MinJobAge: how long squeue (so the launcher) still shows an ended job;
# above submitit's longest gap between two state checks (600 s)


@dataclass
class Cluster:
    """A running cluster: `env` is os.environ plus SLURM_CONF, for subprocesses that call sbatch or
    submitit."""

    root: Path
    conf: Path
    env: dict[str, str]
    node: str
    munge_socket: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # daemon name -> process
    scratch: list[Path] = field(default_factory=list)  # folders outside root to remove at stop

    @property
    def logs(self) -> Path:
        return self.root / "log"

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """A SLURM client command (`sbatch ...`) against this cluster; output captured as text."""
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every daemon's log: what a failure message shows."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel leftover jobs, then SIGTERM (SIGKILL after STOP_TIMEOUT_S) every daemon started
        here, by pid, slurmd first and munged last; then SIGKILL whatever still carries this
        cluster's SLURM_CONF (the slurmstepd of a job still ending). Safe to call twice."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.run("scancel", "--user", "root", check=False, timeout=10)
                self._wait_queue_empty(timeout=KILL_WAIT_S + 10)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                _terminate(proc)
        for pid in _pids_with_env(f"SLURM_CONF={self.conf}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self.scratch.clear()

    def _wait_queue_empty(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queue = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
            if queue.returncode == 0 and not queue.stdout.strip():
                return
            time.sleep(0.5)


def missing_requirements() -> str | None:
    """Why a cluster cannot start here (a sentence), or None."""
    if os.geteuid() != 0:
        return "the SLURM test cluster runs its daemons as root; these tests run as a normal user"
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]
    if missing:
        return f"the SLURM test cluster needs {', '.join(missing)} on PATH: apt-get install slurm-wlm munge"
    return None


def start_cluster(root: Path) -> Cluster:
    """munged, slurmctld and slurmd with their config, state and logs under root; returns once the
    node is idle (about 1 s), or raises RuntimeError with the daemons' log tails (after stopping what
    started). The daemons get SIGTERM should this process die without stop() (PR_SET_PDEATHSIG)."""
    root = Path(root).resolve()
    for sub in ("log", "run", "state", "spool", "munge"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    node = _short_hostname()
    munge_dir, scratch = _munge_socket_dir(root)
    cluster = Cluster(
        root=root,
        conf=root / "slurm.conf",
        env={},
        node=node,
        munge_socket=munge_dir / "munge.socket",
        scratch=scratch,
    )
    cluster.env = {**os.environ, "SLURM_CONF": str(cluster.conf)}
    try:
        _start_munged(cluster)
        ctld_port, slurmd_port = _free_ports(2)
        cluster.conf.write_text(
            slurm_conf(root, node, _node_hardware(), cluster.munge_socket, ctld_port, slurmd_port)
        )
        cluster.procs["slurmctld"] = _spawn(
            cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(cluster.conf)]
        )
        cluster.procs["slurmd"] = _spawn(cluster, "slurmd", ["slurmd", "-D", "-f", str(cluster.conf)])
        _wait_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def slurm_conf(
    root: Path, node: str, hardware: str, munge_socket: Path, ctld_port: int, slurmd_port: int
) -> str:
    """slurm.conf of a one-node cluster: no cgroups, no accounting, files under root."""
    return f"""\
# A one-node test cluster written by tests/slurm_cluster.py
ClusterName=swiftops
SlurmctldHost={node}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups here (no systemd): processes tracked by parent pid, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# the main scheduling loop every second (default 60): an array's next wave starts 1 s, not 3 s, after
SchedulerParameters=sched_interval=1
ReturnToService=2
# a job that asks for more than the node has is refused at sbatch, not left pending forever
EnforcePartLimits=ALL
# a cancelled or timed-out job gets SIGTERM, then SIGKILL KillWait seconds later
KillWait={KILL_WAIT_S}
OverTimeLimit=0
# ended jobs stay in squeue --states=all and scontrol this long (the launcher reads squeue)
MinJobAge={MIN_JOB_AGE_S}
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
{hardware} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def _node_hardware() -> str:
    """The NodeName line that `slurmd -C` prints for this machine (CPUs, sockets, cores, memory),
    RealMemory lowered 5% so a node whose free memory wobbles is not drained as 'Low RealMemory'."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    words = []
    for word in line.split():
        key, _, value = word.partition("=")
        if key == "RealMemory":
            word = f"RealMemory={max(1, int(int(value) * 0.95))}"
        words.append(word)
    return " ".join(words)


def _munge_socket_dir(root: Path) -> tuple[Path, list[Path]]:
    """A folder for munged's socket, which munged only creates where every folder above is
    executable by all: root/munge where it is (pytest's /tmp/pytest-of-root is 0700, so it often is
    not), else a fresh 0755 folder in /tmp, removed at stop. Returns (folder, folders to remove)."""
    folder = root / "munge"
    if _traversable_by_all(folder) and len(str(folder / "munge.socket")) <= MAX_SOCKET_PATH:
        folder.chmod(0o755)
        return folder, []
    folder = Path(tempfile.mkdtemp(prefix="swiftops-munge-", dir="/tmp"))
    folder.chmod(0o755)
    return folder, [folder]


def _traversable_by_all(folder: Path) -> bool:
    return all(parent.stat().st_mode & 0o001 for parent in [folder.parent, *folder.parent.parents])


def _start_munged(cluster: Cluster) -> None:
    key = cluster.root / "munge" / "munge.key"  # munged wants it 0600, owned by its user
    if not key.exists():
        key.write_bytes(os.urandom(128))  # what `mungekey` writes: 1024 random bits
    key.chmod(0o600)
    munge = cluster.root / "munge"
    cluster.procs["munged"] = _spawn(
        cluster,
        "munged",
        [
            "munged",
            "--foreground",  # logs to stderr then (its --log-file is for the daemonized form)
            "--force",  # past a stale socket lock of an earlier run killed hard
            f"--socket={cluster.munge_socket}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={cluster.logs / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        ],
    )
    deadline = time.monotonic() + 10
    while not cluster.munge_socket.exists():
        if cluster.procs["munged"].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"munged did not create {cluster.munge_socket}\n{cluster.log_tails()}")
        time.sleep(0.1)


def _spawn(cluster: Cluster, name: str, argv: list[str]) -> subprocess.Popen:
    """A daemon in its own session (so a test's Ctrl-C does not reach it) that gets SIGTERM when
    this process dies, its stdout and stderr in log/NAME.out (slurm writes log/NAME.log too)."""
    with open(cluster.logs / f"{name}.out", "ab") as out:
        return subprocess.Popen(
            argv,
            env=cluster.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
            cwd=cluster.root,
        )


def _terminate_with_parent() -> None:
    """preexec_fn: SIGTERM to the daemon when the process that started it dies, however it dies
    (a test run killed with SIGKILL or SIGTERM runs no fixture teardown). -D/-F keep the daemons
    in the process that exec'd, so the setting holds."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (the OS's pick; a race with other programs is possible)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_idle(cluster: Cluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{cluster.log_tails()}")
        sinfo = cluster.run("sinfo", "-h", "-o", "%t", check=False, timeout=10)
        state = (sinfo.stdout or sinfo.stderr).strip()
        if sinfo.returncode == 0 and state == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"the SLURM node is not idle after {START_TIMEOUT_S:.0f} s (sinfo: {state!r})\n{cluster.log_tails()}"
    )


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _pids_with_env(entry: str) -> list[int]:
    """Live processes started with this environment entry (SLURM_CONF=this cluster's conf: the
    daemons, the slurmstepd of a job still ending, its tasks), this process and its parents aside."""
    spared = {os.getpid(), *_ancestors()}
    needle = entry.encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in spared:
            continue
        try:
            environ = (proc / "environ").read_bytes() + b"\0"
        except OSError:  # gone meanwhile, or a zombie
            continue
        if environ.startswith(needle) or b"\0" + needle in environ:
            found.append(int(proc.name))
    return found


def _ancestors() -> list[int]:
    pids, pid = [], os.getppid()
    while pid > 1:
        pids.append(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A running one-node cluster for the whole session, os.environ's SLURM_CONF and PATH those of
    cluster.env meanwhile (submitit and sbatch read them there); skipped where it cannot run unless
    SWIFTOPS_REQUIRE_SLURM=1."""
    reason = missing_requirements()
    if reason:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    before = {key: os.environ.get(key) for key in ("SLURM_CONF", "PATH")}
    os.environ.update({key: cluster.env[key] for key in before})
    try:
        yield cluster
    finally:
        cluster.stop()
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
