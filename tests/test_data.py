"""Tests for cnnreg.data: dataset folders to validated, cached arrays."""

import os
import shutil

import numpy as np
import pytest
from image_helpers import RGB, corrupt, gray, write_image

from cnnreg.data import Cache, array_digest, load_cache, prepare_cache
from cnnreg.folders import IMAGE_SUFFIXES, dataset_signature, first_image, scan_dataset
from cnnreg.images import DatasetError


def make_tree(root, counts=None):
    """A dataset whose class `c` images are gray level 40 + 100 * index of `c` (sorted)."""
    counts = counts or {"Mel": (3, 2), "Nevi": (2, 1)}
    for index, (name, (n_train, n_val)) in enumerate(sorted(counts.items())):
        for split, n in (("train", n_train), ("validation", n_val)):
            for i in range(n):
                write_image(root / split / name / f"img{i}.png", gray(40 + 100 * index))
    return root


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


def test_scan_reports_every_ignored_entry(tmp_path):
    root = make_tree(tmp_path / "data", {"a": (1, 1), "b": (1, 1), "c": (1, 1)})
    for junk in ["train/a/.DS_Store", "train/a/Thumbs.db", "train/a/notes.txt", "train/a/x.webp", "train/README"]:
        (root / junk).write_bytes(b"junk")
    write_image(root / "train" / "a" / "more" / "m.png", gray(10))
    write_image(root / "train" / "loose.png", gray(10))
    (root / "train" / ".cache").mkdir()
    (root / "validation" / ".DS_Store").write_bytes(b"junk")
    listing = scan_dataset(root, classes=["a", "b"])
    assert listing["ignored"] == [
        "train/.cache",
        "train/README",
        "train/a/.DS_Store",
        "train/a/Thumbs.db",
        "train/a/more",
        "train/a/notes.txt",
        "train/a/x.webp",
        "train/c",
        "train/loose.png",
        "validation/.DS_Store",
        "validation/c",
    ]
    assert scan_dataset(make_tree(tmp_path / "clean"))["ignored"] == []


@pytest.mark.parametrize("broken", ["dangling", "loop"])
def test_scan_broken_links_are_errors_naming_each(tmp_path, broken):
    root = make_tree(tmp_path / "data")
    links = [root / "train" / "Mel" / "moved.png", root / "validation" / "Nevi" / "gone.jpg"]
    for link in links:
        link.symlink_to(tmp_path / "nowhere.png" if broken == "dangling" else link)
    with pytest.raises(DatasetError, match="fix or delete") as error:
        scan_dataset(root)
    for link in links:
        assert str(link) in str(error.value)


@pytest.mark.parametrize("broken", ["dangling", "loop"])
def test_scan_broken_class_folder_link_is_an_error(tmp_path, broken):
    root = make_tree(tmp_path / "data")
    link = root / "validation" / "Zeta"
    link.symlink_to(tmp_path / "moved" if broken == "dangling" else link)
    with pytest.raises(DatasetError, match="broken symbolic links") as error:
        scan_dataset(root)
    assert str(link) in str(error.value)


def test_scan_follows_working_links(tmp_path):
    root = make_tree(tmp_path / "data")
    elsewhere = write_image(tmp_path / "store" / "extra.png", gray(7))
    (root / "train" / "Mel" / "extra.png").symlink_to(elsewhere)
    (root / "train" / "Kept").symlink_to(root / "train" / "Mel")
    (root / "validation" / "Kept").symlink_to(root / "validation" / "Mel")
    listing = scan_dataset(root)
    assert listing["classes"] == ["Kept", "Mel", "Nevi"]
    assert ("train/Mel/extra.png", 1) in listing["train"]
    assert ("train/Kept/extra.png", 0) in listing["train"]


# --- first_image --------------------------------------------------------------------------


def test_first_image_skips_hidden_entries_and_junk(tmp_path):
    root = make_tree(tmp_path / "data")
    for folder in [root / "train", root / "train" / "Mel"]:
        (folder / ".DS_Store").write_bytes(b"junk")
        (folder / ".cache").mkdir()
    (root / "train" / "Mel" / "Thumbs.db").write_bytes(b"junk")
    assert first_image(root) == root / "train" / "Mel" / "img0.png"
    assert first_image(str(root), classes=["Nevi", "Mel"]) == root / "train" / "Nevi" / "img0.png"
    assert first_image(root, split="validation") == root / "validation" / "Mel" / "img0.png"


def test_first_image_rejects_unknown_split_and_bad_layout(tmp_path):
    root = make_tree(tmp_path / "data")
    with pytest.raises(ValueError, match="split"):
        first_image(root, split="test")
    with pytest.raises(DatasetError, match="does not exist"):
        first_image(tmp_path / "nowhere")


# --- dataset_signature --------------------------------------------------------------------


def set_mtime(path, ns):
    os.utime(path, ns=(ns, ns))
    return path


def replace_same_size(root):
    path = root / "train" / "Mel" / "img0.png"
    mtime = path.stat().st_mtime_ns
    path.write_bytes(bytes(reversed(path.read_bytes())))
    set_mtime(path, mtime + 1_000_000_000)


def replace_keep_mtime(root):
    path = root / "train" / "Mel" / "img0.png"
    mtime = path.stat().st_mtime_ns
    write_image(path, np.random.default_rng(0).integers(0, 256, (20, 24), dtype=np.uint8))
    set_mtime(path, mtime)


CHANGES = {
    "add image": lambda root: write_image(root / "train" / "Mel" / "new.png", gray(1)),
    "remove image": lambda root: (root / "validation" / "Nevi" / "img0.png").unlink(),
    "replace image, same size": replace_same_size,
    "replace image, same mtime": replace_keep_mtime,
    "rename image": lambda root: (root / "train" / "Mel" / "img1.png").rename(root / "train" / "Mel" / "img9.png"),
    "add class folder": lambda root: (root / "train" / "Zeta").mkdir(),
    "remove class folder": lambda root: shutil.rmtree(root / "validation" / "Nevi"),
    "add test image": lambda root: write_image(root / "test" / "Mel" / "t.png", gray(1)),
    "add junk file": lambda root: (root / "train" / "Mel" / "notes.txt").write_text("x"),
    "add broken link": lambda root: (root / "train" / "Mel" / "lost.png").symlink_to(root / "nowhere"),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_dataset_signature_changes_with_the_images(tmp_path, change):
    root = make_tree(tmp_path / "data")
    before = dataset_signature(root)
    CHANGES[change](root)
    assert dataset_signature(root) != before


def test_dataset_signature_stays_when_nothing_changes(tmp_path):
    root = make_tree(tmp_path / "data")
    before = dataset_signature(root)
    assert len(before) == 64 and int(before, 16) >= 0
    prepare_cache(root, tmp_path / "cache.npz", 8, 1)  # reads every image
    (root / "train" / "Mel" / ".DS_Store").write_bytes(b"junk")  # hidden entries do not count
    assert dataset_signature(str(root)) == before


def test_dataset_signature_is_independent_of_place_and_listing_order(tmp_path, monkeypatch):
    first, second = make_tree(tmp_path / "one"), tmp_path / "two"
    shutil.copytree(first, second)  # a different folder, its entries created anew
    for path in [*first.rglob("*"), *second.rglob("*")]:
        set_mtime(path, 1_700_000_000_000_000_000)
    expected = dataset_signature(first)
    assert dataset_signature(second) == expected

    scandir = os.scandir

    class Reversed:
        def __init__(self, path):
            with scandir(path) as entries:
                self.entries = list(entries)[::-1]

        def __enter__(self):
            return iter(self.entries)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(os, "scandir", Reversed)
    assert dataset_signature(first) == expected


def test_dataset_signature_of_missing_folders_does_not_raise(tmp_path):
    empty = dataset_signature(tmp_path / "nowhere")
    (tmp_path / "nowhere" / "train").mkdir(parents=True)
    assert dataset_signature(tmp_path / "nowhere") == empty
    write_image(tmp_path / "nowhere" / "train" / "a" / "x.png", gray(1))
    assert dataset_signature(tmp_path / "nowhere") != empty


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


def test_prepare_cache_summary_reports_what_it_ignored(tmp_path):
    root = make_tree(tmp_path / "data")
    junk = sorted(f"train/Mel/junk{i:02d}.txt" for i in range(11)) + ["validation/.DS_Store"]
    for name in junk:
        (root / name).write_bytes(b"junk")
    summary = prepare_cache(root, tmp_path / "cache.npz", 4, 1)
    assert summary["ignored"] == {"count": 12, "first": junk[:10]}
    assert summary["train"] == {"Mel": 3, "Nevi": 2}


def test_cache_digest_is_of_the_content(tmp_path):
    first, second = make_tree(tmp_path / "one"), make_tree(tmp_path / "two")
    summaries = [prepare_cache(root, tmp_path / f"{root.name}.npz", (20, 24), 1) for root in (first, second)]
    caches = [load_cache(tmp_path / f"{root.name}.npz") for root in (first, second)]
    assert caches[0].digest == caches[1].digest == summaries[0]["digest"] == summaries[1]["digest"]
    with np.load(tmp_path / "one.npz") as npz:
        stored = {key: npz[key] for key in npz.files if key != "digest"}
    assert array_digest(stored) == caches[0].digest

    image = gray(140)
    image[3, 5] = 141
    write_image(second / "validation" / "Nevi" / "img0.png", image)
    prepare_cache(second, tmp_path / "two.npz", (20, 24), 1)
    assert load_cache(tmp_path / "two.npz").digest != caches[0].digest


def test_array_digest_covers_names_dtypes_shapes_and_bytes(tmp_path):
    values = np.arange(12, dtype=np.uint8)
    base = array_digest({"a": values, "b": np.array(["x", "yz"])})
    assert array_digest({"b": np.array(["x", "yz"]), "a": values}) == base
    assert array_digest({"b": ["x", "yz"], "a": values.tolist()}) != base  # int64, not uint8
    for changed in [
        {"a": values.view(np.int8), "b": np.array(["x", "yz"])},
        {"a": values.reshape(3, 4), "b": np.array(["x", "yz"])},
        {"c": values, "b": np.array(["x", "yz"])},
        {"a": values, "b": np.array(["xy", "z"])},
    ]:
        assert array_digest(changed) != base
    grid = np.arange(24).reshape(4, 6)
    assert array_digest({"g": grid[:, ::2]}) == array_digest({"g": grid[:, ::2].copy()})
    assert array_digest({"g": np.asfortranarray(grid)}) == array_digest({"g": grid})
    with pytest.raises(TypeError, match="Python objects"):
        array_digest({"o": np.array([None, 1], dtype=object)})


def test_load_cache_without_digest_says_to_rerun_prepare_data(tmp_path):
    root = make_tree(tmp_path / "data")
    path = tmp_path / "cache.npz"
    prepare_cache(root, path, 4, 1)
    with np.load(path) as npz:
        older = {key: npz[key] for key in npz.files if key != "digest"}
    np.savez(path, **older)
    with pytest.raises(DatasetError, match="lacks digest") as error:
        load_cache(path)
    assert str(path) in str(error.value) and "prepare_data" in str(error.value)


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

    savez = np.savez

    def write_then_fail(target, **arrays):
        savez(target, **arrays)
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", write_then_fail)
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


# --- the held-out test split --------------------------------------------------------------


def add_test_split(root, counts):
    """A test/ split, class `c`'s images gray level 60 + 100 * index of `c` (sorted)."""
    for index, (name, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            write_image(root / "test" / name / f"held{i}.png", gray(60 + 100 * index))
    return root


def test_scan_lists_a_test_split_and_an_empty_one_without_it(tmp_path):
    root = make_tree(tmp_path / "data")
    assert scan_dataset(root)["test"] == []
    add_test_split(root, {"Mel": 1, "Nevi": 2})
    listing = scan_dataset(root)
    assert listing["test"] == [("test/Mel/held0.png", 0), ("test/Nevi/held0.png", 1), ("test/Nevi/held1.png", 1)]
    assert len(listing["train"]) == 5 and listing["ignored"] == []


def test_scan_test_split_must_hold_the_same_classes(tmp_path):
    root = add_test_split(make_tree(tmp_path / "data"), {"Mel": 1, "Other": 1})
    with pytest.raises(DatasetError, match=r"train and test of .* different class folders .*only in .*test: Other"):
        scan_dataset(root)
    with pytest.raises(DatasetError, match=r"class folders named in classes do not exist: .*test/Nevi"):
        scan_dataset(root, classes=["Mel", "Nevi"])


def test_prepare_cache_stores_the_test_split_apart(tmp_path):
    root = make_tree(tmp_path / "data")
    prepare_cache(root, tmp_path / "plain.npz", (8, 12), 1)
    plain = load_cache(tmp_path / "plain.npz")
    assert plain.x_test.shape == (0, 8, 12, 1) and plain.x_test.dtype == np.uint8
    assert plain.y_test.shape == plain.files_test.shape == (0,)
    add_test_split(root, {"Mel": 1, "Nevi": 2})
    summary = prepare_cache(root, tmp_path / "held.npz", (8, 12), 1)
    assert summary["test"] == {"Mel": 1, "Nevi": 2}
    held = load_cache(tmp_path / "held.npz")
    assert held.files_test.tolist() == ["test/Mel/held0.png", "test/Nevi/held0.png", "test/Nevi/held1.png"]
    assert held.y_test.tolist() == [0, 1, 1]
    assert np.all(held.x_test.reshape(3, -1) == (60 + 100 * held.y_test)[:, None])
    # Train and validation are what they were without the test split; only the digest differs.
    for key in ("x_train", "y_train", "x_val", "y_val", "files_train", "files_val"):
        np.testing.assert_array_equal(getattr(held, key), getattr(plain, key))
    assert not set(held.files_test) & (set(held.files_train) | set(held.files_val))
    assert held.digest != plain.digest
