"""Lab task 5's augmentation galleries: scikit-image panels (5a), training-augmentation draws (5b), their files.

:func:`skimage_panels` rescales, rotates and stretches the contrast of one image with
scikit-image (5a); :func:`generator_panels` draws random samples from the training layers
(`cnnreg.augment.augmentation_layers`), one row per option (5b). :func:`plot_skimage_gallery` and
:func:`plot_generator_gallery` draw them and save the figure's data beside it;
:func:`write_galleries` makes both for one dataset.
"""

import json
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import skimage.io
from matplotlib.figure import Figure
from skimage.exposure import rescale_intensity
from skimage.transform import rescale, rotate
from skimage.util import img_as_float

from cnnreg.atomic import write_atomic
from cnnreg.augment import augmentation_layers, check_seed
from cnnreg.parameters import FILL_MODES, is_finite_real, is_pair, resolve_augmentation

__all__ = [
    "FILL_ROW_TRANSFORM",
    "GALLERY_OPTIONS",
    "generator_panels",
    "plot_generator_gallery",
    "plot_skimage_gallery",
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
    check_seed(seed)
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
        parameter (compact JSON), height, width, channels, the image's smallest and largest value
        (``min``, ``max``, in [0, 1]) and title.
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
                "min": float(panel["image"].min()),
                "max": float(panel["image"].max()),
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
        row) and ``rows``: per row its title ``row``, ``spec``, the samples' ``height`` and
        ``width``, and their smallest and largest value (``min``, ``max``, in [0, 1]).
    title : str
        Figure title.
    seed : int
        The seed the samples were drawn with, recorded in the JSON.
    """
    samples = len(rows[0]["samples"])
    record = {"seed": seed, "samples": samples, "rows": [_generator_record(row) for row in rows]}
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


def _generator_record(row):
    drawn = np.stack(row["samples"])
    height, width = drawn.shape[1:3]
    extremes = {"min": float(drawn.min()), "max": float(drawn.max())}
    return {"row": row["row"], "spec": row["spec"], "height": int(height), "width": int(width), **extremes}


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
