"""Dataset folders to validated, cached arrays.

A dataset folder is laid out as ``<root>/{train,validation}/<class>/<images>``.
:func:`scan_dataset` checks that layout and lists the images (and what it ignored),
:func:`first_image` picks one image from that listing,
:func:`dataset_signature` fingerprints the folder cheaply, without reading any image,
:func:`prepare_cache` decodes a whole dataset once (with `cnnreg.images.read_image`) into a
``.npz`` file and :func:`load_cache` reads that file back for training.
"""

import hashlib
import json
import os
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnnreg.atomic import save_npz
from cnnreg.images import DatasetError, _check_channels, _check_size, read_image

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLITS",
    "Cache",
    "array_digest",
    "dataset_signature",
    "first_image",
    "load_cache",
    "prepare_cache",
    "scan_dataset",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
SPLITS = ("train", "validation")

_LAYOUT = (
    "expected layout: <root>/train/<class>/<images> and "
    "<root>/validation/<class>/<images>, the same class folders in both, "
    f"images ending in {', '.join(sorted(IMAGE_SUFFIXES))} (any case)"
)
_CACHE_KEYS = (
    "x_train",
    "y_train",
    "x_val",
    "y_val",
    "classes",
    "files_train",
    "files_val",
    "image_size",
    "channels",
    "digest",
)
_MAX_WORKERS = 8
_SIGNED_SPLITS = (*SPLITS, "test")
_SHOWN_IGNORED = 10


class Cache(NamedTuple):
    """Decoded dataset arrays, as written by :func:`prepare_cache`.

    Attributes
    ----------
    x_train, x_val : ndarray of uint8, shape (N, H, W, C)
        Images.
    y_train, y_val : ndarray of int64, shape (N,)
        Label indices into `classes`.
    classes : list of str
        Class names in label order.
    files_train, files_val : ndarray of str, shape (N,)
        Image paths relative to the dataset root, row-aligned with the images.
    digest : str
        Hex SHA-256 of the cached arrays (:func:`array_digest`): equal for equal content,
        whenever and wherever the cache was written.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list
    files_train: np.ndarray
    files_val: np.ndarray
    digest: str


def scan_dataset(root, classes=None):
    """List the images of a dataset folder and check its layout.

    Parameters
    ----------
    root : str or path-like
        Dataset folder, laid out as ``<root>/{train,validation}/<class>/<images>``.
    classes : sequence of str, optional
        Class folder names in label order. Folders not named are ignored.
        Default: every class folder, sorted by name.

    Returns
    -------
    dict
        ``classes`` (list of str, label order), ``train`` and ``validation``
        (lists of ``(path, label)`` sorted by path, where `path` is the
        POSIX-style path relative to `root` and `label` indexes `classes`) and
        ``ignored`` (sorted list of the relative paths of every entry of the
        split and class folders that is not used; see Notes).

    Raises
    ------
    DatasetError
        If the root or a split folder is missing, a symbolic link in a split or
        class folder is broken (dangling or looping), fewer than two classes are
        found, train and validation hold different class folders, a class named
        in `classes` has no folder, or a class folder holds no images.

    Notes
    -----
    Hidden files and folders (names starting with ``.``), files whose suffix
    is not in `IMAGE_SUFFIXES` (``Thumbs.db``, ``notes.txt``, ``x.webp``, ...),
    files directly in a split folder, folders inside class folders (not
    searched) and class folders not named in `classes` are not used; they are
    listed in ``ignored``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; {_LAYOUT}")
    splits = {split: _split_entries(root, split) for split in SPLITS}
    _check_links(root, splits)
    classes = _resolve_classes(root, {split: set(found["folder"]) for split, found in splits.items()}, classes)
    inside = {f"{split}/{name}": _entries(root / split / name) for split in SPLITS for name in classes}
    _check_links(root, inside)
    empty = [str(root / folder) for folder, found in inside.items() if not found["image"]]
    if empty:
        raise DatasetError(f"class folders without images: {', '.join(empty)}; add images to them; {_LAYOUT}")
    listing = {"classes": classes}
    for split in SPLITS:
        listing[split] = sorted(
            (f"{split}/{name}/{image}", label)
            for label, name in enumerate(classes)
            for image in inside[f"{split}/{name}"]["image"]
        )
    listing["ignored"] = _ignored(splits, inside, classes)
    return listing


def first_image(root, classes=None, split="train"):
    """The first image (by name) of the first class (label order) of a dataset split.

    Parameters
    ----------
    root : str or path-like
        Dataset folder (see :func:`scan_dataset`).
    classes : sequence of str, optional
        Class folder names in label order (see :func:`scan_dataset`).
    split : {"train", "validation"}
        The split to pick from.

    Returns
    -------
    Path
        ``root`` joined with the image's relative path; never a hidden or
        non-image file.

    Raises
    ------
    DatasetError
        If the dataset folder is unusable (see :func:`scan_dataset`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    listing = scan_dataset(root, classes)
    return Path(root) / next(path for path, label in listing[split] if label == 0)


def dataset_signature(root):
    """A cheap fingerprint of a dataset folder's files, for rerunning a cache when they change.

    Hashes the sorted (relative path, kind, size, modification time in ns) of the
    images and broken links in ``<root>/train``, ``<root>/validation`` and, if it
    exists, ``<root>/test`` and in their class folders, and the relative paths of
    their other visible entries (class folders, sub folders, non-image files).
    Reads no file's content and decodes no image.

    Parameters
    ----------
    root : str or path-like
        Dataset folder (see :func:`scan_dataset`).

    Returns
    -------
    str
        Hex SHA-256. It changes when an image is added, removed, renamed or
        replaced (new size or modification time), or a class folder or other
        visible entry is added or removed; it does not depend on the order the
        file system lists entries in. Hidden entries do not count, nor does the
        content of non-image files. A missing split counts as empty (no error
        here; :func:`scan_dataset` reports it).
    """
    root = Path(root)
    rows = [row for split in _SIGNED_SPLITS if (root / split).is_dir() for row in _signature_rows(root / split, split)]
    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()


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
        (``train``, ``validation``) the image count per class name, and
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
    rows = listing["train"] + listing["validation"]
    images = _decode_all(root, [path for path, _ in rows], size, channels)
    arrays = {"classes": np.array(listing["classes"], dtype=str)}
    for split, key in (("train", "train"), ("validation", "val")):
        files, labels = zip(*listing[split], strict=True)
        arrays[f"x_{key}"] = np.stack([images[path] for path in files])
        arrays[f"y_{key}"] = np.array(labels, dtype=np.int64)
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
        written by a version of cnnreg without ``digest`` does).
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
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_val=arrays["x_val"],
        y_val=arrays["y_val"],
        classes=[str(name) for name in arrays["classes"]],
        files_train=arrays["files_train"],
        files_val=arrays["files_val"],
        digest=str(arrays["digest"]),
    )


# --- folders ------------------------------------------------------------------------------


def _kind(entry):
    """What an `os.DirEntry` is to a scan: hidden, broken (link), folder, image or other."""
    if entry.name.startswith("."):
        return "hidden"
    if entry.is_symlink() and not os.path.exists(entry.path):
        return "broken"
    if entry.is_dir():
        return "folder"
    if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
        return "image"
    return "other"


def _entries(folder):
    """The names in `folder` by kind (see `_kind`), each list sorted."""
    found = {kind: [] for kind in ("hidden", "broken", "folder", "image", "other")}
    with os.scandir(folder) as entries:
        for entry in entries:
            found[_kind(entry)].append(entry.name)
    return {kind: sorted(names) for kind, names in found.items()}


def _split_entries(root, split):
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(f"dataset {root} has no {split}/ folder (missing {folder}); {_LAYOUT}")
    return _entries(folder)


def _check_links(root, folders):
    """Raise for the broken links in `folders` (relative path -> its `_entries`)."""
    broken = [root / folder / name for folder, found in folders.items() for name in found["broken"]]
    if broken:
        raise DatasetError(
            f"broken symbolic links in {root} (their target is missing, or they point in a loop): "
            f"{', '.join(map(str, broken))}; fix or delete them"
        )


def _ignored(splits, inside, classes):
    unused = [
        f"{split}/{name}"
        for split, found in splits.items()
        for kind in ("hidden", "folder", "image", "other")
        for name in found[kind]
        if kind != "folder" or name not in classes
    ]
    unused += [
        f"{folder}/{name}"
        for folder, found in inside.items()
        for kind in ("hidden", "folder", "other")
        for name in found[kind]
    ]
    return sorted(unused)


def _signature_rows(folder, relative, depth=1):
    """(path, kind, size, mtime_ns) of what `_entries` sees in `folder` and, `depth` levels down, its folders."""
    rows = []
    with os.scandir(folder) as entries:
        for entry in entries:
            kind, path = _kind(entry), f"{relative}/{entry.name}"
            if kind in ("image", "broken"):
                stat = entry.stat(follow_symlinks=kind == "image")
                rows.append((path, kind, stat.st_size, stat.st_mtime_ns))
            elif kind != "hidden":
                rows.append((path, kind, 0, 0))
            if kind == "folder" and depth:
                rows += _signature_rows(entry.path, path, depth - 1)
    return rows


def _resolve_classes(root, folders, classes):
    if classes is None:
        return _default_classes(root, folders)
    if isinstance(classes, str):
        raise DatasetError(f"classes for {root} must be a list of folder names, got {classes!r}")
    classes = [str(name) for name in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise DatasetError(f"classes for {root} must name at least two distinct folders, got {classes}")
    missing = [f"{root / split / name}" for split in SPLITS for name in classes if name not in folders[split]]
    if missing:
        raise DatasetError(
            f"class folders named in classes do not exist: {', '.join(missing)}; "
            f"create them or fix the dataset's classes list; {_LAYOUT}"
        )
    return classes


def _default_classes(root, folders):
    train, validation = folders["train"], folders["validation"]
    if train != validation:
        only = [
            f"only in {root / split}: {', '.join(sorted(names))}"
            for split, names in (("train", train - validation), ("validation", validation - train))
            if names
        ]
        raise DatasetError(
            f"train and validation of {root} hold different class folders ({'; '.join(only)}); "
            "make them match or list the classes to use in the dataset's classes"
        )
    if len(train) < 2:
        raise DatasetError(
            f"dataset {root} needs at least two class folders per split, found {sorted(train) or 'none'}; {_LAYOUT}"
        )
    return sorted(train)


# --- cache --------------------------------------------------------------------------------


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
    for split in SPLITS:
        counts = Counter(label for _, label in listing[split])
        summary[split] = {name: counts[label] for label, name in enumerate(listing["classes"])}
    summary["ignored"] = {"count": len(listing["ignored"]), "first": listing["ignored"][:_SHOWN_IGNORED]}
    return summary
