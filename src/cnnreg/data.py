"""Dataset caches: a dataset folder's images decoded once into a ``.npz`` file that every run reads.

:func:`prepare_cache` lists the images (`cnnreg.folders.scan_dataset`), decodes them
(`cnnreg.images.read_image`) and writes the arrays with their :func:`array_digest`;
:func:`load_cache` reads them back for training.
"""

import hashlib
import os
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnnreg.atomic import save_npz
from cnnreg.folders import SPLITS, TEST_SPLIT, scan_dataset
from cnnreg.images import DatasetError, _check_channels, _check_size, read_image

__all__ = [
    "Cache",
    "array_digest",
    "load_cache",
    "prepare_cache",
]

_CACHE_KEYS = (
    "x_train",
    "y_train",
    "x_val",
    "y_val",
    "x_test",
    "y_test",
    "classes",
    "files_train",
    "files_val",
    "files_test",
    "image_size",
    "channels",
    "digest",
)
#: The suffix of each split's arrays (``x_val``, ``y_test``, ...).
_SUFFIX = {"train": "train", "validation": "val", TEST_SPLIT: "test"}
_MAX_WORKERS = 8
_SHOWN_IGNORED = 10


class Cache(NamedTuple):
    """Decoded dataset arrays, as written by :func:`prepare_cache`.

    Attributes
    ----------
    x_train, x_val, x_test : ndarray of uint8, shape (N, H, W, C)
        Images. The test split is the dataset's held-out ``test/`` folder; without one,
        ``x_test``, ``y_test`` and ``files_test`` have length 0 (``x_test`` still has the
        image shape).
    y_train, y_val, y_test : ndarray of int64, shape (N,)
        Label indices into `classes`.
    classes : list of str
        Class names in label order.
    files_train, files_val, files_test : ndarray of str, shape (N,)
        Image paths relative to the dataset root, row-aligned with the images.
    digest : str
        Hex SHA-256 of the cached arrays (:func:`array_digest`): equal for equal content,
        whenever and wherever the cache was written.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    files_train: np.ndarray
    files_val: np.ndarray
    files_test: np.ndarray
    digest: str


def array_digest(arrays):
    """Hex SHA-256 of named arrays' content.

    Parameters
    ----------
    arrays : mapping of str to array_like
        The arrays, by name.

    Returns
    -------
    str
        Hash over each key in sorted order: its name, dtype, shape and bytes (in
        C order). Equal for equal arrays, whatever the mapping's order or the
        arrays' memory layout.

    Raises
    ------
    TypeError
        If an array holds Python objects (their bytes are addresses, not content).
    """
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.asarray(arrays[key])
        if array.dtype.hasobject:
            raise TypeError(f"array {key!r} holds Python objects; array_digest needs numeric or string arrays")
        digest.update(f"{key}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def prepare_cache(root, out_path, image_size, channels, classes=None):
    """Decode a whole dataset once and write it to one ``.npz`` file.

    Every image is decoded before anything is written; the cache appears at
    `out_path` only when complete (written to a temporary file in the same
    folder, then renamed). Besides the arrays, it stores their
    :func:`array_digest` as ``digest``.

    Parameters
    ----------
    root : str or path-like
        Dataset folder (see :func:`scan_dataset`).
    out_path : str or path-like
        Cache file to write; its folder is created if needed.
    image_size : int or (int, int)
        Height and width of the cached images.
    channels : {1, 3}
        Channels of the cached images.
    classes : sequence of str, optional
        Class folder names in label order (see :func:`scan_dataset`).

    Returns
    -------
    dict
        ``classes``, ``image_size``, ``channels``, ``digest``, per split
        (``train``, ``validation``, and ``test`` when the dataset has one) the image
        count per class name, and
        ``ignored``: ``count`` and the ``first`` (up to 10) of the entries
        :func:`scan_dataset` did not use.

    Raises
    ------
    DatasetError
        If the layout is invalid or any image cannot be decoded; the message
        lists every undecodable file.
    """
    size = _check_size(image_size)
    _check_channels(channels)
    root = Path(root)
    listing = scan_dataset(root, classes)
    rows = [row for split in _SUFFIX for row in listing[split]]
    images = _decode_all(root, [path for path, _ in rows], size, channels)
    arrays = {"classes": np.array(listing["classes"], dtype=str)}
    for split, key in _SUFFIX.items():
        files = [path for path, _ in listing[split]]
        stacked = [images[path] for path in files]
        arrays[f"x_{key}"] = np.stack(stacked) if files else np.zeros((0, *size, channels), dtype=np.uint8)
        arrays[f"y_{key}"] = np.array([label for _, label in listing[split]], dtype=np.int64)
        arrays[f"files_{key}"] = np.array(files, dtype=str)
    arrays["image_size"] = np.array(size, dtype=np.int64)
    arrays["channels"] = np.array(channels, dtype=np.int64)
    digest = array_digest(arrays)
    save_npz(out_path, {**arrays, "digest": np.array(digest)})
    return _summary(listing, size, channels, digest)


def load_cache(path):
    """Read a cache written by :func:`prepare_cache`.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` cache file.

    Returns
    -------
    Cache
        The arrays, with ``classes`` as a list of str and ``digest`` as str.

    Raises
    ------
    DatasetError
        If the file is missing, unreadable or lacks an array (as a cache
        written by a version of cnnreg without ``digest`` or the test arrays does).
    """
    path = Path(path)
    fix = "rerun the prepare_data rule to rebuild it"
    if not path.is_file():
        raise DatasetError(f"data cache {path} does not exist; {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _CACHE_KEYS if key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"data cache {path} is unreadable ({error}); {fix}") from error
    missing = [key for key in _CACHE_KEYS if key not in arrays]
    if missing:
        raise DatasetError(
            f"data cache {path} lacks {', '.join(missing)} (written by an older version of cnnreg, "
            f"or not by prepare_data); {fix}"
        )
    return Cache(
        **{key: arrays[key] for key in Cache._fields if key not in ("classes", "digest")},
        classes=[str(name) for name in arrays["classes"]],
        digest=str(arrays["digest"]),
    )


# --- folders ------------------------------------------------------------------------------


def _decode_all(root, files, size, channels):
    def decode(path):
        try:
            return path, read_image(root / path, size, channels)
        except DatasetError as error:
            return path, error

    workers = min(_MAX_WORKERS, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        decoded = dict(pool.map(decode, files))
    failures = [str(error) for error in decoded.values() if isinstance(error, DatasetError)]
    if failures:
        raise DatasetError(
            f"{len(failures)} image(s) in {root} cannot be decoded; no cache was written. "
            "Replace or delete these files, then rerun:\n  " + "\n  ".join(failures)
        )
    return decoded


def _summary(listing, size, channels, digest):
    summary = {"classes": listing["classes"], "image_size": list(size), "channels": channels, "digest": digest}
    for split in (*SPLITS, TEST_SPLIT) if listing[TEST_SPLIT] else SPLITS:
        counts = Counter(label for _, label in listing[split])
        summary[split] = {name: counts[label] for label, name in enumerate(listing["classes"])}
    summary["ignored"] = {"count": len(listing["ignored"]), "first": listing["ignored"][:_SHOWN_IGNORED]}
    return summary
