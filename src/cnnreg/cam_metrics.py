"""Checks of class activation maps: faithfulness, marker and border attention, the pointing game.

:func:`blur_mask_drop` and :func:`mask_drops` measure how faithful a map is (blurring its hottest
pixels should lower the class probability more than blurring the hottest pixels of another
image's map), :func:`border_fraction` and :func:`border_flags` whether its heat sits at the image
border, :func:`pointing_game` whether its maximum lies on the known evidence (boxes rescaled with
:func:`scale_boxes`; tolerance :func:`standard_tolerance`) or on a marker, and :func:`summarise`
sums up the per-image table of :func:`cnnreg.cam_outputs.explain`, with the run's marker-attention
flag. :func:`randomised_weights` gives the sanity baseline: the same architecture with fresh
random weights (Adebayo et al. 2018, "Sanity checks for saliency maps", model randomisation).
The maps themselves come from :mod:`cnnreg.gradcam`.
"""

import keras
import numpy as np
from scipy.ndimage import gaussian_filter

from cnnreg.cam_inputs import as_images, check_input_shape, class_indices
from cnnreg.gradcam import METHODS, predict

__all__ = [
    "BORDER_FLAG",
    "BORDER_SHARE",
    "BORDER_WIDTH",
    "FAITHFUL_FRACTION",
    "MARKER_SHARE",
    "STANDARD_SIDE",
    "STANDARD_TOLERANCE",
    "blur_mask_drop",
    "border_flags",
    "border_fraction",
    "mask_drops",
    "pointing_game",
    "randomised_weights",
    "scale_boxes",
    "standard_tolerance",
    "summarise",
]

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
#: Fraction of the pixels blurred away in the faithfulness check (`blur_mask_drop`).
FAITHFUL_FRACTION = 0.2
#: The pointing game's tolerance (Zhang et al. 2016, "Top-down neural attention by excitation
#: backprop"): a hit is a maximum within 15 pixels of the box at 224 x 224 (`STANDARD_SIDE`),
#: scaled to the map's size by `standard_tolerance`.
STANDARD_TOLERANCE = 15
STANDARD_SIDE = 224
#: The run's marker-attention flag fires when at least this share of its correctly classified
#: images has the map's maximum on the marker (within `standard_tolerance` of its box). The box
#: so widened covers about 7 % of a 64 x 64 image (a 10 x 6 marker, 4.3 pixels either way), so a
#: maximum that falls anywhere at random lands on it about 7 % of the time, and a map that
#: follows class evidence kept away from the corners (the demo data) almost never; 0.2 is three
#: times that chance, and a model that reads the marker points at it far more often.
MARKER_SHARE = 0.2
#: Without marker boxes the flag falls back on `border_flags`: it fires when at least this share
#: of the correctly classified images is flagged, that is when most maps look at the border.
#: This is the weaker test: evidence near the border is flagged too.
BORDER_SHARE = 0.5

#: The per-method columns of the per-image table, ``<column>_<method>``.
_CHECK_COLUMNS = (
    "drop_top",
    "drop_shuffled",
    "border_fraction",
    "border_flag",
    "pointing",
    "pointing_strict",
    "marker",
)


def standard_tolerance(shape):
    """The pointing game's tolerance in pixels of a map of `shape` (..., height, width).

    `STANDARD_TOLERANCE` pixels at `STANDARD_SIDE`, scaled by the map's larger side: 4.3 pixels
    at 64 x 64.
    """
    return STANDARD_TOLERANCE * max(shape[-2:]) / STANDARD_SIDE


def randomised_weights(model, seed=0):
    """The sanity baseline: `model`'s architecture with freshly initialised, untrained weights.

    Adebayo et al. (2018) showed that some saliency maps barely change when a model's weights
    are randomised; a check of the maps that scores the randomised model's maps as well as the
    trained model's cannot tell a faithful map from an unfaithful one. The clone (with
    ``keras.models.clone_model``) is built from the layers' configurations and initialisers;
    `seed` seeds them (through ``keras.utils.set_random_seed``, which seeds Python, NumPy and
    the backend).
    """
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def blur_mask_drop(model, images, heatmaps, class_index, fraction=FAITHFUL_FRACTION, sigma=None, seed=0, batch_size=32):
    """How much the class probability drops when the hottest pixels are blurred away.

    For each image, the `fraction` of pixels with the most heat is replaced by a Gaussian-blurred
    copy of the image; and separately the `fraction` hottest pixels of another image's map (a
    seeded derangement of the images; a single image's own map turned by 180 degrees), a region
    of the same kind elsewhere. A faithful map points at pixels the model relies on:
    ``drop_top > drop_shuffled``. Scattered random pixels are not the baseline: blurring a fifth
    of the pixels all over the image destroys its texture and drops the probability about as much
    as blurring the evidence does.

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
        Standard deviation of the blur in pixels; default 1/4 of the larger image side (16 at
        64 x 64): close to the local mean, enough to wipe out a lesion or a fracture.
    seed : int
        Seed for the derangement (and for ordering pixels of equal heat).
    batch_size : int
        Images per prediction batch.

    Returns
    -------
    dict
        ``prob``, ``prob_top``, ``prob_shuffled`` (the class's probability on the original, the
        top-masked and the shuffled-map-masked image), ``drop_top = prob - prob_top`` and
        ``drop_shuffled = prob - prob_shuffled`` (arrays of float, shape (N,)), ``class_index``
        (shape (N,)), ``pixels`` (pixels replaced per image) and ``sigma``.
    """
    drops = mask_drops(model, images, {"top": heatmaps}, class_index, fraction, sigma, seed, batch_size)
    return {
        "prob": drops["prob"],
        "prob_top": drops["prob_top"],
        "prob_shuffled": drops["prob_shuffled_top"],
        "drop_top": drops["prob"] - drops["prob_top"],
        "drop_shuffled": drops["prob"] - drops["prob_shuffled_top"],
        "class_index": drops["class_index"],
        "pixels": drops["pixels"],
        "sigma": drops["sigma"],
    }


def mask_drops(model, images, heatmaps, class_index, fraction=FAITHFUL_FRACTION, sigma=None, seed=0, batch_size=32):
    """`blur_mask_drop` for several sets of maps at once, `heatmaps` a dict name -> maps.

    Returns ``prob``, ``class_index``, ``pixels``, ``sigma`` and, per name of `heatmaps`,
    ``prob_<name>`` and ``prob_shuffled_<name>``; the original images are predicted once.
    """
    x = as_images(images)
    check_input_shape(model, x)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n, height, width = x.shape[:3]
    sigma = max(height, width) / 4 if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}")
    blurred = gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="reflect")
    pixels = max(1, round(fraction * height * width))
    ties = np.random.default_rng([seed, 0]).random((n, height * width))
    original = predict(model, x, batch_size)
    index = original.argmax(axis=1) if class_index is None else class_indices(class_index, n, original.shape[1])
    rows = np.arange(n)

    def drop_hottest(maps):
        top = np.lexsort((ties, -maps.reshape(n, -1)), axis=-1)[:, :pixels]
        mask = np.zeros((n, height * width), bool)
        np.put_along_axis(mask, top, True, axis=1)
        return predict(model, np.where(mask.reshape(n, height, width, 1), blurred, x), batch_size)[rows, index]

    others = _derangement(n, seed)
    result = {"prob": original[rows, index], "class_index": index.astype(np.int64), "pixels": pixels, "sigma": sigma}
    for name, heat in heatmaps.items():
        maps = _as_maps(heat, "heatmaps")
        if maps.shape != x.shape[:3]:
            raise ValueError(f"heatmaps must have shape {x.shape[:3]} (one per image, same size), got {maps.shape}")
        shuffled = maps[others] if n > 1 else np.rot90(maps, 2, axes=(1, 2))
        result[f"prob_{name}"] = drop_hottest(maps)
        result[f"prob_shuffled_{name}"] = drop_hottest(shuffled)
    return result


def _derangement(n, seed):
    """A seeded permutation of ``range(n)`` that moves every index (one cycle through a shuffle)."""
    order = np.random.default_rng([seed, 1]).permutation(n)
    others = np.empty(n, np.int64)
    others[order] = np.roll(order, -1)
    return others


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


def summarise(table, class_names=None):
    """Per-method summary of a per-image table (:func:`cnnreg.cam_outputs.explain`).

    Parameters
    ----------
    table : DataFrame
        The per-image table.
    class_names : sequence of str, optional
        The classes to report the pointing game for, in order; default the table's labels, sorted.

    Returns
    -------
    dict
        For each method in `METHODS`: ``n_images``; ``mean_drop_top`` and ``mean_drop_shuffled``;
        ``faithful_fraction`` and ``n_faithful`` (images with ``drop_top > drop_shuffled``);
        ``border_flag_rate`` and ``n_border_flagged``; per class C, over its correctly classified
        images with a box, ``pointing_C`` (the standard pointing game), ``pointing_strict_C`` (the
        maximum inside the box) and ``n_pointing_C``; ``marker_rate`` (the share of correctly
        classified images whose map points at the marker, or without marker boxes whose map is
        border-flagged), ``marker_source`` ("marker box" or "border band") and ``marker_flag``
        (`MARKER_SHARE`, or `BORDER_SHARE` for the border band). Then ``marker_attention``: any
        method's marker flag, and ``pointing_tolerance``: the pointing game's rule, ``pixels``
        (`STANDARD_TOLERANCE`) at ``at_side`` (`STANDARD_SIDE`). Plain Python numbers, None where
        undefined, ready for JSON.
    """
    needed = [f"{column}_{method}" for method in METHODS for column in _CHECK_COLUMNS]
    missing = [column for column in needed + ["label", "correct"] if column not in table.columns]
    if missing:
        raise ValueError(f"table lacks the explain() columns {', '.join(missing)}")
    classes = sorted(table["label"].unique()) if class_names is None else [str(c) for c in class_names]
    correct = table["correct"].astype(bool)
    summary = {}
    for method in METHODS:
        top = table[f"drop_top_{method}"].astype(float)
        shuffled = table[f"drop_shuffled_{method}"].astype(float)
        flags = table[f"border_flag_{method}"].astype(bool)
        faithful = top > shuffled
        summary[method] = {
            "n_images": len(table),
            "mean_drop_top": _number(top.mean()),
            "mean_drop_shuffled": _number(shuffled.mean()),
            "faithful_fraction": _number(faithful.mean()),
            "n_faithful": int(faithful.sum()),
            "border_flag_rate": _number(flags.mean()),
            "n_border_flagged": int(flags.sum()),
        }
        for name in classes:
            chosen = correct & (table["label"] == name)
            for column, key in (("pointing", "pointing"), ("pointing_strict", "pointing_strict")):
                hits = table.loc[chosen, f"{column}_{method}"].astype("boolean").dropna()
                summary[method][f"{key}_{name}"] = _number(hits.astype(float).mean())
            summary[method][f"n_pointing_{name}"] = len(hits)
        summary[method] |= _marker_summary(table.loc[correct], method)
    summary["marker_attention"] = any(summary[method]["marker_flag"] for method in METHODS)
    summary["pointing_tolerance"] = {"pixels": STANDARD_TOLERANCE, "at_side": STANDARD_SIDE}
    return summary


def _marker_summary(correct, method):
    """The marker-attention share and flag of one method over the correctly classified rows."""
    on_marker = correct[f"marker_{method}"].astype("boolean").dropna()
    if len(on_marker):
        rate, source, share = float(on_marker.astype(float).mean()), "marker box", MARKER_SHARE
    else:
        flagged = correct[f"border_flag_{method}"].astype(float)
        rate, source, share = _number(flagged.mean()), "border band", BORDER_SHARE
    return {"marker_rate": rate, "marker_source": source, "marker_flag": rate is not None and rate >= share}


def _number(value):
    value = float(value)
    return None if np.isnan(value) else value


def _as_maps(heatmaps, name):
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"{name} must have shape (N, height, width), got {maps.shape}")
    return maps


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
