"""Tests for cnnreg.galleries: the lab's task 5 galleries, scikit-image panels and training-augmentation draws."""

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest

from cnnreg.augment import augmentation_layers
from cnnreg.galleries import (
    FILL_ROW_TRANSFORM,
    GALLERY_OPTIONS,
    generator_panels,
    plot_generator_gallery,
    plot_skimage_gallery,
    skimage_panels,
)
from cnnreg.parameters import FILL_MODES, resolve_augmentation

# --- skimage_panels ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo():
    """A (50, 60, 3) uint8 image: a gradient with a bright square."""
    rows, cols = np.mgrid[0:50, 0:60]
    image = np.stack([rows * 4, cols * 4, np.full_like(rows, 90)], axis=-1)
    image[15:30, 20:40] = 250
    return image.astype(np.uint8)


def test_skimage_panels_one_per_parameter(photo):
    panels = skimage_panels(photo)
    operations = [panel["operation"] for panel in panels]
    assert operations == ["original"] + ["rescale"] * 2 + ["rotate"] * 6 + ["rescale_intensity"] * 2
    assert [panel["parameters"] for panel in panels][:4] == [
        {},
        {"scale": 0.2},
        {"scale": 0.8},
        {"angle": 30, "resize": False},
    ]
    assert panels[-2]["parameters"] == {"low": 2, "high": 98}
    for panel in panels:
        assert panel["image"].shape == panel["shape"]
        assert panel["image"].dtype.kind == "f" and panel["image"].min() >= 0 and panel["image"].max() <= 1
        assert panel["title"].endswith(f"→ {panel['shape'][0]}×{panel['shape'][1]}")


def test_skimage_panels_shapes(photo):
    shapes = {json.dumps(panel["parameters"]): panel["shape"] for panel in skimage_panels(photo)}
    assert shapes['{"scale": 0.2}'] == (10, 12, 3)
    assert shapes['{"scale": 0.8}'] == (40, 48, 3)
    for angle in (30, -30, -70):
        assert shapes[f'{{"angle": {angle}, "resize": false}}'] == (50, 60, 3)
        resized = shapes[f'{{"angle": {angle}, "resize": true}}']
        assert resized[:2] != (50, 60) and resized[2] == 3
    assert shapes['{"low": 10, "high": 90}'] == (50, 60, 3)


def test_skimage_titles(photo):
    titles = [panel["title"] for panel in skimage_panels(photo, scales=(0.5,), angles=(30,), percentiles=((2, 98),))]
    assert titles[:3] == ["original → 50×60", "rescale 0.5 → 25×30", "rotate 30°, resize=False → 50×60"]
    assert titles[3].startswith("rotate 30°, resize=True → ")
    assert titles[4] == "rescale_intensity p2–p98 → 50×60"


def test_rescale_intensity_stretches_the_percentiles_to_full_range():
    gradient = np.linspace(0.2, 0.6, 400).reshape(20, 20)
    (_, panel) = skimage_panels(gradient, scales=(), angles=(), percentiles=((10, 90),))
    assert panel["image"].min() == 0 and panel["image"].max() == 1
    assert np.mean(panel["image"] == 0) == pytest.approx(0.1, abs=0.01)
    assert np.mean(panel["image"] == 1) == pytest.approx(0.1, abs=0.01)


def test_skimage_panels_gray_image_keeps_two_axes():
    panels = skimage_panels(np.full((40, 30), 0.5), scales=(0.5,), angles=(90,), percentiles=())
    assert [panel["shape"] for panel in panels] == [(40, 30), (20, 15), (40, 30), (30, 40)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scales": (0,)}, "scales must be a sequence of positive numbers"),
        ({"scales": 0.5}, "scales must be a sequence"),
        ({"angles": ("30",)}, "angles must be a sequence of numbers"),
        ({"percentiles": ((98, 2),)}, r"percentiles must be \(low, high\) pairs with 0 <= low < high <= 100"),
        ({"percentiles": ((-1, 50),)}, "percentiles must be"),
        ({"percentiles": ((2, 101),)}, "percentiles must be"),
        ({"percentiles": (2, 98)}, "percentiles must be"),
    ],
)
def test_skimage_panels_validates_parameters(photo, kwargs, message):
    with pytest.raises(ValueError, match=message):
        skimage_panels(photo, **kwargs)


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8), np.int16), np.full((8, 8), 2.0), np.zeros((2, 8, 8, 3), np.uint8), np.zeros(8, np.uint8)],
)
def test_skimage_panels_validates_the_image(image):
    with pytest.raises(ValueError, match="image must"):
        skimage_panels(image)


# --- generator_panels and the writers ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_photo(photo):
    return photo[:16, :20]


def test_generator_panels_one_row_per_option_value(small_photo):
    options = {"rotation_range": 30, "fill_mode": ["constant", "wrap"], "cval": 0.5}
    rows = generator_panels(small_photo, options, samples=3, seed=1)
    assert [row["row"] for row in rows] == ["rotation_range=30", "fill_mode=constant", "fill_mode=wrap", "cval=0.5"]
    assert rows[0]["spec"] == {"rotation_range": 30.0}
    assert rows[2]["spec"] == resolve_augmentation({**FILL_ROW_TRANSFORM, "fill_mode": "wrap"})
    assert rows[3]["spec"] == resolve_augmentation({**FILL_ROW_TRANSFORM, "fill_mode": "constant", "cval": 0.5})
    for row in rows:
        np.testing.assert_allclose(row["original"], small_photo / 255, atol=1e-6)
        assert len(row["samples"]) == 3
        assert all(sample.shape == small_photo.shape and sample.dtype == np.float32 for sample in row["samples"])


def test_generator_samples_come_from_the_training_layers(small_photo):
    (row,) = generator_panels(small_photo, {"zoom_range": 0.3}, samples=4, seed=5)
    batch = np.repeat((small_photo / 255).astype(np.float32)[np.newaxis], 4, axis=0)
    drawn = augmentation_layers({"zoom_range": 0.3}, 5)(batch, training=True)
    np.testing.assert_allclose(np.stack(row["samples"]), keras.ops.convert_to_numpy(drawn))
    (again,) = generator_panels(small_photo, {"zoom_range": 0.3}, samples=4, seed=5)
    np.testing.assert_array_equal(np.stack(row["samples"]), np.stack(again["samples"]))
    assert not np.allclose(row["samples"][0], row["samples"][1])


def test_gallery_options_on_a_gray_image():
    gray = (np.arange(144, dtype=np.float32).reshape(12, 12) / 144 * 255).astype(np.uint8)
    rows = generator_panels(gray, GALLERY_OPTIONS, samples=1)
    assert len(rows) == len(GALLERY_OPTIONS) - 1 + len(FILL_MODES)
    assert [row["row"] for row in rows][-4:] == [f"fill_mode={mode}" for mode in FILL_MODES]
    assert all(row["samples"][0].shape == (12, 12) for row in rows)


@pytest.mark.parametrize(
    ("options", "kwargs", "message"),
    [
        ({}, {}, "options must be a non-empty mapping"),
        ("lab", {}, "options must be a non-empty mapping"),
        ({"rotation": 10}, {}, "unknown augmentation option 'rotation'"),
        ({"fill_mode": ["constant", "mirror"]}, {}, "augmentation option fill_mode expects"),
        ({"rotation_range": 10}, {"samples": 0}, "samples must be a positive int"),
    ],
)
def test_generator_panels_validates(small_photo, options, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generator_panels(small_photo, options, **kwargs)


def test_skimage_gallery_writes_figure_and_table(photo, tmp_path):
    panels = skimage_panels(photo)
    out = tmp_path / "figures"
    plot_skimage_gallery(panels, out / "skimage.png", out / "skimage.csv", title="task 5a")
    assert sorted(path.name for path in out.iterdir()) == ["skimage.csv", "skimage.png"]  # no temporary left
    assert (out / "skimage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "skimage.csv")
    assert list(table.columns) == ["operation", "parameter", "height", "width", "channels", "min", "max", "title"]
    assert len(table) == len(panels)
    # Each panel's value range is its image's: a percentile stretch reaches 0 and 1.
    assert list(table["min"]) == pytest.approx([float(p["image"].min()) for p in panels])
    assert list(table["max"]) == pytest.approx([float(p["image"].max()) for p in panels])
    stretched = table[table["operation"] == "rescale_intensity"]
    assert (stretched["min"] == 0).all() and (stretched["max"] == 1).all()
    assert [json.loads(text) for text in table["parameter"]] == [panel["parameters"] for panel in panels]
    assert list(zip(table["height"], table["width"], table["channels"], strict=True)) == [p["shape"] for p in panels]
    assert list(table["title"]) == [panel["title"] for panel in panels]


def test_generator_gallery_writes_figure_and_json(small_photo, tmp_path):
    rows = generator_panels(
        small_photo, {"rotation_range": 20, "fill_mode": ["constant", "reflect"]}, samples=2, seed=3
    )
    plot_generator_gallery(rows, tmp_path / "gen.png", tmp_path / "gen.json", title="task 5b", seed=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["gen.json", "gen.png"]
    record = json.loads((tmp_path / "gen.json").read_text())
    expected = [
        {"row": row["row"], "spec": row["spec"], "height": small_photo.shape[0], "width": small_photo.shape[1],
         "min": float(np.min(row["samples"])), "max": float(np.max(row["samples"]))}
        for row in rows
    ]  # fmt: skip
    assert record == {"seed": 3, "samples": 2, "rows": expected}
    assert len(record["rows"]) == 3
    assert math.isclose(record["rows"][1]["spec"]["rotation_range"], FILL_ROW_TRANSFORM["rotation_range"])
