"""A real, throw-away, one-node SLURM cluster on 127.0.0.1 for tests.

``SlurmCluster(workdir)`` installs the Debian packages if they are missing, writes every
configuration file into ``workdir``, starts munged, MariaDB, slurmdbd, slurmctld and slurmd
as child processes in the foreground (so each one is known by its PID), registers the cluster
in accounting and waits until the node is idle.  Leaving the ``with`` block cancels all jobs,
stops every daemon it started, by PID, and checks that they are gone.

Daemons and clients find ``slurm.conf`` through the ``SLURM_CONF`` variable
(``cluster.env``), and SLURM reads ``gres.conf``, ``slurmdbd.conf`` and ``plugstack.conf``
from the same folder.  Two paths outside the workdir are touched, each for a reason:

* ``/etc/slurm/slurm.conf`` is a symlink to the workdir's slurm.conf while the cluster runs
  (removed on stop).  The slurm executor plugin's job step (snakemake-executor-plugin-
  slurm-jobstep 0.6) removes every ``SLURM_*`` variable except a few job ids from the
  environment of the ``srun`` it runs inside each job, SLURM_CONF included, so that srun
  only finds the cluster at the compiled-in default path; without the link every Snakemake
  job fails with "fetch_config: DNS SRV lookup failed".  An existing slurm.conf that is not
  such a link is never replaced (ClusterError instead), so one cluster runs at a time.
* ``/usr/sbin/policy-rc.d``, only while apt installs packages on a machine that lacks one:
  without it Debian's maintainer scripts start system-wide munge and MariaDB services,
  which this module did not start and so could not stop by PID.

Requires root (SlurmUser=root, mknod, apt-get).  Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ["slurm-wlm", "slurmdbd", "munge", "mariadb-server"]
REQUIRED_PROGRAMS = [
    *("munged", "munge", "unmunge"),
    *("mariadbd", "mariadb-install-db", "mariadb"),
    *("slurmdbd", "slurmctld", "slurmd"),
    *("sbatch", "srun", "scancel", "squeue", "sinfo", "scontrol", "sacct", "sacctmgr"),
]
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")  # compiled into Debian's libslurm
OWNER_FILE = "owner.pid"  # in WORKDIR/run: the process that linked DEFAULT_CONF to WORKDIR/etc
SOCKET_PATH_MAX = 100  # AF_UNIX sun_path is 108 bytes; keep a margin
FINAL_STATES = {
    *("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"),
    *("NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"),
}


class ClusterError(RuntimeError):
    """The cluster could not be brought up or torn down (the message says why)."""


# ---------------------------------------------------------------------------------------------
# packages


def _search_path() -> str:
    """PATH with the sbin folders, where Debian puts the daemons (root's PATH may lack them)."""
    path = os.environ.get("PATH", "")
    extra = [d for d in ("/usr/sbin", "/sbin") if d not in path.split(os.pathsep)]
    return os.pathsep.join([path, *extra])


def missing_programs() -> list[str]:
    """Programs the cluster needs that are not installed."""
    return [p for p in REQUIRED_PROGRAMS if shutil.which(p, path=_search_path()) is None]


@contextlib.contextmanager
def _services_not_started_by_apt():
    """Forbid maintainer scripts to start services while apt runs (Debian's policy-rc.d)."""
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text("#!/bin/sh\n# temporary, written by tests/slurm/cluster.py\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def ensure_packages(timeout: float = 900) -> None:
    """apt-get install the SLURM, munge and MariaDB packages unless all programs are there."""
    if not missing_programs():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-q", "-y", "install", "--no-install-recommends", *PACKAGES]
    with _services_not_started_by_apt():
        for argv in (["apt-get", "-q", "update"], install):
            subprocess.run(argv, env=env, check=True, timeout=timeout, capture_output=True)
    if missing := missing_programs():
        raise ClusterError(f"still missing after apt-get install: {missing}")


def can_run_cluster() -> str | None:
    """None when this machine can host the cluster, else why not (a reason for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root"
    if missing_programs() and shutil.which("apt-get") is None:
        return f"missing {missing_programs()} and no apt-get to install them"
    if DEFAULT_CONF.exists() and not DEFAULT_CONF.is_symlink():
        return f"{DEFAULT_CONF} exists: a real SLURM is configured on this machine"
    return None


# ---------------------------------------------------------------------------------------------
# processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, check: Callable, timeout: float, interval: float = 0.5):
    """Poll ``check()`` until it returns something truthy; ClusterError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies without stopping us."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Daemon:
    """One daemon this module started, in the foreground, as its own child process."""

    name: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ClusterError(
                f"{self.name} exited with status {self.process.returncode}; {self.log}:\n{_tail(self.log)}"
            )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, wait, SIGKILL if needed; raise if the PID is still alive afterwards."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if _pid_alive(self.pid):
            raise ClusterError(f"{self.name} (pid {self.pid}) survived SIGKILL")


def _is_stale_link(link: Path) -> bool:
    """A symlink that dangles, or that a SlurmCluster made from a process now dead (killed
    before it could stop the cluster; its daemons died with it, see _die_with_parent)."""
    if not link.is_symlink():
        return False
    if not link.exists():
        return True
    owner = link.readlink().parent.parent / "run" / OWNER_FILE
    try:
        return not _pid_alive(int(owner.read_text()))
    except (OSError, ValueError):
        return False  # not made by this module: leave it alone


def _parent_map() -> dict[int, int]:
    """pid -> parent pid, for every process in /proc."""
    parents = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(proc.name)] = int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    return parents


def _ancestors(pid: int, parents: dict[int, int]) -> set[int]:
    """``pid`` and all its ancestors below init."""
    chain = {pid}
    while parents.get(pid, 0) > 1 and parents[pid] not in chain:
        pid = parents[pid]
        chain.add(pid)
    return chain


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# the cluster


class SlurmCluster:
    """A one-node SLURM cluster with accounting (slurmdbd + MariaDB), living in ``workdir``.

    Use as a context manager::

        with SlurmCluster(tmp_path / "slurm") as cluster:
            job = cluster.sbatch("--gpus=1", "--wrap", "echo $CUDA_VISIBLE_DEVICES")
            assert cluster.wait_job(job) == "COMPLETED"
            rows = cluster.wait_sacct(job)      # [{"JobID": ..., "AllocTRES": ...}, ...]
            subprocess.run([...], env=cluster.env, timeout=...)   # snakemake, sbatch, ...

    The node is named after ``hostname -s`` (slurmctld refuses a SlurmctldHost that is not
    this host) and listens on 127.0.0.1.  It has all CPUs this process may use, 90 % of the
    memory, and ``gpus`` fake GPUs (``Gres=gpu:N``; gres.conf ``File=`` points to character
    devices made with mknod in ``workdir/dev``, CUDA_VISIBLE_DEVICES is set in jobs as on a
    real GPU node).  Ports are picked free at start.  ``min_job_age`` is how long slurmctld
    keeps finished jobs (scontrol/squeue); sacct keeps them for good.
    ``other_partitions`` are more partitions of the same node (``partition`` is the default one),
    ``other_accounts`` more accounts of the current user (``account`` is its default),
    ``other_qos`` more QOS it may use (besides ``normal``).
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        gpus: int = 1,
        min_job_age: int = 3600,
        def_mem_per_cpu: int = 1000,
        cluster_name: str = "testcluster",
        partition: str = "main",
        account: str = "testaccount",
        other_partitions: tuple[str, ...] = (),
        other_accounts: tuple[str, ...] = (),
        other_qos: tuple[str, ...] = (),
        start_timeout: float = 120,
        install: bool = True,
    ):
        self.workdir = Path(workdir).resolve()
        self.gpus = gpus
        self.min_job_age = min_job_age
        self.def_mem_per_cpu = def_mem_per_cpu
        self.cluster_name = cluster_name
        self.partition = partition
        self.account = account
        self.other_partitions = other_partitions
        self.other_accounts = other_accounts
        self.other_qos = other_qos
        self.start_timeout = start_timeout
        self.install = install
        self.node = socket.gethostname().split(".")[0]
        self.cpus = len(os.sched_getaffinity(0))
        self.real_memory = int(_mem_total_mb() * 0.9)
        self.ports: dict[str, int] = {}
        self.daemons: list[Daemon] = []
        self.install_seconds = 0.0
        self.startup_seconds: float | None = None
        self.stray_pids_killed: list[int] = []
        self._linked_default_conf = False
        self._db_password = secrets.token_hex(12)

    # paths and environment ---------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)

    @property
    def conf(self) -> Path:
        return self.path("etc", "slurm.conf")

    @property
    def munge_socket(self) -> Path:
        return self.path("run", "munge.socket")

    @property
    def mysql_socket(self) -> Path:
        return self.path("run", "mysqld.sock")

    @property
    def gpu_devices(self) -> list[Path]:
        return [self.path("dev", f"gpu{i}") for i in range(self.gpus)]

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF (and sbin on PATH): ``env=`` for anything that talks to
        this cluster.  Batch jobs inherit it (the plugin submits with ``--export=ALL``)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": _search_path()}

    # lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        """Install (if allowed), configure, start every daemon, wait for an idle node."""
        if reason := can_run_cluster():
            raise ClusterError(reason)
        begin = time.monotonic()
        if self.install:
            ensure_packages()
        elif missing := missing_programs():
            raise ClusterError(f"missing programs: {missing}")
        self.install_seconds = time.monotonic() - begin
        begin = time.monotonic()
        try:
            self._prepare_dirs()
            self.ports = {name: _free_port() for name in ("mysql", "dbd", "ctld", "slurmd")}
            self._write_configs()
            self._link_default_conf()
            self._start_munge()
            self._start_mariadb()
            self._start_slurmdbd()
            self._register_accounting()
            self._start_slurmctld()
            self._start_slurmd()
            self.wait_node_idle()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - begin
        return self

    def stop(self, timeout: float = 30) -> None:
        """Cancel all jobs, stop every daemon by PID (reverse start order), verify they are gone.

        Then kills, by PID, any process left over from a job (see ``_kill_strays``; normally
        none) and removes the /etc/slurm/slurm.conf link.  Safe to call twice.
        """
        if any(d.name == "slurmctld" and d.process.poll() is None for d in self.daemons):
            with contextlib.suppress(ClusterError, subprocess.SubprocessError):
                self.cancel_all(timeout)
        errors = []
        for daemon in reversed(self.daemons):
            try:
                daemon.stop(timeout)
            except (ClusterError, subprocess.SubprocessError) as err:
                errors.append(str(err))
        self.stray_pids_killed = self._kill_strays()
        self._unlink_default_conf()
        self.daemons = [d for d in self.daemons if _pid_alive(d.pid)]
        if errors or self.daemons:
            raise ClusterError(f"could not stop everything: {errors} {self.daemons}")

    # setup steps -------------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        for sub in ("etc", "run", "log", "state", "spool", "munge", "mysql", "dev"):
            self.path(sub).mkdir(parents=True, exist_ok=True)
        self.path("munge").chmod(0o700)  # munged refuses a key in an open folder
        for sock in (self.munge_socket, self.mysql_socket):
            if len(str(sock)) > SOCKET_PATH_MAX:
                raise ClusterError(f"workdir too deep, socket path too long for AF_UNIX: {sock}")
        for device in self.gpu_devices:
            if not device.exists():
                # the major/minor of /dev/null: a harmless character device for File=
                os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))

    def _write_configs(self) -> None:
        key = self.path("munge", "munge.key")
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
            key.chmod(0o400)
        self.conf.write_text(self._slurm_conf())
        self.path("etc", "gres.conf").write_text(
            "".join(f"NodeName={self.node} Name=gpu File={device}\n" for device in self.gpu_devices)
        )
        # empty: keeps the system's /etc/slurm/plugstack.conf (SPANK plugins) out of the way
        self.path("etc", "plugstack.conf").write_text("")
        dbd = self.path("etc", "slurmdbd.conf")
        dbd.write_text(self._slurmdbd_conf())
        dbd.chmod(0o600)  # slurmdbd refuses a slurmdbd.conf others can read (it has a password)

    def _slurm_conf(self) -> str:
        p, w = self.ports, self.workdir
        lines = [
            f"ClusterName={self.cluster_name}",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={p['ctld']}",
            f"SlurmdPort={p['slurmd']}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={w}/state",
            f"SlurmdSpoolDir={w}/spool",
            f"SlurmctldPidFile={w}/run/slurmctld.pid",
            f"SlurmdPidFile={w}/run/slurmd.pid",
            f"SlurmctldLogFile={w}/log/slurmctld.log",
            f"SlurmdLogFile={w}/log/slurmd.log",
            f"PlugStackConfig={w}/etc/plugstack.conf",
            # no cgroups: 22.05 has no CgroupPlugin=disabled, and slurmd fails without a
            # usable cgroup setup; linuxproc + task/none need nothing from the machine
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # without it a job that gives no --mem is allocated all the node's memory
            f"DefMemPerCPU={self.def_mem_per_cpu}",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            # seconds slurmctld keeps finished jobs (scontrol show job, squeue --states=all)
            f"MinJobAge={self.min_job_age}",
            "KillWait=5",
            "MailProg=/bin/true",
            "GresTypes=gpu",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={p['dbd']}",
            # for connections to slurmdbd this is the munge socket; AuthInfo is not used there
            f"AccountingStoragePass={self.munge_socket}",
            "AccountingStorageTRES=gres/gpu",
            # lets sacct --format=Comment show the plugin's "rule_<name>" job comments
            "AccountingStoreFlags=job_comment",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobCompType=jobcomp/none",
            f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.node} CPUs={self.cpus} "
            f"RealMemory={self.real_memory} Gres=gpu:{self.gpus} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            *(f"PartitionName={name} Nodes=ALL Default=NO MaxTime=INFINITE State=UP" for name in self.other_partitions),
        ]
        return "\n".join(lines) + "\n"

    def _slurmdbd_conf(self) -> str:
        w = self.workdir
        lines = [
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"DbdHost={self.node}",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.ports['dbd']}",
            "SlurmUser=root",
            f"PidFile={w}/run/slurmdbd.pid",
            f"LogFile={w}/log/slurmdbd.log",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mysql']}",
            "StorageUser=slurm",
            f"StoragePass={self._db_password}",
            "StorageLoc=slurm_acct_db",
        ]
        return "\n".join(lines) + "\n"

    def _link_default_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at our slurm.conf (the module docstring says why)."""
        if _is_stale_link(DEFAULT_CONF):
            DEFAULT_CONF.unlink()
        if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
            raise ClusterError(f"{DEFAULT_CONF} exists (a real SLURM, or another test cluster); not replacing it")
        self.path("run", OWNER_FILE).write_text(str(os.getpid()))
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)
        self._linked_default_conf = True

    def _unlink_default_conf(self) -> None:
        if self._linked_default_conf and DEFAULT_CONF.is_symlink() and DEFAULT_CONF.readlink() == self.conf:
            DEFAULT_CONF.unlink()
        self._linked_default_conf = False

    def _spawn(self, name: str, argv: list[str]) -> Daemon:
        """Start a daemon in the foreground, its output in log/NAME.out."""
        log = self.path("log", f"{name}.out")
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not them
                preexec_fn=_die_with_parent,
            )
        daemon = Daemon(name, process, log)
        self.daemons.append(daemon)
        return daemon

    def _wait_ready(self, daemon: Daemon, ready: Callable[[], bool], timeout: float) -> None:
        def check() -> bool:
            daemon.check_alive()
            return ready()

        _wait_for(f"{daemon.name} to answer", check, timeout)

    def _start_munge(self) -> None:
        argv = [
            *("munged", "--foreground", "--force"),
            f"--key-file={self.path('munge', 'munge.key')}",
            f"--socket={self.munge_socket}",
            f"--pid-file={self.path('run', 'munged.pid')}",
            f"--seed-file={self.path('munge', 'munged.seed')}",
            f"--log-file={self.path('log', 'munged.log')}",
        ]
        self._wait_ready(self._spawn("munged", argv), self._munge_works, 20)

    def _munge_works(self) -> bool:
        sock = f"--socket={self.munge_socket}"
        cred = subprocess.run(["munge", sock, "-n"], capture_output=True, timeout=10)
        if cred.returncode:
            return False
        return subprocess.run(["unmunge", sock], input=cred.stdout, capture_output=True, timeout=10).returncode == 0

    def _start_mariadb(self) -> None:
        datadir = self.path("mysql")
        if not datadir.joinpath("mysql").exists():
            subprocess.run(
                [
                    *("mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root"),
                    *("--auth-root-authentication-method=socket", "--skip-test-db"),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        argv = [
            *("mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=root"),
            f"--socket={self.mysql_socket}",
            f"--port={self.ports['mysql']}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.path('run', 'mariadbd.pid')}",
            f"--log-error={self.path('log', 'mariadbd.log')}",
            "--skip-name-resolve",
            "--innodb-lock-wait-timeout=900",  # what slurmdbd asks for
        ]
        self._wait_ready(self._spawn("mariadbd", argv), lambda: self._sql("SELECT 1", check=False) == 0, 60)
        user, pw = "'slurm'@'127.0.0.1'", self._db_password
        self._sql(
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '{pw}'; ALTER USER {user} IDENTIFIED BY '{pw}';"
            f"GRANT ALL ON slurm_acct_db.* TO {user};"
        )

    def _sql(self, statements: str, check: bool = True) -> int:
        """Run SQL as MariaDB's root over the unix socket; return the exit status."""
        argv = ["mariadb", "--no-defaults", f"--socket={self.mysql_socket}", "-uroot", "-e", statements]
        return subprocess.run(argv, check=check, capture_output=True, timeout=30).returncode

    def _start_slurmdbd(self) -> None:
        def answers() -> bool:
            return self.run(["sacctmgr", "-n", "list", "cluster"], check=False, timeout=20).returncode == 0

        self._wait_ready(self._spawn("slurmdbd", ["slurmdbd", "-D"]), answers, 60)

    def _register_accounting(self) -> None:
        """Cluster, account and the current user in slurmdbd ("already exists" is fine)."""
        user, account, cluster = getpass.getuser(), self.account, self.cluster_name
        for args in (
            ["add", "cluster", cluster],
            ["add", "account", account, f"Cluster={cluster}", "Description=tests", "Organization=tests"],
            ["add", "user", user, f"Account={account}", f"DefaultAccount={account}", f"Cluster={cluster}"],
            *(
                step
                for other in self.other_accounts
                for step in (
                    ["add", "account", other, f"Cluster={cluster}", "Description=tests", "Organization=tests"],
                    ["add", "user", user, f"Account={other}", f"Cluster={cluster}"],
                )
            ),
            *(["add", "qos", qos] for qos in self.other_qos),
            *([["modify", "user", user, "set", f"QOS+={','.join(self.other_qos)}"]] if self.other_qos else []),
        ):
            r = self.run(["sacctmgr", "-i", *args], check=False, timeout=30)
            if r.returncode and "already exist" not in (r.stdout + r.stderr).lower():
                raise ClusterError(f"sacctmgr {' '.join(args)} failed: {r.stdout}{r.stderr}")

    def _start_slurmctld(self) -> None:
        def up() -> bool:
            r = self.run(["scontrol", "ping"], check=False, timeout=20)
            return r.returncode == 0 and "UP" in r.stdout

        # -i: ignore state saved by an earlier cluster in the same workdir
        self._wait_ready(self._spawn("slurmctld", ["slurmctld", "-D", "-i"]), up, 60)

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node])

    # queries -----------------------------------------------------------------------------------

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run a command against this cluster (text output captured, bounded by ``timeout``)."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=timeout, **kwargs
        )

    def node_state(self) -> str:
        """sinfo's state of the node: 'idle', 'mixed', 'allocated', 'drained', 'down*', ..."""
        argv = ["sinfo", "-h", "-N", "-n", self.node, "-p", self.partition, "-o", "%T"]  # a line per partition
        return self.run(argv, timeout=20).stdout.strip()

    def wait_node_idle(self, timeout: float | None = None) -> None:
        """Wait until the node is idle; fail with sinfo's reason if it stays down or drained."""
        begin = time.monotonic()

        def idle() -> bool:
            for daemon in self.daemons:
                daemon.check_alive()
            state = self.node_state()
            if state.startswith(("drain", "down")) and time.monotonic() - begin > 15:
                reason = self.run(["sinfo", "-h", "-R", "-o", "%E"], timeout=20).stdout.strip()
                raise ClusterError(f"node is {state}: {reason}\n{_tail(self.path('log', 'slurmd.log'))}")
            return state == "idle"

        _wait_for("an idle node", idle, timeout or self.start_timeout)

    def sbatch(self, *args: str) -> str:
        """Submit with ``sbatch --parsable ARGS``; return the job id."""
        return self.run(["sbatch", "--parsable", *args], timeout=30).stdout.strip().split(";")[0]

    def scontrol_job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, TRES, TresPerJob, TresPerNode, Comment...);
        empty once slurmctld has forgotten the job (MinJobAge after its end)."""
        r = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False, timeout=20)
        if r.returncode:
            return {}
        return dict(token.partition("=")[::2] for token in r.stdout.split() if "=" in token)

    def job_state(self, job_id: str) -> str | None:
        """JobState from slurmctld, or None once the job is forgotten."""
        return self.scontrol_job(job_id).get("JobState")

    def wait_job(self, job_id: str, timeout: float = 120) -> str:
        """Wait until the job has ended; return its final state (COMPLETED, FAILED, ...)."""

        def final() -> str | None:
            state = self.job_state(job_id)
            return state if state in FINAL_STATES else None

        return _wait_for(f"job {job_id} to end", final, timeout)

    def sacct(
        self,
        job_id: str | None = None,
        fields: str = "JobID,JobName,Comment,State,ExitCode,ReqTRES,AllocTRES",
        allocations_only: bool = False,
    ) -> list[dict[str, str]]:
        """sacct rows as dicts, one per job and step (one per job with ``allocations_only``);
        every job of the last two days when ``job_id`` is None."""
        argv = ["sacct", "--parsable2", "--noheader", f"--format={fields}"]
        argv += ["-X"] if allocations_only else []
        argv += ["-j", str(job_id)] if job_id else ["--starttime", "now-2days"]
        names = fields.split(",")
        return [
            dict(zip(names, line.split("|"), strict=True)) for line in self.run(argv, timeout=30).stdout.splitlines()
        ]

    def wait_sacct(self, job_id: str, timeout: float = 60) -> list[dict[str, str]]:
        """sacct rows of the job (job first, then steps) once slurmdbd has its complete final record.

        slurmdbd lags slurmctld: for a second or so after a short job ends, sacct may show
        JobName "allocation" and an empty ReqTRES (the submit record is not in yet).
        """

        def complete() -> list[dict[str, str]] | None:
            rows = self.sacct(job_id)
            job = [row for row in rows if row["JobID"] == str(job_id)]
            done = job and job[0]["State"].split()[0] in FINAL_STATES and job[0]["ReqTRES"]
            return rows if done else None

        return _wait_for(f"sacct's final record of job {job_id}", complete, timeout)

    def queued_jobs(self) -> list[str]:
        """Ids of jobs not yet ended (squeue's default states)."""
        return self.run(["squeue", "-h", "-o", "%i"], timeout=20).stdout.split()

    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every job not yet ended and wait until squeue lists none."""
        if jobs := self.queued_jobs():
            self.run(["scancel", *jobs], check=False, timeout=20)
            _wait_for("cancelled jobs to leave the queue", lambda: not self.queued_jobs(), timeout)

    # teardown ----------------------------------------------------------------------------------

    def _kill_strays(self) -> list[int]:
        """SIGKILL processes left over from this cluster's jobs, by PID; return the PIDs.

        A stray is a process, other than us and our ancestors, that has this cluster's
        SLURM_CONF in its environment and is a slurmstepd or a job process (SLURM_JOB_ID set),
        or a descendant of one (the plugin's srun steps run without SLURM_CONF).  A shell that
        only exported SLURM_CONF is left alone.  Normally there are none: stop() cancels all
        jobs first and slurmstepd ends their processes.
        """
        marker = f"SLURM_CONF={self.conf}".encode()
        parents = _parent_map()
        candidates = parents.keys() - _ancestors(os.getpid(), parents)
        marked = set()
        for pid in candidates:
            environ = _environ(pid)
            if marker in environ and (
                _comm(pid) == "slurmstepd" or any(v.startswith(b"SLURM_JOB_ID=") for v in environ)
            ):
                marked.add(pid)
        strays = sorted(pid for pid in candidates if _ancestors(pid, parents) & marked)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            _wait_for(f"stray pid {pid} to die", lambda p=pid: not _pid_alive(p), 10, 0.1)
        return strays


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterError("no MemTotal in /proc/meminfo")
