"""Writing files so that no reader ever sees a partial one, even after a crash.

Every output is written to a unique temporary file in its own folder, flushed to disk, renamed
over its final name (an atomic step on POSIX file systems), and the folder's entry is flushed
too; a writer that fails leaves no temporary file behind, and `remove_pending` removes those of
writes in progress when the process must end at once (`cnnreg.stopping`).
"""

import os
import tempfile
from pathlib import Path

import numpy as np

#: Temporary files being written now.
_PENDING = set()
#: The process's umask: temporary files are private, the final file gets the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path, write, suffix=None):
    """Call ``write(tmp)`` on a unique temporary path beside `path`, then make it `path` durably.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is created if needed.
    write : callable
        Writes the content to the path it is given.
    suffix : str, optional
        How the temporary name ends (default: `path`'s last suffix), for writers that check it,
        such as Keras (``.keras``, ``.weights.h5``).

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix if suffix is None else suffix}"
    )
    os.close(handle)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)
    _PENDING.add(tmp)
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.discard(tmp)
    return path


def write_text(path, text):
    """`write_atomic` of a text file."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def save_npz(path, arrays, compressed=False):
    """`numpy.savez` (or ``savez_compressed``) of `arrays`, atomically and durably."""
    save = np.savez_compressed if compressed else np.savez
    return write_atomic(path, lambda tmp: save(tmp, **arrays), suffix=".npz")


def remove_durably(path):
    """Delete `path` (if there) and flush its folder's entry."""
    path = Path(path)
    path.unlink(missing_ok=True)
    _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)


def remove_pending():
    """Remove the temporary files of writes in progress (the process is about to end)."""
    for tmp in list(_PENDING):
        tmp.unlink(missing_ok=True)


def _fsync(path, flags):
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
