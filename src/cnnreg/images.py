"""Decoding one image file to a fixed size and channel count, upright, as uint8.

:func:`read_image` decodes PNG, JPEG, TIFF and BMP files with Pillow or :mod:`tifffile`, applies
their EXIF or TIFF orientation, converts colour modes and checks the value range. It raises
:class:`DatasetError`, the error of every unusable dataset input (defined in `cnnreg.folders`,
which the workflow imports while it is parsed, without the image libraries imported here).
"""

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import tifffile
from skimage.color import rgb2gray
from skimage.transform import resize
from skimage.util import img_as_float

from cnnreg.folders import DatasetError

__all__ = ["DatasetError", "read_image"]

# Pillow modes whose arrays hold the samples as they are; any other mode is converted to RGB.
_ARRAY_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_TIFF_SUFFIXES = (".tif", ".tiff")
# TIFF/EXIF Orientation tag value -> the flips and turns that show the stored rows upright
_ORIENTATIONS = {
    2: lambda image: image[:, ::-1],
    3: lambda image: image[::-1, ::-1],
    4: lambda image: image[::-1],
    5: lambda image: image.swapaxes(0, 1),
    6: lambda image: np.rot90(image, -1),
    7: lambda image: image[::-1, ::-1].swapaxes(0, 1),
    8: lambda image: np.rot90(image),
}


def read_image(path, image_size, channels):
    """Decode one image file to a fixed size and channel count.

    Parameters
    ----------
    path : str or path-like
        Image file (PNG, JPEG, TIFF or BMP), one frame or page: gray, gray +
        alpha, RGB, RGBA, palette, bilevel, CMYK, YCbCr or CIELab; 8- or 16-bit
        integers or (TIFF) 32-bit integers or floats.
    image_size : int or (int, int)
        Output height and width in pixels; an int means a square image.
    channels : {1, 3}
        Output channels: 1 converts color with
        :func:`skimage.color.rgb2gray`, 3 replicates gray.

    Returns
    -------
    ndarray of uint8, shape (H, W, channels)
        The image, turned upright by its EXIF or TIFF orientation and resized
        with anti-aliasing. Alpha is dropped. Integer inputs are scaled by their
        dtype's full range (16-bit 65535 maps to 255); float inputs must lie in
        [0, 1] and are used as they are.

    Raises
    ------
    DatasetError
        If the file cannot be decoded, holds several frames or pages, is not a
        2-D image, or holds negative integers or floats outside [0, 1] (or NaN).

    Notes
    -----
    :mod:`tifffile` decodes gray and RGB(A) TIFFs whose compression it can
    undo (none, deflate, packbits, ...; LZW and JPEG need the `imagecodecs`
    package): it keeps every sample type and depth, where Pillow cuts 16-bit
    RGB to 8 bits, cannot open float RGB and scrambles uncompressed TIFFs
    turned by 90 degrees (Pillow 13). Pillow decodes every other file,
    including TIFFs tifffile cannot (palette, CMYK, YCbCr, CIELab, white is
    zero, LZW or JPEG compressed), and tifffile is tried on TIFFs Pillow
    cannot open. A multi-picture JPEG (MPO: a camera photo with a preview) is
    read as its first picture, the photo.
    """
    height, width = _check_size(image_size)
    _check_channels(channels)
    image = _to_channels(_color_planes(_decode(path), path), channels)
    image = resize(image, (height, width, channels), anti_aliasing=True)
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _check_size(image_size):
    pair = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if len(pair) != 2 or not all(_is_positive_int(side) for side in pair):
        raise ValueError(f"image_size must be a positive int or [height, width], got {image_size!r}")
    return int(pair[0]), int(pair[1])


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _check_channels(channels):
    if not (_is_positive_int(channels) and channels in (1, 3)):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def _decode(path):
    """The image in `path` as floats in [0, 1], shape (H, W) or (H, W, C), upright."""
    failure = None
    try:
        with PIL.Image.open(path) as image:
            if not _tifffile_decodes(image):
                return _from_pillow(image, path)
    except DatasetError:
        raise
    except Exception as error:  # decoders raise many types for bad files
        failure = error
    if failure is not None and Path(path).suffix.lower() not in _TIFF_SUFFIXES:
        raise DatasetError(f"cannot decode image {path} ({_reason(failure)})") from failure
    return _from_tifffile(path, failure)


def _tifffile_decodes(image):
    """Whether an opened image is a gray (BlackIsZero) or RGB TIFF in a compression tifffile can undo."""
    tags = image.tag_v2 if image.format == "TIFF" else {}
    return tags.get(262) in (1, 2) and tags.get(259, 1) in tifffile.TIFF.DECOMPRESSORS


def _from_pillow(image, path):
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise _several_frames(path, frames)
    dtype = _tiff_integers(image.tag_v2) if image.mode == "I" else None
    image = PIL.ImageOps.exif_transpose(image)
    if image.mode not in _ARRAY_MODES:
        image = image.convert("RGB")
    return _unit_float(np.asarray(image, dtype=dtype), path)


def _tiff_integers(tags):
    """The integer type of a TIFF's samples, which Pillow's mode I holds as int32 whatever they are."""
    kind = "i" if 2 in np.atleast_1d(tags.get(339, 1)) else "u"
    return np.dtype(f"{kind}{max(np.atleast_1d(tags[258])) // 8}")


def _from_tifffile(path, failure):
    try:
        with tifffile.TiffFile(path) as tiff:
            frames, page = len(tiff.pages), tiff.pages[0]
            image, axes, orientation = page.asarray(), page.axes, page.tags.valueof(274, 1)
    except Exception as error:  # decoders raise many types for bad files
        reasons = _reason(error) if failure is None else f"Pillow: {_reason(failure)}; tifffile: {_reason(error)}"
        raise DatasetError(f"cannot decode image {path} ({reasons})") from error
    if frames > 1:
        raise _several_frames(path, frames)
    if "S" in axes:  # samples (color planes) last, however the file stores them
        image = np.moveaxis(image, axes.index("S"), -1)
    return _unit_float(_ORIENTATIONS.get(orientation, np.asarray)(image), path)


def _reason(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _several_frames(path, frames):
    return DatasetError(
        f"image {path} holds {frames} frames or pages; save the one to use as a single-image file in its place"
    )


def _unit_float(image, path):
    if image.dtype.kind == "f" and not (np.all(np.isfinite(image)) and image.min() >= 0 and image.max() <= 1):
        raise DatasetError(
            f"image {path} holds floats {_value_range(image)}, outside [0, 1]; only float images in [0, 1] "
            "are used as they are: convert it to 8- or 16-bit integers, or rescale its values to [0, 1]"
        )
    if image.dtype.kind == "i" and image.min() < 0:
        raise DatasetError(
            f"image {path} holds negative integers (from {image.min()} to {image.max()}); "
            "convert it to unsigned 8- or 16-bit integers, or to floats in [0, 1]"
        )
    return img_as_float(image)


def _value_range(image):
    finite = image[np.isfinite(image)]
    span = f"from {finite.min():g} to {finite.max():g}" if finite.size else "none finite"
    tests = (("NaN", np.isnan), ("inf", np.isposinf), ("-inf", np.isneginf))
    nonfinite = [name for name, test in tests if test(image).any()]
    return span + (f" and {', '.join(nonfinite)}" if nonfinite else "")


def _color_planes(image, path):
    if image.ndim == 2:
        return image[..., np.newaxis]
    if image.ndim == 3 and image.shape[-1] in (1, 2, 3, 4):
        return image[..., : 3 if image.shape[-1] >= 3 else 1]
    raise DatasetError(f"image {path} has shape {image.shape}; expected one 2-D gray, gray + alpha, RGB or RGBA image")


def _to_channels(image, channels):
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        return rgb2gray(image)[..., np.newaxis]
    return np.repeat(image, 3, axis=-1)
