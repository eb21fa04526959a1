"""Seeded, reproducible demo datasets in the layout of the lab's real data.

:func:`make_demo_datasets` writes two image sets that stand in for the lab's
data, each with a sidecar ``evidence.csv`` giving, per image, the bounding
box of every pixel that carries class evidence (to check Grad-CAM against):

``Skin`` (classes ``Mel``, ``Nevi``)
    RGB dermoscopy-like images: a pigmented lesion on textured skin with
    hairs. Melanomas are darker, with black and blue-gray blotches and an
    irregular border; nevi are regular and evenly pigmented.
``Bone`` (classes ``AFF``, ``NFF``)
    Grayscale femur-radiograph-like images: a bright shaft with a fracture.
    Atypical fractures (AFF) are transverse with a cortical "beak"; normal
    ones (NFF) are oblique.

The strength of the evidence is drawn per image. A fifth of the first class
(Mel, AFF) carries weak evidence, some of it no stronger than the second
class's, so a small CNN learns the task well but not perfectly. Skin tone,
lesion size and shape, hairs, shaft width and tilt, positions, brightness,
contrast and noise vary alike in both classes: drawn from the same generator
state, a Mel and a Nevi image (or AFF and NFF) differ only inside their
evidence boxes.

Run ``python -m cnnreg.synthetic OUT_DIR`` to write both datasets into
``OUT_DIR/Skin`` and ``OUT_DIR/Bone``.
"""

import argparse
import csv
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = [
    "DATASETS",
    "EVIDENCE_COLUMNS",
    "femur_image",
    "main",
    "make_demo_datasets",
    "skin_image",
]

EVIDENCE_COLUMNS = ("file", "label", "split", "x0", "y0", "x1", "y1")
_MIN_SIZE = 32
_REFERENCE_SIZE = 128  # sizes in pixels below are for 128 x 128 images and scale with the size
_BOX_MARGIN = 2
_WEAK_FRACTION = 0.2
_SPREAD = 0.12  # how far, as a fraction of the size, the evidence moves around the center


def skin_image(rng, melanoma, size=128):
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

    Returns
    -------
    image : ndarray of uint8, shape (size, size, 3)
        The image.
    box : tuple of int
        ``(x0, y0, x1, y1)``, end-exclusive: ``image[y0:y1, x0:x1]`` holds
        every pixel of the lesion, with a small margin.
    """
    strength = _strength(rng, melanoma)
    skin = _skin_background(rng, size)
    mask, box = _lesion_mask(rng, strength, size)
    pigment = _lesion_pigment(rng, strength, size)
    image = skin + mask[..., np.newaxis] * (pigment - skin)
    return _finish(rng, _add_hairs(rng, image)), box


def femur_image(rng, atypical, size=128):
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

    Returns
    -------
    image : ndarray of uint8, shape (size, size)
        The image.
    box : tuple of int
        ``(x0, y0, x1, y1)``, end-exclusive: ``image[y0:y1, x0:x1]`` holds
        every pixel the fracture changes, with a small margin.
    """
    strength = _strength(rng, atypical)
    shaft = _Shaft.draw(rng, size)
    intact = shaft.render()
    broken = shaft.render(**_fracture(rng, strength, shaft))
    box = _bounding_box(broken != intact, size)
    return _finish(rng, _radiograph_background(rng, shaft, size) + broken), box


DATASETS = {
    "Skin": {"classes": ("Mel", "Nevi"), "draw": skin_image},
    "Bone": {"classes": ("AFF", "NFF"), "draw": femur_image},
}


def make_demo_datasets(out_dir, n_train=200, n_val=60, size=128, seed=0):
    """Write the demo datasets as PNG trees with evidence boxes.

    Parameters
    ----------
    out_dir : str or path-like
        Folder to write ``Skin/`` and ``Bone/`` into; created if needed.
        Neither may exist yet.
    n_train, n_val : int
        Training and validation images per class.
    size : int
        Image height and width in pixels, at least 32.
    seed : int
        Seed; the same seed gives byte-identical files. Image ``i`` of a
        class and split does not depend on `n_train` or `n_val`.

    Returns
    -------
    dict
        Dataset name to its root folder (a :class:`pathlib.Path`), laid out
        as ``<root>/{train,validation}/<class>/<class>_NNNN.png`` with
        ``<root>/evidence.csv``: columns `EVIDENCE_COLUMNS`, that is the
        file relative to the root, its class name and split, and the
        end-exclusive pixel box ``x0, y0, x1, y1`` that holds its evidence.

    Raises
    ------
    FileExistsError
        If ``out_dir/Skin`` or ``out_dir/Bone`` already exists.
    """
    _check_arguments(n_train, n_val, size, seed)
    roots = {name: Path(out_dir) / name for name in DATASETS}
    existing = [str(root) for root in roots.values() if root.exists()]
    if existing:
        raise FileExistsError(f"demo dataset folders already exist: {', '.join(existing)}")
    counts = {"train": n_train, "validation": n_val}
    for index, (name, spec) in enumerate(DATASETS.items()):
        _write_dataset(roots[name], spec, counts, size, (seed, index))
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
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    try:
        _check_arguments(args.n_train, args.n_val, args.size, args.seed)
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
        make_demo_datasets(staging, args.n_train, args.n_val, args.size, args.seed)
        staging.replace(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote the {' and '.join(DATASETS)} demo datasets to {out_dir}")


def _check_arguments(n_train, n_val, size, seed):
    _check_int("n_train", n_train, minimum=1)
    _check_int("n_val", n_val, minimum=1)
    _check_int("size", size, minimum=_MIN_SIZE)
    _check_int("seed", seed, minimum=0)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _write_dataset(root, spec, counts, size, key):
    rows = []
    for split_index, (split, count) in enumerate(counts.items()):
        for label, name in enumerate(spec["classes"]):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                rng = np.random.default_rng([*key, split_index, label, i])
                image, box = spec["draw"](rng, label == 0, size)
                file = f"{split}/{name}/{name}_{i:04d}.png"
                iio.imwrite(root / file, image)
                rows.append((file, name, split, *box))
    with open(root / "evidence.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(EVIDENCE_COLUMNS)
        writer.writerows(rows)


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
    """Soft oval lesion mask, its border wobbling more as `strength` grows, and its box."""
    radius = rng.uniform(0.12, 0.17) * size
    edge = _pixels(size, rng.uniform(1.5, 3.5))
    reach = 1.3 * radius + edge + _BOX_MARGIN
    cy, cx = size / 2 + rng.uniform(-1, 1, 2) * min(_SPREAD * size, size / 2 - reach)
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
    """Brown pigment, darker and with black and blue-gray blotches as `strength` grows."""
    brown = np.array([0.62, 0.42, 0.3]) * rng.uniform(0.75, 1.1) * (1.0 - 0.1 * strength)
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
        width = rng.uniform(0.22, 0.3) * size
        return cls(
            size,
            center=(0.5 + rng.uniform(-0.4, 0.4) * _SPREAD) * size,
            tilt=np.deg2rad(rng.uniform(-8, 8)),
            width=width,
            cortex=rng.uniform(0.22, 0.3) * width,
            level=rng.uniform(0.55, 0.8),
        )

    def render(self, beak=0.0, site=0.0, side=1.0, angle=0.0, gap=0.0):
        """Bone intensity; a beak thickens the cortex on one `side` at `site`, a gap cuts it."""
        taper = np.clip(1.0 - ((self.along - site) / (0.14 * self.size)) ** 2, 0.0, 1.0)
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


def _fracture(rng, strength, shaft):
    """Fracture parameters: stronger evidence is more transverse, with a bigger beak."""
    obliquity = (1.0 - strength) * rng.uniform(35, 55) + rng.normal(0.0, 3.0)
    return {
        "beak": strength * rng.uniform(0.06, 0.09) * shaft.size,
        "site": rng.uniform(-_SPREAD, _SPREAD) * shaft.size,
        "side": rng.choice([-1.0, 1.0]),
        "angle": np.deg2rad(rng.choice([-1.0, 1.0]) * np.clip(obliquity, 0, 55)),
        "gap": _pixels(shaft.size, rng.uniform(4.0, 6.5)),
    }


def _radiograph_background(rng, shaft, size):
    """Dark film with a soft-tissue glow around the shaft."""
    tissue = rng.uniform(0.08, 0.2) * np.exp(-((shaft.across / (0.35 * size)) ** 2))
    film = rng.uniform(0.04, 0.14) + 0.03 * _smooth_noise(rng, (size, size), size / 12)
    return film + tissue


if __name__ == "__main__":
    main()
