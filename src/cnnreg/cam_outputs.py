"""A run's Grad-CAM outputs: the per-image table and arrays, ``cams.npz``, evidence boxes, the gallery.

:func:`explain` computes both maps (:mod:`cnnreg.gradcam`) of a set of images and their checks
(:mod:`cnnreg.cam_metrics`) as a per-image table and the ``cams.npz`` arrays, which
:func:`write_cams` writes and :func:`read_cams` reads back; :func:`evidence_boxes` reads the
dataset's evidence boxes for the pointing game, :func:`overlay` and :func:`plot_gallery` draw the
maps, and :func:`explain_run` writes every file of one trained run (lab task 10).
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import PIL.Image
from matplotlib import colormaps
from matplotlib.figure import Figure
from skimage.transform import resize

from cnnreg.atomic import save_npz, write_atomic, write_text
from cnnreg.cam_inputs import as_images, class_count, class_indices
from cnnreg.cam_metrics import (
    FAITHFUL_FRACTION,
    border_flags,
    border_fraction,
    mask_drops,
    pointing_game,
    randomised_weights,
    scale_boxes,
    standard_tolerance,
    summarise,
)
from cnnreg.data import load_cache
from cnnreg.gradcam import METHODS, grad_cams
from cnnreg.models import LAST_CONV
from cnnreg.presentation import gradcam_page
from cnnreg.synthetic import MARKER_COLUMNS

__all__ = [
    "CAMS_KEYS",
    "evidence_boxes",
    "explain",
    "explain_run",
    "overlay",
    "plot_gallery",
    "read_cams",
    "sanity_table",
    "write_cams",
]

#: The evidence box's columns in ``evidence.csv``; the marker's are `cnnreg.synthetic.MARKER_COLUMNS`.
BOX_COLUMNS = ("x0", "y0", "x1", "y1")

#: The arrays of a ``cams.npz`` file, as :func:`explain` returns them and :func:`write_cams` writes them.
CAMS_KEYS = ("files", "label", "pred", "prob", "gradcam", "gradcam_pp", "layer")


def explain(
    model, images, labels, class_names, files, boxes=None, layer=LAST_CONV, seed=0, batch_size=32, markers=None
):
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
        The layer the maps are computed on, recorded as ``layer``.
    seed : int
        Seed of the random pixels of `blur_mask_drop`.
    batch_size : int
        Images per batch.
    markers : array-like, shape (N, 4), optional
        Marker boxes (such as a scanner label's), as `boxes`; None: the marker check falls back
        on the border band (`cnnreg.cam_metrics.summarise`).

    Returns
    -------
    arrays : dict
        The ``cams.npz`` contract, `CAMS_KEYS`: ``files`` (str), ``label`` and ``pred`` (int64
        class indices), ``prob`` (float32, the probability of the predicted class),
        ``gradcam`` and ``gradcam_pp`` (float32, (N, height, width) in [0, 1]) and ``layer``
        (a 0-d str array).
    table : DataFrame
        One row per image: ``file``, ``label`` and ``pred`` (class names), ``prob``,
        ``correct``, then per method m in `METHODS` ``drop_top_m`` and ``drop_shuffled_m``
        (`blur_mask_drop`), ``border_fraction_m``, ``border_flag`` (either map flagged) and
        ``border_flag_m`` (`border_flags`), ``pointing_m`` (`pointing_game` with the
        `standard_tolerance`) and ``pointing_strict_m`` (the maximum inside the box), and
        ``marker_m`` (the maximum within the standard tolerance of the marker box); the last
        three nullable booleans, missing without a box.
    """
    x = as_images(images)
    inputs = _explain_inputs(model, x, labels, class_names, files, boxes, markers)
    computed = grad_cams(model, x, layer=layer, batch_size=batch_size)
    return _tabulate(model, x, inputs, computed, layer, seed, batch_size)


def _explain_inputs(model, x, labels, class_names, files, boxes, markers=None):
    """The labels, class names, files and boxes of `explain`, checked against the images and model."""
    n = len(x)
    names = [str(name) for name in class_names]
    classes = class_count(model)
    if len(names) != classes:
        raise ValueError(f"class_names must name the model's {classes} classes, got {names}")
    files = np.asarray(files, dtype=str).reshape(-1)
    if len(files) != n:
        raise ValueError(f"files must name the {n} images, got {len(files)} names")
    checked = {}
    for name, values in (("boxes", boxes), ("markers", markers)):
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (n, 4):
                raise ValueError(f"{name} must have shape ({n}, 4), one (x0, y0, x1, y1) per image, got {values.shape}")
        checked[name] = values
    return {"labels": class_indices(labels, n, classes), "names": names, "files": files, **checked}


def _tabulate(model, x, inputs, computed, layer, seed, batch_size=32):
    """`explain`'s arrays and table from the maps `computed` by `grad_cams` on `x`."""
    maps, probabilities, pred = computed
    labels, names = inputs["labels"], np.asarray(inputs["names"], dtype=object)
    prob = probabilities[np.arange(len(x)), pred]
    columns = dict(file=inputs["files"], label=names[labels], pred=names[pred], prob=prob, correct=pred == labels)
    checks = _checks(model, x, maps, pred, inputs, seed, batch_size)
    for column in ("drop_top", "drop_shuffled", "border_fraction"):
        for method in METHODS:
            columns[f"{column}_{method}"] = checks[method][column]
    columns["border_flag"] = np.logical_or.reduce([checks[method]["border_flag"] for method in METHODS])
    for column in ("border_flag", "pointing", "pointing_strict", "marker"):
        for method in METHODS:
            columns[f"{column}_{method}"] = checks[method][column]
    arrays = {
        "files": inputs["files"],
        "label": labels.astype(np.int64),
        "pred": pred.astype(np.int64),
        "prob": prob.astype(np.float32),
        **{method: maps[method].astype(np.float32) for method in METHODS},
        "layer": np.array(layer),
    }
    return arrays, pd.DataFrame(columns)


def _checks(model, x, maps, pred, inputs, seed, batch_size):
    """Per method, the per-image checks of `maps`; the drops are `model`'s, for the classes `pred`."""
    drops = mask_drops(model, x, maps, pred, FAITHFUL_FRACTION, None, seed, batch_size)
    tolerance = standard_tolerance(x.shape[1:3])
    return {
        method: {
            "drop_top": drops["prob"] - drops[f"prob_{method}"],
            "drop_shuffled": drops["prob"] - drops[f"prob_shuffled_{method}"],
            "border_fraction": border_fraction(heat),
            "border_flag": border_flags(heat),
            "pointing": _pointing_column(heat, inputs["boxes"], tolerance),
            "pointing_strict": _pointing_column(heat, inputs["boxes"], 0),
            "marker": _pointing_column(heat, inputs["markers"], tolerance),
        }
        for method, heat in maps.items()
    }


def sanity_table(model, images, table, inputs, layer=LAST_CONV, seed=0, batch_size=32):
    """The per-image checks of a randomised-weights model's maps (`randomised_weights`).

    The maps are of `model`'s architecture with fresh weights, for the class `model` predicts
    (the ``pred`` of `table`, its per-image table); the drops are `model`'s, so the faithfulness
    check asks whether blurring the hottest pixels of maps that know nothing of the training
    drops the trained model's probability. Returns a table with `table`'s file, label, pred and
    correct columns and the check columns, ready for `summarise`.
    """
    names = list(inputs["names"])
    pred = np.array([names.index(name) for name in table["pred"]], np.int64)
    random = randomised_weights(model, seed)
    maps, _, _ = grad_cams(random, images, class_index=pred, layer=layer, batch_size=batch_size)
    checks = _checks(model, images, maps, pred, inputs, seed, batch_size)
    columns = {key: table[key].to_numpy() for key in ("file", "label", "pred", "correct")}
    for method in METHODS:
        for column, values in checks[method].items():
            columns[f"{column}_{method}"] = values
    return pd.DataFrame(columns)


def _pointing_column(heat, boxes, tolerance):
    values = pd.array([pd.NA] * len(heat), dtype="boolean")
    if boxes is not None:
        known = np.isfinite(boxes).all(axis=1)
        if known.any():
            values[known] = pointing_game(heat[known], boxes[known], tolerance)
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
    save_npz(path, _check_cams(arrays), compressed=True)


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


def evidence_boxes(evidence_path, files, image_size, columns=BOX_COLUMNS):
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
    columns : sequence of str
        The box's four columns (x0, y0, x1, y1): `BOX_COLUMNS`, or `MARKER_COLUMNS` for the
        demo data's markers.

    Returns
    -------
    ndarray of float, shape (N, 4)
        Boxes in the model's pixels; NaN rows for images the file does not list, or all NaN
        when it lacks the columns.
    """
    root = Path(evidence_path).parent
    table = pd.read_csv(evidence_path).set_index("file")
    boxes = np.full((len(files), 4), np.nan)
    if not set(columns) <= set(table.columns):
        return boxes
    for i, name in enumerate(files):
        if name in table.index and table.loc[name, list(columns)].notna().all():
            with PIL.Image.open(root / name) as image:  # reads the header, not the pixels
                width, height = image.size
            box = table.loc[name, list(columns)].to_numpy(dtype=float)
            boxes[i] = scale_boxes(box, (height, width), tuple(image_size))
    return boxes


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
        The arrays of :func:`explain` (or :func:`read_cams`); ``layer`` may be left out.
    class_names : sequence of str
        Class names in label order.
    png_path : path-like
        The PNG to write, atomically (a temporary file in the same folder, then renamed).
    per_group : int
        Images shown per (class, correct/wrong) group, at least 1.
    """
    if isinstance(per_group, bool) or not isinstance(per_group, (int, np.integer)) or per_group < 1:
        raise ValueError(f"per_group must be a positive int, got {per_group!r}")
    cams = _check_cams({"layer": ""} | {key: arrays[key] for key in CAMS_KEYS if key in arrays})
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


def explain_run(model_path, cache_path, outputs, layer, evidence=None, per_group=3, seed=0):
    """Lab task 10 for one trained run: maps, checks, gallery and tables of its validation images.

    Parameters
    ----------
    model_path : path-like
        The run's ``model.keras``.
    cache_path : path-like
        The dataset cache the run trained on (`cnnreg.data.prepare_cache`).
    outputs : mapping
        Paths keyed ``gallery`` (PNG), ``cams`` (npz), ``table`` (CSV, per image),
        ``summary`` (JSON) and ``html`` (both tables).
    layer : str
        Name of the layer the model is explained on (a rectified convolution output, such as
        ``block5_3_relu`` of the lab's VGG16); recorded in ``cams.npz``.
    evidence : path-like, optional
        The dataset's ``evidence.csv`` for the pointing game.
    per_group : int
        Gallery images per (true class, correct or wrong) group.
    seed : int
        Seed of the random pixels of the faithfulness test.

    Returns
    -------
    dict
        The summary written to ``outputs["summary"]`` (`summarise`), with ``randomised_weights``,
        the same summary of the sanity baseline (`sanity_table`); ``gradcam_ms_per_image`` is the time of
        the one computation of both maps, without tracing the compiled step.
    """
    model = keras.models.load_model(model_path)
    cache = load_cache(cache_path)
    x = as_images(cache.x_val)
    files = [str(f) for f in cache.files_val]
    boxes = evidence_boxes(evidence, files, x.shape[1:3]) if evidence else None
    markers = evidence_boxes(evidence, files, x.shape[1:3], MARKER_COLUMNS) if evidence else None
    inputs = _explain_inputs(model, x, cache.y_val, cache.classes, files, boxes, markers)
    grad_cams(model, x[:1], layer=layer)  # traces the compiled step: not part of the time
    started = time.perf_counter()
    computed = grad_cams(model, x, layer=layer)
    seconds_per_image = (time.perf_counter() - started) / len(x)
    arrays, table = _tabulate(model, x, inputs, computed, layer, seed)
    summary = summarise(table, cache.classes)
    summary["randomised_weights"] = summarise(sanity_table(model, x, table, inputs, layer, seed), cache.classes)
    summary["gradcam_ms_per_image"] = 1000 * seconds_per_image
    summary["validation_accuracy"] = float(np.mean(arrays["pred"] == arrays["label"]))
    write_cams(outputs["cams"], arrays)
    write_atomic(outputs["table"], lambda tmp: table.to_csv(tmp, index=False))
    write_text(outputs["summary"], json.dumps(summary, indent=2))
    plot_gallery(cache.x_val, arrays, cache.classes, outputs["gallery"], per_group=per_group)
    write_text(outputs["html"], gradcam_page(summary, table))
    return summary
