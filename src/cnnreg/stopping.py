"""Stopping training on request: SIGTERM (what SLURM sends at a time limit) asks every run in
the process to stop at its next epoch end, after writing its checkpoint.

The request is a process-wide `threading.Event`: a signal handler runs in the main thread only,
while runs may train in other threads of the process. A run that sees it checkpoints, stops
fitting and raises `TrainingStopped` (`cnnreg.train`), whose exit status is SIGTERM's, 143. A
second SIGTERM ends the process at once, removing the temporary files of writes in progress
(`cnnreg.atomic`); the last checkpoint on disk is then where the run resumes.
"""

import os
import signal
import threading

from cnnreg.atomic import remove_pending

#: 128 + SIGTERM, the exit status of a process that SIGTERM ended.
EXIT_STATUS = 128 + signal.SIGTERM
_REQUESTED = threading.Event()


class TrainingStopped(SystemExit):
    """Training stopped on request after checkpointing; it resumes from there when run again."""

    def __init__(self, message="training stopped on request after its checkpoint"):
        super().__init__(EXIT_STATUS)
        self.message = message

    def __str__(self):
        return self.message


def request_stop():
    """Ask every run in the process to stop at its next epoch end."""
    _REQUESTED.set()


def stop_requested():
    """Whether a stop was requested."""
    return _REQUESTED.is_set()


def install_sigterm_handler():
    """Make the first SIGTERM `request_stop`, and a second one end the process at once.

    Call it from the main thread (as Python requires of signal handlers).
    """

    def on_sigterm(signum, frame):
        if stop_requested():
            remove_pending()
            os._exit(EXIT_STATUS)
        request_stop()

    signal.signal(signal.SIGTERM, on_sigterm)
