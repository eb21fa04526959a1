"""Tests for cnnreg.transfer: frozen VGG16 features, the feature cache, the head and fine-tuning.

Nothing here touches the network: the weights are a seeded random VGG16 notop written locally.
"""

import h5py
import imageio.v3 as iio
import keras
import numpy as np
import pandas as pd
import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, move_to_test

from cnnreg.data import load_cache, prepare_cache
from cnnreg.images import DatasetError
from cnnreg.models import transfer_head
from cnnreg.train import probabilities, stage_digest, train_run
from cnnreg.transfer import (
    extract_dataset_features,
    extract_features,
    feature_extractor,
    fine_tune_model,
    load_feature_cache,
    to_vgg_input,
    write_feature_cache,
)
from cnnreg.weights import WEIGHTS_FILE, file_md5, is_imagenet, write_random_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random (seeded) VGG16 notop weights in Keras 3's .weights.h5 format."""
    return write_random_weights(tmp_path_factory.mktemp("weights") / "random.weights.h5", seed=1)


def images(n, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def weight_arrays(model):
    return {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}


# --- loading weights files -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_random_weights_load_into_frozen_extractor(weights, size):
    extractor = feature_extractor(weights, (size, size, 3))
    features = extract_features(extractor, images(5, size), batch_size=2)
    assert features.shape == (5, size // 32, size // 32, 512)
    assert features.dtype == np.float32
    assert not extractor.trainable and extractor.trainable_weights == []
    assert not any(layer.trainable for layer in extractor.layers)
    assert not is_imagenet(weights)


def test_legacy_h5_layout_loads(tmp_path):
    # The real ImageNet file uses Keras' legacy .h5 layout; write a random one the same way.
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    keras.utils.set_random_seed(3)
    model = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / WEIGHTS_FILE
    with h5py.File(path, "w") as f:
        legacy.save_weights_to_hdf5_group(f, model)
    loaded = feature_extractor(path, (32, 32, 3))
    pairs = zip(weight_arrays(model).values(), weight_arrays(loaded).values(), strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert not is_imagenet(path)


@pytest.mark.parametrize("kind", ["junk.h5", "junk.weights.h5", "dense.weights.h5", "weights.bin"])
def test_wrong_weights_file(tmp_path, kind):
    path = tmp_path / kind
    if kind.startswith("dense"):
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(path)
    else:
        path.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="cannot be loaded into VGG16") as error:
        feature_extractor(path, (32, 32, 3))
    assert str(path) in str(error.value)


@pytest.mark.parametrize("shape", [(16, 16, 3), (32, 32, 1), (32, 32)])
def test_extractor_input_shape_checked(weights, shape):
    with pytest.raises(ValueError, match="input_shape"):
        feature_extractor(weights, shape)


# --- preprocessing -------------------------------------------------------------------------------


def test_to_vgg_input_replicates_gray():
    gray = images(3, channels=1)
    x = to_vgg_input(gray)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32
    # Undo the mean subtraction: the three channels were identical copies of the gray values.
    restored = x + np.array([103.939, 116.779, 123.68], dtype=np.float32)
    for channel in range(3):
        np.testing.assert_allclose(restored[..., channel], gray[..., 0], atol=1e-4)
    np.testing.assert_array_equal(x, to_vgg_input(np.repeat(gray, 3, axis=-1)))


def test_to_vgg_input_matches_keras():
    rgb = images(4)
    before = rgb.copy()
    expected = keras.applications.vgg16.preprocess_input(rgb.astype(np.float32))
    np.testing.assert_array_equal(to_vgg_input(rgb), expected)
    np.testing.assert_array_equal(rgb, before)  # input left alone
    # RGB -> BGR, then the ImageNet means: blue channel first.
    np.testing.assert_allclose(to_vgg_input(rgb)[..., 0], rgb[..., 2] - 103.939, atol=1e-4)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8)])
def test_to_vgg_input_rejects(bad):
    with pytest.raises(ValueError, match="uint8"):
        to_vgg_input(bad)


# --- feature cache -------------------------------------------------------------------------------


def features_and_labels(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, 1, 512)).astype(np.float32), rng.integers(0, 2, n)


def test_feature_cache_round_trip(weights, tmp_path):
    x_train, y_train = features_and_labels(6)
    x_val, y_val = features_and_labels(4, seed=1)
    path = tmp_path / "sub" / "features.npz"
    write_feature_cache(path, x_train, y_train, x_val, y_val, ["cat", "dog"], weights, 32)
    cache = load_feature_cache(path)
    np.testing.assert_array_equal(cache.x_train, x_train)
    np.testing.assert_array_equal(cache.y_val, y_val)
    assert cache.x_train.dtype == np.float32 and cache.y_train.dtype == np.int64
    assert cache.classes == ["cat", "dog"]
    assert cache.weights_md5 == file_md5(weights) and cache.imagenet is False
    assert cache.image_size == (32, 32)
    assert cache.x_test.shape == (0, 1, 1, 512) and cache.y_test.shape == (0,)  # no test split given
    assert [p.name for p in path.parent.iterdir()] == ["features.npz"]  # no temporary left behind


def test_feature_cache_truncated_or_incomplete(weights, tmp_path):
    x, y = features_and_labels(6)
    path = tmp_path / "features.npz"
    write_feature_cache(path, x, y, x, y, ["a", "b"], weights, (32, 32))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="delete it and rerun") as error:
        load_feature_cache(path)
    assert str(path) in str(error.value)
    np.savez(path, x_train=x, y_train=y)
    with pytest.raises(DatasetError, match="lacks x_val"):
        load_feature_cache(path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_feature_cache(tmp_path / "missing.npz")


def test_feature_cache_rejects_mismatched_labels(weights, tmp_path):
    x, y = features_and_labels(6)
    with pytest.raises(ValueError, match="N labels"):
        write_feature_cache(tmp_path / "f.npz", x, y[:5], x, y, ["a", "b"], weights, 32)
    with pytest.raises(ValueError, match="train and test features differ"):
        write_feature_cache(
            tmp_path / "f.npz", x, y, x, y, ["a", "b"], weights, 32, features_test=x[:, :, :, :3], y_test=y
        )
    with pytest.raises(ValueError, match="given together"):
        write_feature_cache(tmp_path / "f.npz", x, y, x, y, ["a", "b"], weights, 32, features_test=x)


def test_the_feature_stage_digest_ignores_the_test_split(weights, tmp_path):
    x, y = features_and_labels(6)
    digests = []
    for name, test in (("none", {}), ("some", {"features_test": x[:2], "y_test": y[:2]})):
        write_feature_cache(tmp_path / f"{name}.npz", x, y, x, y, ["a", "b"], weights, 32, **test)
        digests.append(stage_digest(load_feature_cache(tmp_path / f"{name}.npz")))
    assert digests[0] == digests[1]


@pytest.mark.parametrize("n_test", [0, 2])
def test_extract_dataset_features(weights, tmp_path, n_test):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("validation", 2), ("test", n_test)):
        for name in ("neg", "pos"):
            for i in range(count):
                path = tmp_path / "data" / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                iio.imwrite(path, rng.integers(0, 256, (40, 40), dtype=np.uint8))
    prepare_cache(tmp_path / "data", tmp_path / "images.npz", 32, 1)
    summary = extract_dataset_features(tmp_path / "images.npz", tmp_path / "features.npz", weights, batch_size=4)
    assert summary["n_train"] == 6 and summary["n_val"] == 4 and summary["n_test"] == 2 * n_test
    assert summary["feature_shape"] == [1, 1, 512] and summary["image_size"] == [32, 32]
    assert summary["imagenet"] is False and summary["images_per_second"] > 0
    cache = load_feature_cache(tmp_path / "features.npz")
    assert cache.x_train.shape == (6, 1, 1, 512) and cache.classes == ["neg", "pos"]
    assert cache.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    images_cache = load_cache(tmp_path / "images.npz")
    assert cache.x_test.shape == (2 * n_test, 1, 1, 512) and cache.x_test.dtype == np.float32
    assert cache.y_test.tolist() == images_cache.y_test.tolist() == [0] * n_test + [1] * n_test
    expected = extract_features(feature_extractor(weights, (32, 32, 3)), images_cache.x_test)
    np.testing.assert_allclose(cache.x_test, expected, rtol=1e-5, atol=1e-5)  # the test images' own features


# --- head and fine-tuning ------------------------------------------------------------------------


def test_transfer_head_layers_and_parameters():
    head = transfer_head((4, 4, 512))
    kinds = [type(layer).__name__ for layer in head.layers]
    assert kinds == ["InputLayer", "Flatten", "Dense", "Activation", "Dropout", "Dense"]
    assert head.get_layer("dense1").units == 128 and head.get_layer("dense1_relu").activation.__name__ == "relu"
    assert head.get_layer("dense1_dropout").rate == 0.5
    assert head.get_layer("head").units == 1 and head.get_layer("head").activation.__name__ == "sigmoid"
    assert head.count_params() == (4 * 4 * 512 * 128 + 128) + (128 + 1)
    assert transfer_head((1, 1, 512), dense=[16], dropout=0.0).count_params() == 512 * 16 + 16 + 17


def compiled(model, lr=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
    return model


def test_head_training_leaves_extractor_alone(weights):
    keras.utils.set_random_seed(0)
    extractor = feature_extractor(weights, (32, 32, 3))
    before = weight_arrays(extractor)
    x = images(8)
    y = np.array([0, 1] * 4, dtype=np.float32)
    features = extract_features(extractor, x)
    head = compiled(transfer_head(features.shape[1:]))
    head_before = weight_arrays(head)
    head.fit(features, y, batch_size=4, epochs=1, verbose=0)
    after = weight_arrays(extractor)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert any(not np.array_equal(head_before[k], v) for k, v in weight_arrays(head).items())


def test_fine_tune_trains_block5_and_head_only(weights, tmp_path):
    keras.utils.set_random_seed(0)
    extractor = feature_extractor(weights, (32, 32, 3))
    head = transfer_head(extractor.output_shape[1:], dense=[8])
    model = compiled(fine_tune_model(extractor, head), lr=1e-3)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"block5_conv1", "block5_conv2", "block5_conv3", "dense1", "head"}
    assert len(model.trainable_weights) == 10
    assert model.get_layer("vgg16").get_layer("block5_conv3").trainable
    assert not model.get_layer("vgg16").get_layer("block4_conv3").trainable

    before = weight_arrays(model)
    x = to_vgg_input(images(8))
    model.fit(x, np.array([0, 1] * 4, dtype=np.float32), batch_size=4, epochs=1, verbose=0)
    after = weight_arrays(model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert {k.split("/")[0] for k in changed} == trainable  # block 5 and head changed...
    assert all(any(k.startswith(f"{name}/") for k in changed) for name in trainable)
    assert not any(k.startswith(("block1", "block2", "block3", "block4")) for k in changed)  # ...blocks 1-4 did not

    # The trainable flags survive a .keras save and load (what a resumed run reads).
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert {w.path.split("/")[0] for w in reloaded.trainable_weights} == trainable


def test_fine_tune_checks_inputs(weights):
    extractor = feature_extractor(weights, (64, 64, 3))
    with pytest.raises(ValueError, match="features of shape"):
        fine_tune_model(extractor, transfer_head((1, 1, 512)))
    with pytest.raises(ValueError, match="trainable_from"):
        fine_tune_model(extractor, transfer_head((2, 2, 512)), trainable_from="block9_conv1")


def test_a_transfer_head_predicts_the_test_split_with_its_best_model(tmp_path):
    datasets = make_data(tmp_path / "data")
    images = tmp_path / "skin-32x32x3.npz"
    prepare_cache(move_to_test(datasets["skin"]["path"], 3), images, image_size=(32, 32), channels=3)
    weights = write_random_weights(tmp_path / "vgg16.weights.h5", seed=2)
    features = tmp_path / "features.npz"
    extract_dataset_features(images, features, weights)
    params = {
        **TINY_DEFAULTS, "model": "vgg16_imagenet", "dense": [8], "dropout": 0.5, "channels": 3, "epochs": 3,
        "fine_tune": 0, "dataset": "skin", "seed": 0,
    }  # fmt: skip
    run_dir = tmp_path / "run"
    metrics = train_run("t", params, images, run_dir, features_path=features, weights_path=weights)
    predictions = pd.read_csv(run_dir / "predictions.csv")
    groups = {key: rows for key, rows in predictions.groupby(["split", "model"], sort=False)}
    assert list(groups) == [("validation", "best"), ("validation", "final"), ("test", "best")]
    data, cached = load_cache(images), load_feature_cache(features)
    test = groups[("test", "best")]
    assert test["file"].tolist() == data.files_test.tolist() and len(test) == 6
    assert test["label"].tolist() == data.y_test.tolist()
    expected = probabilities(keras.models.load_model(run_dir / "best.keras"), cached.x_test, 8)
    np.testing.assert_allclose(test[["prob_0", "prob_1"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert metrics["best"]["epoch"] < 3  # so that the final model's test predictions are another model's:
    final = probabilities(keras.models.load_model(run_dir / "model.keras"), cached.x_test, 8)
    assert np.abs(final - expected).max() > 1e-4
    assert metrics["test"]["n"] == 6
    assert metrics["test"]["accuracy"] == pytest.approx((test["prediction"] == test["label"]).mean())

    # Features of another image cache's test split are refused, not paired with these files.
    write_feature_cache(
        features, cached.x_train, cached.y_train, cached.x_val, cached.y_val, cached.classes, weights, 32,
        features_test=cached.x_test[:4], y_test=cached.y_test[:4],
    )  # fmt: skip
    with pytest.raises(DatasetError, match="rerun the extract_features rule"):
        train_run("t", params, images, tmp_path / "other", features_path=features, weights_path=weights)
