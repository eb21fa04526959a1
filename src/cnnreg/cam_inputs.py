"""What the class-activation-map functions are given, checked: models, layers, images and classes.

Every check raises ValueError with a message that says what was expected; the functions of
:mod:`cnnreg.gradcam`, :mod:`cnnreg.cam_metrics` and :mod:`cnnreg.cam_outputs` call them first.
"""

import keras
import numpy as np

__all__ = [
    "as_images",
    "check_class_values",
    "check_input_shape",
    "class_count",
    "class_indices",
    "feature_layer",
    "model_graph",
]

_FLOAT_TOLERANCE = 1e-3


def model_graph(model):
    """The one input and one output of `model`, checked: ``(inputs, outputs)``, lists of one tensor."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"model {model.name!r} has no defined input or output ({error}); build it on a keras.Input"
        ) from error
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"model {model.name!r} must have exactly one input and one output")
    if len(inputs[0].shape) != 4:
        raise ValueError(
            f"model {model.name!r} must take images (batch, height, width, channels), got {inputs[0].shape}"
        )
    if len(outputs[0].shape) != 2:
        raise ValueError(f"model {model.name!r} must output (batch, classes), got {outputs[0].shape}")
    return inputs, outputs


def feature_layer(model, layer):
    """The layer `layer` of `model`, checked to output 4-D (batch, height, width, channels) feature maps."""
    convs = ", ".join(found.name for found in model.layers if "Conv" in type(found).__name__)
    try:
        found = model.get_layer(layer)
    except ValueError:
        have = f"its convolutional layers are {convs}" if convs else "it has no convolutional layers"
        raise ValueError(f"model {model.name!r} has no layer {layer!r}; {have}") from None
    if len(found.output.shape) != 4:
        raise ValueError(
            f"layer {layer!r} of model {model.name!r} outputs shape {found.output.shape}; Grad-CAM needs a 4-D "
            f"(batch, height, width, channels) feature map, such as {convs or 'a Conv2D'}"
        )
    return found


def class_count(model):
    """Classes of `model`'s output: its units, two for one sigmoid unit."""
    return max(model_graph(model)[1][0].shape[-1], 2)


def check_input_shape(model, x):
    """Raise ValueError unless images `x` have the (height, width, channels) `model` takes."""
    expected = tuple(model_graph(model)[0][0].shape[1:])
    if any(want is not None and want != got for want, got in zip(expected, x.shape[1:], strict=True)):
        raise ValueError(f"model {model.name!r} takes images of shape {expected}, got images of shape {x.shape[1:]}")


def as_images(images):
    """`images` as float32 in [0, 1], shape (N, height, width, channels); uint8 divided by 255."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must be a batch of shape (N, height, width, channels), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"images must be float in [0, 1] or uint8, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if x.size and not (np.all(np.isfinite(x)) and x.min() >= -_FLOAT_TOLERANCE and x.max() <= 1 + _FLOAT_TOLERANCE):
        raise ValueError(
            f"images must be float in [0, 1] (or uint8, divided by 255), got values in [{x.min()}, {x.max()}]"
        )
    return x


def class_indices(class_index, n, classes, allow_none=False):
    """`class_index` (an int, or one per image; None: -1, the predicted class) as `n` int64 indices."""
    if class_index is None:
        if not allow_none:
            raise ValueError("class_index must be an int or one int per image, got None")
        return np.full(n, -1, np.int64)
    values = np.asarray(class_index)
    if values.dtype == bool or values.ndim > 1 or (values.ndim == 1 and len(values) != n):
        raise ValueError(f"class_index must be None, an int or {n} ints (one per image), got shape {values.shape}")
    check_class_values(values.reshape(-1), classes, "class_index")
    return np.broadcast_to(values.astype(np.int64), (n,)).copy()


def check_class_values(values, classes, name):
    """Raise ValueError unless `values` (named `name`) are int class indices in ``0..classes - 1``."""
    if values.size and (not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= classes):
        raise ValueError(f"{name} must be class indices in 0..{classes - 1}, got {values.tolist()[:10]}")
