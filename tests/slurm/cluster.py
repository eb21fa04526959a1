"""A real, throw-away, one-node SLURM cluster on 127.0.0.1 for tests.

``SlurmCluster(workdir)`` installs the Debian packages if they are missing, writes every
configuration file into ``workdir``, starts munged, MariaDB, slurmdbd, slurmctld and slurmd
as child processes in the foreground (so each one is known by its PID), registers the cluster
in accounting and waits until the node is idle.  Leaving the ``with`` block cancels all jobs
and stops every daemon it started, by PID, and checks that they are gone.

Daemons and clients find ``slurm.conf`` through the ``SLURM_CONF`` variable
(``cluster.env``), and SLURM reads ``gres.conf``, ``slurmdbd.conf`` and ``plugstack.conf``
from the same folder.  Two paths outside the workdir are touched, each for a reason:

* ``/etc/slurm/slurm.conf`` becomes a symlink to the workdir's slurm.conf while the cluster
  runs (removed on stop).  snakemake-executor-plugin-slurm's job step (plugin
  slurm-jobstep 0.6) strips every ``SLURM_*`` variable but a few job ids from the
  environment of the ``srun`` it runs inside each job, SLURM_CONF included, so that srun
  only finds the cluster at the compiled-in default path; without the link every job fails
  with "fetch_config: DNS SRV lookup failed".  An existing slurm.conf that is not such a
  link is never replaced (ClusterError instead).
* ``/usr/sbin/policy-rc.d``, only while apt installs packages on a machine that lacks one:
  without it Debian's maintainer scripts start system-wide munge and MariaDB services,
  which this module did not start and so could not stop by PID.

Requires root (SlurmUser=root, mknod, apt-get).  Standard library only.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ["slurm-wlm", "slurmdbd", "munge", "mariadb-server"]
REQUIRED_PROGRAMS = [
    "munged",
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "mariadb-admin",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sacct",
    "sacctmgr",
    "scontrol",
    "sinfo",
]
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")  # compiled into Debian's libslurm
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin


class ClusterError(RuntimeError):
    """The cluster could not be brought up (the message names the log to read)."""


# ---------------------------------------------------------------------------------------------
# packages


def missing_programs() -> list[str]:
    """Programs the cluster needs that are not on PATH (sbin included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [p for p in REQUIRED_PROGRAMS if shutil.which(p, path=path) is None]


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
    """apt-get install the SLURM, munge and MariaDB packages unless already installed."""
    if not missing_programs():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confdef"]
    with _services_not_started_by_apt():
        subprocess.run(["apt-get", "-q", "update"], env=env, check=True, timeout=timeout, capture_output=True)
        subprocess.run(
            [*apt, "install", "--no-install-recommends", *PACKAGES],
            env=env,
            check=True,
            timeout=timeout,
            capture_output=True,
        )
    if missing := missing_programs():
        raise ClusterError(f"still missing after apt-get install: {missing}")


def can_run_cluster() -> str | None:
    """None when this machine can host the cluster, else the reason it cannot (for skips)."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("apt-get") is None and missing_programs():
        return f"missing {missing_programs()} and no apt-get"
    return None


# ---------------------------------------------------------------------------------------------
# small helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, check, timeout: float, interval: float = 0.5):
    """Poll ``check()`` until it returns something truthy; ClusterError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


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
                f"{self.name} exited with status {self.process.returncode}; see {self.log}:\n" + _tail(self.log)
            )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, wait, SIGKILL if needed; raise if the PID is still alive afterwards."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if _pid_alive(self.pid):
            raise ClusterError(f"{self.name} (pid {self.pid}) survived SIGKILL")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# the cluster


class SlurmCluster:
    """A one-node SLURM cluster with accounting, living in ``workdir``.

    Use as a context manager::

        with SlurmCluster(tmp_path / "slurm") as cluster:
            job = cluster.sbatch("--gpus=1", "--wrap", "echo $CUDA_VISIBLE_DEVICES")
            cluster.wait_job(job)
            cluster.sacct(job, "State,AllocTRES")
            subprocess.run([...], env=cluster.env)   # snakemake, sbatch, ... see this cluster

    The node is named after ``hostname -s`` (slurmctld refuses a SlurmctldHost that is not
    this host), listens on 127.0.0.1, has all CPUs of this machine, ``real_memory`` MB and one
    fake GPU (``Gres=gpu:1``, a character device made with mknod in ``workdir/dev``).
    Ports are chosen free at start, so it does not clash with a system SLURM.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        cluster_name: str = "testcluster",
        partition: str = "main",
        account: str = "testaccount",
        min_job_age: int = 3600,
        def_mem_per_cpu: int = 1000,
        start_timeout: float = 120,
        install: bool = True,
    ):
        self.workdir = Path(workdir).resolve()
        self.cluster_name = cluster_name
        self.partition = partition
        self.account = account
        self.min_job_age = min_job_age
        self.def_mem_per_cpu = def_mem_per_cpu
        self.start_timeout = start_timeout
        self.install = install
        self.node = socket.gethostname().split(".")[0]
        self.cpus = len(os.sched_getaffinity(0))
        self.real_memory = int(_mem_total_mb() * 0.9)
        self.ports = {}
        self.daemons: list[Daemon] = []
        self.startup_seconds: float | None = None
        self.stray_pids_killed: list[int] = []
        self._linked_default_conf = False
        self._db_password = secrets.token_hex(12)

    # paths -----------------------------------------------------------------------------------

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
    def gpu_device(self) -> Path:
        return self.path("dev", "gpu0")

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus SLURM_CONF: pass as ``env=`` to anything that talks to SLURM.

        Jobs inherit it too (the plugin submits with ``--export=ALL``), which is how the
        ``srun`` inside a job finds this cluster.
        """
        path = os.environ.get("PATH", "")
        if "/usr/sbin" not in path.split(os.pathsep):
            path = os.pathsep.join([path, "/usr/sbin", "/sbin"])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    # lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        """Install (if allowed), configure, start every daemon, wait for an idle node."""
        if reason := can_run_cluster():
            raise ClusterError(reason)
        if self.install:
            ensure_packages()
        elif missing := missing_programs():
            raise ClusterError(f"missing programs: {missing}")
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

    def stop(self, timeout: float = 60) -> None:
        """Cancel all jobs, stop every daemon by PID (reverse order), verify all are gone.

        Also kills, by PID, stray processes whose environment carries this cluster's
        SLURM_CONF (slurmstepd and job processes that outlived a cancel).
        """
        if any(d.name == "slurmctld" and d.process.poll() is None for d in self.daemons):
            with contextlib.suppress(ClusterError, subprocess.SubprocessError):
                self.cancel_all(timeout=timeout / 2)
        errors = []
        for daemon in reversed(self.daemons):
            try:
                daemon.stop()
            except (ClusterError, subprocess.SubprocessError) as err:
                errors.append(str(err))
        strays = self._kill_strays()
        self._unlink_default_conf()
        survivors = [d for d in self.daemons if _pid_alive(d.pid)]
        self.daemons = survivors
        if errors or survivors:
            raise ClusterError(f"could not stop everything: {errors} {survivors}")
        self.stray_pids_killed = strays

    # setup steps -------------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        for sub in ("etc", "run", "log", "state", "spool", "munge", "mysql", "dev"):
            self.path(sub).mkdir(parents=True, exist_ok=True)
        # munged refuses group/world-writable parents of its key and socket
        for sub in ("munge", "run", "etc"):
            self.path(sub).chmod(0o700 if sub == "munge" else 0o755)
        for sock in (self.munge_socket, self.mysql_socket):
            if len(str(sock)) > SOCKET_PATH_MAX:
                raise ClusterError(f"socket path too long for AF_UNIX: {sock}")
        if not self.gpu_device.exists():
            # same major/minor as /dev/null: a harmless char device for gres.conf File=
            os.mknod(self.gpu_device, 0o666 | 0o020000, os.makedev(1, 3))

    def _write_configs(self) -> None:
        key = self.path("munge", "munge.key")
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self.conf.write_text(self._slurm_conf())
        self.path("etc", "gres.conf").write_text(f"NodeName={self.node} Name=gpu File={self.gpu_device}\n")
        # an empty plugstack.conf here keeps /etc/slurm/plugstack.conf out of the picture
        self.path("etc", "plugstack.conf").write_text("")
        dbd = self.path("etc", "slurmdbd.conf")
        dbd.write_text(self._slurmdbd_conf())
        dbd.chmod(0o600)  # slurmdbd refuses a readable slurmdbd.conf (it holds a password)

    def _slurm_conf(self) -> str:
        p, w = self.ports, self.workdir
        return "\n".join(
            [
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
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                f"PlugStackConfig={w}/etc/plugstack.conf",
                # no cgroups: 22.05 has no CgroupPlugin=disabled, and cgroup/v2 wants systemd
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                # without it a job that gives no --mem is allocated the whole node's memory
                f"DefMemPerCPU={self.def_mem_per_cpu}",
                "SchedulerType=sched/backfill",
                "MpiDefault=none",
                "ReturnToService=2",
                # finished jobs stay visible to scontrol/squeue this many seconds
                f"MinJobAge={self.min_job_age}",
                "KillWait=5",
                "MailProg=/bin/true",
                "GresTypes=gpu",
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={p['dbd']}",
                # for the slurmdbd connection, this is the munge socket (AuthInfo is not used)
                f"AccountingStoragePass={self.munge_socket}",
                "AccountingStorageTRES=gres/gpu",
                # sacct --format=Comment then shows the plugin's "rule_<name>" job comments
                "AccountingStoreFlags=job_comment",
                "JobAcctGatherType=jobacct_gather/linux",
                "JobCompType=jobcomp/none",
                f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.node} "
                f"CPUs={self.cpus} RealMemory={self.real_memory} Gres=gpu:1 State=UNKNOWN",
                f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )

    def _slurmdbd_conf(self) -> str:
        w = self.workdir
        return "\n".join(
            [
                "AuthType=auth/munge",
                f"AuthInfo=socket={self.munge_socket}",
                f"DbdHost={self.node}",
                "DbdAddr=127.0.0.1",
                f"DbdPort={self.ports['dbd']}",
                "SlurmUser=root",
                f"PidFile={w}/run/slurmdbd.pid",
                f"LogFile={w}/log/slurmdbd.log",
                "DebugLevel=info",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={self.ports['mysql']}",
                "StorageUser=slurm",
                f"StoragePass={self._db_password}",
                "StorageLoc=slurm_acct_db",
                "",
            ]
        )

    def _link_default_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at our slurm.conf (see the module docstring for why)."""
        if DEFAULT_CONF.is_symlink() and not DEFAULT_CONF.exists():
            DEFAULT_CONF.unlink()  # dangling: left by a cluster that was not stopped
        if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
            raise ClusterError(
                f"{DEFAULT_CONF} exists (a real SLURM, or another test cluster running); refusing to replace it"
            )
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(self.conf)
        self._linked_default_conf = True

    def _unlink_default_conf(self) -> None:
        if self._linked_default_conf and DEFAULT_CONF.is_symlink() and DEFAULT_CONF.readlink() == self.conf:
            DEFAULT_CONF.unlink()
        self._linked_default_conf = False

    def _spawn(self, name: str, argv: list[str]) -> Daemon:
        log = self.path("log", f"{name}.out")
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )
        daemon = Daemon(name, process, log)
        self.daemons.append(daemon)
        return daemon

    def _start_munge(self) -> None:
        d = self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--key-file={self.path('munge', 'munge.key')}",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.path('run', 'munged.pid')}",
                f"--seed-file={self.path('munge', 'munged.seed')}",
                f"--log-file={self.path('log', 'munged.log')}",
            ],
        )
        _wait_for("munged", lambda: self._alive_and(d, self._munge_works), 20)

    def _munge_works(self) -> bool:
        sock = f"--socket={self.munge_socket}"
        cred = subprocess.run(["munge", sock, "-n"], capture_output=True, timeout=10)
        if cred.returncode:
            return False
        check = subprocess.run(["unmunge", sock], input=cred.stdout, capture_output=True, timeout=10)
        return check.returncode == 0

    def _start_mariadb(self) -> None:
        datadir = self.path("mysql")
        if not datadir.joinpath("mysql").exists():
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={datadir}",
                    "--user=root",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        d = self._spawn(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                f"--socket={self.mysql_socket}",
                f"--port={self.ports['mysql']}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.path('run', 'mariadbd.pid')}",
                f"--log-error={self.path('log', 'mariadbd.log')}",
                "--skip-name-resolve",
                "--innodb-lock-wait-timeout=900",
            ],
        )
        _wait_for("mariadbd", lambda: self._alive_and(d, self._mariadb_ping), 60)
        pw = self._db_password
        self._sql(
            f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{pw}';"
            f"ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{pw}';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )

    def _mariadb_ping(self) -> bool:
        r = subprocess.run(
            ["mariadb-admin", "--no-defaults", f"--socket={self.mysql_socket}", "-uroot", "ping"],
            capture_output=True,
            timeout=10,
        )
        return r.returncode == 0

    def _sql(self, statements: str) -> None:
        subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.mysql_socket}", "-uroot", "-e", statements],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def _start_slurmdbd(self) -> None:
        d = self._spawn("slurmdbd", ["slurmdbd", "-D"])
        _wait_for("slurmdbd", lambda: self._alive_and(d, self._dbd_answers), 60)

    def _dbd_answers(self) -> bool:
        r = self.run(["sacctmgr", "-n", "list", "cluster"], check=False, timeout=20)
        return r.returncode == 0

    def _register_accounting(self) -> None:
        """Cluster, account and current user in slurmdbd (idempotent: 'already exists' is OK)."""
        user = getpass.getuser()
        for args in (
            ["add", "cluster", self.cluster_name],
            ["add", "account", self.account, f"Cluster={self.cluster_name}", "Description=tests", "Organization=tests"],
            [
                "add",
                "user",
                user,
                f"Account={self.account}",
                f"DefaultAccount={self.account}",
                f"Cluster={self.cluster_name}",
            ],
        ):
            r = self.run(["sacctmgr", "-i", *args], check=False, timeout=30)
            if r.returncode and "already exist" not in (r.stdout + r.stderr).lower():
                raise ClusterError(f"sacctmgr {' '.join(args)} failed: {r.stdout}{r.stderr}")

    def _start_slurmctld(self) -> None:
        # -i: ignore state files from an earlier run of a cluster in the same workdir
        d = self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        _wait_for("slurmctld", lambda: self._alive_and(d, self._ctld_up), 60)

    def _ctld_up(self) -> bool:
        r = self.run(["scontrol", "ping"], check=False, timeout=20)
        return r.returncode == 0 and "UP" in r.stdout

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node])

    def _alive_and(self, daemon: Daemon, check) -> bool:
        daemon.check_alive()
        return check()

    # queries -----------------------------------------------------------------------------------

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run a SLURM client against this cluster (text output, bounded by ``timeout``)."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=timeout, **kwargs
        )

    def node_state(self) -> str:
        """e.g. 'idle', 'mixed', 'allocated', 'drained', 'down*'."""
        r = self.run(["sinfo", "-h", "-N", "-n", self.node, "-o", "%T"], timeout=20)
        return r.stdout.strip()

    def wait_node_idle(self, timeout: float | None = None) -> None:
        """Wait until the node is idle; fail fast (with the reason) if it is down or drained."""

        def idle() -> bool:
            for d in self.daemons:
                d.check_alive()
            state = self.node_state()
            if state.startswith(("drain", "down")) and "unknown" not in state:
                reason = self.run(["sinfo", "-h", "-R", "-o", "%E"], timeout=20).stdout
                if time.monotonic() - t0 > 15:  # slurmd may still be registering
                    raise ClusterError(f"node is {state}: {reason.strip()}\n" + _tail(self.path("log", "slurmd.log")))
            return state == "idle"

        t0 = time.monotonic()
        _wait_for("an idle node", idle, timeout or self.start_timeout)

    def sbatch(self, *args: str) -> str:
        """Submit with sbatch --parsable; returns the job id."""
        r = self.run(["sbatch", "--parsable", *args], timeout=30)
        return r.stdout.strip().split(";")[0]

    def job_state(self, job_id: str) -> str | None:
        """State from slurmctld (scontrol), or None once the job is purged (MinJobAge)."""
        info = self.scontrol_job(job_id)
        return info.get("JobState") if info else None

    def scontrol_job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o`` as a dict; empty once slurmctld has forgotten the job."""
        r = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False, timeout=20)
        if r.returncode:
            return {}
        return _parse_scontrol(r.stdout)

    def wait_job(self, job_id: str, timeout: float = 120) -> str:
        """Wait until the job has finished; return its final state (COMPLETED, FAILED...)."""
        done = {
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
            "BOOT_FAIL",
            "DEADLINE",
            "PREEMPTED",
        }

        def finished():
            state = self.job_state(job_id)
            return state if state in done else None

        return _wait_for(f"job {job_id}", finished, timeout)

    def sacct(
        self, job_id: str | None = None, fields: str = "JobID,JobName,State,ExitCode,AllocTRES,ReqTRES", *extra: str
    ) -> list[dict[str, str]]:
        """Rows of sacct (all steps) as dicts; all jobs of the last day if ``job_id`` is None."""
        argv = ["sacct", "--parsable2", "--noheader", f"--format={fields}", *extra]
        argv += ["-j", str(job_id)] if job_id else ["--starttime", "now-1days"]
        r = self.run(argv, timeout=30)
        names = fields.split(",")
        return [dict(zip(names, line.split("|"), strict=False)) for line in r.stdout.splitlines() if line]

    def wait_sacct(self, job_id: str, timeout: float = 60) -> list[dict[str, str]]:
        """sacct rows once slurmdbd has the job's final state (it lags slurmctld a little)."""

        def final():
            rows = self.sacct(job_id)
            head = [r for r in rows if r.get("JobID") == str(job_id)]
            if head and head[0]["State"].split()[0] not in ("PENDING", "RUNNING"):
                return rows
            return None

        return _wait_for(f"sacct record of job {job_id}", final, timeout)

    def queued_jobs(self) -> list[str]:
        r = self.run(["squeue", "-h", "-o", "%i"], timeout=20)
        return r.stdout.split()

    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every queued or running job and wait until squeue shows none."""
        jobs = self.queued_jobs()
        if jobs:
            self.run(["scancel", *jobs], check=False, timeout=20)
            _wait_for(
                "cancelled jobs to leave the queue",
                lambda: (
                    not [
                        j
                        for j in self.queued_jobs()
                        if self.job_state(j) in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")
                    ]
                ),
                timeout,
            )

    # teardown helpers --------------------------------------------------------------------------

    def _kill_strays(self) -> list[int]:
        """SIGKILL processes left behind by this cluster, by PID; return their PIDs.

        A stray is a process (other than us and our ancestors) whose environment carries
        this cluster's SLURM_CONF (slurmstepd, batch scripts), or a descendant of one (the
        plugin's srun steps run without SLURM_CONF).  Normally there are none: stop()
        cancels all jobs first.
        """
        marker = f"SLURM_CONF={self.conf}".encode()
        spared = _ancestors(os.getpid())
        parents = _parent_map()
        marked = {pid for pid in parents if pid not in spared and marker in _environ(pid)}
        strays = {pid for pid in parents if pid not in spared and _ancestors(pid, parents) & marked}
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            _wait_for(f"stray pid {pid} to die", lambda p=pid: not _pid_alive(p), 10, 0.1)
        return sorted(strays)


def _parent_map() -> dict[int, int]:
    """pid -> parent pid for every process we can see."""
    parents = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = proc.joinpath("stat").read_text()
                parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _ancestors(pid: int, parents: dict[int, int] | None = None) -> set[int]:
    """``pid`` and all its ancestors up to init."""
    parents = _parent_map() if parents is None else parents
    chain = {pid}
    while pid in parents and parents[pid] > 1 and parents[pid] not in chain:
        pid = parents[pid]
        chain.add(pid)
    return chain


def _parse_scontrol(text: str) -> dict[str, str]:
    """``Key=Value Key=Value`` (one-line scontrol output) to a dict; values have no spaces
    except in a few keys we do not need."""
    fields = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterError("no MemTotal in /proc/meminfo")
