"""Training augmentation: ImageDataGenerator-style options on Keras 3 layers, applied to tf.data batches.

Keras 3 dropped ``ImageDataGenerator``, but its option names are what users know, so a run's
``augment`` speaks them: `cnnreg.parameters` declares and validates them (``AUGMENT_OPTIONS``,
``resolve_augmentation``), :func:`augmentation_layers` maps a setting onto Keras 3 preprocessing
layers and :func:`augment_dataset` applies those to the training batches of a ``tf.data`` pipeline. The lab's
task 5 galleries, which draw with the same layers, are in `cnnreg.galleries`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from cnnreg.parameters import resolve_augmentation
from cnnreg.randomness import AUGMENT, seed_states, stream_seed

__all__ = [
    "MultiplicativeBrightness",
    "augment_dataset",
    "augmentation_layers",
    "check_seed",
]

# Layers are stacked in ImageDataGenerator's order: geometry, then flips, then brightness.
_LAYER_ORDER = (
    "rotation_range",
    "width_shift_range",
    "height_shift_range",
    "shear_range",
    "zoom_range",
    "horizontal_flip",
    "vertical_flip",
    "brightness_range",
)
# Option values that leave every image as it is (no rotation, no flip, zoom or brightness factor 1).
_IDENTITY_VALUES = (0.0, False, [1.0, 1.0])
_DRAWS_PER_BATCH = 1024


@keras.saving.register_keras_serializable(package="cnnreg")
class MultiplicativeBrightness(keras.layers.Layer):
    """Multiply each image by a factor drawn from [lower, upper], then clip to [0, 1].

    ImageDataGenerator's ``brightness_range`` semantics, for images in [0, 1];
    ``keras.layers.RandomBrightness`` adds an offset instead. Only active with ``training=True``.

    Parameters
    ----------
    lower, upper : float
        Factor range, 0 <= lower <= upper.
    seed : int, optional
        Seed of the layer's random draws.
    """

    def __init__(self, lower, upper, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.lower, self.upper, self.seed = float(lower), float(upper), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        shape = (keras.ops.shape(images)[0],) + (1,) * (len(images.shape) - 1)
        factors = keras.random.uniform(shape, self.lower, self.upper, dtype=images.dtype, seed=self.seed_generator)
        return keras.ops.clip(images * factors, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lower": self.lower, "upper": self.upper, "seed": self.seed}


def _layer_seed(seed, name):
    """A seed per option, so that adding an option leaves the draws of the others as they were."""
    return int(np.random.SeedSequence([seed, _LAYER_ORDER.index(name)]).generate_state(1)[0])


def _zoom_factors(zoom):
    lower, upper = (1.0 - zoom, 1.0 + zoom) if np.ndim(zoom) == 0 else zoom
    return (lower - 1.0, upper - 1.0)


def _make_layer(name, value, fill, seed):
    """The Keras layer for one option, converted from ImageDataGenerator units."""
    geometric = {"fill_mode": fill["fill_mode"], "fill_value": fill["cval"], "seed": seed, "name": name}
    if name == "rotation_range":
        return keras.layers.RandomRotation(value / 360.0, **geometric)
    if name == "width_shift_range":
        return keras.layers.RandomTranslation(height_factor=0.0, width_factor=value, **geometric)
    if name == "height_shift_range":
        return keras.layers.RandomTranslation(height_factor=value, width_factor=0.0, **geometric)
    if name == "shear_range":
        return keras.layers.RandomShear(x_factor=math.sin(math.radians(value)), y_factor=0.0, **geometric)
    if name == "zoom_range":
        factors = _zoom_factors(value)
        return keras.layers.RandomZoom(height_factor=factors, width_factor=factors, **geometric)
    if name in ("horizontal_flip", "vertical_flip"):
        return keras.layers.RandomFlip(name.removesuffix("_flip"), seed=seed, name=name)
    return MultiplicativeBrightness(*value, seed=seed, name=name)  # brightness_range, the last in _LAYER_ORDER


def check_seed(seed):
    if not (isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def augmentation_layers(spec, seed):
    """Keras 3 preprocessing layers for an augmentation setting, one per option.

    Parameters
    ----------
    spec : {'none', 'lab'}, mapping or None
        As for `resolve_augmentation`.
    seed : int
        Non-negative; each layer draws from its own seed derived from it and the option's name.

    Returns
    -------
    keras.Sequential or None
        Layers named after their options, in ImageDataGenerator's order (rotation, shifts,
        shear, zoom, flips, brightness), for float images in [0, 1] of shape (B, H, W, C); None
        when no option changes images. Call with ``training=True``.

    Notes
    -----
    ImageDataGenerator units are converted to the Keras layers' as follows:

    ``rotation_range`` r (degrees)
        ``RandomRotation(factor=r / 360)``: Keras' factor is a fraction of a full turn; both draw
        the angle uniformly from [-r, r] degrees.
    ``width_shift_range`` w, ``height_shift_range`` h (fractions)
        ``RandomTranslation(height_factor=0, width_factor=w)`` and
        ``RandomTranslation(height_factor=h, width_factor=0)``: same units, drawn from [-w, w], [-h, h].
    ``shear_range`` s (degrees)
        ``RandomShear(x_factor=sin(s), y_factor=0)``. Keras' factor k moves each row sideways by
        k pixels per pixel of height; ImageDataGenerator's shear matrix ``[[1, -sin s], [0, cos s]]``
        moves it by sin s. Keras draws k from [-sin s, sin s] (ImageDataGenerator draws the angle),
        leaves out the cos s squeeze of the height (13 % at 30°), and shears about the top row
        rather than the centre, so a sheared image is also shifted sideways by k (H - 1) / 2.
    ``zoom_range`` z or [lower, upper]
        ``RandomZoom(height_factor=(lower - 1, upper - 1), width_factor=...)`` with
        [lower, upper] = [1 - z, 1 + z] for a float: both sample the input at coordinates scaled
        about the centre by the drawn zoom (ImageDataGenerator's value, Keras' 1 + factor), so
        > 1 zooms out; height and width zooms are drawn independently in both.
    ``horizontal_flip``, ``vertical_flip``
        ``RandomFlip('horizontal')``, ``RandomFlip('vertical')``: each mirrors half of the images.
    ``brightness_range`` [lower, upper]
        `MultiplicativeBrightness`: ImageDataGenerator multiplies by a factor from the range;
        ``RandomBrightness`` would add one.
    ``fill_mode``, ``cval``
        ``fill_mode`` and ``fill_value`` of every geometric layer (default nearest and 0, as in
        ImageDataGenerator); interpolation is bilinear, as ImageDataGenerator's order-1 spline.

    Unlike ImageDataGenerator, which resamples once for all geometric options together, each
    geometric layer resamples and fills in turn.
    """
    check_seed(seed)
    options = resolve_augmentation(spec)
    fill = {"fill_mode": options.get("fill_mode", "nearest"), "cval": options.get("cval", 0.0)}
    layers = [
        _make_layer(name, options[name], fill, _layer_seed(seed, name))
        for name in _LAYER_ORDER
        if name in options and options[name] not in _IDENTITY_VALUES
    ]
    return keras.Sequential(layers, name="augmentation") if layers else None


def augment_dataset(dataset, spec, seed, epochs):
    """Augment the image batches of a ``tf.data`` pipeline with `augmentation_layers`.

    Parameters
    ----------
    dataset : tf.data.Dataset
        ``(epoch, batch, images, labels)`` elements: the 0-based epoch and the batch's index in
        it (int64 scalars), images float32 in [0, 1] of shape (B, H, W, C), and their labels.
    spec : {'none', 'lab'}, mapping or None
        As for `resolve_augmentation`.
    seed : int
        The run's seed.
    epochs : int
        How many epochs the run has (every ``epoch`` is below it).

    Returns
    -------
    tf.data.Dataset
        ``(images, labels)`` batches: augmented images, or the images themselves when `spec` does
        not augment.

    Notes
    -----
    Before each batch, every layer's random state is set from (seed, epoch, batch), so a batch's
    draws do not depend on what was drawn before it: a run resumed at any epoch draws what the
    uninterrupted run drew, and each epoch draws new transforms. The map is sequential, since
    the layers' states are shared by all batches. Add ``prefetch`` after it.
    """
    augmenter = augmentation_layers(spec, seed)
    if augmenter is None:
        return dataset.map(lambda epoch, batch, images, labels: (images, labels))
    states = seed_states(augmenter)
    layer_seeds = tf.constant(
        [[stream_seed(seed, epoch, AUGMENT, k) for k in range(len(states))] for epoch in range(epochs)], tf.int64
    )

    def augment(epoch, batch, images, labels):
        for k, state in enumerate(states):
            # A layer advances its state's second element once per draw; 1024 draws per batch is ample.
            state.assign(tf.stack([layer_seeds[epoch, k], batch * _DRAWS_PER_BATCH]))
        return augmenter(images, training=True), labels

    return dataset.map(augment)
