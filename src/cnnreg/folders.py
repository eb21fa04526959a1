"""Dataset folders: their layout checked, their images listed, and a cheap signature of their files.

A dataset folder is laid out as ``<root>/{train,validation}/<class>/<images>``, and may hold a
held-out ``<root>/test/<class>/<images>`` with the same classes (never trained on, nor used to
select a model). :func:`scan_dataset` checks that layout and lists the images (and says what it does not use),
:func:`first_image` picks the image task 5's galleries show, and :func:`dataset_signature` tells
the workflow when the files changed, without reading them. :func:`is_generated` says whether
its images were generated (the demo's, by `cnnreg.synthetic`).
"""

import hashlib
import json
import os
from pathlib import Path

__all__ = [
    "GENERATED",
    "IMAGE_SUFFIXES",
    "SPLITS",
    "TEST_SPLIT",
    "DatasetError",
    "dataset_signature",
    "first_image",
    "is_generated",
    "scan_dataset",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
#: The splits every dataset has.
SPLITS = ("train", "validation")
#: The optional held-out split.
TEST_SPLIT = "test"
#: The file at a dataset's root that says its images were generated, not collected.
GENERATED = "generated.json"


def is_generated(root):
    """Whether the dataset folder `root` holds generated images (its `GENERATED` file)."""
    return (Path(root) / GENERATED).is_file()


class DatasetError(ValueError):
    """A dataset folder or cache that cannot be used; the message says why and how to fix it."""


_LAYOUT = (
    "expected layout: <root>/train/<class>/<images> and "
    "<root>/validation/<class>/<images>, the same class folders in both, "
    f"images ending in {', '.join(sorted(IMAGE_SUFFIXES))} (any case); optionally "
    "<root>/test/<class>/<images> with the same class folders"
)
_SIGNED_SPLITS = (*SPLITS, TEST_SPLIT)


def scan_dataset(root, classes=None):
    """List the images of a dataset folder and check its layout.

    Parameters
    ----------
    root : str or path-like
        Dataset folder, laid out as ``<root>/{train,validation}/<class>/<images>``,
        optionally with ``<root>/test/<class>/<images>``.
    classes : sequence of str, optional
        Class folder names in label order. Folders not named are ignored.
        Default: every class folder, sorted by name.

    Returns
    -------
    dict
        ``classes`` (list of str, label order), ``train``, ``validation`` and
        ``test`` (lists of ``(path, label)`` sorted by path, where `path` is the
        POSIX-style path relative to `root` and `label` indexes `classes`;
        ``test`` is empty when there is no ``test/`` folder) and
        ``ignored`` (sorted list of the relative paths of every entry of the
        split and class folders that is not used; see Notes).

    Raises
    ------
    DatasetError
        If the root or a split folder is missing, a symbolic link in a split or
        class folder is broken (dangling or looping), fewer than two classes are
        found, train and validation (and test, if present) hold different class
        folders, a class named in `classes` has no folder, or a class folder holds
        no images.

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
    present = (*SPLITS, TEST_SPLIT) if (root / TEST_SPLIT).is_dir() else SPLITS
    splits = {split: _split_entries(root, split) for split in present}
    _check_links(root, splits)
    classes = _resolve_classes(root, {split: set(found["folder"]) for split, found in splits.items()}, classes)
    inside = {f"{split}/{name}": _entries(root / split / name) for split in present for name in classes}
    _check_links(root, inside)
    empty = [str(root / folder) for folder, found in inside.items() if not found["image"]]
    if empty:
        raise DatasetError(f"class folders without images: {', '.join(empty)}; add images to them; {_LAYOUT}")
    listing = {"classes": classes}
    for split in present:
        listing[split] = sorted(
            (f"{split}/{name}/{image}", label)
            for label, name in enumerate(classes)
            for image in inside[f"{split}/{name}"]["image"]
        )
    listing.setdefault(TEST_SPLIT, [])
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
    missing = [f"{root / split / name}" for split in folders for name in classes if name not in folders[split]]
    if missing:
        raise DatasetError(
            f"class folders named in classes do not exist: {', '.join(missing)}; "
            f"create them or fix the dataset's classes list; {_LAYOUT}"
        )
    return classes


def _default_classes(root, folders):
    train = folders["train"]
    for split in (s for s in folders if s != "train"):
        other = folders[split]
        if train != other:
            only = [
                f"only in {root / name}: {', '.join(sorted(names))}"
                for name, names in (("train", train - other), (split, other - train))
                if names
            ]
            raise DatasetError(
                f"train and {split} of {root} hold different class folders ({'; '.join(only)}); "
                "make them match or list the classes to use in the dataset's classes"
            )
    if len(train) < 2:
        raise DatasetError(
            f"dataset {root} needs at least two class folders per split, found {sorted(train) or 'none'}; {_LAYOUT}"
        )
    return sorted(train)


# --- cache --------------------------------------------------------------------------------
