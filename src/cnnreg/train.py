"""One training run: cached data → model → fit → history.csv, metrics.json, model.keras.

A run is resumable and reproducible. After every epoch its checkpoint is written durably to
``<run dir>/resume/`` (`cnnreg.resume`), with the fingerprint of what it was made from
(`cnnreg.fingerprint`); a run started again after a kill continues from the last finished epoch
if, and only if, its parameters, data, weights and training code are still the same. Every
epoch's shuffle order, augmentation draws and dropout masks are a function of (seed, epoch)
alone (`cnnreg.randomness`), so a resumed run's history equals the uninterrupted run's. One
process at a time trains a run (`cnnreg.runlock`). When the outputs are written the checkpoint
is removed, so a run that Snakemake starts again after it finished trains afresh.
"""

import json
import logging
import math
import platform
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
import yaml
from scipy.stats import rankdata

import cnnreg
from cnnreg.atomic import write_atomic, write_text
from cnnreg.augment import augment_dataset
from cnnreg.data import array_digest, load_cache
from cnnreg.fingerprint import run_fingerprint
from cnnreg.history import FINAL_COLUMNS, HISTORY_COLUMNS, history_values, write_history
from cnnreg.models import compile_model
from cnnreg.randomness import epoch_order, reseed_for_epoch
from cnnreg.registry import lookup
from cnnreg.resume import ResumeState
from cnnreg.runlock import run_lock
from cnnreg.studies import LATER_PARAMETERS
from cnnreg.transfer import feature_extractor, fine_tune_model, load_feature_cache, to_vgg_input
from cnnreg.weights import file_md5

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


def pixel_scale(x):
    """The factor that makes arrays model inputs: 1/255 for uint8 images, 1 for what is already
    float (VGG-preprocessed images, features)."""
    return 1 / 255.0 if x.dtype == np.uint8 else 1.0


def make_datasets(data, params, first_epoch, last_epoch):
    """tf.data pipelines for epochs ``first_epoch`` to ``last_epoch - 1`` (0-based), and the
    steps per epoch of training and validation.

    Each training epoch visits every example once, in the order `cnnreg.randomness.epoch_order`
    gives for (seed, epoch); its last batch may be smaller, and no batch spans two epochs.
    Training batches are augmented as the run's ``augment`` says, with draws keyed by (seed,
    epoch, batch). Both pipelines are driven by ``steps_per_epoch`` over one iterator: a pipeline
    that ends each epoch stalls for seconds while tf.data tears its iterator down, which
    dominated small models on CPU. Validation batches come in the same order every epoch and
    are only rescaled.
    """
    batch, seed, n, scale = params["batch_size"], params["seed"], len(data.x_train), pixel_scale(data.x_train)
    images, labels = tf.constant(data.x_train), tf.constant(_labels(data.y_train, params["head"]))
    epochs = np.arange(first_epoch, last_epoch, dtype=np.int64)
    orders = np.stack([epoch_order(seed, epoch, n) for epoch in epochs])

    def epoch_batches(epoch, order):
        return tf.data.Dataset.from_tensor_slices(order).batch(batch).enumerate().map(lambda i, rows: (epoch, i, rows))

    def gather(epoch, i, rows):
        return epoch, i, tf.cast(tf.gather(images, rows), tf.float32) * scale, tf.gather(labels, rows)

    train = (
        tf.data.Dataset.from_tensor_slices((epochs, orders))
        .flat_map(epoch_batches)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    )
    train = augment_dataset(train, params["augment"], seed, last_epoch).prefetch(tf.data.AUTOTUNE)
    val = (
        tf.data.Dataset.from_tensor_slices((data.x_val, _labels(data.y_val, params["head"])))
        .batch(batch)
        .map(lambda x, y: (tf.cast(x, tf.float32) * scale, y))
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val, math.ceil(n / batch), math.ceil(len(data.x_val) / batch)


class EpochRecorder(keras.callbacks.Callback):
    """Seeds each epoch's dropout masks; appends one history row per epoch, checkpoints, and
    logs one line (no progress bars)."""

    def __init__(self, rows, state, live_history, epochs, seed):
        super().__init__()
        self.rows, self.state, self.live_history, self.epochs, self.seed = rows, state, live_history, epochs, seed
        self.first_epoch_started = None

    def on_epoch_begin(self, epoch, logs=None):
        reseed_for_epoch(self.model, self.seed, epoch)
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
        write_history(self.rows, self.live_history)
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
    """Probability of class 1 for every input (either head)."""
    probs = model.predict(x.astype("float32") * pixel_scale(x), batch_size=batch_size, verbose=0)
    return probs[:, 0] if probs.shape[1] == 1 else probs[:, 1]


def validation_metrics(model, data, batch_size):
    """AUC and confusion matrix (rows: true class, columns: predicted) on validation data."""
    scores = positive_scores(model, data.x_val, batch_size)
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
    values = history_values(pd.DataFrame(rows, columns=HISTORY_COLUMNS))
    return {
        "run": run,
        "params": params,
        "seed": params["seed"],
        "final": {k: values[f"final_{k}"] for k in FINAL_COLUMNS},
        "best": {"val_accuracy": values["best_val_accuracy"], "epoch": values["best_epoch"]},
        "generalization_gap": values["generalization_gap"],
        "epochs_run": len(rows),
        "wall_seconds": values["wall_seconds"],
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
    configure_tensorflow(threads)
    spec = lookup(params["model"])
    with run_lock(run_dir, run):
        data, fingerprint = first_stage(spec, params, cache_path, features_path, weights_path)
        state = ResumeState(run_dir / "resume", fingerprint)
        model, rows = state.load()
        total = params["epochs"] + params["fine_tune"]
        if model is None:
            keras.utils.set_random_seed(params["seed"])
            model = compile_model(spec.build(params, data.x_train.shape[1:]), params)
        else:
            log.info("resuming %s after epoch %d of %d", run, len(rows), total)
        recorder = EpochRecorder(rows, state, run_dir / "history.csv", total, params["seed"])
        fit(model, data, params, params["epochs"], recorder)
        if params["fine_tune"]:
            data = vgg_input(load_cache(cache_path))
            if len(rows) <= params["epochs"]:
                model = fine_tuning_model(model, params, data, weights_path)
            fit(model, data, params, total, recorder)
        metrics = finish(run, params, model, data, rows, run_dir, recorder.first_epoch_started, started)
        write_text(run_dir / "metrics.json", json.dumps({**metrics, "fingerprint": fingerprint}, indent=2))
        state.clear()
    return {**metrics, "fingerprint": fingerprint}


def first_stage(spec, params, cache_path, features_path, weights_path):
    """The arrays a run trains on first (what its model's registry entry says), and the run's
    fingerprint.

    A model on features trains on them; their digest covers the weights they were extracted
    with, and a run that fine-tunes also depends on the images and the weights file.
    """
    if spec.inputs == "images":
        data = load_cache(cache_path)
        return data, run_fingerprint(params, stage_digest(data), None)
    features = load_feature_cache(features_path)
    digest, weights = stage_digest(features), features.weights_md5
    if params["fine_tune"]:
        digest = array_digest({"features": np.array(digest), "images": np.array(load_cache(cache_path).digest)})
        weights = file_md5(weights_path)
    return features, run_fingerprint(params, digest, weights)


def stage_digest(data):
    """Digest of the arrays and class names a stage trains and validates on."""
    return array_digest(
        {"x_train": data.x_train, "y_train": data.y_train, "x_val": data.x_val, "y_val": data.y_val,
         "classes": np.array(data.classes)}
    )  # fmt: skip


def vgg_input(cache):
    """An image cache with its images preprocessed for VGG16 (the fine-tuning stage's input)."""
    return cache._replace(x_train=to_vgg_input(cache.x_train), x_val=to_vgg_input(cache.x_val))


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
    train, val, steps, val_steps = make_datasets(data, params, done, until_epoch)
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


def class_counts(data):
    """Images per class (in ``data.classes`` order) of the training and validation data."""
    splits = {"train": data.y_train, "validation": data.y_val}
    return {split: np.bincount(y, minlength=len(data.classes)).tolist() for split, y in splits.items()}


def finish(run, params, model, data, rows, run_dir, first_epoch_started, started):
    """Write history.csv, model.keras and params.yaml, and return metrics.json's content."""
    metrics = summarise(run, params, rows)
    metrics.update(validation_metrics(model, data, params["batch_size"]))
    metrics["class_counts"] = class_counts(data)
    trained = metrics["wall_seconds"]
    metrics["train_images_per_second"] = len(data.x_train) * len(rows) / trained if trained else None
    metrics["startup_seconds"] = first_epoch_started - started if first_epoch_started else None
    metrics["device"] = device_name()
    metrics["versions"] = versions()
    write_history(rows, run_dir / "history.csv")
    write_atomic(run_dir / "model.keras", model.save)
    write_text(run_dir / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    return metrics
