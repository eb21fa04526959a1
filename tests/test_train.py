"""Training runs: determinism, and resuming after a real training process is killed."""

import signal
import time

import keras
import numpy as np
import pandas as pd
import psutil
import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg.data import load_cache, prepare_cache
from cnnreg.train import HISTORY_COLUMNS, image_stage, make_datasets, roc_auc, train_run
from cnnreg.transfer import extract_dataset_features, feature_extractor, write_random_weights


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    datasets = make_data(root / "data")
    path = root / "skin.npz"
    prepare_cache(datasets["skin"]["path"], path, image_size=(32, 32), channels=1)
    return path


def test_same_seed_same_parameters_same_history(cache, tmp_path):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 7, "epochs": 3, "batch_norm": True, "dropout": 0.4}
    first = train_run("a", params, cache, tmp_path / "a")
    second = train_run("b", params, cache, tmp_path / "b")
    other = train_run("c", {**params, "seed": 8}, cache, tmp_path / "c")
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    history = {name: pd.read_csv(tmp_path / name / "history.csv")[columns] for name in "abc"}
    pd.testing.assert_frame_equal(history["a"], history["b"])
    assert not history["a"].equals(history["c"])
    assert first["final"] == second["final"] and first["val_auc"] == second["val_auc"]
    assert other["seed"] == 8


def _epochs(dataset, steps, epochs):
    """The batches of ``epochs`` consecutive epochs of a repeated pipeline, per epoch."""
    batches = iter(dataset)
    return [[next(batches)[0].numpy() for _ in range(steps)] for _ in range(epochs)]


def test_training_batches_are_augmented_afresh_each_epoch_and_validation_never(cache):
    data = image_stage(load_cache(cache))
    params = {**TINY_DEFAULTS, "seed": 3, "augment": "lab", "batch_size": 4}
    train, val, steps, val_steps = make_datasets(data, params)
    epochs = _epochs(train, steps, 2)
    again = _epochs(make_datasets(data, params)[0], steps, 2)
    plain = _epochs(make_datasets(data, {**params, "augment": "none"})[0], steps, 2)
    assert len(data.x_train) == steps * params["batch_size"]  # epochs align with batches
    # The same seed draws the same augmentations.
    assert all(np.array_equal(a, b) for a, b in zip(epochs[0] + epochs[1], again[0] + again[1], strict=True))
    # Every epoch holds the same images: unaugmented, their total is the same in both epochs;
    # augmented, each epoch is a new draw, so its images (and their total) change.
    total = [[float(np.concatenate(e).sum()) for e in run] for run in (plain, epochs)]
    assert abs(total[0][0] - total[0][1]) < 1e-2
    assert abs(total[1][0] - total[1][1]) > 1.0
    assert np.abs(np.concatenate(epochs[0]) - np.concatenate(plain[0])).mean() > 0.01
    expected = data.x_val.astype("float32") / 255.0
    for epoch in _epochs(val, val_steps, 2):
        np.testing.assert_allclose(np.concatenate(epoch), expected, rtol=1e-6)


def test_roc_auc_ranks_scores():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([1, 1], [0.2, 0.3]) is None


def _training_process(snakemake_process):
    for child in psutil.Process(snakemake_process.pid).children(recursive=True):
        if any("train.py" in part for part in child.cmdline()):
            return child
    return None


def _wait_for_epochs(history, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if history.exists() and len(pd.read_csv(history)) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{history} did not reach {count} epochs in {timeout} s")


@pytest.mark.workflow
def test_killed_training_resumes_from_last_finished_epoch(tmp_path):
    epochs = 8
    write_config(
        tmp_path,
        {
            "datasets": make_data(tmp_path / "data", n_train=40, n_val=8, size=48),
            "defaults": {**TINY_DEFAULTS, "epochs": epochs, "batch_size": 2, "image_size": [48, 48]},
            "threads": 1,
            "studies": {"one": {"datasets": ["skin"], "seeds": [0]}},
        },
    )
    runner = snakemake(tmp_path, "--cores", "1", background=True)
    (run_dir,) = _run_dirs(tmp_path, timeout=120)
    _wait_for_epochs(run_dir / "resume" / "history.csv", 2, timeout=300)
    trainer = _training_process(runner)
    assert trainer is not None, "no training process found"
    trainer.send_signal(signal.SIGKILL)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode != 0, output
    kept = pd.read_csv(run_dir / "resume" / "history.csv")
    assert 2 <= len(kept) < epochs
    assert not (run_dir / "metrics.json").exists()

    snakemake(tmp_path, "--cores", "1")

    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(1, epochs + 1))
    pd.testing.assert_frame_equal(history.iloc[: len(kept)], kept)
    log = (tmp_path / "logs" / "train" / f"{run_dir.name}.log").read_text()
    assert f"resuming {run_dir.name} after epoch {len(kept)} of {epochs}" in log
    assert [p.name for p in (run_dir / "resume").glob("state-*")] == [f"state-epoch{epochs}.keras"]


def _run_dirs(project, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = project / "results" / "runs"
        if runs.exists() and any(runs.iterdir()):
            return list(runs.iterdir())
        time.sleep(0.2)
    raise AssertionError("no run folder appeared")


def test_finished_run_whose_outputs_were_deleted_is_rewritten_without_retraining(cache, tmp_path, caplog):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 2}
    first = train_run("r", params, cache, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    for output in ("history.csv", "metrics.json", "model.keras", "params.yaml"):
        (tmp_path / output).unlink()
    with caplog.at_level("INFO", logger="cnnreg.train"):
        again = train_run("r", params, cache, tmp_path)
    assert "finished all 2 epochs before" in caplog.text
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv"), history)  # same seconds: not retrained
    assert again["final"] == first["final"] and again["confusion_matrix"] == first["confusion_matrix"]
    assert (tmp_path / "model.keras").exists() and (tmp_path / "params.yaml").exists()


def test_transfer_run_trains_the_head_on_features_then_fine_tunes_block5(tmp_path):
    datasets = make_data(tmp_path / "data")
    images = tmp_path / "skin-32x32x3.npz"
    prepare_cache(datasets["skin"]["path"], images, image_size=(32, 32), channels=3)
    weights = write_random_weights(tmp_path / "vgg16.weights.h5", seed=2)
    features = tmp_path / "features.npz"
    extract_dataset_features(images, features, weights)
    params = {
        **TINY_DEFAULTS, "model": "vgg16_imagenet", "dense": [8], "dropout": 0.5, "channels": 3, "epochs": 2,
        "fine_tune": 1, "fine_tune_lr": 1e-5, "dataset": "skin", "seed": 0,
    }  # fmt: skip
    run_dir = tmp_path / "run"
    metrics = train_run("t", params, images, run_dir, features_path=features, weights_path=weights)
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3] and metrics["epochs_run"] == 3
    assert list(history["lr"]) == pytest.approx([1e-3, 1e-3, 1e-5])  # head at lr, then block 5 at fine_tune_lr
    tuned = keras.models.load_model(run_dir / "model.keras").get_layer("vgg16")
    pretrained = feature_extractor(weights, (32, 32, 3))
    for name, changed in (("block1_conv1", False), ("block4_conv3", False), ("block5_conv3", True)):
        same = all(
            np.array_equal(a, b)
            for a, b in zip(tuned.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights(), strict=True)
        )
        assert same != changed, name
    again = train_run("t", params, images, run_dir, features_path=features, weights_path=weights)
    assert again["final"] == metrics["final"]  # a finished run is rewritten, not retrained
