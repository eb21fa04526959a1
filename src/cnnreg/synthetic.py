"""Seeded, reproducible demo datasets in the layout of the lab's real data.

:func:`make_demo_datasets` writes two image sets that stand in for the lab's
data, each with a sidecar ``evidence.csv`` giving, per image, the bounding
box of every pixel that carries class evidence (to check Grad-CAM against)
and the box of its marker:

``Skin`` (classes ``Mel``, ``Nevi``)
    RGB dermoscopy-like images: a pigmented lesion on textured skin with
    hairs. Melanomas are dark brown, with black and blue-gray blotches and
    an irregular border; nevi are regular and evenly pigmented light tan, so
    that each class has evidence of its own (a network that learns only one
    class's features explains the other class by the absence of evidence,
    and its maps for that class point anywhere).
``Bone`` (classes ``AFF``, ``NFF``)
    Grayscale femur-radiograph-like images: a bright shaft with a fracture.
    Atypical fractures (AFF) are transverse with a cortical "beak"; normal
    ones (NFF) are oblique.

Both classes carry their evidence (a lesion, a fracture), at a random
position per image: anywhere it fits, but never within `CENTRE_CLEARANCE`
of the image centre, so a map that always peaks at the centre misses every
box in the pointing game, and never near a corner. Every image also carries
a marker in a random corner, like a scanner's or radiographer's label: a
bright rectangle with a letter or bars, drawn alike in both classes and so
of no use to a classifier. With ``marker_is_label`` the marker's corner
gives the class instead (top left for the first class, bottom right for the
second): a shortcut a network learns instead of the evidence, for checking
that Grad-CAM shows it.

The strength of the evidence is drawn per image. A fifth of the first class
(Mel, AFF) carries weak evidence, some of it no stronger than the second
class's, so a small CNN learns the task well but not perfectly. Skin tone,
lesion size and shape, hairs, shaft width and tilt, positions, markers,
brightness, contrast and noise vary alike in both classes: drawn from the
same generator state, a Mel and a Nevi image (or AFF and NFF) with neutral
markers differ only inside their evidence boxes.

Run ``python -m cnnreg.synthetic OUT_DIR`` to write both datasets into
``OUT_DIR/Skin`` and ``OUT_DIR/Bone``.
"""

import argparse
import csv
import json
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy.ndimage import gaussian_filter

from cnnreg.folders import GENERATED

__all__ = [
    "CENTRE_CLEARANCE",
    "DATASETS",
    "EVIDENCE_COLUMNS",
    "LABEL_CORNERS",
    "MARKER_COLUMNS",
    "femur_image",
    "main",
    "make_demo_datasets",
    "skin_image",
]

#: The marker's box, end-exclusive, in pixels of the image file.
MARKER_COLUMNS = ("marker_x0", "marker_y0", "marker_x1", "marker_y1")
#: Columns of ``evidence.csv``: the file, its class and split, its evidence box, its marker box.
EVIDENCE_COLUMNS = ("file", "label", "split", "x0", "y0", "x1", "y1", *MARKER_COLUMNS)
#: Least distance from the image centre to any evidence box, as a fraction of the side: the
#: pointing game's standard tolerance, 15 pixels at 224 (`cnnreg.cam_metrics.STANDARD_TOLERANCE`).
CENTRE_CLEARANCE = 15 / 224
#: With ``marker_is_label``, the corner of each class's marker (0 top left, 1 top right,
#: 2 bottom left, 3 bottom right), by class index.
LABEL_CORNERS = (0, 3)
_SPLITS = ("train", "validation", "test")
_MIN_SIZE = 32
_REFERENCE_SIZE = 128  # sizes in pixels below are for 128 x 128 images and scale with the size
_BOX_MARGIN = 2
_WEAK_FRACTION = 0.2
_MARKER = {"width": 0.16, "height": 0.1, "inset": 0.03}  # fractions of the side
_MARKER_CLEARANCE = 0.03  # least gap, as a fraction of the side, between evidence and any corner's marker
_PLACEMENT_TRIES = 1000
# 5 x 5 glyphs a marker carries: side letters as on radiographs, or bars as on a label.
_GLYPHS = tuple(
    np.array([[c == "#" for c in row] for row in glyph.split("/")], float)
    for glyph in ("#..../#..../#..../#..../#####", "####./#...#/####./#..#./#...#", "#.##./#.##./#.##./#.##./#.##.")
)


def skin_image(rng, melanoma, size=128, marker_corner=None):
    """Draw one skin-lesion-like RGB image.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    melanoma : bool
        Draw a melanoma (dark, blotchy, irregular) rather than a nevus
        (regular, evenly pigmented).
    size : int
        Height and width in pixels.
    marker_corner : int, optional
        Put the marker in this corner (0 top left, 1 top right, 2 bottom
        left, 3 bottom right) instead of a random one; the same numbers are
        drawn either way.

    Returns
    -------
    image : ndarray of uint8, shape (size, size, 3)
        The image.
    box : tuple of int
        ``(x0, y0, x1, y1)``, end-exclusive: ``image[y0:y1, x0:x1]`` holds
        every pixel of the lesion, with a small margin.
    marker_box : tuple of int
        ``(x0, y0, x1, y1)`` of the marker, end-exclusive.
    """
    strength = _strength(rng, melanoma)
    skin = _skin_background(rng, size)
    mask, box = _lesion_mask(rng, strength, size)
    pigment = _lesion_pigment(rng, strength, size)
    image = _add_hairs(rng, skin + mask[..., np.newaxis] * (pigment - skin))
    image, marker_box = _add_marker(rng, image, marker_corner)
    return _finish(rng, image), box, marker_box


def femur_image(rng, atypical, size=128, marker_corner=None):
    """Draw one femur-radiograph-like grayscale image.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    atypical : bool
        Draw an atypical femoral fracture (transverse, with a cortical beak)
        rather than a normal one (oblique).
    size : int
        Height and width in pixels.
    marker_corner : int, optional
        As for `skin_image`.

    Returns
    -------
    image : ndarray of uint8, shape (size, size)
        The image.
    box : tuple of int
        ``(x0, y0, x1, y1)``, end-exclusive: ``image[y0:y1, x0:x1]`` holds
        every pixel the fracture changes, with a small margin.
    marker_box : tuple of int
        ``(x0, y0, x1, y1)`` of the marker, end-exclusive.
    """
    strength = _strength(rng, atypical)
    shaft, site, side = _Shaft.draw(rng, size)
    intact = shaft.render()
    broken = shaft.render(**_fracture(rng, strength, shaft, site, side))
    box = _bounding_box(broken != intact, size)
    image, marker_box = _add_marker(rng, _radiograph_background(rng, shaft, size) + broken, marker_corner)
    return _finish(rng, image), box, marker_box


DATASETS = {
    "Skin": {"classes": ("Mel", "Nevi"), "draw": skin_image},
    "Bone": {"classes": ("AFF", "NFF"), "draw": femur_image},
}


def make_demo_datasets(out_dir, n_train=200, n_val=60, size=128, seed=0, n_test=0, marker_is_label=False):
    """Write the demo datasets as PNG trees with evidence and marker boxes.

    Parameters
    ----------
    out_dir : str or path-like
        Folder to write ``Skin/`` and ``Bone/`` into; created if needed.
        Neither may exist yet.
    n_train, n_val, n_test : int
        Training, validation and test images per class; no ``test/`` split
        when `n_test` is 0.
    size : int
        Image height and width in pixels, at least 32.
    seed : int
        Seed; the same seed gives byte-identical files. Image ``i`` of a
        class and split does not depend on the counts.
    marker_is_label : bool
        Put each class's marker in its own corner (`LABEL_CORNERS`) instead
        of a random one: the marker then gives the label away.

    Returns
    -------
    dict
        Dataset name to its root folder (a :class:`pathlib.Path`), laid out
        as ``<root>/{train,validation[,test]}/<class>/<class>_NNNN.png`` with
        ``<root>/evidence.csv``: columns `EVIDENCE_COLUMNS`, that is the
        file relative to the root, its class name and split, the
        end-exclusive pixel box ``x0, y0, x1, y1`` that holds its evidence
        and the box ``marker_x0, marker_y0, marker_x1, marker_y1`` of its
        marker, and ``<root>/generated.json`` (`cnnreg.folders.GENERATED`),
        which says the images are generated (the lab sheet says so).

    Raises
    ------
    FileExistsError
        If ``out_dir/Skin`` or ``out_dir/Bone`` already exists.
    """
    _check_arguments(n_train, n_val, n_test, size, seed)
    if not isinstance(marker_is_label, bool):
        raise ValueError(f"marker_is_label must be True or False, got {marker_is_label!r}")
    roots = {name: Path(out_dir) / name for name in DATASETS}
    existing = [str(root) for root in roots.values() if root.exists()]
    if existing:
        raise FileExistsError(f"demo dataset folders already exist: {', '.join(existing)}")
    counts = {"train": n_train, "validation": n_val, "test": n_test}
    for index, (name, spec) in enumerate(DATASETS.items()):
        _write_dataset(roots[name], spec, counts, size, (seed, index), marker_is_label)
    return roots


def main(argv=None):
    """Write the demo datasets: ``python -m cnnreg.synthetic OUT_DIR [options]``.

    Writes into a temporary sibling of OUT_DIR and renames it into place when
    complete; does nothing when OUT_DIR already holds both datasets.
    """
    parser = argparse.ArgumentParser(prog="python -m cnnreg.synthetic", description=main.__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to create, holding Skin/ and Bone/")
    parser.add_argument("--n-train", type=int, default=200, help="training images per class")
    parser.add_argument("--n-val", type=int, default=60, help="validation images per class")
    parser.add_argument("--n-test", type=int, default=60, help="test images per class (0: no test/ split)")
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--marker-is-label", action="store_true", help="put each class's marker in its own corner (a shortcut)"
    )
    args = parser.parse_args(argv)
    try:
        _check_arguments(args.n_train, args.n_val, args.n_test, args.size, args.seed)
    except ValueError as error:
        parser.error(str(error))
    out_dir = args.out_dir
    if all((out_dir / name / "evidence.csv").is_file() for name in DATASETS):
        print(f"{out_dir} already holds the {' and '.join(DATASETS)} demo datasets; nothing to do")
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        parser.error(f"{out_dir} is not empty but lacks a demo dataset; remove it and rerun")
    staging = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        make_demo_datasets(staging, args.n_train, args.n_val, args.size, args.seed, args.n_test, args.marker_is_label)
        staging.replace(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote the {' and '.join(DATASETS)} demo datasets to {out_dir}")


def _check_arguments(n_train, n_val, n_test, size, seed):
    _check_int("n_train", n_train, minimum=1)
    _check_int("n_val", n_val, minimum=1)
    _check_int("n_test", n_test, minimum=0)
    _check_int("size", size, minimum=_MIN_SIZE)
    _check_int("seed", seed, minimum=0)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _write_dataset(root, spec, counts, size, key, marker_is_label):
    rows = []
    for split_index, split in enumerate(_SPLITS):
        for label, name in enumerate(spec["classes"]):
            if counts[split]:
                (root / split / name).mkdir(parents=True)
            corner = LABEL_CORNERS[label] if marker_is_label else None
            for i in range(counts[split]):
                rng = np.random.default_rng([*key, split_index, label, i])
                image, box, marker_box = spec["draw"](rng, label == 0, size, corner)
                file = f"{split}/{name}/{name}_{i:04d}.png"
                iio.imwrite(root / file, image)
                rows.append((file, name, split, *box, *marker_box))
    with open(root / "evidence.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(EVIDENCE_COLUMNS)
        writer.writerows(rows)
    record = {"generator": "cnnreg.synthetic", "size": size, "images_per_class": counts, "seed": list(key)}
    (root / GENERATED).write_text(json.dumps(record, indent=2) + "\n")


def _strength(rng, positive):
    """Evidence strength in [0, 1]; weak positives overlap the negatives.

    Both classes draw the same numbers here, so with the same generator state
    the two classes' images differ only where the evidence is.
    """
    weak, level = rng.random(2)
    if not positive:
        return 0.25 * level
    return 0.6 * level if weak < _WEAK_FRACTION else 0.6 + 0.4 * level


def _grid(size):
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    return yy, xx


def _pixels(size, length):
    """`length` pixels at the reference size, scaled to `size`."""
    return length * size / _REFERENCE_SIZE


def _smooth_noise(rng, shape, sigma):
    noise = gaussian_filter(rng.standard_normal(shape), sigma, axes=(0, 1))
    return noise / noise.std()


def _bounding_box(mask, size):
    rows, cols = np.nonzero(mask)
    y0, x0 = max(rows.min() - _BOX_MARGIN, 0), max(cols.min() - _BOX_MARGIN, 0)
    y1, x1 = min(rows.max() + 1 + _BOX_MARGIN, size), min(cols.max() + 1 + _BOX_MARGIN, size)
    return int(x0), int(y0), int(x1), int(y1)


def _marker_box(corner, size):
    """The end-exclusive box of a marker in `corner` (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
    width, height = round(_MARKER["width"] * size), round(_MARKER["height"] * size)
    inset = max(1, round(_MARKER["inset"] * size))
    x0 = inset if corner % 2 == 0 else size - inset - width
    y0 = inset if corner < 2 else size - inset - height
    return x0, y0, x0 + width, y0 + height


def _place(rng, size, extent):
    """Where to put evidence that reaches `extent` = (left, top, right, bottom) pixels from its anchor.

    The anchor is drawn uniformly where the evidence fits in the image, and drawn again while its
    box would come within `CENTRE_CLEARANCE` of the centre or `_MARKER_CLEARANCE` of a marker in
    any corner. Where no draw of `_PLACEMENT_TRIES` does (small images, where the margins take
    much of the side), the one farthest from the centre of those clear of the markers. Only the
    extent decides, so both classes draw the same numbers.
    """
    left, top, right, bottom = extent
    centre, gap = size / 2, _MARKER_CLEARANCE * size
    markers = [_marker_box(corner, size) for corner in range(4)]
    best, farthest = None, -1.0
    for _ in range(_PLACEMENT_TRIES):
        x, y = rng.uniform(left, size - right), rng.uniform(top, size - bottom)
        x0, y0, x1, y1 = x - left, y - top, x + right, y + bottom
        if any(
            x0 < mx1 + gap and mx0 - gap < x1 and y0 < my1 + gap and my0 - gap < y1 for mx0, my0, mx1, my1 in markers
        ):
            continue
        distance = np.hypot(max(x0 - centre, centre - x1, 0), max(y0 - centre, centre - y1, 0))
        if distance >= CENTRE_CLEARANCE * size:
            return x, y
        if distance > farthest:
            best, farthest = (x, y), distance
    if best is None:
        raise RuntimeError(f"no place for evidence reaching {extent} pixels in a {size} x {size} image")
    return best


def _add_marker(rng, image, corner=None):
    """A bright label with a dark glyph in a corner (random unless given); the image and the marker's box."""
    size = image.shape[0]
    drawn, glyph, brightness = rng.integers(4), rng.integers(len(_GLYPHS)), rng.uniform(0.85, 0.97)
    x0, y0, x1, y1 = _marker_box(drawn if corner is None else corner, size)
    label = np.full((y1 - y0, x1 - x0), brightness)
    pad_y, pad_x = max(1, (y1 - y0) // 6), max(1, (x1 - x0) // 4)
    inner = label[pad_y : y1 - y0 - pad_y, pad_x : x1 - x0 - pad_x]
    rows = np.arange(inner.shape[0]) * 5 // inner.shape[0]
    cols = np.arange(inner.shape[1]) * 5 // inner.shape[1]
    inner[_GLYPHS[glyph][np.ix_(rows, cols)] > 0] = 0.12
    image = image.copy()
    image[y0:y1, x0:x1] = label if image.ndim == 2 else label[..., np.newaxis]
    return image, (x0, y0, x1, y1)


def _finish(rng, image):
    """Global brightness and contrast, sensor noise, then 8-bit."""
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.06, 0.06)
    noisy = image * gain + offset + rng.normal(0.0, rng.uniform(0.01, 0.04), image.shape)
    return np.rint(np.clip(noisy, 0.0, 1.0) * 255).astype(np.uint8)


def _skin_background(rng, size):
    """Skin tone with mottled texture and a gentle lighting gradient."""
    tone = np.array([0.88, 0.68, 0.58]) * rng.uniform(0.8, 1.08) + rng.uniform(-0.04, 0.04, 3)
    coarse = 0.035 * _smooth_noise(rng, (size, size, 1), size / 10)
    fine = 0.02 * _smooth_noise(rng, (size, size, 1), _pixels(size, 1.2))
    yy, xx = _grid(size)
    slope = rng.uniform(-0.08, 0.08, 2) / size
    light = slope[0] * (yy - size / 2) + slope[1] * (xx - size / 2)
    return tone * (1.0 + coarse + fine + light[..., np.newaxis])


def _lesion_mask(rng, strength, size):
    """Soft oval lesion mask at a random place, its border wobbling more as `strength` grows, and its box."""
    radius = rng.uniform(0.07, 0.1) * size
    edge = _pixels(size, rng.uniform(1.5, 3.5))
    reach = 1.3 * radius + edge / 2 + _BOX_MARGIN + 1  # the wobbling border stays within 1.3 radii
    cx, cy = _place(rng, size, (reach,) * 4)
    yy, xx = _grid(size)
    angle = np.arctan2(yy - cy, xx - cx)
    harmonics = np.arange(3, 8)
    amplitudes = 0.04 * strength * rng.uniform(0.5, 1.0, harmonics.size)
    phases = rng.uniform(0, 2 * np.pi, harmonics.size + 1)
    wobble = np.cos(harmonics[:, None, None] * angle + phases[1:, None, None])
    oval = 1.0 + rng.uniform(0.0, 0.1) * np.cos(2 * angle + phases[0])
    border = radius * (oval + np.tensordot(amplitudes, wobble, axes=1))
    mask = np.clip((border - np.hypot(yy - cy, xx - cx)) / edge + 0.5, 0.0, 1.0)
    return mask, _bounding_box(mask > 0, size)


def _lesion_pigment(rng, strength, size):
    """Light tan pigment, turning dark brown with black and blue-gray blotches as `strength` grows."""
    tan, dark = np.array([0.8, 0.52, 0.28]), np.array([0.48, 0.3, 0.22])
    brown = (tan + strength * (dark - tan)) * rng.uniform(0.85, 1.05)
    black = _blotches(rng, strength, size, coverage=1.9)
    veil = _blotches(rng, strength, size, coverage=1.6)
    pigment = brown + veil * (np.array([0.32, 0.38, 0.5]) - brown)
    pigment = pigment + black * (np.array([0.1, 0.07, 0.07]) - pigment)
    return pigment * (1.0 + 0.04 * _smooth_noise(rng, (size, size, 1), _pixels(size, 1.5)))


def _blotches(rng, strength, size, coverage):
    """Soft random blotches whose area grows with `strength` times `coverage`."""
    field = _smooth_noise(rng, (size, size, 1), size / 40)
    return 1.0 / (1.0 + np.exp(-(field - 1.6 + coverage * strength) / 0.25))


def _add_hairs(rng, image):
    """Up to two thin dark curved hairs anywhere, alike in every class."""
    size = image.shape[0]
    yy, xx = _grid(size)
    for _ in range(rng.integers(0, 3)):
        y0, slope, bend = rng.uniform(0, size), rng.uniform(-1, 1), rng.uniform(-2, 2) / size
        distance = np.abs(yy - (y0 + slope * (xx - size / 2) + bend * (xx - size / 2) ** 2))
        width = _pixels(size, rng.uniform(0.5, 1.0))
        hair = np.clip(1.0 - distance / width, 0.0, 1.0)[..., np.newaxis]
        image = image + hair * (np.array([0.2, 0.14, 0.12]) - image)
    return image


_MAX_BEAK = 0.09  # of the side, at full strength
_BEAK_REACH = 0.08  # of the side, along the shaft either way from the fracture
_MAX_OBLIQUITY = 40.0  # degrees
_MAX_GAP = 6.5  # pixels at the reference size


class _Shaft:
    """A straight, slightly tilted femoral shaft; the cortex is brighter than the canal."""

    def __init__(self, size, center, tilt, width, cortex, level):
        yy, xx = _grid(size)
        cos, sin = np.cos(tilt), np.sin(tilt)
        self.across = (xx - center) * cos - (yy - size / 2) * sin
        self.along = (xx - center) * sin + (yy - size / 2) * cos
        self.size, self.width, self.cortex, self.level = size, width, cortex, level

    @classmethod
    def draw(cls, rng, size):
        """A shaft through a fracture site placed at random (`_place`); the shaft, the site and the beak's side."""
        width = rng.uniform(0.16, 0.22) * size
        tilt = np.deg2rad(rng.uniform(-6, 6))
        side = rng.choice([-1.0, 1.0])
        # The fracture's reach from the site, across the shaft (the beak on one side) and along it.
        near, far = width / 2 + 1, width / 2 + _MAX_BEAK * size + 1
        left, right = (far, near) if side < 0 else (near, far)
        gap = _pixels(size, _MAX_GAP)
        along = max(_BEAK_REACH * size, width / 2 * np.tan(np.deg2rad(_MAX_OBLIQUITY)) + gap) + 1
        cos, sin = np.cos(tilt), abs(np.sin(tilt))
        margin = _BOX_MARGIN + 1
        vertical = far * sin + along * cos + margin
        extent = (left * cos + along * sin + margin, vertical, right * cos + along * sin + margin, vertical)
        x, y = _place(rng, size, extent)
        center = x - (y - size / 2) * np.tan(tilt)
        site = (y - size / 2) / np.cos(tilt)
        shaft = cls(size, center, tilt, width, cortex=rng.uniform(0.22, 0.3) * width, level=rng.uniform(0.55, 0.8))
        return shaft, site, side

    def render(self, beak=0.0, site=0.0, side=1.0, angle=0.0, gap=0.0):
        """Bone intensity; a beak thickens the cortex on one `side` at `site`, a gap cuts it."""
        taper = np.clip(1.0 - ((self.along - site) / (_BEAK_REACH * self.size)) ** 2, 0.0, 1.0)
        bump = beak * taper**2 * (np.sign(self.across) == side)
        distance = np.abs(self.across)
        bone = np.clip(self.width / 2 + bump - distance + 0.5, 0.0, 1.0)
        canal = np.clip(self.width / 2 - self.cortex - 0.6 * bump - distance + 0.5, 0.0, 1.0)
        line = np.abs((self.along - site) - self.across * np.tan(angle)) * np.cos(angle)
        crack = _band_coverage(line, gap)
        return self.level * (bone - 0.4 * canal) * (1.0 - 0.8 * crack)


def _band_coverage(distance, width):
    """Fraction of a pixel at `distance` from a center line covered by a band `width` wide."""
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0) - np.clip(0.5 - width / 2 - distance, 0.0, 1.0)


def _fracture(rng, strength, shaft, site, side):
    """Fracture parameters: stronger evidence is more transverse, with a bigger beak."""
    obliquity = (1.0 - strength) * rng.uniform(28, _MAX_OBLIQUITY) + rng.normal(0.0, 3.0)
    return {
        "beak": strength * rng.uniform(0.8, 1.0) * _MAX_BEAK * shaft.size,
        "site": site,
        "side": side,
        "angle": np.deg2rad(rng.choice([-1.0, 1.0]) * np.clip(obliquity, 0, _MAX_OBLIQUITY)),
        "gap": _pixels(shaft.size, rng.uniform(4.0, _MAX_GAP)),
    }


def _radiograph_background(rng, shaft, size):
    """Dark film with a soft-tissue glow around the shaft."""
    tissue = rng.uniform(0.08, 0.2) * np.exp(-((shaft.across / (0.35 * size)) ** 2))
    film = rng.uniform(0.04, 0.14) + 0.03 * _smooth_noise(rng, (size, size), size / 12)
    return film + tissue


if __name__ == "__main__":
    main()
