"""Image augmentation: ImageDataGenerator-style options on Keras 3 layers, and the lab's galleries.

Keras 3 dropped ``ImageDataGenerator``, but its option names are what users know, so a run's
``augment`` speaks them: :data:`AUGMENT_OPTIONS` lists them, :func:`resolve_augmentation`
validates a setting, :func:`augmentation_layers` maps it onto Keras 3 preprocessing layers and
:func:`augment_dataset` applies those to the training batches of a ``tf.data`` pipeline.

Lab task 5 shows what augmentation does: :func:`skimage_panels` rescales, rotates and stretches
the contrast of one image with scikit-image (5a), :func:`generator_panels` draws random samples
from the training layers, one row per option (5b). :func:`plot_skimage_gallery` and
:func:`plot_generator_gallery` draw them and save the figure's data beside it.
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import skimage.io
import tensorflow as tf
from matplotlib.figure import Figure
from skimage.exposure import rescale_intensity
from skimage.transform import rescale, rotate
from skimage.util import img_as_float

from cnnreg.atomic import write_atomic
from cnnreg.parameters import (
    AUGMENT_OPTIONS,
    FILL_MODES,
    LAB_AUGMENTATION,
    is_finite_real,
    is_pair,
    resolve_augmentation,
)
from cnnreg.randomness import AUGMENT, seed_states, stream_seed

__all__ = [
    "AUGMENT_OPTIONS",
    "FILL_MODES",
    "FILL_ROW_TRANSFORM",
    "GALLERY_OPTIONS",
    "LAB_AUGMENTATION",
    "MultiplicativeBrightness",
    "augment_dataset",
    "augmentation_layers",
    "generator_panels",
    "plot_generator_gallery",
    "plot_skimage_gallery",
    "resolve_augmentation",
    "skimage_panels",
    "write_galleries",
]

#: The transform each fill-mode row of the generator gallery applies, strong enough for the fill to show.
FILL_ROW_TRANSFORM = {"rotation_range": 40, "width_shift_range": 0.3}

#: The generator gallery's default rows: one per option, and one per fill mode (with `FILL_ROW_TRANSFORM`).
GALLERY_OPTIONS = {
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 30,
    "zoom_range": 0.3,
    "horizontal_flip": True,
    "vertical_flip": True,
    "brightness_range": [0.5, 1.5],
    "fill_mode": list(FILL_MODES),
}

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


def _check_seed(seed):
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
    _check_seed(seed)
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


def _unit_float(image):
    """A uint8 or [0, 1] float image of shape (H, W) or (H, W, C) as float64 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (height, width) or (height, width, channels), got {image.shape}")
    if image.dtype == np.uint8:
        return img_as_float(image)
    if not (np.issubdtype(image.dtype, np.floating) and np.all((image >= 0) & (image <= 1))):
        raise ValueError(f"image must be uint8 or float in [0, 1], got {image.dtype} in [{image.min()}, {image.max()}]")
    return image.astype(np.float64)


def _is_sequence(values):
    return isinstance(values, list | tuple | np.ndarray)


def _plain(value):
    """A NumPy scalar as the Python number it holds (for the panels' JSON-ready parameters)."""
    return value.item() if isinstance(value, np.generic) else value


def _numbers(name, values, valid, expected):
    if not (_is_sequence(values) and all(is_finite_real(v) and valid(v) for v in values)):
        raise ValueError(f"{name} must be a sequence of {expected}, got {values!r}")
    return [_plain(v) for v in values]


def _percentile_pairs(percentiles):
    if not (_is_sequence(percentiles) and all(is_pair(p) and 0 <= p[0] < p[1] <= 100 for p in percentiles)):
        raise ValueError(f"percentiles must be (low, high) pairs with 0 <= low < high <= 100, got {percentiles!r}")
    return [(_plain(low), _plain(high)) for low, high in percentiles]


def _shape_label(image):
    return f"{image.shape[0]}×{image.shape[1]}"


def _panel(operation, parameters, label, image):
    return {
        "operation": operation,
        "parameters": parameters,
        "title": f"{label} → {_shape_label(image)}",
        "shape": image.shape,
        "image": image,
    }


def skimage_panels(image, scales=(0.2, 0.8), angles=(30, -30, -70), percentiles=((2, 98), (10, 90))):
    """The lab's scikit-image demonstrations (task 5a) on one image.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        uint8, or float in [0, 1].
    scales : sequence of float
        Factors (> 0) for :func:`skimage.transform.rescale`; channels are kept.
    angles : sequence of float
        Angles in degrees (counter-clockwise) for :func:`skimage.transform.rotate`, each shown
        with ``resize=False`` (same shape, corners cut) and ``resize=True`` (the shape grows to
        hold the whole image).
    percentiles : sequence of (float, float)
        (low, high) percentile pairs, 0 <= low < high <= 100: the image's values at these
        percentiles are stretched to [0, 1] with :func:`skimage.exposure.rescale_intensity`.

    Returns
    -------
    list of dict
        One per panel, the original first, then rescale, rotate and rescale_intensity panels in
        parameter order: ``operation``, ``parameters`` (dict), ``title`` (parameters and
        resulting height×width), ``shape`` (tuple) and ``image`` (float in [0, 1]).

    Raises
    ------
    ValueError
        If the image is not uint8 or float in [0, 1] of shape (H, W) or (H, W, C), a scale is not
        positive, an angle is not a number or a percentile pair is out of order or range.
    """
    image = _unit_float(image)
    scales = _numbers("scales", scales, lambda v: v > 0, "positive numbers")
    angles = _numbers("angles", angles, lambda v: True, "numbers (degrees)")
    pairs = _percentile_pairs(percentiles)
    channel_axis = -1 if image.ndim == 3 else None
    panels = [_panel("original", {}, "original", image)]
    panels += [
        _panel("rescale", {"scale": scale}, f"rescale {scale}", rescale(image, scale, channel_axis=channel_axis))
        for scale in scales
    ]
    panels += [
        _panel(
            "rotate",
            {"angle": angle, "resize": resize},
            f"rotate {angle}°, resize={resize}",
            rotate(image, angle, resize=resize),
        )
        for angle in angles
        for resize in (False, True)
    ]
    panels += [
        _panel(
            "rescale_intensity",
            {"low": low, "high": high},
            f"rescale_intensity p{low}–p{high}",
            rescale_intensity(image, in_range=tuple(np.percentile(image, (low, high))), out_range=(0.0, 1.0)),
        )
        for low, high in pairs
    ]
    return panels


def _gallery_rows(options):
    """(row title, augmentation spec) per option value; fill modes and cval use `FILL_ROW_TRANSFORM`."""
    if not isinstance(options, Mapping) or not options:
        raise ValueError(f"options must be a non-empty mapping of augmentation option → value, got {options!r}")
    rows = []
    for name, value in options.items():
        values = value if name == "fill_mode" and isinstance(value, list | tuple) else [value]
        for each in values:
            if name == "fill_mode":
                spec = {**FILL_ROW_TRANSFORM, "fill_mode": each}
            elif name == "cval":
                spec = {**FILL_ROW_TRANSFORM, "fill_mode": "constant", "cval": each}
            else:
                spec = {name: each}
            rows.append((f"{name}={each}", resolve_augmentation(spec)))
    return rows


def generator_panels(image, options, samples=4, seed=0):
    """Random draws of the training augmentation, one row per option value (lab task 5b).

    Parameters
    ----------
    image : ndarray, shape (H, W, C) or (H, W)
        uint8 (or float in [0, 1]); rescaled to [0, 1] as for training.
    options : mapping
        `AUGMENT_OPTIONS` name → value, e.g. `GALLERY_OPTIONS`. Each option makes one row that
        applies only it (other options at their defaults). ``fill_mode`` may be a list, for one
        row per fill mode; fill-mode and ``cval`` rows apply `FILL_ROW_TRANSFORM` too, so that
        the fill shows (``cval`` with fill mode constant).
    samples : int
        Random draws per row.
    seed : int
        Seed of every row's `augmentation_layers`.

    Returns
    -------
    list of dict
        One per row: ``row`` (title, e.g. ``'rotation_range=40'``), ``spec`` (the resolved
        augmentation), ``original`` (the image in [0, 1]) and ``samples`` (list of float32
        images, shaped as `image`), drawn by exactly the layers training uses.

    Raises
    ------
    ValueError
        If the image, an option, `samples` or `seed` is invalid.
    """
    original = _unit_float(image).astype(np.float32)
    if not (isinstance(samples, int) and not isinstance(samples, bool) and samples > 0):
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    _check_seed(seed)
    batch = np.repeat(np.atleast_3d(original)[np.newaxis], samples, axis=0)
    rows = []
    for title, spec in _gallery_rows(options):
        augmenter = augmentation_layers(spec, seed)
        drawn = batch if augmenter is None else keras.ops.convert_to_numpy(augmenter(batch, training=True))
        rows.append(
            {"row": title, "spec": spec, "original": original, "samples": list(drawn.reshape(-1, *original.shape))}
        )
    return rows


def _save_figure(fig, png_path):
    write_atomic(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def _show(ax, image):
    plane = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    ax.imshow(np.clip(plane, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")


def plot_skimage_gallery(panels, png_path, csv_path, title=""):
    """Draw `skimage_panels` (one figure row per operation) and save their table beside the PNG.

    Every axis spans the largest panel in pixels, so the images show at their true relative
    sizes; tick labels give pixel coordinates.

    Parameters
    ----------
    panels : list of dict
        `skimage_panels` output.
    png_path, csv_path : path-like
        Figure and table to write (atomically). The CSV has one row per panel: operation,
        parameter (compact JSON), height, width, channels, title.
    title : str
        Figure title.
    """
    table = pd.DataFrame(
        [
            {
                "operation": panel["operation"],
                "parameter": json.dumps(panel["parameters"], separators=(",", ":")),
                "height": panel["shape"][0],
                "width": panel["shape"][1],
                "channels": panel["shape"][2] if len(panel["shape"]) == 3 else 1,
                "title": panel["title"],
            }
            for panel in panels
        ]
    )
    operations = list(dict.fromkeys(table["operation"]))
    columns = int(table["operation"].value_counts().max())
    height, width = int(table["height"].max()), int(table["width"].max())
    fig = Figure(figsize=(2.6 * columns, 2.6 * len(operations) + 0.4), layout="constrained")
    axes = fig.subplots(len(operations), columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    slots = {operation: iter(axes[row]) for row, operation in enumerate(operations)}
    for panel in panels:
        ax = next(slots[panel["operation"]])
        ax.set_axis_on()
        _show(ax, panel["image"])
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(panel["title"], fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(title)
    write_atomic(csv_path, lambda tmp: table.to_csv(tmp, index=False))
    _save_figure(fig, png_path)


def plot_generator_gallery(rows, png_path, json_path, title="", seed=0):
    """Draw `generator_panels` (the original, then the samples, per row) and save the rows as JSON.

    Parameters
    ----------
    rows : list of dict
        `generator_panels` output.
    png_path, json_path : path-like
        Figure and JSON to write (atomically). The JSON holds ``seed``, ``samples`` (draws per
        row) and ``rows`` (``{"row": title, "spec": spec}`` per row).
    title : str
        Figure title.
    seed : int
        The seed the samples were drawn with, recorded in the JSON.
    """
    samples = len(rows[0]["samples"])
    record = {"seed": seed, "samples": samples, "rows": [{"row": row["row"], "spec": row["spec"]} for row in rows]}
    fig = Figure(figsize=(1.9 * (samples + 1), 1.9 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), samples + 1, squeeze=False)
    for axes_row, row in zip(axes, rows, strict=True):
        for ax, image in zip(axes_row, [row["original"], *row["samples"]], strict=True):
            _show(ax, image)
            ax.set_xticks([])
            ax.set_yticks([])
        axes_row[0].set_ylabel(row["row"], fontsize=8)
    for column, ax in enumerate(axes[0]):
        ax.set_title("original" if column == 0 else f"sample {column}", fontsize=8)
    fig.suptitle(title)
    write_atomic(json_path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    _save_figure(fig, png_path)


def write_galleries(image_path, settings, outputs, dataset):
    """Lab task 5 for one dataset: both galleries of one image, each with its data.

    Parameters
    ----------
    image_path : path-like
        The image to transform.
    settings : mapping
        The config's ``augmentation_gallery``: ``scales``, ``angles``, ``percentiles`` (5a),
        ``generator`` options, ``samples`` and ``seed`` (5b); absent keys take the defaults of
        `skimage_panels` and `GALLERY_OPTIONS`.
    outputs : mapping
        Paths keyed ``skimage``, ``skimage_csv``, ``generator``, ``generator_json``.
    dataset : str
        Dataset name, for the figure titles.
    """
    image = skimage.io.imread(image_path)
    demo = {k: settings[k] for k in ("scales", "angles", "percentiles") if k in settings}
    plot_skimage_gallery(
        skimage_panels(image, **demo),
        outputs["skimage"],
        outputs["skimage_csv"],
        title=f"{dataset}: scikit-image transforms of {Path(image_path).name}",
    )
    seed = settings.get("seed", 0)
    rows = generator_panels(
        image, settings.get("generator", GALLERY_OPTIONS), samples=settings.get("samples", 4), seed=seed
    )
    plot_generator_gallery(
        rows,
        outputs["generator"],
        outputs["generator_json"],
        title=f"{dataset}: training augmentation draws of {Path(image_path).name}",
        seed=seed,
    )
