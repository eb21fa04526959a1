"""Tests for cnnreg.augment: ImageDataGenerator-style options on Keras 3 layers, applied to tf.data batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnreg.augment import augment_dataset, augmentation_layers
from cnnreg.galleries import GALLERY_OPTIONS
from cnnreg.parameters import AUGMENT_OPTIONS, LAB_AUGMENTATION, resolve_augmentation


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
