"""Run parameters: one declaration each (name, canonical type, valid values, what it means), from
which the plan checks and normalises every run, and against which ``config/schema.yaml`` is tested.

A run's ``augment`` speaks Keras' old ``ImageDataGenerator`` option names (:data:`AUGMENT_OPTIONS`);
:func:`resolve_augmentation` validates a setting, once, at plan time, with the same code training
uses, and ``lab`` and its explicit mapping are one run. Nothing here imports Keras.
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnreg.registry import LAB_MODELS

FILL_MODES = ("constant", "nearest", "reflect", "wrap")

#: ImageDataGenerator option name → what it does and which values it takes.
AUGMENT_OPTIONS = {
    "rotation_range": "a rotation angle in degrees, in [0, 180]; rotates by an angle drawn from [-r, r]",
    "width_shift_range": "a fraction of the width, in [0, 1); shifts left or right by up to that fraction",
    "height_shift_range": "a fraction of the height, in [0, 1); shifts up or down by up to that fraction",
    "shear_range": "a shear angle in degrees, in [0, 90); shears horizontally by up to that angle either way",
    "zoom_range": (
        "a float z in [0, 1) for zoom factors in [1 - z, 1 + z], or a [lower, upper] pair with "
        "0 < lower <= upper <= 2; drawn per axis, a factor < 1 zooms in"
    ),
    "horizontal_flip": "true or false; mirrors left-right half of the time",
    "vertical_flip": "true or false; mirrors top-bottom half of the time",
    "brightness_range": (
        "a [lower, upper] pair with 0 <= lower <= upper, e.g. [0.8, 1.2]; multiplies the image by a "
        "factor drawn from it, clipped to [0, 1]"
    ),
    "fill_mode": f"one of {', '.join(FILL_MODES)}; how shifted-in pixels are filled (default nearest)",
    "cval": "a number in [0, 1]; the fill value of fill_mode constant (default 0)",
}

#: The lab's setting; images are rescaled to [0, 1] before augmentation.
LAB_AUGMENTATION = {"rotation_range": 10, "width_shift_range": 0.1, "height_shift_range": 0.1, "horizontal_flip": True}

_SPEC_FORMS = "none | lab | a mapping of option → value"


def is_real(value):
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def is_finite_real(value):
    return is_real(value) and math.isfinite(value)


def is_pair(value):
    return isinstance(value, list | tuple | np.ndarray) and len(value) == 2 and all(is_finite_real(v) for v in value)


_VALID = {
    "rotation_range": lambda v: is_finite_real(v) and 0 <= v <= 180,
    "width_shift_range": lambda v: is_finite_real(v) and 0 <= v < 1,
    "height_shift_range": lambda v: is_finite_real(v) and 0 <= v < 1,
    "shear_range": lambda v: is_finite_real(v) and 0 <= v < 90,
    "zoom_range": lambda v: (is_finite_real(v) and 0 <= v < 1) or (is_pair(v) and 0 < v[0] <= v[1] <= 2),
    "horizontal_flip": lambda v: isinstance(v, bool | np.bool_),
    "vertical_flip": lambda v: isinstance(v, bool | np.bool_),
    "brightness_range": lambda v: is_pair(v) and 0 <= v[0] <= v[1],
    "fill_mode": lambda v: isinstance(v, str) and v in FILL_MODES,
    "cval": lambda v: is_finite_real(v) and 0 <= v <= 1,
}


def _canonical_value(value):
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        return [float(v) for v in value]
    return float(value)


def resolve_augmentation(spec):
    """Validate an augmentation setting and return its canonical option mapping.

    Parameters
    ----------
    spec : {'none', 'lab'}, mapping or None
        ``'none'`` (or None) for no augmentation, ``'lab'`` for `LAB_AUGMENTATION`, or a mapping of
        `AUGMENT_OPTIONS` names to values.

    Returns
    -------
    dict
        Options with sorted keys; numbers as float, pairs as lists of float, flags as bool.
        Empty for no augmentation.

    Raises
    ------
    ValueError
        If `spec` is another string or type, names an unknown option, or gives an option a
        value it does not take; the message names the option and what it expects.
    """
    if spec is None or spec == "none":
        return {}
    if spec == "lab":
        spec = LAB_AUGMENTATION
    elif not isinstance(spec, Mapping):
        raise ValueError(f"augmentation must be {_SPEC_FORMS}, got {spec!r}")
    unknown = [repr(name) for name in spec if name not in AUGMENT_OPTIONS]
    if unknown:
        raise ValueError(
            f"unknown augmentation option {', '.join(unknown)}; valid options: {', '.join(AUGMENT_OPTIONS)}"
        )
    for name, value in spec.items():
        if not _VALID[name](value):
            raise ValueError(f"augmentation option {name} expects {AUGMENT_OPTIONS[name]}; got {value!r}")
    return {name: _canonical_value(spec[name]) for name in sorted(spec)}


@dataclass(frozen=True)
class Parameter:
    """One run parameter.

    Attributes
    ----------
    name : str
    canonical : callable
        The value's canonical form (what run ids hash: ``0`` and ``0.0`` are one rate).
    valid : callable
        Whether a value is one the parameter takes.
    expects : str
        What a valid value is, for messages.
    """

    name: str
    canonical: Callable[[Any], Any]
    valid: Callable[[Any], bool]
    expects: str

    def check(self, value):
        """`canonical` of a valid value; ValueError saying what was expected otherwise."""
        if not self.valid(value):
            raise ValueError(f"{self.name} expects {self.expects}; got {value!r}")
        return self.canonical(value)


HEADS = ("sigmoid", "softmax")
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
NAME_PATTERN = "^[A-Za-z0-9_]+$"
MODEL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"


def _is_int(value, minimum):
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_) and value >= minimum


def _is_rate(value):
    return is_finite_real(value) and 0 <= value < 1


def _is_model(value):
    return isinstance(value, str) and (value in LAB_MODELS or re.fullmatch(MODEL_PATTERN, value) is not None)


def _is_name(value):
    return isinstance(value, str) and re.fullmatch(NAME_PATTERN, value) is not None


def _is_valid_augment(value):
    try:
        resolve_augmentation(value)
    except ValueError:
        return False
    return value is not None


def canonical_augment(value):
    """``none``, ``lab``, or the resolved option mapping: ``lab``'s own mapping is ``lab``."""
    options = resolve_augmentation(value)
    if not options:
        return "none"
    return "lab" if options == resolve_augmentation("lab") else options


def _ints(values):
    return [int(v) for v in values]


PARAMETERS = {
    p.name: p
    for p in (
        Parameter("model", str, _is_model, "alexnet, vgg16, vgg16_imagenet or your own 'package.module:function'"),
        Parameter("dataset", str, _is_name, "a dataset name (letters, digits, _)"),
        Parameter("base", int, lambda v: _is_int(v, 1), "a positive number of filters"),
        Parameter(
            "dense", _ints, lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(u, 1) for u in v),
            "a non-empty list of positive unit counts",
        ),
        Parameter("head", str, lambda v: v in HEADS, f"one of {', '.join(HEADS)}"),
        Parameter("batch_norm", bool, lambda v: isinstance(v, bool | np.bool_), "true or false"),
        Parameter("dropout", float, _is_rate, "a rate in [0, 1)"),
        Parameter("spatial_dropout", float, _is_rate, "a rate in [0, 1)"),
        Parameter("lr", float, lambda v: is_finite_real(v) and v > 0, "a positive learning rate"),
        Parameter("optimizer", str, lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        Parameter("batch_size", int, lambda v: _is_int(v, 1), "a positive int"),
        Parameter("epochs", int, lambda v: _is_int(v, 1), "a positive int"),
        Parameter(
            "image_size", _ints, lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(s, 8) for s in v),
            "[height, width], each at least 8",
        ),
        Parameter("channels", int, lambda v: _is_int(v, 1) and v in (1, 3), "1 or 3"),
        Parameter("augment", canonical_augment, _is_valid_augment, f"{_SPEC_FORMS} (see AUGMENT_OPTIONS)"),
        Parameter("fine_tune", int, lambda v: _is_int(v, 0), "a number of epochs, 0 for none"),
        Parameter("fine_tune_lr", float, lambda v: is_finite_real(v) and v > 0, "a positive learning rate"),
        Parameter("seed", int, lambda v: _is_int(v, 0), "a non-negative int"),
        Parameter(
            "class_weight", str, lambda v: v in CLASS_WEIGHTS,
            "none, or balanced (each class's loss weighted by n / (classes x its count) in training)",
        ),
        Parameter("folds", int, lambda v: _is_int(v, 0) and v != 1, "0 (no cross-validation) or K >= 2 folds"),
        Parameter("fold", int, lambda v: _is_int(v, 0), "a fold index 0..folds-1"),
        Parameter("jit_compile", bool, lambda v: isinstance(v, bool | np.bool_), "true (XLA) or false"),
        Parameter(
            "mixed_precision", bool, lambda v: isinstance(v, bool | np.bool_),
            "true (float16 computations, float32 variables and head, scaled loss) or false",
        ),
    )
}  # fmt: skip
NAMES = tuple(PARAMETERS)


def check(name, value):
    """The canonical form of a valid `value` of parameter `name`.

    Raises
    ------
    ValueError
        If `name` is not a run parameter or `value` is not one it takes; for ``augment``, the
        message names the option that is wrong.
    """
    if name not in PARAMETERS:
        raise ValueError(f"'{name}' is not a run parameter; expected one of {list(NAMES)}")
    if name == "augment":
        resolve_augmentation(value)  # its message names the wrong option
    return PARAMETERS[name].check(value)
