"""Training runs: determinism, and resuming after a real training process is killed."""

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import psutil
import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg.data import load_cache, prepare_cache
from cnnreg.history import HISTORY_COLUMNS
from cnnreg.randomness import epoch_order
from cnnreg.runlock import RunLockedError
from cnnreg.train import make_datasets, roc_auc, train_run
from cnnreg.transfer import extract_dataset_features, feature_extractor
from cnnreg.weights import write_random_weights


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
    """The batches of ``epochs`` consecutive epochs of a pipeline: (images, labels) per batch."""
    batches = iter(dataset)
    return [[tuple(t.numpy() for t in next(batches)) for _ in range(steps)] for _ in range(epochs)]


def test_each_epoch_visits_every_image_once_in_its_own_order(cache):
    data = load_cache(cache)
    params = {**TINY_DEFAULTS, "seed": 3, "batch_size": 5}
    train, _, steps, _ = make_datasets(data, params, 0, 2)
    epochs = _epochs(train, steps, 2)
    n = len(data.x_train)
    assert n % 5 and steps == -(-n // 5)
    assert [len(b[0]) for b in epochs[0]] == [5] * (steps - 1) + [n % 5]  # no batch spans two epochs
    expected = np.sort(data.x_train.astype("float32").reshape(n, -1).sum(axis=1) / 255.0)
    for epoch in epochs:
        sums = np.concatenate([images.reshape(len(images), -1).sum(axis=1) for images, _ in epoch])
        np.testing.assert_allclose(np.sort(sums), expected, rtol=1e-5)
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # a new order every epoch


def test_training_batches_are_augmented_afresh_each_epoch_and_validation_never(cache):
    data = load_cache(cache)
    params = {**TINY_DEFAULTS, "seed": 3, "augment": "lab", "batch_size": 4}
    train, val, steps, val_steps = make_datasets(data, params, 0, 2)
    epochs = _epochs(train, steps, 2)
    again = _epochs(make_datasets(data, params, 0, 2)[0], steps, 2)
    plain = _epochs(make_datasets(data, {**params, "augment": "none"}, 0, 2)[0], steps, 2)
    # The same seed draws the same augmentations.
    for a, b in zip(epochs[0] + epochs[1], again[0] + again[1], strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    # Augmented, each epoch is a new draw of the same images in the same order as unaugmented.
    assert all(np.array_equal(a[1], p[1]) for a, p in zip(epochs[0], plain[0], strict=True))
    assert np.abs(np.concatenate([b[0] for b in epochs[0]]) - np.concatenate([b[0] for b in plain[0]])).mean() > 0.01
    expected = data.x_val.astype("float32") / 255.0
    for epoch in _epochs(val, val_steps, 2):
        np.testing.assert_allclose(np.concatenate([b[0] for b in epoch]), expected, rtol=1e-6)


@pytest.mark.parametrize("augment", ["none", "lab"])
def test_an_epoch_draws_the_same_whichever_epoch_the_pipeline_starts_at(cache, augment):
    data = load_cache(cache)
    params = {**TINY_DEFAULTS, "seed": 5, "augment": augment, "batch_size": 4}
    train, _, steps, _ = make_datasets(data, params, 0, 3)
    from_start = _epochs(train, steps, 3)
    resumed = _epochs(make_datasets(data, params, 2, 3)[0], steps, 1)
    for a, b in zip(from_start[2], resumed[0], strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_seeds_never_share_a_stream():
    orders = {(seed, epoch): tuple(epoch_order(seed, epoch, 50)) for seed in range(4) for epoch in range(4)}
    assert len(set(orders.values())) == len(orders)  # unlike seed + epoch, which replays seed + 1


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


def _kill_training_after(project, run_dir, epochs_done):
    """Run snakemake, SIGKILL the training process once its checkpoint has ``epochs_done``
    epochs, and return the checkpointed history."""
    runner = snakemake(project, "--cores", "1", background=True)
    _wait_for_epochs(run_dir / "resume" / "history.csv", epochs_done, timeout=300)
    trainer = _training_process(runner)
    assert trainer is not None, "no training process found"
    trainer.send_signal(signal.SIGKILL)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode != 0, output
    assert not (run_dir / "metrics.json").exists()
    return pd.read_csv(run_dir / "resume" / "history.csv")


def _killable_project(folder, epochs):
    write_config(
        folder,
        {
            "datasets": make_data(folder / "data", n_train=30, n_val=8, size=48),
            "defaults": {
                **TINY_DEFAULTS, "epochs": epochs, "batch_size": 4, "image_size": [48, 48], "augment": "lab",
                "dropout": 0.4, "spatial_dropout": 0.1, "batch_norm": True,
            },
            "threads": 1,
            "studies": {"one": {"datasets": ["skin"], "seeds": [0]}},
        },
    )  # fmt: skip
    return folder


@pytest.mark.workflow
def test_run_killed_at_two_epochs_ends_with_the_history_of_the_uninterrupted_run(tmp_path):
    epochs = 8
    reference, killed = (
        _killable_project(tmp_path / "reference", epochs),
        _killable_project(tmp_path / "killed", epochs),
    )
    snakemake(reference, "--cores", "1")
    (run_dir,) = (reference / "results" / "runs").iterdir()
    run_dir = killed / "results" / "runs" / run_dir.name

    first = _kill_training_after(killed, run_dir, 2)
    second = _kill_training_after(killed, run_dir, len(first) + 2)
    assert len(first) < len(second) < epochs
    snakemake(killed, "--cores", "1")

    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    expected = pd.read_csv(reference / "results" / "runs" / run_dir.name / "history.csv")[columns]
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "history.csv")[columns], expected, check_exact=True)
    log = (killed / "logs" / "train" / f"{run_dir.name}.log").read_text()
    assert f"resuming {run_dir.name} after epoch {len(second)} of {epochs}" in log
    assert not (run_dir / "resume").exists()  # the finished run keeps no checkpoint


# Trains one run in a fresh process; with a kill epoch, SIGKILLs itself while the checkpoint of
# that epoch is written: after its temporary file is complete, before it is renamed into place.
TRAIN_SCRIPT = """
import json, os, signal, sys
import cnnreg.resume
from cnnreg.train import train_run
cache, run_dir, params, kill_epoch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
write_atomic = cnnreg.resume.write_atomic
def dying_write(path, write, **kwargs):
    if path.name == f"state-epoch{kill_epoch}.keras":
        def write_then_die(tmp):
            write(tmp)
            os.kill(os.getpid(), signal.SIGKILL)
        return write_atomic(path, write_then_die, **kwargs)
    return write_atomic(path, write, **kwargs)
cnnreg.resume.write_atomic = dying_write
train_run("r", params, cache, run_dir)
"""


def _train_in_process(cache, run_dir, params, kill_epoch=0):
    return subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, str(cache), str(run_dir), json.dumps(params), str(kill_epoch)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_kill_during_the_checkpoint_write_resumes_from_the_epoch_before(cache, tmp_path):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 2, "epochs": 4, "dropout": 0.4, "augment": "lab"}
    assert _train_in_process(cache, tmp_path / "reference", params).returncode == 0
    died = _train_in_process(cache, tmp_path / "killed", params, kill_epoch=3)
    assert died.returncode == -signal.SIGKILL, died.stderr
    resume = tmp_path / "killed" / "resume"
    assert [p.name for p in resume.glob("state-*")] == ["state-epoch2.keras"]
    assert len(pd.read_csv(resume / "history.csv")) == 2
    assert _train_in_process(cache, tmp_path / "killed", params).returncode == 0
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "killed" / "history.csv")[columns],
        pd.read_csv(tmp_path / "reference" / "history.csv")[columns],
        check_exact=True,
    )
    assert not resume.exists()


def test_a_second_writer_of_a_run_is_refused_at_once(cache, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom cnnreg.runlock import run_lock\n"
         "with run_lock(sys.argv[1], 'r'):\n    print('locked', flush=True)\n    time.sleep(120)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 1}
        with pytest.raises(RunLockedError, match=rf"run r is already being trained by .*\"pid\": {holder.pid}"):
            train_run("r", params, cache, tmp_path)
        assert not (tmp_path / "resume").exists() and not (tmp_path / "history.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    assert train_run("r", params, cache, tmp_path)["epochs_run"] == 1  # the lock went with its holder


def test_checkpoint_of_other_inputs_is_discarded_and_a_finished_run_keeps_none(cache, tmp_path, caplog):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 3}
    died = _train_in_process(cache, tmp_path, params, kill_epoch=3)
    assert died.returncode == -signal.SIGKILL
    other = tmp_path / "other.npz"
    flipped = dict(np.load(cache))
    flipped["y_train"] = 1 - flipped["y_train"]
    np.savez(other, **flipped)
    with caplog.at_level("INFO", logger="cnnreg.resume"):
        train_run("r", params, other, tmp_path)
    assert "its data changed; training afresh" in caplog.text
    assert "resuming" not in caplog.text
    assert not (tmp_path / "resume").exists()


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
    assert again["final"] == metrics["final"]  # trained afresh (no checkpoint is kept), to the same values
