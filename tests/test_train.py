"""Training runs: determinism, resuming after a real training process is killed, the best
model, held-out predictions and class weights."""

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
from workflow_helpers import TINY_DEFAULTS, make_data, move_to_test, snakemake, write_config

from cnnreg.data import load_cache, prepare_cache
from cnnreg.execution import Execution
from cnnreg.history import HISTORY_COLUMNS
from cnnreg.predictions import ID_COLUMNS
from cnnreg.randomness import epoch_order
from cnnreg.registry import lookup
from cnnreg.runlock import RunLockedError
from cnnreg.train import class_weights, first_stage, make_datasets, probabilities, roc_auc, train_run
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


def test_steps_per_execution_changes_no_result(cache, tmp_path):
    # 24 training images in batches of 5: 5 steps, the last of 4 images; 12 validation images: 3 steps.
    params = {
        **TINY_DEFAULTS, "dataset": "skin", "seed": 1, "epochs": 3, "batch_size": 5, "batch_norm": True,
        "dropout": 0.4, "spatial_dropout": 0.1, "augment": "lab", "class_weight": "balanced",
    }  # fmt: skip
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    outputs = {}
    for steps in (1, 2, 3, 8):  # 2 and 3 leave a shorter last call per epoch; 8 runs an epoch in one
        run_dir = tmp_path / str(steps)
        train_run("r", params, cache, run_dir, execution=Execution(steps_per_execution=steps))
        outputs[steps] = pd.read_csv(run_dir / "history.csv")[columns], pd.read_csv(run_dir / "predictions.csv")
    assert len(load_cache(cache).x_train) == 24 and len(outputs[1][0]) == 3
    for steps in (2, 3, 8):
        pd.testing.assert_frame_equal(outputs[steps][0], outputs[1][0], check_exact=True)
        pd.testing.assert_frame_equal(outputs[steps][1], outputs[1][1], check_exact=True)


def test_xla_is_refused_loudly_while_training_is_deterministic(cache, tmp_path):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 1, "jit_compile": True}
    with pytest.raises(ValueError, match="jit_compile: Keras compiled without XLA"):
        train_run("r", params, cache, tmp_path)
    assert not (tmp_path / "history.csv").exists()


def test_mixed_precision_run_trains_and_leaves_later_runs_float32(cache, tmp_path):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 2, "batch_norm": True, "dropout": 0.4}
    train_run("r", {**params, "mixed_precision": True}, cache, tmp_path / "mixed")
    assert np.isfinite(pd.read_csv(tmp_path / "mixed" / "history.csv")[["loss", "val_loss"]].to_numpy()).all()
    mixed = keras.models.load_model(tmp_path / "mixed" / "model.keras")
    assert mixed.get_layer("block1_conv").dtype_policy.name == "mixed_float16"
    assert mixed.get_layer("head").dtype_policy.name == "float32" and mixed.output.dtype == "float32"
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    train_run("r", params, cache, tmp_path / "default")
    default = keras.models.load_model(tmp_path / "default" / "model.keras")
    assert {layer.dtype_policy.name for layer in default.layers} == {"float32"}
    assert not isinstance(default.optimizer, keras.optimizers.LossScaleOptimizer)


def _batches(dataset):
    """One pass over a pipeline: (images, labels) per batch."""
    return [tuple(t.numpy() for t in batch) for batch in dataset]


def _epochs(pipelines, epochs):
    """The training batches of each of ``epochs`` (0-based), one pass per epoch as in `fit`."""
    passes = []
    for epoch in epochs:
        pipelines.epoch.assign(epoch)
        passes.append(_batches(pipelines.train))
    return passes


def test_each_epoch_visits_every_image_once_in_its_own_order(cache):
    data = load_cache(cache)
    params = {**TINY_DEFAULTS, "seed": 3, "batch_size": 5}
    epochs = _epochs(make_datasets(data, params, 0, 2), range(2))
    n, steps = len(data.x_train), len(epochs[0])
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
    pipelines = make_datasets(data, params, 0, 2)
    epochs = _epochs(pipelines, range(2))
    again = _epochs(make_datasets(data, params, 0, 2), range(2))
    plain = _epochs(make_datasets(data, {**params, "augment": "none"}, 0, 2), range(2))
    # The same seed draws the same augmentations.
    for a, b in zip(epochs[0] + epochs[1], again[0] + again[1], strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    # Augmented, each epoch is a new draw of the same images in the same order as unaugmented.
    assert all(np.array_equal(a[1], p[1]) for a, p in zip(epochs[0], plain[0], strict=True))
    assert np.abs(np.concatenate([b[0] for b in epochs[0]]) - np.concatenate([b[0] for b in plain[0]])).mean() > 0.01
    expected = data.x_val.astype("float32") / 255.0
    for _ in range(2):
        np.testing.assert_allclose(np.concatenate([b[0] for b in _batches(pipelines.val)]), expected, rtol=1e-6)


@pytest.mark.parametrize("augment", ["none", "lab"])
def test_an_epoch_draws_the_same_whichever_epoch_the_pipeline_starts_at(cache, augment):
    data = load_cache(cache)
    params = {**TINY_DEFAULTS, "seed": 5, "augment": augment, "batch_size": 4}
    from_start = _epochs(make_datasets(data, params, 0, 3), range(3))
    resumed = _epochs(make_datasets(data, params, 2, 3), [2])
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
            "checkpoint_seconds": 0,
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
from cnnreg.execution import Execution
from cnnreg.train import train_run
cache, run_dir, params, kill_epoch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
execution = Execution(checkpoint_seconds=float(sys.argv[5]))
write_atomic = cnnreg.resume.write_atomic
def dying_write(path, write, **kwargs):
    if path.name == f"state-epoch{kill_epoch}.keras":
        def write_then_die(tmp):
            write(tmp)
            os.kill(os.getpid(), signal.SIGKILL)
        return write_atomic(path, write_then_die, **kwargs)
    return write_atomic(path, write, **kwargs)
cnnreg.resume.write_atomic = dying_write
train_run("r", params, cache, run_dir, execution=execution)
"""


def _train_in_process(cache, run_dir, params, kill_epoch=0, checkpoint_seconds=0):
    """Train in a fresh process, by default checkpointing after every epoch."""
    return subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, str(cache), str(run_dir), json.dumps(params), str(kill_epoch),
         str(checkpoint_seconds)],
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


# Trains one run in a fresh process, in its main thread or another one, checkpointing only at the
# end of its fit; requests a stop (what SIGTERM does, tested below) as epoch `term_epoch`
# (1-based) begins.
TERM_SCRIPT = """
import json, sys, threading
import cnnreg.train
from cnnreg.execution import Execution
from cnnreg.stopping import TrainingStopped, request_stop
cache, run_dir, params, term_epoch, where = sys.argv[1:3] + [json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]]
begin = cnnreg.train.EpochRecorder.on_epoch_begin
def begin_then_terminate(self, epoch, logs=None):
    begin(self, epoch, logs)
    if epoch + 1 == term_epoch:
        request_stop()
cnnreg.train.EpochRecorder.on_epoch_begin = begin_then_terminate
execution = Execution(steps_per_execution=2, checkpoint_seconds=1000)
if where == "main":
    cnnreg.train.train_run("r", params, cache, run_dir, execution=execution)
else:
    stopped = []
    def train():
        try:
            cnnreg.train.train_run("r", params, cache, run_dir, execution=execution)
        except TrainingStopped as stop:
            stopped.append(stop)
    worker = threading.Thread(target=train)
    worker.start()
    worker.join()
    if stopped:
        raise stopped[0]
"""


def train_in_a_fresh_process(cache, run_dir, params, stop_at_epoch=0, where="main"):
    """Train (or resume) a run in a new Python process, as a job does; `stop_at_epoch` 0 never stops.

    Every side of the comparison runs in its own process: the test session's TensorFlow may
    already be initialised with other thread pools, and those change the last digits.
    """
    return subprocess.run(
        [sys.executable, "-c", TERM_SCRIPT, str(cache), str(run_dir), json.dumps(params), str(stop_at_epoch), where],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(cache, tmp_path_factory):
    """The history of a 4-epoch run (batch norm, dropout, augmentation) trained without a stop."""
    params = {
        **TINY_DEFAULTS, "dataset": "skin", "seed": 4, "epochs": 4, "batch_size": 5, "dropout": 0.4,
        "batch_norm": True, "augment": "lab",
    }  # fmt: skip
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    finished = train_in_a_fresh_process(cache, run_dir, params)
    assert finished.returncode == 0, finished.stderr
    return params, pd.read_csv(run_dir / "history.csv")


@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_stop_request_checkpoints_the_finished_epochs_and_exits_143(cache, uninterrupted, tmp_path, where):
    params, expected = uninterrupted
    stopped = train_in_a_fresh_process(cache, tmp_path, params, stop_at_epoch=2, where=where)
    assert stopped.returncode == 143, stopped.stderr
    resume = tmp_path / "resume"
    assert [p.name for p in resume.glob("state-*")] == ["state-epoch2.keras"]  # epoch 2 finished, then it stopped
    assert len(pd.read_csv(resume / "history.csv")) == len(pd.read_csv(tmp_path / "history.csv")) == 2
    assert not (tmp_path / "metrics.json").exists() and not list(resume.glob(".*.tmp*"))
    resumed = train_in_a_fresh_process(cache, tmp_path, params)
    assert resumed.returncode == 0, resumed.stderr
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv")[columns], expected[columns], check_exact=True)


def test_sigterm_requests_a_stop_and_a_second_one_exits_at_once():
    script = (
        "import os, signal, sys\nfrom cnnreg.stopping import install_sigterm_handler, stop_requested\n"
        "install_sigterm_handler()\nsignal.raise_signal(signal.SIGTERM)\nprint(stop_requested(), flush=True)\n"
        "signal.raise_signal(signal.SIGTERM)\nprint('still running')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True"] and result.returncode == 143, result


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


@pytest.fixture(scope="module")
def held_out_cache(tmp_path_factory):
    """The skin cache with a test split: 3 images per class moved from train/ to test/."""
    root = tmp_path_factory.mktemp("held_out")
    datasets = make_data(root / "data")
    path = root / "skin.npz"
    prepare_cache(move_to_test(datasets["skin"]["path"], 3), path, image_size=(32, 32), channels=1)
    return path


def _model_weights(path):
    return keras.models.load_model(path).get_weights()


def test_best_model_and_predictions_survive_a_kill_and_the_test_split_is_only_predicted(held_out_cache, tmp_path):
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 5}
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    # The reference checkpoints only after its last epoch: its best model waits in memory until then.
    assert _train_in_process(held_out_cache, reference, params, checkpoint_seconds=1000).returncode == 0
    history = pd.read_csv(reference / "history.csv")
    best = int(history["epoch"][history["val_accuracy"].idxmax()])
    metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["best_model"]["epoch"] == metrics["best"]["epoch"] == best
    assert best < 5  # so that the killed run below keeps its best model in the checkpoint

    # best.keras is the model of the best epoch: its validation accuracy is the history's best.
    data = load_cache(held_out_cache)
    probs = probabilities(keras.models.load_model(reference / "best.keras"), data.x_val, 8)
    assert (probs.argmax(axis=1) == data.y_val).mean() == pytest.approx(history["val_accuracy"].max())
    assert metrics["best_model"]["val_accuracy"] == pytest.approx(history["val_accuracy"].max())

    predictions = pd.read_csv(reference / "predictions.csv")
    assert list(predictions.columns) == [*ID_COLUMNS, "prob_0", "prob_1"]
    groups = {key: rows for key, rows in predictions.groupby(["split", "model"], sort=False)}
    assert list(groups) == [("validation", "best"), ("validation", "final"), ("test", "best")]
    for (split, _), rows in groups.items():
        files, labels = (data.files_val, data.y_val) if split == "validation" else (data.files_test, data.y_test)
        assert rows["file"].tolist() == files.tolist() and rows["label"].tolist() == labels.tolist()
    np.testing.assert_allclose(predictions[["prob_0", "prob_1"]].sum(axis=1), 1, rtol=1e-12)
    assert (predictions["prediction"] == predictions[["prob_0", "prob_1"]].to_numpy().argmax(axis=1)).all()
    test = groups[("test", "best")]
    assert metrics["test"]["n"] == len(data.y_test) == 6
    assert metrics["test"]["accuracy"] == pytest.approx((test["prediction"] == test["label"]).mean())

    # Killed while checkpointing the last epoch, the run resumes after the epoch before, with the
    # best model so far in the checkpoint, and ends as the uninterrupted run did.
    died = _train_in_process(held_out_cache, killed, params, kill_epoch=5)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert [p.name for p in (killed / "resume").glob("best-*")] == [f"best-epoch{best}.keras"]
    assert _train_in_process(held_out_cache, killed, params).returncode == 0
    for a, b in zip(_model_weights(killed / "best.keras"), _model_weights(reference / "best.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_csv(killed / "predictions.csv"), predictions, check_exact=True)


def test_the_test_split_decides_nothing_that_is_trained(held_out_cache, tmp_path):
    other = tmp_path / "other.npz"
    arrays = dict(np.load(held_out_cache))
    arrays.update(x_test=np.zeros_like(arrays["x_test"]), y_test=1 - arrays["y_test"])
    np.savez(other, **arrays)
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "fine_tune": 0, "folds": 0, "fold": 0}
    spec = lookup("alexnet")
    digests = [first_stage(spec, params, load_cache(path), None, None)[1]["data"] for path in (held_out_cache, other)]
    assert digests[0] == digests[1]


def test_balanced_class_weights_change_the_loss_of_imbalanced_data(cache, tmp_path):
    arrays = dict(np.load(cache))
    keep = np.flatnonzero((arrays["y_train"] == 0) | (np.arange(len(arrays["y_train"])) % 3 == 0))
    arrays.update(
        x_train=arrays["x_train"][keep], y_train=arrays["y_train"][keep], files_train=arrays["files_train"][keep]
    )
    imbalanced = tmp_path / "imbalanced.npz"
    np.savez(imbalanced, **arrays)
    counts = np.bincount(arrays["y_train"])
    assert counts.tolist() == [12, 4]
    assert class_weights(arrays["y_train"], ["a", "b"], "balanced") == pytest.approx({0: 16 / 24, 1: 16 / 8})
    assert class_weights(arrays["y_train"], ["a", "b"], "none") is None
    params = {**TINY_DEFAULTS, "dataset": "skin", "seed": 0, "epochs": 1}
    losses = {}
    for weight in ("none", "balanced"):
        train_run("r", {**params, "class_weight": weight}, imbalanced, tmp_path / weight)
        losses[weight] = pd.read_csv(tmp_path / weight / "history.csv")["loss"].item()
    assert losses["none"] != pytest.approx(losses["balanced"], rel=1e-3)
