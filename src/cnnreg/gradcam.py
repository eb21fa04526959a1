"""The Grad-CAM and Grad-CAM++ algorithms: class activation maps of a Keras classifier's images.

Only the computation lives here: the gradient model (inputs to the explained layer's feature maps
and the predictions), one small weighting unit per method (`CHANNEL_WEIGHTS`), the compiled
gradient step and its batching. What they are given is checked by :mod:`cnnreg.cam_inputs`; the
checks of the maps are in :mod:`cnnreg.cam_metrics`, the files and figures in
:mod:`cnnreg.cam_outputs`.

Images are float arrays in [0, 1] of shape (N, height, width, channels), as the models are
trained on; uint8 images are divided by 255. Models are Keras models built on a ``keras.Input``
(functional or Sequential) with one output: two or more softmax probabilities, or one sigmoid
probability of class 1. Everything runs eagerly under TensorFlow 2 (a ``tf.function``-compiled
gradient step); no TF1 graph-mode APIs are used.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from cnnreg.cam_inputs import (
    as_images,
    check_class_values,
    check_input_shape,
    class_count,
    class_indices,
    feature_layer,
    model_graph,
)
from cnnreg.models import LAST_CONV

__all__ = [
    "CHANNEL_WEIGHTS",
    "METHODS",
    "class_scores",
    "grad_cam",
    "grad_cam_pp_weights",
    "grad_cam_weights",
    "grad_cams",
    "gradient_model",
    "predict",
]

# model -> {key: compiled function}; the functions hold the model's layers but not the model, so
# the entry goes when the model does.
_STEPS = weakref.WeakKeyDictionary()


def grad_cam_weights(features, gradients):
    """Grad-CAM's channel weights (Selvaraju et al. 2017): the gradients, average-pooled.

    ``w[k] = mean_ij g[i, j, k]`` for feature maps ``A`` of shape (N, h, w, K) and the gradient
    ``g = dS/dA`` of the class score ``S``; returns shape (N, K). `features` is unused: every
    method's weights take the same arguments.
    """
    return tf.reduce_mean(gradients, axis=(1, 2))


def grad_cam_pp_weights(features, gradients):
    """Grad-CAM++'s channel weights (Chattopadhay et al. 2018, "Grad-CAM++", WACV, eq. 19).

    ``w[k] = sum_ij alpha[i, j, k] * relu(g[i, j, k])`` with
    ``alpha = g**2 / (2 * g**2 + sum_ij A[i, j, k] * g**3)``: the paper's eq. 19, its closed form
    for the exponential of the score, ``exp(S)``, whose second and third derivatives are the
    second and third powers of the gradient ``g = dS/dA`` (``exp(S)`` itself is a positive factor
    per image that the normalisation of the map removes). ``alpha`` is 0 where its denominator
    is. Returns shape (N, K).
    """
    squared = tf.square(gradients)
    denominator = 2.0 * squared + tf.reduce_sum(features, axis=(1, 2), keepdims=True) * squared * gradients
    alpha = tf.math.divide_no_nan(squared, denominator)
    return tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=(1, 2))


#: Each method's channel weights, keyed by the name used in column names (``drop_top_gradcam``, ...).
CHANNEL_WEIGHTS = {"gradcam": grad_cam_weights, "gradcam_pp": grad_cam_pp_weights}
#: The methods, in the order of every table and file.
METHODS = tuple(CHANNEL_WEIGHTS)


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

    Raises
    ------
    ValueError
        If the model has no defined input or output, has several, or has no 4-D layer `layer`
        (the message lists the convolutional layers it does have).
    """
    inputs, outputs = model_graph(model)
    return keras.Model(inputs[0], [feature_layer(model, layer).output, outputs[0]], name=f"{model.name}_gradients")


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
        check_class_values(np.asarray(class_index), max(units, 2), "class_index")
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
    """Grad-CAM (Selvaraju et al. 2017) or Grad-CAM++ (Chattopadhay et al. 2018) heatmaps.

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
        The layer whose feature maps are weighed: the one given is the one used.
    batch_size : int
        Images per gradient step.
    plus_plus : bool
        Grad-CAM++ (`grad_cam_pp_weights`) instead of Grad-CAM (`grad_cam_weights`).

    Returns
    -------
    heatmaps : ndarray of float32, shape (N, height, width)
        One map per image at the input resolution, in [0, 1]: ``relu(sum_k w[k] * A[..., k])``
        upsampled bilinearly and divided by its maximum; a map without positive evidence is
        all zero.
    predictions : ndarray of float32, shape (N, classes)
        Class probabilities, two columns ``[1 - p, p]`` for a sigmoid output.

    Notes
    -----
    When the model ends in a Dense layer with a sigmoid or softmax activation, the score ``S``
    is the class's log-odds, computed from that layer's input (see `class_scores`); otherwise the
    class's probability. For a Grad-CAM map the two differ only by the positive factor
    ``p * (1 - p)``, but the gradient of a probability vanishes when it rounds to 1 in float32
    (a sigmoid logit above about 17), which would leave confident images with empty maps.
    The log-odds is also the linear pre-activation score that Grad-CAM++ assumes.
    """
    maps, predictions, _ = grad_cams(model, images, class_index, layer, batch_size)
    return maps["gradcam_pp" if plus_plus else "gradcam"], predictions


def grad_cams(model, images, class_index=None, layer=LAST_CONV, batch_size=32):
    """Every method's maps in one gradient pass (see `grad_cam`).

    Returns
    -------
    maps : dict
        Method name (`METHODS`) to its heatmaps, float32 of shape (N, height, width).
    predictions : ndarray of float32, shape (N, classes)
    class_index : ndarray of int64, shape (N,)
        The class each map explains.
    """
    x = as_images(images)
    check_input_shape(model, x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    classes = class_count(model)
    index = class_indices(class_index, len(x), classes, allow_none=True)
    step = _compiled(model, ("cam", layer), lambda: _cam_step(model, layer))
    if not len(x):
        empty = np.zeros((0, *x.shape[1:3]), np.float32)
        return {m: empty.copy() for m in METHODS}, np.zeros((0, classes), np.float32), np.zeros(0, np.int64)
    starts = range(0, len(x), batch_size)
    batches = [step(tf.constant(x[i : i + batch_size]), tf.constant(index[i : i + batch_size])) for i in starts]
    maps = {m: np.concatenate([batch[0][m].numpy() for batch in batches]) for m in METHODS}
    predictions, chosen = (np.concatenate([batch[part].numpy() for batch in batches]) for part in (1, 2))
    return maps, predictions, chosen


def predict(model, images, batch_size=32):
    """Class probabilities of float images in inference mode, two columns for a sigmoid output."""
    if not len(images):
        return np.zeros((0, class_count(model)), np.float32)
    forward = _compiled(model, "forward", lambda: _forward(model))
    return np.concatenate(
        [forward(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    )


def _compiled(model, key, build):
    """The compiled function `key` of `model`, built once per model."""
    functions = _STEPS.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]


def _forward(model):
    inputs, outputs = model_graph(model)
    graph = keras.Model(inputs[0], outputs[0], name=f"{model.name}_forward")

    @tf.function(input_signature=[tf.TensorSpec((None, *inputs[0].shape[1:]), tf.float32)], autograph=False)
    def forward(images):
        return tf.cast(_two_columns(graph(images, training=False)), tf.float32)

    return forward


def _cam_step(model, layer):
    """A compiled step: images and classes (-1: predicted) to every method's maps, probabilities and classes."""
    inputs, outputs = model_graph(model)
    head = _logit_head(model, outputs[0])
    # The gradient model, stopped before the head when its score is taken from logits.
    last = outputs[0] if head is None else head.input
    graph = keras.Model(inputs[0], [feature_layer(model, layer).output, last], name=f"{model.name}_cam")
    spec = tf.TensorSpec((None, *inputs[0].shape[1:]), tf.float32)

    # No tensor-dependent Python control flow, so no AutoGraph (which also warns on closures).
    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int64)], autograph=False)
    def step(images, class_index):
        # 1. Record the forward pass: the layer's feature maps A and the explained class's score S.
        with tf.GradientTape() as tape:
            features, last_output = graph(images, training=False)
            scores_in, probabilities = last_output, last_output
            if head is not None:
                scores_in = tf.matmul(last_output, tf.convert_to_tensor(head.kernel))
                if head.use_bias:
                    scores_in = scores_in + tf.convert_to_tensor(head.bias)
                probabilities = head.activation(scores_in)
            probabilities = tf.cast(_two_columns(probabilities), tf.float32)
            chosen = tf.where(class_index < 0, tf.argmax(probabilities, axis=-1), class_index)
            score = class_scores(scores_in, chosen, from_logits=head is not None)
        # 2. The gradient of the score with respect to the feature maps, g = dS/dA.
        gradients = tf.cast(tape.gradient(score, features), tf.float32)
        features = tf.cast(features, tf.float32)
        maps = {}
        for method, weights in CHANNEL_WEIGHTS.items():
            # 3. One weight per channel, pooled from the gradients as the method says.
            # 4. The channels' weighted sum, rectified: only evidence for the class counts.
            heat = tf.nn.relu(tf.einsum("nijk,nk->nij", features, weights(features, gradients)))
            # 5. Upsampled to the image and divided by its maximum.
            maps[method] = _upsample(heat, tf.shape(images)[1:3])
        return maps, probabilities, chosen

    return step


def _upsample(maps, size):
    """Bilinear upsampling to `size`, then each map divided by its maximum (all-zero stays zero)."""
    maps = tf.image.resize(maps[..., tf.newaxis], size, method="bilinear")[..., 0]
    peak = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    return tf.clip_by_value(tf.math.divide_no_nan(maps, peak), 0.0, 1.0)


def _two_columns(probabilities):
    if probabilities.shape[-1] == 1:
        return tf.concat([1.0 - probabilities, probabilities], axis=-1)
    return probabilities


def _logit_head(model, output):
    """The final Dense layer when it applies a sigmoid (1 unit) or softmax (2+ units), else None."""
    head = model.layers[-1] if model.layers else None
    if not isinstance(head, keras.layers.Dense) or getattr(head, "output", None) is not output:
        return None
    activation = getattr(head.activation, "__name__", "")
    if (activation, output.shape[-1] == 1) in (("sigmoid", True), ("softmax", False)):
        return head
    return None
