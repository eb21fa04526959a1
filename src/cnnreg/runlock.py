"""One writer per run folder: an advisory lock that a second process is refused at once.

Two processes writing one run (a requeued SLURM job beside one that Snakemake lost track of)
would delete each other's checkpoints. The lock is a POSIX record lock (``fcntl.lockf``, which
also works on NFS) on ``<run dir>/.lock``; the file says who holds it. The operating system
releases it when its holder ends, however it ends, so a killed job never leaves a stale lock.
"""

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process is writing this run; the message names the run and the holder."""


@contextmanager
def run_lock(run_dir, run):
    """Hold the lock of `run_dir` for the ``with`` block.

    Parameters
    ----------
    run_dir : path-like
        The run's folder (created if needed).
    run : str
        The run id, for the message.

    Raises
    ------
    RunLockedError
        If another process holds the lock.
    """
    path = Path(run_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(handle, 4096, 0).decode(errors="replace").strip() or "an unknown process"
            raise RunLockedError(
                f"run {run} is already being trained by {holder} (lock {path}); wait for that job to "
                "finish or stop it (scancel or kill), then run again"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, _holder().encode(), 0)
        yield
    finally:
        os.close(handle)


def _holder():
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    if "SLURM_JOB_ID" in os.environ:
        holder["slurm_job"] = os.environ["SLURM_JOB_ID"]
    return json.dumps(holder)
