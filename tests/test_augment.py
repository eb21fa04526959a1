"""Tests for cnnreg.augment: ImageDataGenerator-style options on Keras 3 layers, and the lab's galleries."""

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from cnnreg.augment import (
    AUGMENT_OPTIONS,
    FILL_MODES,
    FILL_ROW_TRANSFORM,
    GALLERY_OPTIONS,
    LAB_AUGMENTATION,
    augment_dataset,
    augmentation_layers,
    generator_panels,
    plot_generator_gallery,
    plot_skimage_gallery,
    resolve_augmentation,
    skimage_panels,
)


def random_images(n=8, shape=(12, 14, 3), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def batches(images, batch_size=4, epochs=(0,)):
    """(epoch, batch, images, labels) elements of the given epochs, as the training pipeline makes."""
    labels = np.arange(len(images))
    elements = [
        (epoch, i, images[start : start + batch_size], labels[start : start + batch_size])
        for epoch in epochs
        for i, start in enumerate(range(0, len(images), batch_size))
    ]
    return tf.data.Dataset.from_generator(
        lambda: iter(elements),
        output_signature=(
            tf.TensorSpec((), tf.int64),
            tf.TensorSpec((), tf.int64),
            tf.TensorSpec((None, *images.shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )


def collect(dataset):
    return np.concatenate([images.numpy() for images, _ in dataset])


def draw(spec, images, seed=0):
    return keras.ops.convert_to_numpy(augmentation_layers(spec, seed)(images, training=True))


def copies(image, n=16):
    return np.repeat(image[np.newaxis], n, axis=0)


def ramp(shape=(10, 12, 1)):
    """An image with no symmetry: every pixel differs."""
    return (np.arange(np.prod(shape), dtype=np.float32) / np.prod(shape)).reshape(shape)


# --- resolve_augmentation ---------------------------------------------------------------------


def test_option_names_are_image_data_generator_names():
    assert set(AUGMENT_OPTIONS) == {
        "rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
        "horizontal_flip", "vertical_flip", "brightness_range", "fill_mode", "cval",
    }  # fmt: skip


@pytest.mark.parametrize("spec", ["none", None, {}])
def test_none_resolves_to_no_options(spec):
    assert resolve_augmentation(spec) == {}


def test_lab_resolves_to_a_copy_of_the_lab_setting():
    resolved = resolve_augmentation("lab")
    assert resolved == LAB_AUGMENTATION
    resolved["rotation_range"] = 90
    assert LAB_AUGMENTATION["rotation_range"] == 10


def test_mapping_resolves_to_canonical_form():
    resolved = resolve_augmentation(
        {"zoom_range": (0.8, 1.2), "rotation_range": 10, "horizontal_flip": np.bool_(True), "fill_mode": "wrap"}
    )
    assert resolved == {"fill_mode": "wrap", "horizontal_flip": True, "rotation_range": 10.0, "zoom_range": [0.8, 1.2]}
    assert list(resolved) == sorted(resolved)
    assert type(resolved["rotation_range"]) is float
    assert type(resolved["horizontal_flip"]) is bool
    assert type(resolved["zoom_range"]) is list


def test_unknown_option_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown augmentation option 'rotaton_range'.*valid options: rotation_range"):
        resolve_augmentation({"rotaton_range": 10})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rotation_range", -1),
        ("rotation_range", 200),
        ("rotation_range", True),
        ("width_shift_range", 1.0),
        ("height_shift_range", "0.1"),
        ("shear_range", 90),
        ("zoom_range", 1.5),
        ("zoom_range", [0.0, 1.0]),
        ("zoom_range", [1.2, 0.8]),
        ("zoom_range", [0.5, 2.5]),
        ("horizontal_flip", "yes"),
        ("vertical_flip", 1),
        ("brightness_range", 0.5),
        ("brightness_range", [1.2, 0.8]),
        ("brightness_range", [-0.1, 1.0]),
        ("fill_mode", "mirror"),
        ("cval", 255),
        ("cval", float("nan")),
    ],
)
def test_bad_value_names_the_option_and_what_it_expects(name, value):
    with pytest.raises(ValueError, match=rf"augmentation option {name} expects .*; got"):
        resolve_augmentation({name: value})


@pytest.mark.parametrize("spec", ["heavy", 3, ["lab"]])
def test_other_spec_lists_the_forms(spec):
    with pytest.raises(ValueError, match="none | lab | a mapping"):
        resolve_augmentation(spec)


# --- augmentation_layers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["none", {"fill_mode": "wrap", "cval": 0.5}, {"horizontal_flip": False, "zoom_range": 0}]
)
def test_no_layers_when_nothing_changes_images(spec):
    assert augmentation_layers(spec, seed=0) is None


def test_lab_layers_one_per_option():
    layers = augmentation_layers("lab", seed=0).layers
    assert [layer.name for layer in layers] == [
        "rotation_range",
        "width_shift_range",
        "height_shift_range",
        "horizontal_flip",
    ]
    assert [type(layer).__name__ for layer in layers] == [
        "RandomRotation", "RandomTranslation", "RandomTranslation", "RandomFlip",
    ]  # fmt: skip


def test_image_data_generator_units_are_converted():
    spec = {
        "rotation_range": 36, "width_shift_range": 0.2, "height_shift_range": 0.1, "shear_range": 30,
        "zoom_range": [0.5, 1.25], "brightness_range": [0.8, 1.2], "fill_mode": "constant", "cval": 0.25,
    }  # fmt: skip
    layers = {layer.name: layer.get_config() for layer in augmentation_layers(spec, seed=0).layers}
    assert layers["rotation_range"]["factor"] == pytest.approx((-0.1, 0.1))  # fraction of a full turn
    assert (layers["width_shift_range"]["width_factor"], layers["width_shift_range"]["height_factor"]) == (0.2, 0.0)
    assert (layers["height_shift_range"]["width_factor"], layers["height_shift_range"]["height_factor"]) == (0.0, 0.1)
    assert layers["shear_range"]["x_factor"] == pytest.approx((-0.5, 0.5))  # sin 30°
    assert layers["shear_range"]["y_factor"] == pytest.approx((0.0, 0.0))
    assert layers["zoom_range"]["height_factor"] == pytest.approx((-0.5, 0.25))
    assert layers["zoom_range"]["width_factor"] == pytest.approx((-0.5, 0.25))
    assert (layers["brightness_range"]["lower"], layers["brightness_range"]["upper"]) == (0.8, 1.2)
    geometric = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range")
    assert {(layers[name]["fill_mode"], layers[name]["fill_value"]) for name in geometric} == {("constant", 0.25)}
    assert len({config["seed"] for config in layers.values()}) == len(layers)


def test_fill_defaults_to_nearest_like_image_data_generator():
    (layer,) = augmentation_layers({"rotation_range": 10}, seed=0).layers
    assert (layer.get_config()["fill_mode"], layer.get_config()["fill_value"]) == ("nearest", 0.0)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_seed_must_be_a_non_negative_int(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        augmentation_layers("lab", seed)


# --- augment_dataset --------------------------------------------------------------------------


def test_same_seed_same_batches_and_new_draws_each_epoch():
    images = random_images()
    first = collect(augment_dataset(batches(images, epochs=(0, 1)), "lab", seed=7, epochs=2))
    second = collect(augment_dataset(batches(images, epochs=(0, 1)), "lab", seed=7, epochs=2))
    other_seed = collect(augment_dataset(batches(images, epochs=(0, 1)), "lab", seed=8, epochs=2))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[:8], other_seed[:8])
    assert not np.allclose(first[:8], first[8:])  # the second epoch draws new transforms
    assert not np.allclose(first[:8], images)  # and augmentation changes images


def test_an_epochs_draws_do_not_depend_on_the_epochs_before_it():
    images = random_images()
    both = collect(augment_dataset(batches(images, epochs=(0, 1)), "lab", seed=7, epochs=2))
    second_alone = collect(augment_dataset(batches(images, epochs=(1,)), "lab", seed=7, epochs=2))
    np.testing.assert_array_equal(both[8:], second_alone)


def test_labels_pass_through():
    augmented = augment_dataset(batches(random_images()), "lab", seed=0, epochs=1)
    np.testing.assert_array_equal(np.concatenate([labels.numpy() for _, labels in augmented]), np.arange(8))


def test_no_augmentation_passes_the_images_through():
    augmented = augment_dataset(batches(random_images()), "none", seed=0, epochs=1)
    np.testing.assert_array_equal(collect(augmented), random_images())


# --- what each option does --------------------------------------------------------------------


@pytest.mark.parametrize(("option", "mirror"), [("horizontal_flip", np.fliplr), ("vertical_flip", np.flipud)])
def test_flip_gives_the_image_or_its_mirror(option, mirror):
    image = ramp()
    out = draw({option: True}, copies(image))
    flipped = [np.allclose(sample, mirror(image)) for sample in out]
    kept = [np.allclose(sample, image) for sample in out]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_fixed_brightness_factor_multiplies_and_clips(factor):
    images = random_images()
    np.testing.assert_allclose(draw({"brightness_range": [factor, factor]}, images), np.clip(images * factor, 0, 1))


def test_brightness_factor_is_drawn_per_image():
    images = 0.1 + 0.5 * random_images()  # no clipping at factors up to 1.5
    factors = (draw({"brightness_range": [0.5, 1.5]}, images) / images).reshape(len(images), -1)
    np.testing.assert_allclose(factors, np.broadcast_to(factors[:, :1], factors.shape), rtol=1e-5)
    assert np.all((factors >= 0.5) & (factors <= 1.5))
    assert np.unique(factors[:, 0].round(4)).size == len(images)


@pytest.mark.parametrize(("option", "axis"), [("width_shift_range", 1), ("height_shift_range", 2)])
def test_shift_moves_along_its_axis_only(option, axis):
    zeros = np.zeros((8, 16, 16, 1), np.float32)
    out = draw({option: 0.5, "fill_mode": "constant", "cval": 1.0}, zeros)
    # filled columns (width shift) or rows (height shift) are uniform along the other axis
    np.testing.assert_allclose(out, np.take(out, [0], axis=axis).repeat(16, axis=axis), atol=1e-6)
    assert out.max() > 0.5


def test_fill_mode_and_cval_reach_the_geometric_layers():
    zeros = np.zeros((8, 16, 16, 1), np.float32)
    assert draw({"rotation_range": 90, "fill_mode": "constant", "cval": 1.0}, zeros).max() > 0.5
    assert draw({"rotation_range": 90, "fill_mode": "nearest", "cval": 1.0}, zeros).max() == 0.0


@pytest.mark.parametrize(("zoom", "grows"), [([0.5, 0.5], True), ([1.5, 1.5], False)])
def test_zoom_factor_below_one_zooms_in(zoom, grows):
    square = np.zeros((16, 16, 1), np.float32)
    square[6:10, 6:10] = 1.0
    area = draw({"zoom_range": zoom, "fill_mode": "constant"}, copies(square, 2)).sum(axis=(1, 2, 3))
    assert np.all(area > square.sum()) if grows else np.all(area < square.sum())


@pytest.mark.parametrize(
    "spec",
    [
        {"rotation_range": 30},
        {"width_shift_range": 0.2},
        {"height_shift_range": 0.2},
        {"shear_range": 20},
        {"zoom_range": 0.3},
        {"zoom_range": [0.7, 1.1]},
        GALLERY_OPTIONS | {"fill_mode": "reflect"},
    ],
)
def test_geometric_options_keep_shape_and_range(spec):
    images = random_images()
    out = draw(spec, images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    assert not np.allclose(out, images)


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
    batch = copies((small_photo / 255).astype(np.float32), 4)
    np.testing.assert_allclose(np.stack(row["samples"]), draw({"zoom_range": 0.3}, batch, seed=5))
    (again,) = generator_panels(small_photo, {"zoom_range": 0.3}, samples=4, seed=5)
    np.testing.assert_array_equal(np.stack(row["samples"]), np.stack(again["samples"]))
    assert not np.allclose(row["samples"][0], row["samples"][1])


def test_gallery_options_on_a_gray_image():
    gray = (ramp((12, 12, 1))[..., 0] * 255).astype(np.uint8)
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
    assert list(table.columns) == ["operation", "parameter", "height", "width", "channels", "title"]
    assert len(table) == len(panels)
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
    assert record == {"seed": 3, "samples": 2, "rows": [{"row": row["row"], "spec": row["spec"]} for row in rows]}
    assert len(record["rows"]) == 3
    assert math.isclose(record["rows"][1]["spec"]["rotation_range"], FILL_ROW_TRANSFORM["rotation_range"])
