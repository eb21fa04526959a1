"""Checks of class activation maps: faithfulness, border attention, the pointing game, their summary.

:func:`blur_mask_drop` measures how faithful a map is (blurring its hottest pixels should lower
the class probability more than blurring random ones), :func:`border_fraction` and
:func:`border_flags` whether its heat sits at the image border (a sign of shortcut learning such
as scanner labels), :func:`pointing_game` whether its maximum lies on the known evidence (boxes
rescaled with :func:`scale_boxes`), and :func:`summarise` sums up the per-image table of
:func:`cnnreg.cam_outputs.explain`. The maps themselves come from :mod:`cnnreg.gradcam`.
"""

import numpy as np
from scipy.ndimage import gaussian_filter

from cnnreg.cam_inputs import as_images, check_input_shape, class_indices
from cnnreg.gradcam import METHODS, predict

__all__ = [
    "BORDER_FLAG",
    "BORDER_WIDTH",
    "FAITHFUL_FRACTION",
    "blur_mask_drop",
    "border_flags",
    "border_fraction",
    "mask_drops",
    "pointing_game",
    "scale_boxes",
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

#: The per-method columns of the per-image table, ``<column>_<method>``.
_CHECK_COLUMNS = ("drop_top", "drop_random", "border_fraction", "border_flag", "pointing")


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
    drops = mask_drops(model, images, {"top": heatmaps}, class_index, fraction, sigma, seed, batch_size)
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


def mask_drops(model, images, heatmaps, class_index, fraction=FAITHFUL_FRACTION, sigma=None, seed=0, batch_size=32):
    """`blur_mask_drop` for several sets of maps at once, `heatmaps` a dict name -> maps.

    Returns ``prob``, ``prob_random``, ``class_index``, ``pixels``, ``sigma`` and ``prob_<name>``
    per name of `heatmaps`; the original and the randomly masked images are predicted once.
    """
    x = as_images(images)
    check_input_shape(model, x)
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

    original = predict(model, x, batch_size)
    index = original.argmax(axis=1) if class_index is None else class_indices(class_index, n, original.shape[1])
    rows = np.arange(n)
    drawn = np.random.default_rng([seed, 1]).random((n, height * width)).argsort(axis=-1)[:, :pixels]
    result = {
        "prob": original[rows, index],
        "prob_random": predict(model, masked(drawn), batch_size)[rows, index],
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
        result[f"prob_{name}"] = predict(model, masked(top), batch_size)[rows, index]
    return result


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


def summarise(table):
    """Per-method summary of a per-image table (:func:`cnnreg.cam_outputs.explain`).

    Returns
    -------
    dict
        For each method in `METHODS`: ``n_images``; ``mean_drop_top`` and ``mean_drop_random``;
        ``faithful_fraction`` and ``n_faithful`` (images with ``drop_top > drop_random``);
        ``border_flag_rate`` and ``n_border_flagged``; ``pointing_accuracy`` (None without
        boxes), ``n_pointing`` (images with a box) and ``n_pointing_hits``. Plain Python numbers,
        None where undefined (no images), ready for JSON.
    """
    needed = [f"{column}_{method}" for method in METHODS for column in _CHECK_COLUMNS]
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
