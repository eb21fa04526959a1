"""One training run: cached data → model → fit → history.csv, metrics.json, model.keras.

A run is resumable. After every epoch the model (with its optimizer state) and the history so far
are written atomically to ``<run dir>/resume/``; a run started again after a kill continues from
the last finished epoch. ``resume/`` is not a workflow output, so Snakemake never deletes it when
it cleans up a failed job. It is kept after the last epoch too: when Snakemake deletes the outputs
of every run in a failed SLURM pack, the finished ones are rewritten from it without retraining.
"""

import json
import logging
import math
import platform
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
import yaml
from scipy.stats import rankdata

import cnnreg
from cnnreg.atomic import write_atomic
from cnnreg.augment import augment_dataset
from cnnreg.data import load_cache
from cnnreg.models import build_model, compile_model
from cnnreg.studies import LATER_PARAMETERS, TRANSFER_MODELS
from cnnreg.transfer import feature_extractor, fine_tune_model, load_feature_cache, to_vgg_input, transfer_head

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
log = logging.getLogger(__name__)


def configure_tensorflow(threads):
    """Pin TF's thread pools to the job's cores, make ops deterministic, let GPUs be shared.

    Thread pools and GPU memory growth can only be set before TensorFlow initialises its runtime;
    in a process that already used TensorFlow (a notebook, a test session) they are left as they
    are, with a warning.
    """
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:
        log.warning("TensorFlow is already initialised, keeping its settings: %s", error)


def device_name():
    """'CPU' or the name of the first visible GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def _labels(y, head):
    return y.astype("float32").reshape(-1, 1) if head == "sigmoid" else y.astype("int64")


class Stage(NamedTuple):
    """What one training stage fits on: arrays, and the factor that makes them model inputs."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: tuple
    scale: float = 1 / 255.0


def make_datasets(data, params, seed=None):
    """tf.data pipelines for training and validation, and their steps per epoch.

    Both are repeated and driven by ``steps_per_epoch``: a pipeline that ends each epoch stalls
    for seconds while tf.data tears its iterator down, which dominated small models on CPU.
    Training batches are augmented as the run's ``augment`` says, a new draw every epoch;
    validation batches come in the same order every epoch and are only rescaled.
    """
    batch, seed = params["batch_size"], params["seed"] if seed is None else seed

    def rescale(x, y):
        return tf.cast(x, tf.float32) * data.scale, y

    train = (
        tf.data.Dataset.from_tensor_slices((data.x_train, _labels(data.y_train, params["head"])))
        .shuffle(len(data.x_train), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch)
        .map(rescale, num_parallel_calls=tf.data.AUTOTUNE)
    )
    train = augment_dataset(train, params["augment"], seed).prefetch(tf.data.AUTOTUNE)
    val = (
        tf.data.Dataset.from_tensor_slices((data.x_val, _labels(data.y_val, params["head"])))
        .batch(batch)
        .map(rescale)
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val, math.ceil(len(data.x_train) / batch), math.ceil(len(data.x_val) / batch)


def _write_history(rows, path):
    write_atomic(path, lambda tmp: pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(tmp, index=False))


class ResumeState:
    """The per-epoch checkpoint of a run: ``state-epoch{k}.keras`` and the history up to k.

    The state file is written before the history that names it, and the previous state is
    deleted only after, so the history's length always names a state file that exists.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.history_path = self.folder / "history.csv"

    def state_path(self, epoch):
        return self.folder / f"state-epoch{epoch}.keras"

    def load(self):
        """(model, history rows) of the last finished epoch, or (None, []) to start afresh."""
        if not self.history_path.exists():
            return None, []
        rows = pd.read_csv(self.history_path).to_dict("records")
        state = self.state_path(len(rows))
        if not rows or not state.exists():
            log.warning("resume state in %s is inconsistent; starting afresh", self.folder)
            shutil.rmtree(self.folder)
            return None, []
        return keras.models.load_model(state), rows

    def save(self, model, rows):
        self.folder.mkdir(parents=True, exist_ok=True)
        epoch = len(rows)
        write_atomic(self.state_path(epoch), model.save)
        _write_history(rows, self.history_path)
        previous = self.state_path(epoch - 1)
        if previous.exists():
            previous.unlink()


class EpochRecorder(keras.callbacks.Callback):
    """Appends one history row per epoch, checkpoints, and logs one line (no progress bars)."""

    def __init__(self, rows, state, live_history, epochs):
        super().__init__()
        self.rows, self.state, self.live_history, self.epochs = rows, state, live_history, epochs
        self.first_epoch_started = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.first_epoch_started = self.first_epoch_started or time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {name: float(logs[name]) for name in ("loss", "accuracy", "val_loss", "val_accuracy")}
        row["epoch"] = epoch + 1
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["seconds"] = time.perf_counter() - self.started
        self.rows.append(row)
        self.state.save(self.model, self.rows)
        _write_history(self.rows, self.live_history)
        log.info(
            "epoch %d/%d loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f (%.1f s)",
            row["epoch"], self.epochs, row["loss"], row["accuracy"],
            row["val_loss"], row["val_accuracy"], row["seconds"],
        )  # fmt: skip


def roc_auc(labels, scores):
    """Area under the ROC curve (Mann–Whitney U); None when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def positive_scores(model, x, batch_size, scale=1 / 255.0):
    """Probability of class 1 for every input (either head)."""
    probs = model.predict(x.astype("float32") * scale, batch_size=batch_size, verbose=0)
    return probs[:, 0] if probs.shape[1] == 1 else probs[:, 1]


def validation_metrics(model, data, batch_size):
    """AUC and confusion matrix (rows: true class, columns: predicted) on validation data."""
    scores = positive_scores(model, data.x_val, batch_size, data.scale)
    predicted = (scores >= 0.5).astype(int)
    n = len(data.classes)
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (data.y_val, predicted), 1)
    return {
        "val_auc": roc_auc(data.y_val == 1, scores),
        "confusion_matrix": {"classes": list(data.classes), "matrix": matrix.tolist()},
    }


def summarise(run, params, rows):
    """The history-derived part of metrics.json."""
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    final = history.iloc[-1]
    best = history.loc[history["val_accuracy"].idxmax()]
    return {
        "run": run,
        "params": params,
        "seed": params["seed"],
        "final": {k: float(final[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
        "best": {"val_accuracy": float(best["val_accuracy"]), "epoch": int(best["epoch"])},
        "generalization_gap": float(final["accuracy"] - final["val_accuracy"]),
        "epochs_run": len(history),
        "wall_seconds": float(history["seconds"].sum()),
    }


def versions():
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cnnreg": cnnreg.__version__,
    }


def train_run(run, params, cache_path, run_dir, threads=1, started=None, features_path=None, weights_path=None):
    """Train one run to completion, resuming from its checkpoint if one exists.

    Parameters
    ----------
    run : str
        The run id.
    params : dict
        Fully resolved run parameters (see `cnnreg.studies`).
    cache_path : path-like
        The dataset cache written by `cnnreg.data.prepare_cache` (for a transfer run, only read
        when it fine-tunes).
    run_dir : path-like
        Folder for history.csv, metrics.json, model.keras and params.yaml.
    threads : int
        CPU threads for TensorFlow.
    started : float, optional
        ``time.time()`` when the job started, to measure start-up overhead.
    features_path : path-like, optional
        For transfer models: the feature cache written by `cnnreg.transfer`; the head trains on it.
    weights_path : path-like, optional
        For transfer models that fine-tune: the VGG16 weights the features were extracted with.

    Returns
    -------
    dict
        The content of metrics.json.
    """
    started = started or time.time()
    params = {**LATER_PARAMETERS, **params}
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    configure_tensorflow(threads)
    transfer = params["model"] in TRANSFER_MODELS
    data = feature_stage(load_feature_cache(features_path)) if transfer else image_stage(load_cache(cache_path))
    state = ResumeState(run_dir / "resume")
    model, rows = state.load()
    keras.utils.set_random_seed(params["seed"] + len(rows))
    total = params["epochs"] + params["fine_tune"]
    if model is None:
        model = new_model(params, data)
    elif len(rows) < total:
        log.info("resuming %s after epoch %d of %d", run, len(rows), total)
    else:
        log.info("%s finished all %d epochs before; rewriting its outputs", run, len(rows))
    recorder = EpochRecorder(rows, state, run_dir / "history.csv", total)
    fit(model, data, params, params["epochs"], recorder)
    if params["fine_tune"]:
        data = image_stage(load_cache(cache_path), vgg=True)
        if len(rows) <= params["epochs"]:
            model = fine_tuning_model(model, params, data, weights_path)
        fit(model, data, params, total, recorder)
    return finish(run, params, model, data, rows, run_dir, recorder.first_epoch_started, started)


def image_stage(cache, vgg=False):
    """Training arrays from an image cache: uint8 rescaled in the pipeline, or VGG-preprocessed."""
    if vgg:
        return Stage(
            to_vgg_input(cache.x_train), cache.y_train, to_vgg_input(cache.x_val), cache.y_val, cache.classes, 1.0
        )
    return Stage(cache.x_train, cache.y_train, cache.x_val, cache.y_val, cache.classes)


def feature_stage(features):
    return Stage(features.x_train, features.y_train, features.x_val, features.y_val, features.classes, 1.0)


def new_model(params, data):
    """The run's compiled model; a transfer run's is the head on the cached features' shape."""
    if params["model"] in TRANSFER_MODELS:
        head = transfer_head(data.x_train.shape[1:], dense=params["dense"][0], dropout=params["dropout"])
        return compile_model(head, params)
    return compile_model(build_model(params), params)


def fine_tuning_model(head, params, data, weights_path):
    """The trained head on VGG16 with block 5 unfrozen, compiled at the fine-tuning rate."""
    log.info("fine-tuning block 5 for %d epochs at lr %g", params["fine_tune"], params["fine_tune_lr"])
    extractor = feature_extractor(weights_path, data.x_train.shape[1:])
    return compile_model(fine_tune_model(extractor, head), {**params, "lr": params["fine_tune_lr"]})


def fit(model, data, params, until_epoch, recorder):
    """Fit from the recorder's last finished epoch up to ``until_epoch`` (nothing if there)."""
    done = len(recorder.rows)
    if done >= until_epoch:
        return
    train, val, steps, val_steps = make_datasets(data, params, seed=params["seed"] + done)
    model.fit(
        train,
        validation_data=val,
        epochs=until_epoch,
        initial_epoch=done,
        steps_per_epoch=steps,
        validation_steps=val_steps,
        callbacks=[recorder],
        shuffle=False,
        verbose=0,
    )


def finish(run, params, model, data, rows, run_dir, first_epoch_started, started):
    """Write model.keras, params.yaml and metrics.json (history.csv is already complete)."""
    metrics = summarise(run, params, rows)
    metrics.update(validation_metrics(model, data, params["batch_size"]))
    trained = metrics["wall_seconds"]
    metrics["train_images_per_second"] = len(data.x_train) * len(rows) / trained if trained else None
    metrics["startup_seconds"] = first_epoch_started - started if first_epoch_started else None
    metrics["device"] = device_name()
    metrics["versions"] = versions()
    _write_history(rows, run_dir / "history.csv")
    write_atomic(run_dir / "model.keras", model.save)
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_atomic(run_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2)))
    return metrics
