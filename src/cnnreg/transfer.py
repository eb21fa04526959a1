"""Transfer learning (lab tasks 8 and 9): a frozen ImageNet VGG16 as a feature extractor, and a new head.

VGG16 without its top (``include_top=False``) turns every image into a ``(h, w, 512)`` block of
features. Those never change while the head trains, so :func:`extract_dataset_features` computes
them once per dataset into a feature cache (:func:`write_feature_cache`, :func:`load_feature_cache`)
that every head-training run reads (the held-out test split too, which the head only predicts); only
the head (`cnnreg.models.transfer_head`) is trained on it.
:func:`fine_tune_model` goes beyond the lab: the trained head on top of VGG16 with block 5 unfrozen.
The weights file VGG16 is loaded from, and how to get it, are `cnnreg.weights`' concern.
"""

import time
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from cnnreg.atomic import save_npz
from cnnreg.data import load_cache
from cnnreg.images import DatasetError
from cnnreg.weights import (
    CONFIG_KEY,
    IMAGENET_MD5,
    STAGE_COMMAND,
    WEIGHTS_FILE,
    file_md5,
    is_imagenet,
    missing_weights_message,
    resolve_weights_path,
)

__all__ = [
    "FeatureCache",
    "extract_dataset_features",
    "extract_features",
    "feature_extractor",
    "fine_tune_model",
    "load_feature_cache",
    "to_vgg_input",
    "write_feature_cache",
]

#: Smallest height and width VGG16 accepts (five 2×2 poolings).
MIN_SIZE = 32

_FEATURE_KEYS = (
    "x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "classes", "weights_md5", "imagenet", "image_size"
)  # fmt: skip
_SPLITS = ("train", "val", "test")
_FEATURE_FIX = "delete it and rerun the extract_features rule to rebuild it"
_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


class FeatureCache(NamedTuple):
    """VGG16 features of a dataset, as written by :func:`write_feature_cache`.

    Attributes
    ----------
    x_train, x_val, x_test : ndarray of float32, shape (N, h, w, 512)
        Features. The test split is the image cache's held-out one (`cnnreg.data.Cache`); without
        one, ``x_test`` and ``y_test`` have length 0 (``x_test`` still has the feature shape).
    y_train, y_val, y_test : ndarray of int64, shape (N,)
        Label indices into `classes`.
    classes : list of str
        Class names in label order.
    weights_md5 : str
        md5 of the weights file the features were extracted with.
    imagenet : bool
        Whether that file is Keras' ImageNet VGG16 notop file.
    image_size : tuple of int
        (height, width) of the images the features were extracted from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    weights_md5: str
    imagenet: bool
    image_size: tuple


# --- models ----------------------------------------------------------------------------------


def feature_extractor(weights_path, input_shape, config_key=CONFIG_KEY):
    """Frozen VGG16 without its top, loaded from a local weights file.

    Parameters
    ----------
    weights_path : str, path-like or None
        VGG16 notop weights: Keras' legacy ``.h5`` layout (the ImageNet file) or a Keras 3
        ``.weights.h5`` file. ``"imagenet"`` or None mean `cnnreg.weights.default_weights_path`.
        Nothing is ever downloaded.
    input_shape : tuple of int
        (height, width, 3), height and width at least 32.
    config_key : str
        The config key that set `weights_path`, for the error message.

    Returns
    -------
    keras.Model
        VGG16 notop (named ``vgg16``) with ``trainable=False``; input: images preprocessed by
        :func:`to_vgg_input`; output: (N, height // 32, width // 32, 512).

    Raises
    ------
    FileNotFoundError
        If the weights file does not exist (the message says how to stage it).
    ValueError
        If `input_shape` is not (H ≥ 32, W ≥ 32, 3), or the file is not VGG16 notop weights.
    """
    input_shape = tuple(int(side) for side in input_shape)
    if len(input_shape) != 3 or input_shape[2] != 3 or min(input_shape[:2]) < MIN_SIZE:
        raise ValueError(
            f"input_shape must be (height, width, 3) with height and width at least {MIN_SIZE}, got {input_shape}"
        )
    path = resolve_weights_path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(missing_weights_message(path, config_key))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = keras.applications.VGG16(include_top=False, weights=str(path), input_shape=input_shape)
    except Exception as error:  # h5py and Keras raise OSError, ValueError, ... for a wrong file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"weights file {path} (config key '{config_key}') cannot be loaded into VGG16 without its top "
            f"({reason}); expected {WEIGHTS_FILE} (Keras' legacy .h5 layout) or a Keras 3 .weights.h5 file "
            f"of VGG16(include_top=False), such as `{STAGE_COMMAND}` stages"
        ) from error
    for warning in caught:  # a successful load's warnings matter; a failed one's are replaced by the error
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    model.trainable = False
    return model


def to_vgg_input(images):
    """uint8 images to VGG16 input: gray replicated to 3 channels, then ImageNet preprocessing.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, H, W, 1 or 3)
        RGB or gray images with values 0–255 (as in a data cache).

    Returns
    -------
    ndarray of float32, shape (N, H, W, 3)
        ``keras.applications.vgg16.preprocess_input`` of the 0–255 values: RGB → BGR, then the
        ImageNet channel means subtracted.

    Raises
    ------
    ValueError
        If `images` is not a uint8 array of shape (N, H, W, 1 or 3).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "images must be uint8 0-255 values of shape (N, height, width, 1 or 3), "
            f"got {images.dtype} of shape {images.shape}"
        )
    x = images.astype(np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = keras.applications.vgg16.preprocess_input(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def extract_features(extractor, images, batch_size=32):
    """Run uint8 images through the extractor, batch by batch.

    Parameters
    ----------
    extractor : keras.Model
        From :func:`feature_extractor`.
    images : ndarray of uint8, shape (N, H, W, 1 or 3)
        Raw images; preprocessed here with :func:`to_vgg_input` one batch at a time, so memory
        holds only one batch of float images.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    ndarray of float32, shape (N, h, w, 512)
    """
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    images = np.asarray(images)
    expected = tuple(extractor.input_shape[1:3])
    if images.ndim != 4 or tuple(images.shape[1:3]) != expected:
        raise ValueError(f"images must have shape (N, {expected[0]}, {expected[1]}, 1 or 3), got {images.shape}")
    shape = extractor.compute_output_shape((None, *expected, 3))[1:]
    features = np.empty((len(images), *shape), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = to_vgg_input(images[start : start + batch_size])
        features[start : start + len(batch)] = keras.ops.convert_to_numpy(extractor.predict_on_batch(batch))
    return features


def fine_tune_model(extractor, head, trainable_from="block5_conv1"):
    """The trained head on top of VGG16, with the extractor's last layers unfrozen.

    Parameters
    ----------
    extractor : keras.Model
        From :func:`feature_extractor`, built at the image size the model will see.
    head : keras.Model
        The head trained on the extractor's features (`cnnreg.models.transfer_head`).
    trainable_from : str
        The first extractor layer to train; it and every later layer (all of block 5 by default)
        are trainable, earlier ones stay frozen. VGG16 has no batch normalisation, so no layer
        needs to be kept in inference mode.

    Returns
    -------
    keras.Model
        Uncompiled; input: images preprocessed by :func:`to_vgg_input`. The extractor (``vgg16``)
        and the head (``transfer_head``) are nested models, so reach their layers through them:
        ``model.get_layer("vgg16").get_layer("block5_conv3")``.

    Notes
    -----
    The layers are shared, not copied: this sets ``trainable`` on `extractor`'s layers and on
    `head`, and training the returned model updates both. Compile it after calling this.
    """
    names = [layer.name for layer in extractor.layers]
    if trainable_from not in names:
        raise ValueError(
            f"trainable_from must name a layer of {extractor.name}, one of {names}; got {trainable_from!r}"
        )
    features = tuple(extractor.output_shape[1:])
    if tuple(head.input_shape[1:]) != features:
        raise ValueError(
            f"head expects features of shape {tuple(head.input_shape[1:])} but the extractor, built for "
            f"{tuple(extractor.input_shape[1:])} images, gives {features}; build the extractor at the image "
            "size the features were extracted at"
        )
    first = names.index(trainable_from)
    extractor.trainable = True  # sets every layer; then freeze those before `trainable_from`
    for index, layer in enumerate(extractor.layers):
        layer.trainable = index >= first
    head.trainable = True
    inputs = keras.Input(shape=extractor.input_shape[1:], name="vgg_input")
    return keras.Model(inputs, head(extractor(inputs)), name=f"{extractor.name}_fine_tune")


# --- feature cache ---------------------------------------------------------------------------


def write_feature_cache(
    path,
    features_train,
    y_train,
    features_val,
    y_val,
    classes,
    weights_path,
    image_size,
    *,
    features_test=None,
    y_test=None,
):
    """Write extracted features to one ``.npz`` file, atomically.

    Parameters
    ----------
    path : str or path-like
        Cache file; its folder is created if needed. It appears only when complete.
    features_train, features_val : ndarray, shape (N, h, w, C)
        Features, stored as float32.
    y_train, y_val : ndarray of int, shape (N,)
        Labels, row-aligned with the features.
    classes : sequence of str
        Class names in label order.
    weights_path : str or path-like
        The weights file the features came from; its md5 and whether it is ImageNet are stored.
    image_size : int or (int, int)
        Height and width of the images the features came from.
    features_test, y_test : ndarray, optional
        Features and labels of the held-out test split, both or neither; without them the cache
        stores a test split of length 0.
    """
    if (features_test is None) != (y_test is None):
        raise ValueError("features_test and y_test must be given together (or neither, for no test split)")
    if features_test is None:
        features_test, y_test = np.zeros((0, *np.shape(features_train)[1:])), np.zeros(0)
    given = {"train": (features_train, y_train), "val": (features_val, y_val), "test": (features_test, y_test)}
    arrays = {}
    for split, (x, y) in given.items():  # train first: the others' feature shape is checked against it
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
        if x.ndim != 4 or y.shape != (len(x),):
            raise ValueError(
                f"{split} features must be (N, h, w, C) with N labels, got features {x.shape} and labels {y.shape}"
            )
        if split != "train" and x.shape[1:] != arrays["x_train"].shape[1:]:
            raise ValueError(
                f"train and {split} features differ in shape: {arrays['x_train'].shape[1:]} vs {x.shape[1:]}"
            )
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    size = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or [height, width], got {image_size!r}")
    md5 = file_md5(weights_path)
    arrays.update(
        classes=np.array([str(name) for name in classes], dtype=str),
        weights_md5=np.array(md5),
        imagenet=np.array(md5 == IMAGENET_MD5),
        image_size=np.array(size, dtype=np.int64),
    )
    save_npz(path, arrays)


def load_feature_cache(path):
    """Read a feature cache written by :func:`write_feature_cache`.

    Raises
    ------
    DatasetError
        If the file is missing, truncated, unreadable or lacks an array (as one written before
        feature caches held the test split does), or its splits' shapes disagree; the message
        names the file and says to delete it and rerun the extract_features rule.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"feature cache {path} does not exist; run the extract_features rule to build it")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in _FEATURE_KEYS if key not in npz.files]
            if missing:
                raise KeyError(f"lacks {', '.join(missing)}")
            arrays = {key: npz[key] for key in _FEATURE_KEYS}
    except _READ_ERRORS as error:
        reason = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise DatasetError(f"feature cache {path} is unreadable or incomplete ({reason}); {_FEATURE_FIX}") from error
    for split in _SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 4 or y.shape != (len(x),) or x.shape[1:] != arrays["x_train"].shape[1:]:
            raise DatasetError(
                f"feature cache {path} holds {split} features {x.shape} with labels {y.shape} "
                f"(train features: {arrays['x_train'].shape}); {_FEATURE_FIX}"
            )
    return FeatureCache(
        **{key: arrays[key] for split in _SPLITS for key in (f"x_{split}", f"y_{split}")},
        classes=[str(name) for name in arrays["classes"]],
        weights_md5=str(arrays["weights_md5"]),
        imagenet=bool(arrays["imagenet"]),
        image_size=tuple(int(side) for side in arrays["image_size"]),
    )


def extract_dataset_features(image_cache_path, out_path, weights_path, batch_size=32, config_key=CONFIG_KEY):
    """Extract VGG16 features of a whole dataset once, into a feature cache.

    Parameters
    ----------
    image_cache_path : str or path-like
        Image cache from `cnnreg.data.prepare_cache` (1 or 3 channels; gray is replicated).
    out_path : str or path-like
        Feature cache to write (see :func:`write_feature_cache`).
    weights_path : str, path-like or None
        VGG16 notop weights, as for :func:`feature_extractor`.
    batch_size : int
        Images per forward pass.
    config_key : str
        The config key that set `weights_path`, for error messages.

    Returns
    -------
    dict
        For logging: ``n_train``, ``n_val``, ``n_test`` (0 without a test split),
        ``feature_shape`` (list), ``image_size`` (list), ``weights`` (path), ``imagenet`` (bool),
        ``seconds`` (extraction only) and ``images_per_second``.
    """
    cache = load_cache(image_cache_path)
    path = resolve_weights_path(weights_path)
    size = tuple(int(side) for side in cache.x_train.shape[1:3])
    extractor = feature_extractor(path, (*size, 3), config_key)
    started = time.perf_counter()
    train = extract_features(extractor, cache.x_train, batch_size)
    val = extract_features(extractor, cache.x_val, batch_size)
    test = extract_features(extractor, cache.x_test, batch_size)
    seconds = time.perf_counter() - started
    write_feature_cache(
        out_path,
        train,
        cache.y_train,
        val,
        cache.y_val,
        cache.classes,
        path,
        size,
        features_test=test,
        y_test=cache.y_test,
    )
    n = len(train) + len(val) + len(test)
    return {
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "feature_shape": list(train.shape[1:]),
        "image_size": list(size),
        "weights": str(path),
        "imagenet": is_imagenet(path),
        "seconds": round(seconds, 3),
        "images_per_second": round(n / seconds, 1) if seconds > 0 else None,
    }
