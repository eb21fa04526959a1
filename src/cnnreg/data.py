"""Dataset folders to validated, cached arrays.

A dataset folder is laid out as ``<root>/{train,validation}/<class>/<images>``.
:func:`scan_dataset` checks that layout and lists the images,
:func:`read_image` decodes one image to the run's size and channel count,
:func:`prepare_cache` decodes a whole dataset once into a ``.npz`` file and
:func:`load_cache` reads that file back for training.
"""

import os
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import skimage.io
from skimage.color import rgb2gray
from skimage.transform import resize
from skimage.util import img_as_float

from cnnreg.atomic import save_npz

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLITS",
    "Cache",
    "DatasetError",
    "load_cache",
    "prepare_cache",
    "read_image",
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
)
_MAX_WORKERS = 8


class DatasetError(ValueError):
    """A dataset folder or cache that cannot be used; the message says why and how to fix it."""


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
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list
    files_train: np.ndarray
    files_val: np.ndarray


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
        POSIX-style path relative to `root` and `label` indexes `classes`).

    Raises
    ------
    DatasetError
        If the root or a split folder is missing, fewer than two classes are
        found, train and validation hold different class folders, a class
        named in `classes` has no folder, or a class folder holds no images.

    Notes
    -----
    Hidden files and folders (names starting with ``.``) and files whose
    suffix is not in `IMAGE_SUFFIXES` (``Thumbs.db``, ``desktop.ini``, ...)
    are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; {_LAYOUT}")
    folders = {split: _class_folders(root, split) for split in SPLITS}
    classes = _resolve_classes(root, folders, classes)
    images = {(split, name): sorted(_image_names(root / split / name)) for split in SPLITS for name in classes}
    empty = [str(root / split / name) for (split, name), found in images.items() if not found]
    if empty:
        raise DatasetError(f"class folders without images: {', '.join(empty)}; add images to them; {_LAYOUT}")
    listing = {"classes": classes}
    for split in SPLITS:
        listing[split] = sorted(
            (f"{split}/{name}/{image}", label) for label, name in enumerate(classes) for image in images[split, name]
        )
    return listing


def read_image(path, image_size, channels):
    """Decode one image file to a fixed size and channel count.

    Parameters
    ----------
    path : str or path-like
        Image file (PNG, JPEG, TIFF or BMP); gray, gray + alpha, RGB or RGBA;
        8- or 16-bit.
    image_size : int or (int, int)
        Output height and width in pixels; an int means a square image.
    channels : {1, 3}
        Output channels: 1 converts color with
        :func:`skimage.color.rgb2gray`, 3 replicates gray.

    Returns
    -------
    ndarray of uint8, shape (H, W, channels)
        The image, resized with anti-aliasing. Alpha is dropped. Integer
        inputs are scaled by their dtype's full range (16-bit 65535 maps to
        255).

    Raises
    ------
    DatasetError
        If the file cannot be decoded or is not a single 2-D image.
    """
    height, width = _check_size(image_size)
    _check_channels(channels)
    try:
        image = skimage.io.imread(path)
    except Exception as error:  # decoders raise many types for bad files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(f"cannot decode image {path} ({reason})") from error
    image = _to_channels(_color_planes(img_as_float(image), path), channels)
    image = resize(image, (height, width, channels), anti_aliasing=True)
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def prepare_cache(root, out_path, image_size, channels, classes=None):
    """Decode a whole dataset once and write it to one ``.npz`` file.

    Every image is decoded before anything is written; the cache appears at
    `out_path` only when complete (written to a temporary file in the same
    folder, then renamed).

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
        ``classes``, ``image_size``, ``channels`` and, per split
        (``train``, ``validation``), the image count per class name.

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
    save_npz(out_path, arrays)
    return _summary(listing, size, channels)


def load_cache(path):
    """Read a cache written by :func:`prepare_cache`.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` cache file.

    Returns
    -------
    Cache
        The arrays, with ``classes`` as a list of str.

    Raises
    ------
    DatasetError
        If the file is missing, unreadable or lacks an array.
    """
    path = Path(path)
    fix = "rerun the prepare_data rule to rebuild it"
    if not path.is_file():
        raise DatasetError(f"data cache {path} does not exist; {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _CACHE_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"data cache {path} is unreadable ({error}); {fix}") from error
    return Cache(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_val=arrays["x_val"],
        y_val=arrays["y_val"],
        classes=[str(name) for name in arrays["classes"]],
        files_train=arrays["files_train"],
        files_val=arrays["files_val"],
    )


def _check_size(image_size):
    pair = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if len(pair) != 2 or not all(_is_positive_int(side) for side in pair):
        raise ValueError(f"image_size must be a positive int or [height, width], got {image_size!r}")
    return int(pair[0]), int(pair[1])


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _check_channels(channels):
    if not (_is_positive_int(channels) and channels in (1, 3)):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def _visible(path):
    return not path.name.startswith(".")


def _class_folders(root, split):
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(f"dataset {root} has no {split}/ folder (missing {folder}); {_LAYOUT}")
    return {entry.name for entry in folder.iterdir() if entry.is_dir() and _visible(entry)}


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


def _image_names(folder):
    return (
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and _visible(entry) and entry.suffix.lower() in IMAGE_SUFFIXES
    )


def _color_planes(image, path):
    if image.ndim == 2:
        return image[..., np.newaxis]
    if image.ndim == 3 and image.shape[-1] in (1, 2, 3, 4):
        return image[..., : 3 if image.shape[-1] >= 3 else 1]
    raise DatasetError(f"image {path} has shape {image.shape}; expected one 2-D gray, gray + alpha, RGB or RGBA image")


def _to_channels(image, channels):
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        return rgb2gray(image)[..., np.newaxis]
    return np.repeat(image, 3, axis=-1)


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


def _summary(listing, size, channels):
    summary = {"classes": listing["classes"], "image_size": list(size), "channels": channels}
    for split in SPLITS:
        counts = Counter(label for _, label in listing[split])
        summary[split] = {name: counts[label] for label, name in enumerate(listing["classes"])}
    return summary
