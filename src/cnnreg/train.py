"""One training run: cached data → model → fit → history.csv, metrics.json, model.keras,
best.keras and predictions.csv.

A run is resumable and reproducible. Its checkpoint is written durably to ``<run dir>/resume/``
(`cnnreg.resume`), with the fingerprint of what it was made from (`cnnreg.fingerprint`), once at
least ``checkpoint_seconds`` of training have passed since the last one, after the last epoch of
each fit stage, and when a stop is requested (`cnnreg.stopping`; the run then raises
`TrainingStopped`). A run started again after a kill continues from its checkpoint's last epoch
if, and only if, its parameters, data, weights and training code are still the same. Every
epoch's shuffle order, augmentation draws and dropout masks are a function of (seed, epoch)
alone (`cnnreg.randomness`), so a resumed run's history equals the uninterrupted run's, and so
does a run's under any `cnnreg.execution.Execution`. One process at a time trains a run
(`cnnreg.runlock`). When the outputs are written the checkpoint is removed, so a run that
Snakemake starts again after it finished trains afresh.

The run's best epoch is the first of maximal validation accuracy; its model becomes
``best.keras``. An epoch that improves on it between two checkpoints keeps its weights in
memory until the next one writes them. After training, the best
model predicts the validation split and the held-out test split (if the dataset has one), the
final model the validation split, each once (`cnnreg.predictions`). The test split is never
trained on nor used to choose anything. A cross-validation run (``folds`` > 0) trains and
validates on its fold of train + validation (`cnnreg.folds`); ``class_weight: balanced`` weights
each class's training loss by n / (k n_c), through Keras' ``class_weight``.
"""

import json
import logging
import math
import platform
import shutil
import threading
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
from cnnreg.atomic import write_atomic, write_text
from cnnreg.augment import augment_dataset
from cnnreg.data import array_digest, load_cache
from cnnreg.devices import device_name
from cnnreg.execution import Execution
from cnnreg.fingerprint import run_fingerprint
from cnnreg.folds import split_fold
from cnnreg.history import FINAL_COLUMNS, HISTORY_COLUMNS, history_values, write_history
from cnnreg.images import DatasetError
from cnnreg.models import build_in_precision, compile_model
from cnnreg.predictions import class_probabilities, prediction_rows, scores, write_predictions
from cnnreg.randomness import epoch_order, reseed_for_epoch
from cnnreg.registry import lookup
from cnnreg.resume import ResumeState, best_epoch
from cnnreg.runlock import run_lock
from cnnreg.stopping import TrainingStopped, stop_requested
from cnnreg.studies import LATER_PARAMETERS
from cnnreg.transfer import feature_extractor, fine_tune_model, load_feature_cache, to_vgg_input
from cnnreg.weights import file_md5

log = logging.getLogger(__name__)


#: Held while a run seeds Keras' global random state and builds its model.
_BUILDING = threading.Lock()
#: The threads `configure_tensorflow` set in this process.
_CONFIGURED = {}


def configure_tensorflow(threads):
    """Pin TF's thread pools to the job's cores, make ops deterministic, let GPUs be shared.

    Thread pools and GPU memory growth can only be set before TensorFlow initialises its runtime;
    in a process that already used TensorFlow (a notebook, a test session) they are left as they
    are, with a warning. Calling it again with the same `threads` does nothing.
    """
    if _CONFIGURED.get("threads") == threads:
        return
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:
        log.warning("TensorFlow is already initialised, keeping its settings: %s", error)
    _CONFIGURED["threads"] = threads


def _labels(y, head):
    return y.astype("float32").reshape(-1, 1) if head == "sigmoid" else y.astype("int64")


def pixel_scale(x):
    """The factor that makes arrays model inputs: 1/255 for uint8 images, 1 for what is already
    float (VGG-preprocessed images, features)."""
    return 1 / 255.0 if x.dtype == np.uint8 else 1.0


class Pipelines(NamedTuple):
    """A fit stage's tf.data pipelines.

    Attributes
    ----------
    train : tf.data.Dataset
        ``(images, labels)`` batches; each pass over it is one epoch, the one ``epoch`` holds
        when the pass starts.
    val : tf.data.Dataset
        ``(images, labels)`` batches of the validation split, the same every pass.
    epoch : tf.Variable
        The 0-based epoch of the next pass over ``train``; `fit` sets it at each epoch's start.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    epoch: tf.Variable


def make_datasets(data, params, first_epoch, last_epoch):
    """tf.data pipelines for epochs ``first_epoch`` to ``last_epoch - 1`` (0-based).

    Each training epoch visits every example once, in the order `cnnreg.randomness.epoch_order`
    gives for (seed, epoch); its last batch may be smaller. Training batches are augmented as
    the run's ``augment`` says, with draws keyed by (seed, epoch, batch). Validation batches come
    in the same order every epoch and are only rescaled.

    Every pass over a pipeline ends with its epoch, so that Keras' last call of an epoch runs
    only the batches left of it whatever ``steps_per_execution`` is (with one pipeline spanning
    all epochs, that call would run on into the next epoch's batches). A pass knows its epoch
    from a variable read when it starts, since Keras starts each pass after the epoch's
    ``on_epoch_begin``.
    """
    batch, seed, n, scale = params["batch_size"], params["seed"], len(data.x_train), pixel_scale(data.x_train)
    images, labels = tf.constant(data.x_train), tf.constant(_labels(data.y_train, params["head"]))
    orders = tf.constant(np.stack([epoch_order(seed, epoch, n) for epoch in range(first_epoch, last_epoch)]))
    epoch = tf.Variable(first_epoch, dtype=tf.int64, trainable=False)

    def epoch_batches(_):
        current = epoch.value()
        rows = tf.data.Dataset.from_tensor_slices(orders[current - first_epoch]).batch(batch)
        return rows.enumerate().map(lambda i, rows: (current, i, rows))

    def gather(epoch, i, rows):
        return epoch, i, tf.cast(tf.gather(images, rows), tf.float32) * scale, tf.gather(labels, rows)

    train = (
        tf.data.Dataset.from_tensors(0)
        .flat_map(epoch_batches)
        .apply(tf.data.experimental.assert_cardinality(math.ceil(n / batch)))
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    )
    train = augment_dataset(train, params["augment"], seed, last_epoch).prefetch(tf.data.AUTOTUNE)
    val = (
        tf.data.Dataset.from_tensor_slices((data.x_val, _labels(data.y_val, params["head"])))
        .batch(batch)
        .map(lambda x, y: (tf.cast(x, tf.float32) * scale, y))
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return Pipelines(train, val, epoch)


class EpochRecorder(keras.callbacks.Callback):
    """Seeds each epoch's dropout masks; appends one history row per epoch, logs one line (no
    progress bars), checkpoints when one is due, and stops training when a stop is requested.

    A checkpoint is due when `checkpoint_seconds` have passed since the last one (or since the
    recorder was made), after the last epoch of a fit, and on a stop request. The weights of a
    best epoch that is not checkpointed wait in memory for the next checkpoint.
    """

    def __init__(self, rows, state, live_history, epochs, seed, checkpoint_seconds):
        super().__init__()
        self.rows, self.state, self.live_history, self.epochs, self.seed = rows, state, live_history, epochs, seed
        self.checkpoint_seconds = checkpoint_seconds
        self.last_checkpoint = time.monotonic()
        self.unsaved_best = None
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
        write_history(self.rows, self.live_history)
        stopping = stop_requested()
        if stopping or self.checkpoint_due(epoch):
            self.state.save(self.model, self.rows, self.unsaved_best)
            self.unsaved_best, self.last_checkpoint = None, time.monotonic()
        elif best_epoch(self.rows) == row["epoch"]:
            self.unsaved_best = self.model.get_weights()
        if stopping:
            self.model.stop_training = True
        log.info(
            "epoch %d/%d loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f (%.1f s)",
            row["epoch"], self.epochs, row["loss"], row["accuracy"],
            row["val_loss"], row["val_accuracy"], row["seconds"],
        )  # fmt: skip

    def checkpoint_due(self, epoch):
        """Whether epoch `epoch` (0-based) ends the fit, or the checkpoint interval has passed."""
        last_of_fit = epoch + 1 == self.params["epochs"]
        return last_of_fit or time.monotonic() - self.last_checkpoint >= self.checkpoint_seconds


def roc_auc(labels, scores):
    """Area under the ROC curve (Mann–Whitney U); None when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def probabilities(model, x, batch_size):
    """(N, k) class probabilities of every input (either head; see `class_probabilities`).

    One batch per call into TensorFlow whatever the model was compiled with: Keras predicts
    several batches in one graph, which may round differently.
    """
    model.steps_per_execution = 1
    return class_probabilities(model.predict(x.astype("float32") * pixel_scale(x), batch_size=batch_size, verbose=0))


def validation_metrics(predictions, classes):
    """AUC (class 1 as positive) and confusion matrix (rows: true class, columns: predicted) of
    the final model on validation data, from its predictions.csv rows."""
    rows = predictions[(predictions["split"] == "validation") & (predictions["model"] == "final")]
    n = len(classes)
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (rows["label"].to_numpy(), rows["prediction"].to_numpy()), 1)
    return {
        "val_auc": roc_auc(rows["label"].to_numpy() == 1, rows["prob_1"].to_numpy()),
        "confusion_matrix": {"classes": list(classes), "matrix": matrix.tolist()},
    }


def held_out_metrics(predictions, best_epoch):
    """``best_model`` (its epoch, and its validation accuracy from its predictions) and, with a
    test split, ``test`` (the best model's accuracy, loss and image count)."""

    def rows(split):
        return predictions[(predictions["split"] == split) & (predictions["model"] == "best")]

    metrics = {"best_model": {"epoch": best_epoch, "val_accuracy": scores(rows("validation"))["accuracy"]}}
    if (predictions["split"] == "test").any():
        metrics["test"] = scores(rows("test"))
    return metrics


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


def train_run(
    run,
    params,
    cache_path,
    run_dir,
    threads=1,
    started=None,
    features_path=None,
    weights_path=None,
    *,
    execution=None,
    pack=None,
):
    """Train one run to completion, resuming from its checkpoint if one exists.

    Parameters
    ----------
    run : str
        The run id.
    params : dict
        Fully resolved run parameters (see `cnnreg.studies`).
    cache_path : path-like
        The dataset cache written by `cnnreg.data.prepare_cache`. A transfer run trains on it
        only when it fine-tunes; it always reads the image files and the test split from it.
    run_dir : path-like
        Folder for history.csv, metrics.json, model.keras, best.keras, predictions.csv and
        params.yaml.
    threads : int
        CPU threads for TensorFlow.
    started : float, optional
        ``time.time()`` when the job started, to measure start-up overhead.
    features_path : path-like, optional
        For transfer models: the feature cache written by `cnnreg.transfer`; the head trains on it.
    weights_path : path-like, optional
        For transfer models that fine-tune: the VGG16 weights the features were extracted with.
    execution : cnnreg.execution.Execution, optional
        Steps per execution and checkpoint interval (default ``Execution()``); they change no result.
    pack : str, optional
        The pack (`cnnreg.packs`) training the run, recorded in metrics.json.

    Returns
    -------
    dict
        The content of metrics.json.

    Raises
    ------
    TrainingStopped
        If a stop was requested (`cnnreg.stopping`): after the checkpoint of the last finished
        epoch, without writing the outputs; or at once, if it was requested before the run began.
    """
    started = started or time.time()
    execution = execution or Execution()
    params = {**LATER_PARAMETERS, **params}
    run_dir = Path(run_dir)
    stop_if_requested(run, [])
    configure_tensorflow(threads)
    spec = lookup(params["model"])
    with run_lock(run_dir, run):
        images, data, fingerprint = run_stage(params, cache_path, features_path, weights_path)
        state = ResumeState(run_dir / "resume", fingerprint)
        checkpointed, rows = state.load()
        total = params["epochs"] + params["fine_tune"]
        if checkpointed is not None:
            log.info("resuming %s after epoch %d of %d", run, len(rows), total)
        model = starting_model(checkpointed, spec, params, data.x_train.shape[1:], execution.steps_per_execution)
        recorder = EpochRecorder(
            rows, state, run_dir / "history.csv", total, params["seed"], execution.checkpoint_seconds
        )
        fit(model, data, params, params["epochs"], recorder)
        stop_if_requested(run, rows)
        stages = [data]
        if params["fine_tune"]:
            data = vgg_input(images)
            stages.append(data)
            if len(rows) <= params["epochs"]:
                model = fine_tuning_model(model, params, data, weights_path, execution.steps_per_execution)
            fit(model, data, params, total, recorder)
            stop_if_requested(run, rows)
        write_atomic(run_dir / "best.keras", lambda tmp: shutil.copyfile(state.best_path(rows), tmp))
        best_stage = stages[0] if best_epoch(rows) <= params["epochs"] else stages[-1]
        predictions = predict_held_out(
            keras.models.load_model(run_dir / "best.keras"), best_stage, model, data, images, params["batch_size"]
        )
        metrics = finish(run, params, model, data, rows, run_dir, recorder.first_epoch_started, started, predictions)
        metrics.update(fingerprint=fingerprint, pack=pack)
        write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
        state.clear()
    return metrics


def current_fingerprint(params, cache_path, features_path=None, weights_path=None):
    """The fingerprint a run would be trained with now: what a finished run's must equal for
    its outputs to be reused."""
    return run_stage({**LATER_PARAMETERS, **params}, cache_path, features_path, weights_path)[2]


def run_stage(params, cache_path, features_path, weights_path):
    """A run's fold of the image cache, the arrays it trains on first, and its fingerprint."""
    images = fold_of(load_cache(cache_path), params)
    return (images, *first_stage(lookup(params["model"]), params, images, features_path, weights_path))


def starting_model(checkpointed, spec, params, input_shape, steps_per_execution):
    """The model a run starts fitting: its checkpoint's, or a new one built and compiled.

    A checkpoint's model was compiled with the steps per execution of the process that saved it;
    it runs at `steps_per_execution` now (which changes no result).
    """
    if checkpointed is not None:
        checkpointed.steps_per_execution = steps_per_execution
        return checkpointed
    with _BUILDING:  # the seed is global: runs training in other threads must not draw from it meanwhile
        keras.utils.set_random_seed(params["seed"])
        model = build_in_precision(lambda: spec.build(params, input_shape), params["mixed_precision"])
        return compile_model(model, params, steps_per_execution)


def stop_if_requested(run, rows):
    """Raise `TrainingStopped` if a stop was requested (`rows`: the epochs finished, all in the
    checkpoint by then)."""
    if stop_requested():
        raise TrainingStopped(f"run {run} stopped on request after epoch {len(rows)}, which its checkpoint holds")


def fold_of(data, params):
    """`data` as the run's fold sees it (unchanged without cross-validation; see `cnnreg.folds`)."""
    return split_fold(data, params["folds"], params["fold"], params["seed"])


def first_stage(spec, params, images, features_path, weights_path):
    """The arrays a run trains on first (what its model's registry entry says), and the run's
    fingerprint.

    `images` is the run's fold of the image cache. A model on features trains on
    its fold of them; their digest covers the weights they were extracted with, and a run that
    fine-tunes also depends on the images and the weights file. The test split is in no digest:
    it never decides what is trained.
    """
    if spec.inputs == "images":
        return images, run_fingerprint(params, stage_digest(images), None)
    features = fold_of(load_feature_cache(features_path), params)
    digest, weights = stage_digest(features), features.weights_md5
    if params["fine_tune"]:
        digest = array_digest({"features": np.array(digest), "images": np.array(stage_digest(images))})
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
    return cache._replace(**{key: to_vgg_input(getattr(cache, key)) for key in ("x_train", "x_val", "x_test")})


def fine_tuning_model(head, params, data, weights_path, steps_per_execution):
    """The trained head on VGG16 with block 5 unfrozen, compiled at the fine-tuning rate."""
    log.info("fine-tuning block 5 for %d epochs at lr %g", params["fine_tune"], params["fine_tune_lr"])
    model = build_in_precision(
        lambda: fine_tune_model(feature_extractor(weights_path, data.x_train.shape[1:]), head),
        params["mixed_precision"],
    )
    return compile_model(model, {**params, "lr": params["fine_tune_lr"]}, steps_per_execution)


def class_weights(labels, classes, setting):
    """Keras' ``class_weight`` of a run: None for ``none``; for ``balanced``, n / (k n_c) per
    class c of the k `classes`, from the training `labels` (n of them, n_c of class c)."""
    if setting == "none":
        return None
    counts = np.bincount(labels, minlength=len(classes))
    return {c: len(labels) / (len(classes) * count) for c, count in enumerate(counts)}


def fit(model, data, params, until_epoch, recorder):
    """Fit from the recorder's last finished epoch up to ``until_epoch`` (nothing if there)."""
    done = len(recorder.rows)
    if done >= until_epoch:
        return
    pipelines = make_datasets(data, params, done, until_epoch)
    select_epoch = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: pipelines.epoch.assign(epoch))
    model.fit(
        pipelines.train,
        validation_data=pipelines.val,
        epochs=until_epoch,
        initial_epoch=done,
        class_weight=class_weights(data.y_train, data.classes, params["class_weight"]),
        callbacks=[select_epoch, recorder],
        shuffle=False,
        verbose=0,
    )


def predict_held_out(best, best_stage, final, final_stage, images, batch_size):
    """predictions.csv rows: validation x {best, final}, then test x best when the dataset has a
    test split.

    Each model is evaluated on the inputs of the stage it was trained in (images, or features
    for a transfer head; a feature cache holds the test split's features too); `images` (the
    run's fold of the image cache) names the files.

    Raises
    ------
    DatasetError
        If the best model's stage holds other test labels than `images` (a feature cache
        extracted from another image cache).
    """
    if not np.array_equal(best_stage.y_test, images.y_test):
        raise DatasetError(
            f"the {len(best_stage.y_test)} test labels of the best model's inputs differ from the "
            f"{len(images.y_test)} of the image cache (features of another cache?); rerun the extract_features rule"
        )
    frames = [
        prediction_rows(
            "validation", name, images.files_val, stage.y_val, probabilities(model, stage.x_val, batch_size)
        )
        for name, model, stage in (("best", best, best_stage), ("final", final, final_stage))
    ]
    if len(best_stage.x_test):
        frames.append(
            prediction_rows(
                "test", "best", images.files_test, best_stage.y_test, probabilities(best, best_stage.x_test, batch_size)
            )
        )
    return pd.concat(frames, ignore_index=True)


def class_counts(data):
    """Images per class (in ``data.classes`` order) of the training, validation and (when there is
    one) test data."""
    splits = {"train": data.y_train, "validation": data.y_val}
    if len(data.y_test):
        splits["test"] = data.y_test
    return {split: np.bincount(y, minlength=len(data.classes)).tolist() for split, y in splits.items()}


def finish(run, params, model, data, rows, run_dir, first_epoch_started, started, predictions):
    """Write history.csv, model.keras, predictions.csv and params.yaml, and return metrics.json's
    content."""
    metrics = summarise(run, params, rows)
    metrics.update(validation_metrics(predictions, data.classes))
    metrics.update(held_out_metrics(predictions, metrics["best"]["epoch"]))
    metrics["class_counts"] = class_counts(data)
    trained = metrics["wall_seconds"]
    metrics["train_images_per_second"] = len(data.x_train) * len(rows) / trained if trained else None
    metrics["startup_seconds"] = first_epoch_started - started if first_epoch_started else None
    metrics["device"] = device_name()
    metrics["versions"] = versions()
    write_history(rows, run_dir / "history.csv")
    write_atomic(run_dir / "model.keras", model.save)
    write_predictions(predictions, run_dir / "predictions.csv")
    write_text(run_dir / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    return metrics
