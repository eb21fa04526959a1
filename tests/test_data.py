"""Tests for cnnreg.data: dataset folders to validated, cached arrays."""

import imageio.v3 as iio
import numpy as np
import pytest

from cnnreg.data import (
    IMAGE_SUFFIXES,
    Cache,
    DatasetError,
    load_cache,
    prepare_cache,
    read_image,
    scan_dataset,
)

# ITU-R BT.709 luma weights, which skimage.color.rgb2gray uses
LUMA = np.array([0.2125, 0.7154, 0.0721])


def write_image(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path


def gray(value, shape=(20, 24)):
    return np.full(shape, value, dtype=np.uint8)


def make_tree(root, counts=None):
    """A dataset whose class `c` images are gray level 40 + 100 * index of `c` (sorted)."""
    counts = counts or {"Mel": (3, 2), "Nevi": (2, 1)}
    for index, (name, (n_train, n_val)) in enumerate(sorted(counts.items())):
        for split, n in (("train", n_train), ("validation", n_val)):
            for i in range(n):
                write_image(root / split / name / f"img{i}.png", gray(40 + 100 * index))
    return root


def corrupt(path, data=b"this is not an image"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- scan_dataset -------------------------------------------------------------------------


def test_scan_lists_sorted_classes_and_relative_paths(tmp_path):
    root = make_tree(tmp_path / "data", {"Nevi": (2, 1), "Mel": (3, 2)})
    listing = scan_dataset(root)
    assert listing["classes"] == ["Mel", "Nevi"]
    assert listing["train"] == [
        ("train/Mel/img0.png", 0),
        ("train/Mel/img1.png", 0),
        ("train/Mel/img2.png", 0),
        ("train/Nevi/img0.png", 1),
        ("train/Nevi/img1.png", 1),
    ]
    assert listing["validation"] == [
        ("validation/Mel/img0.png", 0),
        ("validation/Mel/img1.png", 0),
        ("validation/Nevi/img0.png", 1),
    ]


def test_scan_explicit_classes_set_label_order(tmp_path):
    root = make_tree(tmp_path / "data")
    listing = scan_dataset(root, classes=["Nevi", "Mel"])
    assert listing["classes"] == ["Nevi", "Mel"]
    labels = {path.split("/")[1]: label for path, label in listing["train"]}
    assert labels == {"Nevi": 0, "Mel": 1}


def test_scan_explicit_classes_ignore_other_folders(tmp_path):
    root = make_tree(tmp_path / "data", {"a": (1, 1), "b": (1, 1), "c": (1, 1)})
    listing = scan_dataset(root, classes=["c", "a"])
    assert listing["classes"] == ["c", "a"]
    assert [path for path, _ in listing["train"]] == ["train/a/img0.png", "train/c/img0.png"]


def test_scan_accepts_every_suffix_in_any_case_and_ignores_junk(tmp_path):
    root = make_tree(tmp_path / "data", {"a": (1, 1), "b": (1, 1)})
    folder = root / "train" / "a"
    names = ["x.PNG", "y.JPG", "z.jpeg", "w.TIF", "v.tiff", "u.Bmp"]
    for name in names:
        write_image(folder / name, gray(90))
    for junk in [".DS_Store", "Thumbs.db", "desktop.ini", "notes.txt", "._x.png", ".hidden.png"]:
        (folder / junk).write_bytes(b"junk")
    write_image(folder / ".thumbnails" / "t.png", gray(10))
    write_image(root / "train" / ".cache" / "t.png", gray(10))
    write_image(root / "validation" / ".cache" / "t.png", gray(10))
    listing = scan_dataset(root)
    assert listing["classes"] == ["a", "b"]
    found = {path for path, _ in listing["train"] if path.startswith("train/a/")}
    assert found == {f"train/a/{name}" for name in [*names, "img0.png"]}
    assert {suffix.lower() for suffix in IMAGE_SUFFIXES} == {
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".bmp",
    }


def test_scan_missing_root_names_it(tmp_path):
    with pytest.raises(DatasetError, match="nowhere") as error:
        scan_dataset(tmp_path / "nowhere")
    assert "train" in str(error.value)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_scan_missing_split_names_it(tmp_path, split):
    root = make_tree(tmp_path / "data")
    for path in sorted((root / split).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / split).rmdir()
    with pytest.raises(DatasetError) as error:
        scan_dataset(root)
    assert str(root / split) in str(error.value)


def test_scan_one_class_is_an_error(tmp_path):
    root = make_tree(tmp_path / "data", {"only": (2, 2)})
    with pytest.raises(DatasetError, match="at least two class folders") as error:
        scan_dataset(root)
    assert str(root) in str(error.value)
    assert "only" in str(error.value)


def test_scan_empty_class_names_the_folder(tmp_path):
    root = make_tree(tmp_path / "data")
    empty = root / "validation" / "Zeta"
    (root / "train" / "Zeta").mkdir()
    write_image(root / "train" / "Zeta" / "z.png", gray(5))
    empty.mkdir()
    (empty / "Thumbs.db").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="without images") as error:
        scan_dataset(root)
    assert str(empty) in str(error.value)
    assert str(root / "train" / "Zeta") not in str(error.value)


def test_scan_mismatched_classes_lists_the_differences(tmp_path):
    root = make_tree(tmp_path / "data")
    write_image(root / "train" / "Extra" / "e.png", gray(5))
    write_image(root / "validation" / "Other" / "o.png", gray(5))
    with pytest.raises(DatasetError, match="different class folders") as error:
        scan_dataset(root)
    message = str(error.value)
    assert f"only in {root / 'train'}: Extra" in message
    assert f"only in {root / 'validation'}: Other" in message


def test_scan_explicit_class_without_folder_names_the_path(tmp_path):
    root = make_tree(tmp_path / "data")
    with pytest.raises(DatasetError, match="do not exist") as error:
        scan_dataset(root, classes=["Mel", "Melanoma"])
    assert str(root / "train" / "Melanoma") in str(error.value)


@pytest.mark.parametrize("classes", [["Mel"], ["Mel", "Mel"], "Mel"])
def test_scan_rejects_bad_classes_lists(tmp_path, classes):
    root = make_tree(tmp_path / "data")
    with pytest.raises(DatasetError, match="classes"):
        scan_dataset(root, classes=classes)


# --- read_image ---------------------------------------------------------------------------

RGB = (30, 200, 90)
RGB_AS_GRAY = round(float(LUMA @ RGB))


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


@pytest.mark.parametrize(("size", "channels"), [(0, 1), ((8,), 1), ((8, 8, 8), 1), (8.5, 1), (8, 2), (8, True)])
def test_read_image_rejects_bad_parameters(tmp_path, size, channels):
    path = write_image(tmp_path / "image.png", gray(1))
    with pytest.raises(ValueError, match="image_size|channels"):
        read_image(path, size, channels)


# --- prepare_cache / load_cache -----------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_prepare_cache_writes_arrays_that_load_back(tmp_path, channels):
    root = make_tree(tmp_path / "data")
    out = tmp_path / "cache" / "data-8x12.npz"
    summary = prepare_cache(root, out, (8, 12), channels)
    assert summary["train"] == {"Mel": 3, "Nevi": 2}
    assert summary["validation"] == {"Mel": 2, "Nevi": 1}
    assert summary["classes"] == ["Mel", "Nevi"]

    with np.load(out) as npz:
        assert npz["image_size"].tolist() == [8, 12]
        assert int(npz["channels"]) == channels
    cache = load_cache(out)
    assert isinstance(cache, Cache)
    assert cache.classes == ["Mel", "Nevi"]
    assert cache.x_train.shape == (5, 8, 12, channels)
    assert cache.x_val.shape == (3, 8, 12, channels)
    assert cache.x_train.dtype == cache.x_val.dtype == np.uint8
    assert cache.y_train.dtype == cache.y_val.dtype == np.int64
    listing = scan_dataset(root)
    for files, labels, split in [
        (cache.files_train, cache.y_train, "train"),
        (cache.files_val, cache.y_val, "validation"),
    ]:
        assert list(zip(files.tolist(), labels.tolist(), strict=True)) == listing[split]
    # each image holds its class's gray level: label 0 is 40, label 1 is 140
    levels = cache.x_train.reshape(len(cache.x_train), -1)
    assert np.all(levels == (40 + 100 * cache.y_train)[:, None])


def test_prepare_cache_uses_explicit_class_order(tmp_path):
    root = make_tree(tmp_path / "data")
    out = tmp_path / "cache.npz"
    prepare_cache(root, out, 4, 1, classes=["Nevi", "Mel"])
    cache = load_cache(out)
    assert cache.classes == ["Nevi", "Mel"]
    nevi = np.char.startswith(cache.files_train, "train/Nevi/")
    assert np.all(cache.y_train[nevi] == 0)
    assert np.all(cache.y_train[~nevi] == 1)


def test_prepare_cache_mixes_formats_and_modes(tmp_path):
    root = make_tree(tmp_path / "data", {"a": (1, 1), "b": (1, 1)})
    rgb = np.full((30, 20, 3), RGB, np.uint8)
    write_image(root / "train" / "a" / "rgb.JPG", rgb)
    write_image(root / "train" / "a" / "rgba.png", np.dstack([rgb, gray(255, (30, 20))]))
    write_image(root / "train" / "b" / "deep.tif", np.full((40, 40), 50000, np.uint16))
    write_image(root / "train" / "b" / "gray.bmp", gray(7, (9, 33)))
    write_image(root / "validation" / "b" / "ga.png", np.dstack([gray(60), gray(128)]))
    prepare_cache(root, tmp_path / "cache.npz", 6, 3)
    cache = load_cache(tmp_path / "cache.npz")
    assert cache.x_train.shape == (6, 6, 6, 3)
    assert cache.x_val.shape == (3, 6, 6, 3)
    pixel = dict(zip(cache.files_train.tolist(), cache.x_train[:, 3, 3].astype(int), strict=True))
    assert np.abs(pixel["train/a/rgb.JPG"] - RGB).max() <= 3
    assert list(pixel["train/a/rgba.png"]) == list(RGB)
    assert list(pixel["train/b/deep.tif"]) == [round(50000 * 255 / 65535)] * 3
    assert list(pixel["train/b/gray.bmp"]) == [7] * 3


def test_prepare_cache_lists_every_undecodable_file_and_writes_nothing(tmp_path):
    root = make_tree(tmp_path / "data")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    whole = write_image(tmp_path / "noise.png", noise).read_bytes()
    bad = [
        corrupt(root / "train" / "Mel" / "garbage.png"),
        corrupt(root / "train" / "Nevi" / "truncated.png", whole[: len(whole) // 2]),
        corrupt(root / "validation" / "Nevi" / "empty.JPG", b""),
    ]
    out = tmp_path / "cache" / "data.npz"
    with pytest.raises(DatasetError, match="3 image") as error:
        prepare_cache(root, out, 8, 1)
    for path in bad:
        assert str(path) in str(error.value)
    assert str(root / "train" / "Mel" / "img0.png") not in str(error.value)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_prepare_cache_failing_write_leaves_old_cache_and_no_temporary(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "data")
    out = tmp_path / "data.npz"
    out.write_bytes(b"previous cache")

    def half_write(stream, **arrays):
        stream.write(b"PK half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_write)
    with pytest.raises(OSError, match="disk full"):
        prepare_cache(root, out, 8, 1)
    assert out.read_bytes() == b"previous cache"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "data.npz"]


def test_prepare_cache_layout_error_writes_nothing(tmp_path):
    root = make_tree(tmp_path / "data", {"only": (1, 1)})
    out = tmp_path / "data.npz"
    with pytest.raises(DatasetError, match="at least two"):
        prepare_cache(root, out, 8, 1)
    assert not out.exists()


def test_load_cache_missing_file_says_to_rerun_prepare_data(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DatasetError, match="prepare_data") as error:
        load_cache(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04 truncated zip"])
def test_load_cache_corrupt_file_says_to_rerun_prepare_data(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="prepare_data") as error:
        load_cache(path)
    assert str(path) in str(error.value)


def test_load_cache_missing_array_is_an_error(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((1, 2, 2, 1), np.uint8))
    with pytest.raises(DatasetError, match="prepare_data") as error:
        load_cache(path)
    assert str(path) in str(error.value)
