"""Tests for cnnreg.images: one image file decoded to a fixed size and channel count."""

import numpy as np
import pytest
import tifffile
from image_helpers import RGB, corrupt, gray, write_image
from PIL import Image, ImageOps

from cnnreg.images import DatasetError, read_image

# ITU-R BT.709 luma weights, which skimage.color.rgb2gray uses
LUMA = np.array([0.2125, 0.7154, 0.0721])
RGB_AS_GRAY = round(float(LUMA @ RGB))


def save_pil(path, image, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def write_tiff(path, array, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    color = array.ndim == 3 and array.shape[-1] in (3, 4)
    tifffile.imwrite(path, array, **{"photometric": "rgb" if color else "minisblack", **options})
    return path


@pytest.mark.parametrize(
    ("image", "as_gray", "as_rgb"),
    [
        (gray(90), 90, (90, 90, 90)),
        (np.dstack([gray(90), gray(0)]), 90, (90, 90, 90)),
        (np.full((20, 24, 3), RGB, np.uint8), RGB_AS_GRAY, RGB),
        (np.dstack([np.full((20, 24, 3), RGB, np.uint8), gray(0)]), RGB_AS_GRAY, RGB),
        (np.full((20, 24), 200 * 257, np.uint16), 200, (200, 200, 200)),
    ],
    ids=["gray", "gray+alpha", "rgb", "rgba", "gray16"],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_read_image_converts_modes(tmp_path, image, as_gray, as_rgb, channels):
    path = write_image(tmp_path / "image.png", image)
    result = read_image(path, (8, 10), channels)
    assert result.dtype == np.uint8
    assert result.shape == (8, 10, channels)
    expected = [as_gray] if channels == 1 else list(as_rgb)
    assert np.abs(result.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("value", [0, 1000, 4095, 30000, 65535])
def test_read_image_scales_16_bit_by_full_range(tmp_path, value):
    path = write_image(tmp_path / "deep.png", np.full((12, 12), value, np.uint16))
    assert np.all(read_image(path, 4, 1) == round(value * 255 / 65535))


def test_read_image_resizes_with_anti_aliasing(tmp_path):
    # sampled without smoothing, every third pixel of a checkerboard is again a checkerboard
    checkerboard = (np.indices((48, 48)).sum(axis=0) % 2 * 255).astype(np.uint8)
    path = write_image(tmp_path / "checker.png", checkerboard)
    result = read_image(path, 16, 1)
    assert result.shape == (16, 16, 1)
    assert np.all(np.abs(result.astype(int) - 128) <= 3)


@pytest.mark.parametrize("name", ["a.jpg", "b.JPEG", "c.tif", "d.TIFF", "e.bmp", "f.PNG"])
def test_read_image_reads_each_format(tmp_path, name):
    path = write_image(tmp_path / name, np.full((16, 16, 3), RGB, np.uint8))
    result = read_image(path, 4, 3)
    assert np.abs(result.astype(int) - RGB).max() <= 3


def test_read_image_corrupt_file_names_it(tmp_path):
    path = corrupt(tmp_path / "broken.png")
    with pytest.raises(DatasetError, match="cannot decode") as error:
        read_image(path, 8, 1)
    assert str(path) in str(error.value)


def palette(mode="P"):
    image = Image.new(mode, (24, 20), 1 if mode == "P" else (1, 255))
    image.putpalette([0, 0, 0, *RGB])
    return image


RED_CMYK = Image.new("CMYK", (24, 20), (0, 255, 255, 0))
COLOR_FILES = {
    "cmyk-jpeg": ("a.jpg", lambda path: save_pil(path, RED_CMYK), (255, 0, 0)),
    "cmyk-tiff": ("a.tif", lambda path: save_pil(path, RED_CMYK), (255, 0, 0)),
    "ycbcr-tiff": ("a.tif", lambda path: save_pil(path, Image.new("RGB", (24, 20), RGB).convert("YCbCr")), RGB),
    "palette-png": ("a.png", lambda path: save_pil(path, palette()), RGB),
    "palette-transparent-png": ("a.png", lambda path: save_pil(path, palette(), transparency=1), RGB),
    "palette-bmp": ("a.bmp", lambda path: save_pil(path, palette()), RGB),
    "palette-alpha-tiff": ("a.tif", lambda path: save_pil(path, palette("PA")), RGB),
    "bilevel-png": ("a.png", lambda path: save_pil(path, Image.new("1", (24, 20), 1)), (255, 255, 255)),
    "gray16-big-endian-tiff": ("a.tif", lambda path: write_tiff(path, gray(0).astype(">u2") + 200 * 257), (200,) * 3),
    "white-is-zero-tiff": ("a.tif", lambda path: write_tiff(path, gray(50), photometric="miniswhite"), (205,) * 3),
    "gray16-lzw-tiff": (
        "a.tif",
        lambda path: save_pil(path, Image.fromarray(gray(0).astype(np.uint16) + 51400), compression="tiff_lzw"),
        (200,) * 3,
    ),
}


@pytest.mark.parametrize("case", COLOR_FILES, ids=list(COLOR_FILES))
@pytest.mark.parametrize("channels", [1, 3])
def test_read_image_converts_color_spaces(tmp_path, case, channels):
    name, write, rgb = COLOR_FILES[case]
    result = read_image(write(tmp_path / name), (8, 10), channels)
    expected = [round(float(LUMA @ rgb))] if channels == 1 else list(rgb)
    tolerance = 3 if name.endswith(".jpg") else 2
    assert np.abs(result.astype(int) - expected).max() <= tolerance


def test_read_image_converts_cielab(tmp_path):
    neutral = read_image(save_pil(tmp_path / "gray.tif", Image.new("LAB", (8, 8), (136, 128, 128))), 4, 3)
    assert np.ptp(neutral) == 0 and abs(int(neutral[0, 0, 0]) - 127) <= 3  # L* 53.3 is sRGB 127
    red = read_image(save_pil(tmp_path / "red.tif", Image.new("LAB", (8, 8), (136, 208, 195))), 4, 3)
    assert np.all(red[..., 0] > 240) and np.all(red[..., 1:] < 20)


def test_read_image_cmyk_jpeg_is_not_read_as_rgba(tmp_path):
    path = save_pil(tmp_path / "red.jpg", RED_CMYK)
    assert abs(read_image(path, 8, 1).mean() - 54) <= 2


def test_read_image_applies_exif_orientation(tmp_path):
    stored = gray(20, (16, 24))
    stored[:, 12:] = 220  # left half dark, right half bright, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show it upright
    path = save_pil(tmp_path / "turned.jpg", Image.fromarray(stored), exif=exif)
    result = read_image(path, (24, 16), 1)[..., 0]
    assert result[:10].max() < 60  # the stored left half is now on top
    assert result[14:].min() > 180


def orientation_cases():
    stored = (np.arange(24).reshape(4, 6) * 10).astype(np.uint8)
    for orientation in range(1, 9):
        shown = Image.fromarray(stored)
        shown.getexif()[0x0112] = orientation
        expected = np.asarray(ImageOps.exif_transpose(shown))
        for writer in ["png", "tiff-lzw", "tiff-raw", "tiff-uint16"]:
            yield pytest.param(stored, orientation, writer, expected, id=f"{orientation}-{writer}")


@pytest.mark.parametrize(("stored", "orientation", "writer", "expected"), list(orientation_cases()))
def test_read_image_applies_every_orientation_in_every_decoder(tmp_path, stored, orientation, writer, expected):
    exif = Image.Exif()
    exif[0x0112] = orientation
    if writer == "png":
        path = save_pil(tmp_path / "a.png", Image.fromarray(stored), exif=exif)
    elif writer == "tiff-uint16":  # decoded by tifffile
        path = write_tiff(tmp_path / "a.tif", stored.astype(np.uint16) * 257, extratags=[(274, "H", 1, orientation)])
    else:  # tifffile decodes the raw TIFF (Pillow 13 scrambles those turned by 90 degrees), Pillow the LZW one
        options = {"compression": "tiff_lzw"} if writer == "tiff-lzw" else {}
        path = save_pil(tmp_path / "a.tif", Image.fromarray(stored), exif=exif, **options)
    assert np.array_equal(read_image(path, expected.shape, 1)[..., 0], expected)


def deep_rgb():
    values = np.rint((np.array(RGB) + 0.7) * 257).astype(np.uint16)  # Pillow would keep the high byte only
    return np.full((20, 24, 3), values, np.uint16), np.rint(values / 65535 * 255)


DEEP_RGB, DEEP_RGB_EXPECTED = deep_rgb()
PLANAR = {"photometric": "rgb", "planarconfig": "separate"}
TIFFS = {
    "rgb16": (DEEP_RGB, {}, DEEP_RGB_EXPECTED),
    "rgb16-planar": (DEEP_RGB.transpose(2, 0, 1), PLANAR, DEEP_RGB_EXPECTED),
    "rgba16": (np.dstack([DEEP_RGB, gray(0).astype(np.uint16)]), {}, DEEP_RGB_EXPECTED),
    "rgb-float32": (np.full((20, 24, 3), np.array(RGB) / 255, np.float32), {}, RGB),
    "gray-float64": (np.full((20, 24), 0.4), {}, (102,) * 3),
    "gray-float-0-and-1": (np.tile([0.0, 1.0], (20, 12)).astype(np.float32), {}, (128,) * 3),
    "gray-int16": (np.full((20, 24), 12000, np.int16), {}, (round(12000 / 32767 * 255),) * 3),
    "gray-int32": (np.full((20, 24), 2**29, np.int32), {}, (round(2**29 / (2**31 - 1) * 255),) * 3),
}


@pytest.mark.parametrize("case", TIFFS, ids=list(TIFFS))
def test_read_image_reads_deep_signed_and_float_tiffs_exactly(tmp_path, case):
    array, options, rgb = TIFFS[case]
    result = read_image(write_tiff(tmp_path / "deep.tif", array, **options), (10, 12), 3)
    assert np.abs(result.astype(int) - np.array(rgb)).max() <= (1 if "0-and-1" in case else 0)


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([0.0, 2.5], "from 0 to 2.5"),
        ([-0.5, 1.0], "from -0.5 to 1"),
        ([0.5, np.nan], "from 0.5 to 0.5 and NaN"),
        ([0.5, np.inf], "and inf"),
        ([300.0, 40000.0], "from 300 to 40000"),
    ],
)
@pytest.mark.parametrize("shape", [(20, 24), (20, 24, 3)])
def test_read_image_rejects_floats_outside_unit_range(tmp_path, values, shown, shape):
    array = np.resize(np.array(values, np.float32), shape)
    path = write_tiff(tmp_path / "float.tif", array)
    with pytest.raises(DatasetError, match="outside") as error:
        read_image(path, 8, 1)
    message = str(error.value)
    assert str(path) in message and shown in message
    assert "8- or 16-bit" in message and "rescale its values to [0, 1]" in message


@pytest.mark.parametrize("compression", [None, "tiff_lzw"], ids=["tifffile", "pillow"])
def test_read_image_scales_int32_tiffs_by_their_range(tmp_path, compression):
    path = save_pil(tmp_path / "int.tif", Image.fromarray(np.full((8, 8), 2**30, np.int32)), compression=compression)
    assert np.all(read_image(path, 4, 1) == 128)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: write_tiff(path, np.array([[-5, 300]] * 4, np.int16)),
        lambda path: save_pil(path, Image.fromarray(np.array([[-5, 300]] * 4, np.int32)), compression="tiff_lzw"),
    ],
    ids=["int16-tifffile", "int32-lzw-pillow"],
)
def test_read_image_rejects_negative_integers(tmp_path, write):
    path = write(tmp_path / "signed.tif")
    with pytest.raises(DatasetError, match="negative") as error:
        read_image(path, 4, 1)
    assert str(path) in str(error.value) and "-5" in str(error.value)


def animated_png(path):
    return save_pil(path, Image.new("L", (8, 8)), save_all=True, append_images=[Image.new("L", (8, 8), 9)])


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("pages.tif", lambda path: write_tiff(path, np.zeros((3, 8, 8), np.uint8))),
        ("pages.tif", lambda path: write_tiff(path, np.zeros((2, 8, 8), np.float32))),
        ("frames.png", animated_png),
    ],
    ids=["uint8-pages", "float-pages", "animated-png"],
)
def test_read_image_several_frames_are_an_error(tmp_path, name, write):
    path = write(tmp_path / name)
    with pytest.raises(DatasetError, match="frames or pages") as error:
        read_image(path, 4, 1)
    assert str(path) in str(error.value)


def test_read_image_reads_the_photo_of_a_multi_picture_jpeg(tmp_path):
    photo, preview = Image.new("RGB", (24, 20), RGB), Image.new("RGB", (12, 10), (0, 0, 255))
    path = save_pil(tmp_path / "camera.jpg", photo, format="MPO", save_all=True, append_images=[preview])
    assert Image.open(path).format == "MPO"
    assert np.abs(read_image(path, 4, 3).astype(int) - RGB).max() <= 3


def test_read_image_corrupt_tiff_names_both_decoders(tmp_path):
    path = corrupt(tmp_path / "broken.tif")
    with pytest.raises(DatasetError, match="cannot decode") as error:
        read_image(path, 8, 1)
    assert str(path) in str(error.value)
    assert "Pillow:" in str(error.value) and "tifffile:" in str(error.value)


@pytest.mark.parametrize(("size", "channels"), [(0, 1), ((8,), 1), ((8, 8, 8), 1), (8.5, 1), (8, 2), (8, True)])
def test_read_image_rejects_bad_parameters(tmp_path, size, channels):
    path = write_image(tmp_path / "image.png", gray(1))
    with pytest.raises(ValueError, match="image_size|channels"):
        read_image(path, size, channels)
