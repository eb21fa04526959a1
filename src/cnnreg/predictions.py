"""A trained run's predictions on held-out images (predictions.csv), and what is read from them.

predictions.csv has one row per image and evaluated model: ``split`` (validation | test),
``model`` (best: the model of the run's best epoch; final: the model after its last epoch),
``file`` (the image's path relative to the dataset root), ``label`` (true class index),
``prediction`` (predicted class index: the most probable class, the lower index on a tie) and
``prob_0 … prob_{k-1}`` (class probabilities; a sigmoid head's p gives prob_0 = 1 - p,
prob_1 = p). Its rows are validation x {best, final}, then test x best when the dataset has a test
split. Nothing here imports Keras: the probabilities come from the caller.
"""

import numpy as np
import pandas as pd

from cnnreg.atomic import write_atomic

__all__ = ["ID_COLUMNS", "class_probabilities", "cross_entropy", "prediction_rows", "scores", "write_predictions"]

ID_COLUMNS = ["split", "model", "file", "label", "prediction"]
#: Keras' clipping of probabilities in its cross-entropy losses.
_EPSILON = 1e-7


def class_probabilities(outputs):
    """(N, k) class probabilities from a model's outputs: a sigmoid head's (N, 1) p becomes
    [1 - p, p]; a softmax head's are returned as they are."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[1] == 1 else outputs


def prediction_rows(split, model, files, labels, probabilities):
    """predictions.csv rows of one split and model.

    Parameters
    ----------
    split : {"validation", "test"}
    model : {"best", "final"}
    files : array_like of str, shape (N,)
        Image paths relative to the dataset root.
    labels : array_like of int, shape (N,)
        True class indices.
    probabilities : ndarray, shape (N, k)
        Class probabilities (`class_probabilities`).

    Returns
    -------
    DataFrame
        `ID_COLUMNS`, then ``prob_0 … prob_{k-1}``.
    """
    probabilities = np.asarray(probabilities)
    rows = pd.DataFrame(
        {
            "split": split,
            "model": model,
            "file": np.asarray(files, dtype=str),
            "label": np.asarray(labels, dtype=np.int64),
            "prediction": probabilities.argmax(axis=1),
        }
    )
    for k in range(probabilities.shape[1]):
        rows[f"prob_{k}"] = probabilities[:, k]
    return rows


def cross_entropy(labels, probabilities):
    """Mean cross-entropy of true classes, as Keras' (binary or sparse categorical) loss computes
    it from probabilities: clipped to [1e-7, 1 - 1e-7]."""
    true = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(true, _EPSILON, 1 - _EPSILON)).mean())


def scores(rows):
    """Accuracy, loss and count of predictions.csv rows of one split and model: what needs no
    positive class. ``accuracy`` and ``loss`` are None for no rows."""
    if rows.empty:
        return {"accuracy": None, "loss": None, "n": 0}
    probabilities = rows[[c for c in rows.columns if c.startswith("prob_")]].to_numpy()
    return {
        "accuracy": float((rows["prediction"] == rows["label"]).mean()),
        "loss": cross_entropy(rows["label"].to_numpy(), probabilities),
        "n": len(rows),
    }


def write_predictions(rows, path):
    """predictions.csv of `rows` (`prediction_rows` concatenated), atomically."""
    write_atomic(path, lambda tmp: rows.to_csv(tmp, index=False))
