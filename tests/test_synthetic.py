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
            x0, y0, x1, y1 = (int(row[key]) for key in ("x0", "y0", "x1", "y1"))
            assert 0 <= x0 < x1 <= SMALL["size"]
            assert 0 <= y0 < y1 <= SMALL["size"]


@pytest.mark.parametrize("draw", [skin_image, femur_image])
def test_boxes_are_modest_and_move_around(draw):
    size = 128
    boxes = [draw(np.random.default_rng(i), i % 2 == 0, size)[1] for i in range(24)]
    areas = [(x1 - x0) * (y1 - y0) / size**2 for x0, y0, x1, y1 in boxes]
    assert max(areas) <= 0.25
    assert min(areas) > 0.02
    centers = np.array([((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in boxes])
    assert np.ptp(centers[:, 1]) > 0.1 * size
    if draw is skin_image:
        assert np.ptp(centers[:, 0]) > 0.1 * size


def test_melanomas_are_darker_inside_their_box():
    def box_mean(melanoma, i):
        image, (x0, y0, x1, y1) = skin_image(np.random.default_rng(i), melanoma, 64)
        return image[y0:y1, x0:x1].mean() - np.median(image)

    melanoma = [box_mean(True, i) for i in range(30)]
    nevus = [box_mean(False, i) for i in range(30)]
    assert np.mean(melanoma) < np.mean(nevus) - 10


@pytest.mark.parametrize("draw", [skin_image, femur_image])
def test_classes_differ_only_inside_the_evidence_boxes(draw):
    """From the same generator state both classes draw the same nuisances; only evidence differs."""
    for i in range(8):
        positive, box_p = draw(np.random.default_rng(i), True, 128)
        negative, box_n = draw(np.random.default_rng(i), False, 128)
        changed = positive != negative
        if changed.ndim == 3:
            changed = changed.any(axis=-1)
        assert changed.any()
        outside = np.ones_like(changed)
        for x0, y0, x1, y1 in (box_p, box_n):
            outside[y0:y1, x0:x1] = False
        assert not changed[outside].any()


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
    [{"n_train": 0}, {"n_val": -1}, {"size": 16}, {"seed": -1}, {"n_train": 2.5}],
)
def test_make_demo_datasets_rejects_bad_arguments(tmp_path, arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        make_demo_datasets(tmp_path, **{**SMALL, **arguments})


def test_make_demo_datasets_refuses_to_mix_with_existing_folders(tmp_path):
    (tmp_path / "Bone").mkdir()
    with pytest.raises(FileExistsError, match="Bone"):
        make_demo_datasets(tmp_path, **SMALL)


CLI_ARGS = ["--n-train", "2", "--n-val", "1", "--size", "32", "--seed", "3"]


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
