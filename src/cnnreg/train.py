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
import os
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
import yaml
from scipy.stats import rankdata

import cnnreg
from cnnreg.data import load_cache
from cnnreg.models import build_model, compile_model

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


def _rescale(x, y):
    return tf.cast(x, tf.float32) / 255.0, y


def make_datasets(cache, params):
    """tf.data pipelines for training and validation, and their steps per epoch.

    Both are repeated and driven by ``steps_per_epoch``: a pipeline that ends each epoch stalls
    for seconds while tf.data tears its iterator down, which dominated small models on CPU.
    Validation batches come in the same order every epoch and are only rescaled.
    """
    batch = params["batch_size"]
    train = (
        tf.data.Dataset.from_tensor_slices((cache.x_train, _labels(cache.y_train, params["head"])))
        .shuffle(len(cache.x_train), seed=params["seed"], reshuffle_each_iteration=True)
        .repeat()
        .batch(batch)
        .map(_rescale, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = (
        tf.data.Dataset.from_tensor_slices((cache.x_val, _labels(cache.y_val, params["head"])))
        .batch(batch)
        .map(_rescale)
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val, math.ceil(len(cache.x_train) / batch), math.ceil(len(cache.x_val) / batch)


def _write_atomic(path, write):
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def _write_history(rows, path):
    _write_atomic(path, lambda tmp: pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(tmp, index=False))


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
        _write_atomic(self.state_path(epoch), model.save)
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


def positive_scores(model, x, batch_size):
    """Probability of class 1 for every image (either head)."""
    probs = model.predict(x.astype("float32") / 255.0, batch_size=batch_size, verbose=0)
    return probs[:, 0] if probs.shape[1] == 1 else probs[:, 1]


def validation_metrics(model, cache, batch_size):
    """AUC and confusion matrix (rows: true class, columns: predicted) on validation data."""
    scores = positive_scores(model, cache.x_val, batch_size)
    predicted = (scores >= 0.5).astype(int)
    n = len(cache.classes)
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (cache.y_val, predicted), 1)
    return {
        "val_auc": roc_auc(cache.y_val == 1, scores),
        "confusion_matrix": {"classes": list(cache.classes), "matrix": matrix.tolist()},
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


def train_run(run, params, cache_path, run_dir, threads=1, started=None):
    """Train one run to completion, resuming from its checkpoint if one exists.

    Parameters
    ----------
    run : str
        The run id.
    params : dict
        Fully resolved run parameters (see `cnnreg.studies`).
    cache_path : path-like
        The dataset cache written by `cnnreg.data.prepare_cache`.
    run_dir : path-like
        Folder for history.csv, metrics.json, model.keras and params.yaml.
    threads : int
        CPU threads for TensorFlow.
    started : float, optional
        ``time.time()`` when the job started, to measure start-up overhead.

    Returns
    -------
    dict
        The content of metrics.json.
    """
    started = started or time.time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    configure_tensorflow(threads)
    cache = load_cache(cache_path)
    state = ResumeState(run_dir / "resume")
    model, rows = state.load()
    keras.utils.set_random_seed(params["seed"] + len(rows))
    if model is None:
        model = compile_model(build_model(params), params)
    elif len(rows) < params["epochs"]:
        log.info("resuming %s after epoch %d of %d", run, len(rows), params["epochs"])
    else:
        log.info("%s finished all %d epochs before; rewriting its outputs", run, len(rows))
    train, val, steps, val_steps = make_datasets(cache, params)
    recorder = EpochRecorder(rows, state, run_dir / "history.csv", params["epochs"])
    if len(rows) < params["epochs"]:
        model.fit(
            train,
            validation_data=val,
            epochs=params["epochs"],
            initial_epoch=len(rows),
            steps_per_epoch=steps,
            validation_steps=val_steps,
            callbacks=[recorder],
            shuffle=False,
            verbose=0,
        )
    return finish(run, params, model, cache, rows, run_dir, recorder.first_epoch_started, started)


def finish(run, params, model, cache, rows, run_dir, first_epoch_started, started):
    """Write model.keras, params.yaml and metrics.json (history.csv is already complete)."""
    metrics = summarise(run, params, rows)
    metrics.update(validation_metrics(model, cache, params["batch_size"]))
    trained = metrics["wall_seconds"]
    metrics["train_images_per_second"] = len(cache.x_train) * len(rows) / trained if trained else None
    metrics["startup_seconds"] = first_epoch_started - started if first_epoch_started else None
    metrics["device"] = device_name()
    metrics["versions"] = versions()
    _write_history(rows, run_dir / "history.csv")
    _write_atomic(run_dir / "model.keras", model.save)
    (run_dir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _write_atomic(run_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2)))
    return metrics
