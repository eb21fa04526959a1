"""Grad-CAM and Grad-CAM++ heatmaps, and checks of what they show.

:func:`grad_cam` computes class activation maps of a trained Keras model for a
batch of images; :func:`explain` runs both methods on a validation set and
measures, per image, how faithful each map is (:func:`blur_mask_drop`),
whether its heat sits at the image border (:func:`border_fraction`, a sign of
shortcut learning such as scanner labels) and whether its maximum lies on the
known evidence (:func:`pointing_game`). :func:`write_cams`,
:func:`summarise` and :func:`plot_gallery` turn the result into the
``cams.npz`` file, a summary and a figure.

Images are float arrays in [0, 1] of shape (N, height, width, channels), as
the models are trained on; uint8 images are divided by 255. Models are Keras
models built on a ``keras.Input`` (functional or Sequential) with one output:
two or more softmax probabilities, or one sigmoid probability of class 1.
Everything runs eagerly under TensorFlow 2 (a ``tf.function``-compiled
gradient step); no TF1 graph-mode APIs are used.
"""

import json
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import skimage.io
import tensorflow as tf
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy.ndimage import gaussian_filter
from skimage.transform import resize

from cnnreg.atomic import save_npz, write_atomic, write_text
from cnnreg.data import load_cache
from cnnreg.models import LAST_CONV

__all__ = [
    "evidence_boxes",
    "explain_run",
    "rectified_layer",
    "BORDER_FLAG",
    "BORDER_WIDTH",
    "CAMS_KEYS",
    "FAITHFUL_FRACTION",
    "METHODS",
    "blur_mask_drop",
    "border_flags",
    "border_fraction",
    "class_scores",
    "explain",
    "grad_cam",
    "gradient_model",
    "overlay",
    "plot_gallery",
    "pointing_game",
    "read_cams",
    "scale_boxes",
    "summarise",
    "write_cams",
]

#: The two maps :func:`explain` computes, as used in column names (``drop_top_gradcam``, ...).
METHODS = ("gradcam", "gradcam_pp")
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++"}
#: The arrays of a ``cams.npz`` file, as :func:`explain` returns them and :func:`write_cams` writes them.
CAMS_KEYS = ("files", "label", "pred", "prob", "gradcam", "gradcam_pp", "layer")
#: Width of the border band, as a fraction of the image height (rows) and width (columns).
BORDER_WIDTH = 0.1
#: A map is flagged when at least this fraction of its heat lies in the border band of width
#: `BORDER_WIDTH`. That band covers 1 - 0.8**2 = 36 % of the image, so a uniform map puts 0.36 of
#: its heat there and a map centred on the image almost none; at 0.5 the heat in the band is on
#: average 0.5 / 0.36 = 1.4 times denser than over the whole image and 1.8 times denser than
#: inside the band. Maps come from a coarse last convolution: a map whose one hot cell is a corner
#: cell puts 0.61 of its heat in the band at 64 x 64 (4 x 4 cells, bilinear upsampling) and 0.94
#: at 128 x 128 (8 x 8 cells); one hot edge cell that is not a corner, 0.38 and 0.78. A stricter
#: rule such as "twice the band's share of the area" (0.72) would miss the corner cell at 64 x 64.
#: At 32 x 32 (2 x 2 cells) every cell puts 0.34 in the band: border attention cannot be told.
BORDER_FLAG = 0.5
#: Fraction of the pixels :func:`explain` blurs away in its faithfulness check (`blur_mask_drop`).
FAITHFUL_FRACTION = 0.2

_FAITHFUL_COLUMNS = ("drop_top", "drop_random", "border_fraction", "border_flag", "pointing")
_FLOAT_TOLERANCE = 1e-3
# model -> {key: compiled function}; the functions hold the model's layers but not the model, so
# the entry goes when the model does.
_STEPS = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------------
# Grad-CAM


def gradient_model(model, layer=LAST_CONV):
    """A model from the inputs of `model` to ``[output of layer, output of model]``.

    Parameters
    ----------
    model : keras.Model
        A model built on a ``keras.Input`` (functional, or Sequential with an input) with one
        input and one output.
    layer : str
        Name of the layer whose feature maps Grad-CAM weighs; it must output a 4-D
        (batch, height, width, channels) tensor.

    Returns
    -------
    keras.Model
        Calling it on a batch returns the layer's feature maps and the model's predictions.

    Raises
    ------
    ValueError
        If the model has no defined input or output, has several, or has no 4-D layer `layer`
        (the message lists the convolutional layers it does have).
    """
    inputs, outputs = _graph(model)
    return keras.Model(inputs[0], [_feature_layer(model, layer).output, outputs[0]], name=f"{model.name}_gradients")


def class_scores(outputs, class_index, from_logits=False):
    """The score whose gradient Grad-CAM takes for each image's class.

    Parameters
    ----------
    outputs : array-like or tf.Tensor, shape (N, 1) or (N, K)
        Model outputs: one sigmoid unit (the probability of class 1) or K >= 2 softmax units.
        With `from_logits`, the values before the sigmoid or softmax.
    class_index : int or array-like of int, shape (N,)
        The class to score, per image or one for all; 0 or 1 for a sigmoid output.
    from_logits : bool
        Score the class's log-odds instead of its probability.

    Returns
    -------
    tf.Tensor, shape (N,)
        Probabilities: ``p[class]`` for softmax; ``p`` for class 1 and ``1 - p`` for class 0 of
        a sigmoid. Log-odds ``log(p / (1 - p))`` of the class from logits: ``z`` and ``-z`` for
        a sigmoid, ``z[class] - logsumexp(z[others])`` for softmax (``z[class] - z[other]``
        for two classes).
    """
    outputs = tf.convert_to_tensor(outputs)
    if not outputs.dtype.is_floating:
        outputs = tf.cast(outputs, tf.float32)
    if outputs.shape.rank != 2:
        raise ValueError(f"outputs must have shape (N, 1) or (N, classes), got {outputs.shape}")
    units = outputs.shape[-1]
    if not tf.is_tensor(class_index):
        _check_class_values(np.asarray(class_index), max(units, 2), "class_index")
    index = tf.broadcast_to(tf.cast(class_index, tf.int64), tf.shape(outputs, out_type=tf.int64)[:1])
    if units == 1:
        value = outputs[:, 0]
        positive = tf.equal(index, 1)
        return tf.where(positive, value, -value) if from_logits else tf.where(positive, value, 1.0 - value)
    chosen = tf.gather(outputs, index, axis=1, batch_dims=1)
    if not from_logits:
        return chosen
    others = tf.where(tf.one_hot(index, units) > 0, outputs.dtype.min, outputs)
    return chosen - tf.reduce_logsumexp(others, axis=1)


def grad_cam(model, images, class_index=None, layer=LAST_CONV, batch_size=32, plus_plus=False):
    """Grad-CAM or Grad-CAM++ heatmaps of a batch of images.

    Parameters
    ----------
    model : keras.Model
        A classifier built on a ``keras.Input`` (see `gradient_model`).
    images : array-like, shape (N, height, width, channels)
        Float images in [0, 1], or uint8 images (divided by 255).
    class_index : None, int or array-like of int, shape (N,)
        The class to explain: None for each image's predicted class, or one class for all,
        or one per image.
    layer : str
        The convolutional layer whose feature maps are weighed.
    batch_size : int
        Images per gradient step.
    plus_plus : bool
        Grad-CAM++ (Chattopadhay et al. 2018) instead of Grad-CAM (Selvaraju et al. 2017).

    Returns
    -------
    heatmaps : ndarray of float32, shape (N, height, width)
        One map per image at the input resolution, in [0, 1]: each map is divided by its
        maximum, and a map without positive evidence is all zero.
    predictions : ndarray of float32, shape (N, classes)
        Class probabilities, two columns ``[1 - p, p]`` for a sigmoid output.

    Notes
    -----
    With feature maps ``A[i, j, k]`` of `layer` and ``g = dS/dA`` the gradient of the class
    score ``S``, Grad-CAM weighs channel ``k`` by ``w[k] = mean_ij g[i, j, k]``; Grad-CAM++ by
    ``w[k] = sum_ij alpha[i, j, k] * relu(g[i, j, k])`` with
    ``alpha = g**2 / (2 * g**2 + sum_ij A[i, j, k] * g**3)``, the closed form for the
    exponential of the score, ``exp(S)``, whose higher derivatives are powers of ``g``
    (``exp(S)`` itself is a positive factor per image that the normalisation removes). The map
    is ``relu(sum_k w[k] * A[..., k])``, upsampled bilinearly to the input size.

    When the model ends in a Dense layer with a sigmoid or softmax activation, ``S`` is the
    class's log-odds, computed from that layer's input (see `class_scores`); otherwise the
    class's probability. For a Grad-CAM map the two differ only by the positive factor
    ``p * (1 - p)``, but the gradient of a probability vanishes when it rounds to 1 in float32
    (a sigmoid logit above about 17), which would leave confident images with empty maps.
    The log-odds is also the linear pre-activation score that Grad-CAM++ assumes.
    """
    gradcam, gradcam_pp, predictions, _ = _cams(model, images, class_index, layer, batch_size)
    return (gradcam_pp if plus_plus else gradcam), predictions


def _cams(model, images, class_index, layer, batch_size):
    """Both maps, the probabilities and the explained class of every image (one gradient pass)."""
    x = _as_images(images)
    _check_input_shape(model, x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    classes = _class_count(model)
    index = _class_indices(class_index, len(x), classes, allow_none=True)
    step = _compiled(model, ("cam", layer), lambda: _cam_step(model, layer))
    parts = []
    for start in range(0, len(x), batch_size):
        stop = start + batch_size
        parts.append([t.numpy() for t in step(tf.constant(x[start:stop]), tf.constant(index[start:stop]))])
    if not parts:
        empty = np.zeros((0, *x.shape[1:3]), np.float32)
        return empty, empty.copy(), np.zeros((0, classes), np.float32), np.zeros(0, np.int64)
    gradcam, gradcam_pp, predictions, chosen = (np.concatenate(column) for column in zip(*parts, strict=True))
    return gradcam, gradcam_pp, predictions, chosen


def _compiled(model, key, build):
    """The compiled function `key` of `model`, built once per model."""
    functions = _STEPS.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]


def _forward(model):
    """A compiled forward pass in inference mode: images to probabilities, two columns for a sigmoid."""
    inputs, outputs = _graph(model)
    graph = keras.Model(inputs[0], outputs[0], name=f"{model.name}_forward")

    @tf.function(input_signature=[tf.TensorSpec((None, *inputs[0].shape[1:]), tf.float32)], autograph=False)
    def forward(images):
        return tf.cast(_two_columns(graph(images, training=False)), tf.float32)

    return forward


def _cam_step(model, layer):
    """A compiled step: images and classes (-1: predicted) to both maps, probabilities and classes."""
    inputs, outputs = _graph(model)
    features = _feature_layer(model, layer).output
    head = _logit_head(model, outputs[0])
    last = outputs[0] if head is None else head.input
    graph = keras.Model(inputs[0], [features, last], name=f"{model.name}_cam")
    spec = tf.TensorSpec((None, *inputs[0].shape[1:]), tf.float32)

    # No tensor-dependent Python control flow, so no AutoGraph (which also warns on closures).
    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int64)], autograph=False)
    def step(images, class_index):
        with tf.GradientTape() as tape:
            feature_maps, last_output = graph(images, training=False)
            if head is None:
                scores_in, probabilities = last_output, last_output
            else:
                scores_in = tf.matmul(last_output, tf.convert_to_tensor(head.kernel))
                if head.use_bias:
                    scores_in = scores_in + tf.convert_to_tensor(head.bias)
                probabilities = head.activation(scores_in)
            probabilities = tf.cast(_two_columns(probabilities), tf.float32)
            chosen = tf.where(class_index < 0, tf.argmax(probabilities, axis=-1), class_index)
            score = class_scores(scores_in, chosen, from_logits=head is not None)
        gradients = tape.gradient(score, feature_maps)
        feature_maps = tf.cast(feature_maps, tf.float32)
        gradients = tf.cast(gradients, tf.float32)
        gradcam, gradcam_pp = _weighted_maps(feature_maps, gradients)
        size = tf.shape(images)[1:3]
        return _upsample(gradcam, size), _upsample(gradcam_pp, size), probabilities, chosen

    return step


def _weighted_maps(features, gradients):
    weights = tf.reduce_mean(gradients, axis=(1, 2))
    gradcam = tf.nn.relu(tf.einsum("nijk,nk->nij", features, weights))
    squared = tf.square(gradients)
    denominator = 2.0 * squared + tf.reduce_sum(features, axis=(1, 2), keepdims=True) * squared * gradients
    alpha = tf.math.divide_no_nan(squared, denominator)
    weights_pp = tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2))
    gradcam_pp = tf.nn.relu(tf.einsum("nijk,nk->nij", features, weights_pp))
    return gradcam, gradcam_pp


def _upsample(maps, size):
    """Bilinear upsampling to `size`, then each map divided by its maximum (all-zero stays zero)."""
    maps = tf.image.resize(maps[..., tf.newaxis], size, method="bilinear")[..., 0]
    peak = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    return tf.clip_by_value(tf.math.divide_no_nan(maps, peak), 0.0, 1.0)


def _two_columns(probabilities):
    if probabilities.shape[-1] == 1:
        return tf.concat([1.0 - probabilities, probabilities], axis=-1)
    return probabilities


def _graph(model):
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


def _conv_layer_names(model):
    return [layer.name for layer in model.layers if "Conv" in type(layer).__name__]


def _feature_layer(model, layer):
    try:
        found = model.get_layer(layer)
    except ValueError:
        names = _conv_layer_names(model)
        have = f"its convolutional layers are {', '.join(names)}" if names else "it has no convolutional layers"
        raise ValueError(f"model {model.name!r} has no layer {layer!r}; {have}") from None
    shape = found.output.shape
    if len(shape) != 4:
        raise ValueError(
            f"layer {layer!r} of model {model.name!r} outputs shape {shape}; Grad-CAM needs a 4-D "
            f"(batch, height, width, channels) feature map, such as {', '.join(_conv_layer_names(model)) or 'a Conv2D'}"
        )
    return found


def _logit_head(model, output):
    """The final Dense layer when it applies a sigmoid (1 unit) or softmax (2+ units), else None."""
    head = model.layers[-1] if model.layers else None
    if not isinstance(head, keras.layers.Dense) or getattr(head, "output", None) is not output:
        return None
    activation = getattr(head.activation, "__name__", "")
    units = output.shape[-1]
    if (activation, units == 1) in (("sigmoid", True), ("softmax", False)):
        return head
    return None


def _class_count(model):
    return max(_graph(model)[1][0].shape[-1], 2)


def _check_input_shape(model, x):
    expected = tuple(_graph(model)[0][0].shape[1:])
    if any(want is not None and want != got for want, got in zip(expected, x.shape[1:], strict=True)):
        raise ValueError(f"model {model.name!r} takes images of shape {expected}, got images of shape {x.shape[1:]}")


def _as_images(images):
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


def _check_class_values(values, classes, name):
    if values.size and (not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= classes):
        raise ValueError(f"{name} must be class indices in 0..{classes - 1}, got {values.tolist()[:10]}")


def _class_indices(class_index, n, classes, allow_none=False):
    if class_index is None:
        if not allow_none:
            raise ValueError("class_index must be an int or one int per image, got None")
        return np.full(n, -1, np.int64)
    values = np.asarray(class_index)
    if values.dtype == bool or values.ndim > 1 or (values.ndim == 1 and len(values) != n):
        raise ValueError(f"class_index must be None, an int or {n} ints (one per image), got shape {values.shape}")
    _check_class_values(values.reshape(-1), classes, "class_index")
    return np.broadcast_to(values.astype(np.int64), (n,)).copy()


# --------------------------------------------------------------------------------------------
# Checks of the maps


def blur_mask_drop(model, images, heatmaps, class_index, fraction=FAITHFUL_FRACTION, sigma=None, seed=0, batch_size=32):
    """How much the class probability drops when the hottest pixels are blurred away.

    For each image, the `fraction` of pixels with the most heat is replaced by a Gaussian-blurred
    copy of the image, and separately the same number of pixels drawn at random. A faithful map
    points at pixels the model relies on: ``drop_top > drop_random``.

    Parameters
    ----------
    model : keras.Model
        The classifier the maps explain.
    images : array-like, shape (N, height, width, channels)
        Float images in [0, 1], or uint8 (divided by 255).
    heatmaps : array-like, shape (N, height, width)
        One map per image, at the image resolution.
    class_index : None, int or array-like of int, shape (N,)
        The class whose probability is watched; None for each image's predicted class.
    fraction : float
        Fraction of the pixels to replace, in (0, 1).
    sigma : float, optional
        Standard deviation of the blur in pixels; default 1/16 of the larger image side (4 at
        64 x 64).
    seed : int
        Seed for the random pixels (and for ordering pixels of equal heat).
    batch_size : int
        Images per prediction batch.

    Returns
    -------
    dict
        ``prob``, ``prob_top``, ``prob_random`` (the class's probability on the original, the
        top-masked and the randomly masked image), ``drop_top = prob - prob_top`` and
        ``drop_random = prob - prob_random`` (arrays of float, shape (N,)), ``class_index``
        (shape (N,)), ``pixels`` (pixels replaced per image) and ``sigma``.
    """
    drops = _mask_drops(model, images, {"top": heatmaps}, class_index, fraction, sigma, seed, batch_size)
    return {
        "prob": drops["prob"],
        "prob_top": drops["prob_top"],
        "prob_random": drops["prob_random"],
        "drop_top": drops["prob"] - drops["prob_top"],
        "drop_random": drops["prob"] - drops["prob_random"],
        "class_index": drops["class_index"],
        "pixels": drops["pixels"],
        "sigma": drops["sigma"],
    }


def _mask_drops(model, images, heatmaps, class_index, fraction, sigma, seed, batch_size):
    """`blur_mask_drop` for several sets of maps at once (``prob_<name>`` per name of `heatmaps`);
    the original and the randomly masked images are predicted once."""
    x = _as_images(images)
    _check_input_shape(model, x)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n, height, width = x.shape[:3]
    sigma = max(height, width) / 16 if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}")
    blurred = gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="reflect")
    pixels = max(1, round(fraction * height * width))

    def masked(chosen):
        mask = np.zeros((n, height * width), bool)
        np.put_along_axis(mask, chosen, True, axis=1)
        return np.where(mask.reshape(n, height, width, 1), blurred, x)

    original = _predict(model, x, batch_size)
    index = original.argmax(axis=1) if class_index is None else _class_indices(class_index, n, original.shape[1])
    rows = np.arange(n)
    drawn = np.random.default_rng([seed, 1]).random((n, height * width)).argsort(axis=-1)[:, :pixels]
    result = {
        "prob": original[rows, index],
        "prob_random": _predict(model, masked(drawn), batch_size)[rows, index],
        "class_index": index.astype(np.int64),
        "pixels": pixels,
        "sigma": sigma,
    }
    for name, heat in heatmaps.items():
        maps = _as_maps(heat, "heatmaps")
        if maps.shape != x.shape[:3]:
            raise ValueError(f"heatmaps must have shape {x.shape[:3]} (one per image, same size), got {maps.shape}")
        flat = maps.reshape(n, -1)
        ties = np.random.default_rng([seed, 0]).random(flat.shape)
        top = np.lexsort((ties, -flat), axis=-1)[:, :pixels]
        result[f"prob_{name}"] = _predict(model, masked(top), batch_size)[rows, index]
    return result


def _predict(model, x, batch_size):
    if not len(x):
        return np.zeros((0, _class_count(model)), np.float32)
    forward = _compiled(model, "forward", lambda: _forward(model))
    return np.concatenate([forward(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


def _as_maps(heatmaps, name):
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"{name} must have shape (N, height, width), got {maps.shape}")
    return maps


def border_fraction(heatmaps, width=BORDER_WIDTH):
    """Fraction of each map's heat that lies in the band along the image border.

    Parameters
    ----------
    heatmaps : array-like, shape (N, height, width)
        Non-negative maps.
    width : float
        Band width as a fraction of the height (top and bottom rows) and of the width (left
        and right columns), in (0, 0.5); at least one pixel.

    Returns
    -------
    ndarray of float, shape (N,)
        Heat in the band over total heat; NaN for a map without heat.
    """
    maps = _as_maps(heatmaps, "heatmaps")
    if not 0 < width < 0.5:
        raise ValueError(f"width must be a fraction of the image side in (0, 0.5), got {width}")
    _, height, wide = maps.shape
    rows, cols = max(1, round(width * height)), max(1, round(width * wide))
    total = maps.sum(axis=(1, 2))
    inner = maps[:, rows : height - rows, cols : wide - cols].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (total - inner) / total, np.nan)


def border_flags(heatmaps, width=BORDER_WIDTH, threshold=BORDER_FLAG):
    """Flag maps with at least `threshold` of their heat in the border band (see `BORDER_FLAG`).

    Returns
    -------
    ndarray of bool, shape (N,)
        True where attention concentrates at the image border; False for a map without heat.
    """
    fractions = border_fraction(heatmaps, width)
    return np.nan_to_num(fractions, nan=-1.0) >= threshold


def scale_boxes(boxes, from_size, to_size):
    """Rescale end-exclusive pixel boxes from one image size to another.

    Parameters
    ----------
    boxes : array-like, shape (N, 4) or (4,)
        ``(x0, y0, x1, y1)`` with ``x0 < x1`` and ``y0 < y1``, end-exclusive, in pixels of an
        image of `from_size`.
    from_size, to_size : int or (int, int)
        Image (height, width); an int means a square image.

    Returns
    -------
    ndarray of int64, same shape as `boxes`
        Boxes in pixels of `to_size`, rounded outwards (start down, end up) so that they still
        hold every pixel of the evidence, clipped to the image, never empty.
    """
    values = np.asarray(boxes, dtype=np.float64)
    single = values.ndim == 1
    values = np.atleast_2d(values)
    _check_boxes(values)
    (from_h, from_w), (to_h, to_w) = _size(from_size, "from_size"), _size(to_size, "to_size")
    scale = np.array([to_w / from_w, to_h / from_h, to_w / from_w, to_h / from_h])
    scaled = values * scale
    eps = 1e-9
    starts = np.floor(scaled[:, :2] + eps)
    ends = np.ceil(scaled[:, 2:] - eps)
    limit = np.array([to_w, to_h])
    starts = np.clip(starts, 0, limit - 1)
    ends = np.clip(np.maximum(ends, starts + 1), 1, limit)
    out = np.concatenate([starts, ends], axis=1).astype(np.int64)
    return out[0] if single else out


def pointing_game(heatmaps, boxes, tolerance=0):
    """Whether each map's maximum lies inside its evidence box.

    Parameters
    ----------
    heatmaps : array-like, shape (N, height, width)
        The maps.
    boxes : array-like, shape (N, 4)
        ``(x0, y0, x1, y1)`` per map, end-exclusive, in pixels of the map (see `scale_boxes`).
    tolerance : float
        Also count a maximum within this many pixels (Euclidean) of the box as a hit, as the
        original pointing game does for coarse maps (Zhang et al. 2016 used 15 pixels); 0 asks
        for the maximum inside the box.

    Returns
    -------
    ndarray of bool, shape (N,)
        True where the first maximum (in row-major order) is in ``[y0, y1) x [x0, x1)``, or
        within `tolerance` of it. A map without heat (all zero) or with NaN is a miss.
    """
    maps = _as_maps(heatmaps, "heatmaps")
    values = np.asarray(boxes, dtype=np.float64)
    if values.shape != (len(maps), 4):
        raise ValueError(f"boxes must have shape ({len(maps)}, 4), one (x0, y0, x1, y1) per map, got {values.shape}")
    _check_boxes(values)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of pixels >= 0, got {tolerance}")
    n, _, width = maps.shape
    peak = maps.reshape(n, -1).argmax(axis=1) if maps.size else np.zeros(n, np.int64)
    y, x = np.divmod(peak, width)
    dx = np.maximum.reduce([values[:, 0] - x, np.zeros(n), x - (values[:, 2] - 1)])
    dy = np.maximum.reduce([values[:, 1] - y, np.zeros(n), y - (values[:, 3] - 1)])
    valid = np.all(np.isfinite(maps), axis=(1, 2)) & (maps.max(axis=(1, 2), initial=0) > 0)
    return (np.hypot(dx, dy) <= tolerance) & valid


def _check_boxes(values):
    if values.ndim != 2 or values.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), (x0, y0, x1, y1) per row, got {values.shape}")
    bad = ~np.isfinite(values).all(axis=1) | (values[:, 0] >= values[:, 2]) | (values[:, 1] >= values[:, 3])
    if bad.any():
        raise ValueError(
            f"boxes must be finite (x0, y0, x1, y1) with x0 < x1 and y0 < y1 (end-exclusive); "
            f"bad rows {np.flatnonzero(bad).tolist()[:10]}: {values[bad][:3].tolist()}"
        )


def _size(size, name):
    pair = (size, size) if np.ndim(size) == 0 else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


# --------------------------------------------------------------------------------------------
# The validation set


def explain(model, images, labels, class_names, files, boxes=None, layer=LAST_CONV, seed=0, batch_size=32):
    """Grad-CAM and Grad-CAM++ of the predicted class for a set of images, with their checks.

    Parameters
    ----------
    model : keras.Model
        The trained classifier.
    images : array-like, shape (N, height, width, channels)
        Float images in [0, 1], or uint8 (divided by 255).
    labels : array-like of int, shape (N,)
        True class indices into `class_names`.
    class_names : sequence of str
        One name per class of the model (two for a sigmoid output).
    files : sequence of str, length N
        The image files, as recorded in the table and the arrays.
    boxes : array-like, shape (N, 4), optional
        Evidence boxes ``(x0, y0, x1, y1)``, end-exclusive, in pixels of the images (see
        `scale_boxes`); a row of NaN for an image without one. None: no pointing game.
    layer : str
        The convolutional layer the maps are computed on.
    seed : int
        Seed of the random pixels of `blur_mask_drop`.
    batch_size : int
        Images per batch.

    Returns
    -------
    arrays : dict
        The ``cams.npz`` contract, `CAMS_KEYS`: ``files`` (str), ``label`` and ``pred`` (int64
        class indices), ``prob`` (float32, the probability of the predicted class),
        ``gradcam`` and ``gradcam_pp`` (float32, (N, height, width) in [0, 1]) and ``layer``
        (a 0-d str array).
    table : DataFrame
        One row per image: ``file``, ``label`` and ``pred`` (class names), ``prob``,
        ``correct``, then per method m in `METHODS` ``drop_top_m`` and ``drop_random_m``
        (`blur_mask_drop`), ``border_fraction_m``, ``border_flag`` (either map flagged) and
        ``border_flag_m`` (`border_flags`), and ``pointing_m`` (`pointing_game`; a nullable
        boolean, missing without a box).
    """
    x = _as_images(images)
    n = len(x)
    names = [str(name) for name in class_names]
    classes = _class_count(model)
    if len(names) != classes:
        raise ValueError(f"class_names must name the model's {classes} classes, got {names}")
    labels = _class_indices(labels, n, classes)
    files = np.asarray(files, dtype=str).reshape(-1)
    if len(files) != n:
        raise ValueError(f"files must name the {n} images, got {len(files)} names")
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (n, 4):
            raise ValueError(f"boxes must have shape ({n}, 4), one (x0, y0, x1, y1) per image, got {boxes.shape}")
    gradcam, gradcam_pp, probabilities, pred = _cams(model, x, None, layer, batch_size)
    prob = probabilities[np.arange(n), pred]
    maps = {"gradcam": gradcam, "gradcam_pp": gradcam_pp}
    columns = {
        "file": files,
        "label": np.asarray(names, dtype=object)[labels],
        "pred": np.asarray(names, dtype=object)[pred],
        "prob": prob,
        "correct": pred == labels,
    }
    drops = _mask_drops(model, x, maps, pred, FAITHFUL_FRACTION, None, seed, batch_size)
    checks = {}
    for method, heat in maps.items():
        checks[method] = {
            "drop_top": drops["prob"] - drops[f"prob_{method}"],
            "drop_random": drops["prob"] - drops["prob_random"],
            "border_fraction": border_fraction(heat),
            "border_flag": border_flags(heat),
            "pointing": _pointing_column(heat, boxes),
        }
    for column in ("drop_top", "drop_random", "border_fraction"):
        for method in METHODS:
            columns[f"{column}_{method}"] = checks[method][column]
    columns["border_flag"] = np.logical_or.reduce([checks[method]["border_flag"] for method in METHODS])
    for column in ("border_flag", "pointing"):
        for method in METHODS:
            columns[f"{column}_{method}"] = checks[method][column]
    arrays = {
        "files": files,
        "label": labels.astype(np.int64),
        "pred": pred.astype(np.int64),
        "prob": prob.astype(np.float32),
        "gradcam": gradcam.astype(np.float32),
        "gradcam_pp": gradcam_pp.astype(np.float32),
        "layer": np.array(layer),
    }
    return arrays, pd.DataFrame(columns)


def _pointing_column(heat, boxes):
    values = pd.array([pd.NA] * len(heat), dtype="boolean")
    if boxes is not None:
        known = np.isfinite(boxes).all(axis=1)
        if known.any():
            values[known] = pointing_game(heat[known], boxes[known])
    return values


def write_cams(path, arrays):
    """Write the arrays of :func:`explain` to a ``.npz`` file, atomically.

    The file is written to a temporary file in the same folder and renamed into place; the
    folder is created if needed. Read it back with :func:`read_cams` or ``numpy.load``.

    Raises
    ------
    ValueError
        If `arrays` does not hold exactly `CAMS_KEYS` or their shapes disagree.
    """
    checked = _check_cams(arrays)
    save_npz(path, checked, compressed=True)


def read_cams(path):
    """Read a file written by :func:`write_cams` into a dict of `CAMS_KEYS` arrays."""
    with np.load(path, allow_pickle=False) as npz:
        missing = [key for key in CAMS_KEYS if key not in npz.files]
        if missing:
            raise ValueError(f"{path} is not a cams file: it lacks {', '.join(missing)}")
        return {key: npz[key] for key in CAMS_KEYS}


def _check_cams(arrays):
    keys = set(arrays)
    if keys != set(CAMS_KEYS):
        missing, extra = sorted(set(CAMS_KEYS) - keys), sorted(keys - set(CAMS_KEYS))
        raise ValueError(f"arrays must hold exactly {', '.join(CAMS_KEYS)}; missing {missing}, unexpected {extra}")
    out = {
        "files": np.asarray(arrays["files"], dtype=str).reshape(-1),
        "label": np.asarray(arrays["label"], dtype=np.int64).reshape(-1),
        "pred": np.asarray(arrays["pred"], dtype=np.int64).reshape(-1),
        "prob": np.asarray(arrays["prob"], dtype=np.float32).reshape(-1),
        "gradcam": np.asarray(arrays["gradcam"], dtype=np.float32),
        "gradcam_pp": np.asarray(arrays["gradcam_pp"], dtype=np.float32),
        "layer": np.array(str(np.asarray(arrays["layer"]))),
    }
    n = len(out["files"])
    if any(len(out[key]) != n for key in ("label", "pred", "prob")):
        raise ValueError(f"files, label, pred and prob must have one entry per image ({n})")
    for key in METHODS:
        if out[key].ndim != 3 or len(out[key]) != n:
            raise ValueError(f"{key} must have shape ({n}, height, width), got {out[key].shape}")
    if out["gradcam"].shape != out["gradcam_pp"].shape:
        raise ValueError(f"gradcam {out['gradcam'].shape} and gradcam_pp {out['gradcam_pp'].shape} differ in shape")
    return out


def summarise(table):
    """Per-method summary of an :func:`explain` table.

    Returns
    -------
    dict
        For each method in `METHODS`: ``n_images``; ``mean_drop_top`` and ``mean_drop_random``;
        ``faithful_fraction`` and ``n_faithful`` (images with ``drop_top > drop_random``);
        ``border_flag_rate`` and ``n_border_flagged``; ``pointing_accuracy`` (None without
        boxes), ``n_pointing`` (images with a box) and ``n_pointing_hits``. Plain Python numbers,
        None where undefined (no images), ready for JSON.
    """
    needed = [f"{column}_{method}" for method in METHODS for column in _FAITHFUL_COLUMNS]
    missing = [column for column in needed if column not in table.columns]
    if missing:
        raise ValueError(f"table lacks the explain() columns {', '.join(missing)}")
    summary = {}
    for method in METHODS:
        top = table[f"drop_top_{method}"].astype(float)
        random = table[f"drop_random_{method}"].astype(float)
        flags = table[f"border_flag_{method}"].astype(bool)
        pointing = table[f"pointing_{method}"].astype("boolean").dropna()
        faithful = top > random
        summary[method] = {
            "n_images": len(table),
            "mean_drop_top": _number(top.mean()),
            "mean_drop_random": _number(random.mean()),
            "faithful_fraction": _number(faithful.mean()),
            "n_faithful": int(faithful.sum()),
            "border_flag_rate": _number(flags.mean()),
            "n_border_flagged": int(flags.sum()),
            "pointing_accuracy": _number(pointing.astype(float).mean()),
            "n_pointing": len(pointing),
            "n_pointing_hits": int(pointing.sum()),
        }
    return summary


def _number(value):
    value = float(value)
    return None if np.isnan(value) else value


# --------------------------------------------------------------------------------------------
# Display


def overlay(image, heatmap, alpha=0.4, cmap="jet"):
    """Blend a heatmap, in colour, over an image.

    Parameters
    ----------
    image : array-like, shape (height, width), (height, width, 1) or (height, width, 3)
        Float in [0, 1], or uint8 (divided by 255). Gray images are shown in gray.
    heatmap : array-like, shape (h, w)
        Values in [0, 1]; resized bilinearly to the image when its size differs.
    alpha : float
        Weight of the coloured heatmap, in [0, 1].
    cmap : str
        A matplotlib colormap name.

    Returns
    -------
    ndarray of float32, shape (height, width, 3)
        ``(1 - alpha) * image + alpha * cmap(heatmap)``, in [0, 1].
    """
    rgb = _rgb(image)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (height, width), got shape {heat.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    try:
        colormap = colormaps[cmap]
    except KeyError:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}") from None
    if heat.shape != rgb.shape[:2]:
        heat = resize(heat, rgb.shape[:2], order=1, anti_aliasing=False)
    colour = colormap(np.clip(np.nan_to_num(heat), 0.0, 1.0))[..., :3]
    return np.clip((1 - alpha) * rgb + alpha * colour, 0.0, 1.0).astype(np.float32)


def _rgb(image):
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"image must be (height, width), (height, width, 1) or (height, width, 3), got {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    return np.clip(array.astype(np.float64), 0.0, 1.0)


def plot_gallery(images, arrays, class_names, png_path, per_group=3):
    """A figure of example maps, grouped by true class and by correct or wrong prediction.

    Each row is one image: the image, the Grad-CAM map and its overlay, the Grad-CAM++ map and
    its overlay; the image is titled with its true class, the predicted class and that class's
    probability. Up to `per_group` images per group, in file order; an empty group (such as no
    wrong predictions) gets one row that says so.

    Parameters
    ----------
    images : array-like, shape (N, height, width, channels)
        The images the arrays were computed on, in the same order.
    arrays : dict
        The arrays of :func:`explain` (or :func:`read_cams`).
    class_names : sequence of str
        Class names in label order.
    png_path : path-like
        The PNG to write, atomically (a temporary file in the same folder, then renamed).
    per_group : int
        Images shown per (class, correct/wrong) group, at least 1.
    """
    if isinstance(per_group, bool) or not isinstance(per_group, (int, np.integer)) or per_group < 1:
        raise ValueError(f"per_group must be a positive int, got {per_group!r}")
    cams = _check_cams({key: arrays[key] for key in CAMS_KEYS if key in arrays} | _defaults(arrays))
    x = np.asarray(images)
    if x.ndim != 4 or len(x) != len(cams["files"]):
        raise ValueError(f"images must be (N, height, width, channels) with N = {len(cams['files'])}, got {x.shape}")
    names = [str(name) for name in class_names]
    label, pred = cams["label"], cams["pred"]
    if len(label) and max(label.max(), pred.max()) >= len(names):
        raise ValueError(f"class_names {names} do not cover the labels and predictions")
    groups = []
    for index, name in enumerate(names):
        for correct in (True, False):
            chosen = np.flatnonzero((label == index) & ((pred == label) == correct))[:per_group]
            groups.append((f"{name}, {'correct' if correct else 'wrong'}", chosen))
    rows = sum(max(1, len(chosen)) for _, chosen in groups)
    headers = ("Grad-CAM", "Grad-CAM overlay", "Grad-CAM++", "Grad-CAM++ overlay")
    fig = Figure(figsize=(2.1 * (1 + len(headers)), 2.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, 1 + len(headers), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    row = 0
    for group, chosen in groups:
        if not len(chosen):
            axes[row, 0].set_ylabel(group, fontsize=8)
            axes[row, 2].text(0.5, 0.5, "no images in this group", ha="center", va="center", fontsize=9)
            for ax in axes[row]:
                ax.set_frame_on(False)
            row += 1
            continue
        for i in chosen:
            image = _rgb(x[i])
            axes[row, 0].imshow(image)
            axes[row, 0].set_ylabel(group, fontsize=8)
            axes[row, 0].set_title(
                f"true {names[label[i]]}, pred {names[pred[i]]}\np = {cams['prob'][i]:.2f}", fontsize=8
            )
            for offset, method in enumerate(METHODS):
                heat = cams[method][i]
                axes[row, 1 + 2 * offset].imshow(heat, cmap="jet", vmin=0.0, vmax=1.0)
                axes[row, 2 + 2 * offset].imshow(overlay(image, heat))
            for col, header in enumerate(headers, start=1):
                axes[row, col].set_title(header, fontsize=8)
            row += 1
    fig.suptitle("Grad-CAM and Grad-CAM++ of the predicted class", fontsize=10)
    write_atomic(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def _defaults(arrays):
    """`plot_gallery` needs no ``layer``; fill it when absent so `_check_cams` applies."""
    return {} if "layer" in arrays else {"layer": ""}


def evidence_boxes(evidence_path, files, image_size):
    """Evidence boxes of `files` (paths relative to the dataset root) at the model's size.

    Parameters
    ----------
    evidence_path : path-like
        ``evidence.csv`` in the dataset root (columns file, x0, y0, x1, y1, in pixels of the image
        file); the demo data has one.
    files : sequence of str
        The images, relative to the dataset root.
    image_size : (int, int)
        The (height, width) the model sees.

    Returns
    -------
    ndarray of float, shape (N, 4)
        Boxes in the model's pixels; NaN rows for images the file does not list.
    """
    root = Path(evidence_path).parent
    table = pd.read_csv(evidence_path).set_index("file")
    boxes = np.full((len(files), 4), np.nan)
    for i, name in enumerate(files):
        if name in table.index:
            original = skimage.io.imread(root / name).shape[:2]
            box = table.loc[name, ["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
            boxes[i] = scale_boxes(box, original, tuple(image_size))
    return boxes


def rectified_layer(model, layer=LAST_CONV):
    """The activation that rectifies `layer`'s output (through its batch norm), else `layer`.

    The lab's builders keep a convolution, its batch norm and its ReLU as separate layers, so
    ``Last_ConvLayer`` outputs pre-activation maps with negative values; Grad-CAM is defined on
    the rectified maps (what ``Conv2D(..., activation="relu", name="Last_ConvLayer")`` outputs),
    and Grad-CAM++'s weights assume non-negative activations.
    """
    names = [candidate.name for candidate in model.layers]
    if layer not in names:
        raise ValueError(f"model {model.name!r} has no layer {layer!r}")
    start = names.index(layer) + 1
    for candidate in model.layers[start : start + 2]:
        if isinstance(candidate, keras.layers.Activation | keras.layers.ReLU):
            return candidate.name
        if not isinstance(candidate, keras.layers.BatchNormalization):
            break
    return layer


def explain_run(model_path, cache_path, outputs, evidence=None, per_group=3, seed=0):
    """Lab task 10 for one trained run: maps, checks, gallery and tables of its validation images.

    Parameters
    ----------
    model_path : path-like
        The run's ``model.keras`` (a model with `LAST_CONV`).
    cache_path : path-like
        The dataset cache the run trained on (`cnnreg.data.prepare_cache`).
    outputs : mapping
        Paths keyed ``gallery`` (PNG), ``cams`` (npz), ``table`` (CSV, per image),
        ``summary`` (JSON) and ``html`` (both tables).
    evidence : path-like, optional
        The dataset's ``evidence.csv`` for the pointing game.
    per_group : int
        Gallery images per (true class, correct or wrong) group.
    seed : int
        Seed of the random pixels of the faithfulness test.

    Returns
    -------
    dict
        The summary written to ``outputs["summary"]``.
    """
    model = keras.models.load_model(model_path)
    cache = load_cache(cache_path)
    files = [str(f) for f in cache.files_val]
    boxes = evidence_boxes(evidence, files, cache.x_val.shape[1:3]) if evidence else None
    layer = rectified_layer(model)
    grad_cam(model, cache.x_val[:1], layer=layer)  # traces the compiled step: not part of the time
    started = time.perf_counter()
    grad_cam(model, cache.x_val, layer=layer)
    seconds_per_image = (time.perf_counter() - started) / len(files)
    arrays, table = explain(model, cache.x_val, cache.y_val, cache.classes, files, boxes=boxes, layer=layer, seed=seed)
    summary = summarise(table)
    summary["gradcam_ms_per_image"] = 1000 * seconds_per_image
    summary["validation_accuracy"] = float(np.mean(arrays["pred"] == arrays["label"]))
    write_cams(outputs["cams"], arrays)
    write_atomic(outputs["table"], lambda tmp: table.to_csv(tmp, index=False))
    write_text(outputs["summary"], json.dumps(summary, indent=2))
    plot_gallery(cache.x_val, arrays, cache.classes, outputs["gallery"], per_group=per_group)
    write_text(outputs["html"], _tables_page(summary, table))
    return summary


def _tables_page(summary, table):
    methods = pd.DataFrame({METHOD_TITLES[m]: summary[m] for m in METHODS})
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grad-CAM</title></head><body>"
        f"<h3>Per method (Grad-CAM {summary['gradcam_ms_per_image']:.1f} ms per image; validation accuracy "
        f"{summary['validation_accuracy']:.3f})</h3>"
        + methods.to_html(float_format="{:.3f}".format, na_rep="—")
        + "<h3>Per image</h3>"
        + table.to_html(index=False, float_format="{:.3f}".format, na_rep="—")
        + "</body></html>"
    )
