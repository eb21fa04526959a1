"""Tests for cnnreg.synthetic: seeded demo datasets in the real data layout."""

import csv

import imageio.v3 as iio
import numpy as np
import pytest

import cnnreg.synthetic as synthetic
from cnnreg.data import load_cache, prepare_cache
from cnnreg.folders import scan_dataset
from cnnreg.synthetic import (
    DATASETS,
    EVIDENCE_COLUMNS,
    LABEL_CORNERS,
    MARKER_COLUMNS,
    femur_image,
    main,
    make_demo_datasets,
    skin_image,
)

SMALL = {"n_train": 3, "n_val": 2, "size": 32}
EXPECTED_CLASSES = {"Skin": ["Mel", "Nevi"], "Bone": ["AFF", "NFF"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_datasets(tmp_path_factory.mktemp("demo"), seed=0, **SMALL)


def read_evidence(root):
    with open(root / "evidence.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def tree_bytes(root):
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_layout_and_counts_match_the_real_data(demo):
    assert set(demo) == set(EXPECTED_CLASSES) == set(DATASETS)
    for name, root in demo.items():
        listing = scan_dataset(root)
        assert listing["classes"] == EXPECTED_CLASSES[name]
        for split, count in (("train", SMALL["n_train"]), ("validation", SMALL["n_val"])):
            labels = [label for _, label in listing[split]]
            assert labels.count(0) == labels.count(1) == count
        assert all(path.endswith(".png") for path, _ in listing["train"] + listing["validation"])


def test_images_are_rgb_skin_and_gray_bone(demo):
    skin = iio.imread(demo["Skin"] / "train" / "Mel" / "Mel_0000.png")
    bone = iio.imread(demo["Bone"] / "validation" / "NFF" / "NFF_0001.png")
    assert skin.shape == (32, 32, 3)
    assert bone.shape == (32, 32)
    assert skin.dtype == bone.dtype == np.uint8


def test_same_seed_gives_identical_bytes_and_another_seed_differs(demo, tmp_path):
    again = make_demo_datasets(tmp_path / "again", seed=0, **SMALL)
    other = make_demo_datasets(tmp_path / "other", seed=1, **SMALL)
    for name, root in demo.items():
        original = tree_bytes(root)
        assert tree_bytes(again[name]) == original
        different = tree_bytes(other[name])
        assert different.keys() == original.keys()
        images = [key for key in original if key.endswith(".png")]
        assert all(different[key] != original[key] for key in images)


def test_images_do_not_depend_on_counts(demo, tmp_path):
    fewer = make_demo_datasets(tmp_path / "fewer", n_train=2, n_val=1, size=32, seed=0)
    for name, root in fewer.items():
        for key, content in tree_bytes(root).items():
            if key.endswith(".png"):
                assert content == (demo[name] / key).read_bytes()


def test_evidence_rows_match_files_and_boxes_fit(demo):
    for root in demo.values():
        rows = read_evidence(root)
        assert tuple(rows[0]) == EVIDENCE_COLUMNS
        listing = scan_dataset(root)
        classes = listing["classes"]
        expected = {
            (path, classes[label], split) for split in ("train", "validation") for path, label in listing[split]
        }
        assert {(row["file"], row["label"], row["split"]) for row in rows} == expected
        assert len(rows) == len(expected)
        for row in rows:
            for columns in (("x0", "y0", "x1", "y1"), MARKER_COLUMNS):
                x0, y0, x1, y1 = (int(row[key]) for key in columns)
                assert 0 <= x0 < x1 <= SMALL["size"]
                assert 0 <= y0 < y1 <= SMALL["size"]


@pytest.mark.parametrize("draw", [skin_image, femur_image])
def test_boxes_are_modest_and_move_around(draw):
    size = 128
    drawn = [draw(np.random.default_rng(i), i % 2 == 0, size) for i in range(40)]
    boxes = np.array([box for _, box, _ in drawn])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / size**2
    assert areas.max() <= 0.1 and areas.min() > 0.02
    centers = np.column_stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]]) / 2
    assert np.ptp(centers[:, 0]) > 0.5 * size and np.ptp(centers[:, 1]) > 0.5 * size
    # never near the centre: a map that peaks at the centre misses every box by more than 15 px at 224
    gap = np.hypot(
        np.maximum.reduce([boxes[:, 0] - size / 2, size / 2 - boxes[:, 2], np.zeros(len(boxes))]),
        np.maximum.reduce([boxes[:, 1] - size / 2, size / 2 - boxes[:, 3], np.zeros(len(boxes))]),
    )
    assert gap.min() >= 15 / 224 * size
    for _, (x0, y0, x1, y1), (mx0, my0, mx1, my1) in drawn:  # evidence and marker never overlap
        assert x1 <= mx0 or mx1 <= x0 or y1 <= my0 or my1 <= y0


def test_melanomas_are_darker_inside_their_box():
    def box_mean(melanoma, i):
        image, (x0, y0, x1, y1), _ = skin_image(np.random.default_rng(i), melanoma, 64)
        return np.percentile(image[y0:y1, x0:x1], 10) - np.median(image)  # the lesion's darkest tenth

    melanoma = [box_mean(True, i) for i in range(30)]
    nevus = [box_mean(False, i) for i in range(30)]
    assert np.mean(melanoma) < np.mean(nevus) - 10


@pytest.mark.parametrize("draw", [skin_image, femur_image])
def test_classes_differ_only_inside_the_evidence_boxes(draw):
    """From the same generator state both classes draw the same nuisances; only evidence differs."""
    for i in range(8):
        positive, box_p, marker_p = draw(np.random.default_rng(i), True, 128)
        negative, box_n, marker_n = draw(np.random.default_rng(i), False, 128)
        assert marker_p == marker_n
        changed = positive != negative
        if changed.ndim == 3:
            changed = changed.any(axis=-1)
        assert changed.any()
        outside = np.ones_like(changed)
        for x0, y0, x1, y1 in (box_p, box_n):
            outside[y0:y1, x0:x1] = False
        assert not changed[outside].any()


@pytest.mark.parametrize("draw", [skin_image, femur_image])
def test_marker_is_a_bright_label_in_a_random_corner_or_the_class_corner(draw):
    size = 64
    corners = []
    for i in range(16):
        image, _, (x0, y0, x1, y1) = draw(np.random.default_rng(i), True, size)
        gray = image.mean(axis=-1) if image.ndim == 3 else image
        assert np.median(gray[y0:y1, x0:x1]) > np.median(gray) + 20  # bright, with a dark glyph
        assert gray[y0:y1, x0:x1].min() < 100
        corners.append((x0 < size / 2, y0 < size / 2))
    assert len(set(corners)) == 4
    for label, corner in enumerate(LABEL_CORNERS):
        shortcut = draw(np.random.default_rng(0), label == 0, size, marker_corner=corner)[2]
        assert (shortcut[0] < size / 2, shortcut[1] < size / 2) == (corner % 2 == 0, corner < 2)


def test_test_split_and_marker_is_label(tmp_path):
    roots = make_demo_datasets(tmp_path / "d", n_train=2, n_val=1, n_test=2, size=32, marker_is_label=True)
    rows = read_evidence(roots["Skin"])
    assert sorted({row["split"] for row in rows}) == ["test", "train", "validation"]
    assert sorted(p.name for p in (roots["Skin"] / "test" / "Nevi").iterdir()) == ["Nevi_0000.png", "Nevi_0001.png"]
    for row in rows:  # the first class's marker top left, the second's bottom right
        top_left = int(row["marker_x0"]) < 16 and int(row["marker_y0"]) < 16
        assert top_left == (row["label"] == "Mel")
    neutral = make_demo_datasets(tmp_path / "n", n_train=2, n_val=1, size=32)
    assert not (neutral["Skin"] / "test").exists()


def test_generated_tree_loads_through_prepare_cache(demo, tmp_path):
    for name, channels in (("Skin", 3), ("Bone", 1)):
        out = tmp_path / f"{name}.npz"
        summary = prepare_cache(demo[name], out, 16, channels)
        assert summary["classes"] == EXPECTED_CLASSES[name]
        cache = load_cache(out)
        assert cache.x_train.shape == (2 * SMALL["n_train"], 16, 16, channels)
        assert cache.x_val.shape == (2 * SMALL["n_val"], 16, 16, channels)
        files = {row["file"] for row in read_evidence(demo[name])}
        assert set(cache.files_train) | set(cache.files_val) == files


@pytest.mark.parametrize(
    "arguments",
    [{"n_train": 0}, {"n_val": -1}, {"n_test": -1}, {"size": 16}, {"seed": -1}, {"n_train": 2.5}],
)
def test_make_demo_datasets_rejects_bad_arguments(tmp_path, arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        make_demo_datasets(tmp_path, **{**SMALL, **arguments})


def test_make_demo_datasets_refuses_to_mix_with_existing_folders(tmp_path):
    (tmp_path / "Bone").mkdir()
    with pytest.raises(FileExistsError, match="Bone"):
        make_demo_datasets(tmp_path, **SMALL)


CLI_ARGS = ["--n-train", "2", "--n-val", "1", "--n-test", "0", "--size", "32", "--seed", "3"]


def test_cli_writes_both_datasets_then_does_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    main([str(out), *CLI_ARGS])
    assert "wrote" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo"]
    assert sorted(path.name for path in out.iterdir()) == ["Bone", "Skin"]
    written = tree_bytes(out)
    assert len(scan_dataset(out / "Skin")["train"]) == 4

    main([str(out), *CLI_ARGS, "--seed", "4"])
    assert "nothing to do" in capsys.readouterr().out
    assert tree_bytes(out) == written


def test_cli_matches_the_library(tmp_path):
    main([str(tmp_path / "cli"), *CLI_ARGS])
    library = make_demo_datasets(tmp_path / "lib", n_train=2, n_val=1, size=32, seed=3)
    for name, root in library.items():
        assert tree_bytes(tmp_path / "cli" / name) == tree_bytes(root)


def test_cli_fills_an_existing_empty_folder(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    main([str(out), *CLI_ARGS])
    assert sorted(path.name for path in out.iterdir()) == ["Bone", "Skin"]


def test_cli_rejects_bad_arguments_before_writing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "demo"), "--size", "8"])
    assert "size must be an int >= 32" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_folder_with_other_content(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "Skin").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main([str(out), *CLI_ARGS])
    assert "remove it" in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["Skin"]


def test_cli_interrupted_leaves_no_tree(tmp_path, monkeypatch):
    written = []

    def failing_write(path, image):
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(path)
        iio.imwrite(path, image)

    monkeypatch.setattr(synthetic.iio, "imwrite", failing_write)
    with pytest.raises(KeyboardInterrupt):
        main([str(tmp_path / "demo"), *CLI_ARGS])
    assert written
    assert list(tmp_path.iterdir()) == []
