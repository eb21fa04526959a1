"""Writing files so that no reader ever sees a partial one.

Every output is written to a temporary file in its own folder and renamed over its final name
(an atomic step on POSIX file systems); a writer that fails leaves nothing behind.
"""

import os
from pathlib import Path

import numpy as np


def write_atomic(path, write, suffix=None):
    """Call ``write(tmp)`` on a temporary path beside `path`, then rename it to `path`.

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix if suffix is None else suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_npz(path, arrays, compressed=False):
    """`numpy.savez` (or ``savez_compressed``) of `arrays`, atomically and synced to disk."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp):
        with open(tmp, "wb") as stream:
            save(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())

    return write_atomic(path, write)
