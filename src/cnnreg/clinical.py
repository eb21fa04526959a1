"""Metrics clinicians read, from a run's predictions: sensitivity, specificity, balanced accuracy
and the AUC with its 95 % interval.

Medical data sets are often imbalanced, and accuracy then says little: a model that calls every
image healthy scores the healthy share. :func:`confusion_matrix` counts the predictions,
:func:`class_rates` reads the positive class's sensitivity and specificity and the balanced
accuracy from it, :func:`auc_interval` gives the area under the ROC curve with DeLong's 95 %
interval, and :func:`split_metrics` does all of it for one split of a run's ``predictions.csv``.
"""

import numpy as np
from scipy.stats import norm, rankdata

__all__ = [
    "COLUMNS",
    "METRICS",
    "auc_interval",
    "class_rates",
    "confusion_matrix",
    "positive_index",
    "run_clinical_metrics",
    "split_metrics",
]

#: What `split_metrics` returns per split, each prefixed with the split (``val_``, ``test_``).
METRICS = ("n", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auc", "auc_low", "auc_high")
#: The splits of ``predictions.csv`` and the prefix of their metrics.
SPLITS = {"validation": "val_", "test": "test_"}
#: What `run_clinical_metrics` returns: ``<prefix><metric>`` per split and metric.
COLUMNS = tuple(f"{prefix}{metric}" for prefix in SPLITS.values() for metric in METRICS)


def confusion_matrix(labels, predictions, n_classes):
    """Counts of (true class, predicted class).

    Parameters
    ----------
    labels, predictions : array-like of int, shape (N,)
        True and predicted class indices, each in ``[0, n_classes)``.
    n_classes : int
        Number of classes, at least 2.

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)
        Rows: true class; columns: predicted class.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predictions must be 1-D of one length, got {labels.shape} and {predictions.shape}"
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if len(values) and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} must be class indices in [0, {n_classes}), got {values.min()}..{values.max()}")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predictions.astype(int)), 1)
    return matrix


def class_rates(matrix, positive):
    """Sensitivity and specificity of the positive class, and the balanced accuracy.

    Parameters
    ----------
    matrix : array-like of int, shape (K, K)
        A confusion matrix (rows: true class, columns: predicted), K >= 2.
    positive : int
        Index of the positive class (the finding, e.g. melanoma); every other class is negative.

    Returns
    -------
    dict
        ``accuracy``; ``sensitivity`` (positives called positive); ``specificity`` (negatives not
        called positive); ``balanced_accuracy`` (the mean recall over the classes, which for two
        classes is the mean of sensitivity and specificity). NaN where a class has no images.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"matrix must be square with at least 2 classes, got shape {matrix.shape}")
    if not 0 <= positive < len(matrix):
        raise ValueError(f"positive must be a class index in [0, {len(matrix)}), got {positive}")
    true_counts = matrix.sum(axis=1)
    negatives = true_counts.sum() - true_counts[positive]
    called_positive_wrongly = matrix[:, positive].sum() - matrix[positive, positive]
    with np.errstate(invalid="ignore", divide="ignore"):
        recalls = np.diag(matrix) / true_counts
        return {
            "accuracy": float(np.trace(matrix) / matrix.sum()) if matrix.sum() else np.nan,
            "sensitivity": float(recalls[positive]),
            "specificity": float((negatives - called_positive_wrongly) / negatives) if negatives else np.nan,
            "balanced_accuracy": float(np.mean(recalls)),
        }


def auc_interval(is_positive, scores, level=0.95):
    """Area under the ROC curve with DeLong's confidence interval.

    Parameters
    ----------
    is_positive : array-like of bool, shape (N,)
        Whether each image belongs to the positive class.
    scores : array-like of float, shape (N,)
        The model's probability of the positive class; ties count one half.
    level : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    auc, low, high : float
        The AUC (the Mann–Whitney probability that a positive scores above a negative) and the
        interval ``auc ± z * se``, with DeLong's (1988) standard error, clipped to [0, 1]. All
        NaN without both classes; the interval NaN with fewer than two images of either class.
    """
    is_positive, scores = np.asarray(is_positive, dtype=bool), np.asarray(scores, dtype=float)
    if is_positive.shape != scores.shape or scores.ndim != 1:
        raise ValueError(
            f"is_positive and scores must be 1-D of one length, got {is_positive.shape} and {scores.shape}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    positives, negatives = scores[is_positive], scores[~is_positive]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        return np.nan, np.nan, np.nan
    # Each image's placement: the share of the other class it beats (DeLong's structural components),
    # from midranks in the pooled scores minus midranks within its own class.
    pooled = rankdata(scores)
    beats_negatives = (pooled[is_positive] - rankdata(positives)) / n
    beaten_by_positives = 1 - (pooled[~is_positive] - rankdata(negatives)) / m
    auc = float(beats_negatives.mean())
    if m < 2 or n < 2:
        return auc, np.nan, np.nan
    se = np.sqrt(beats_negatives.var(ddof=1) / m + beaten_by_positives.var(ddof=1) / n)
    half = norm.ppf(0.5 + level / 2) * se
    return auc, float(max(0.0, auc - half)), float(min(1.0, auc + half))


def split_metrics(predictions, positive, prefix):
    """`METRICS` of one split and model of a run's ``predictions.csv``.

    Parameters
    ----------
    predictions : DataFrame
        Rows of one split and model, with columns ``label``, ``prediction`` and ``prob_0`` …
        ``prob_{K-1}``.
    positive : int
        Index of the positive class.
    prefix : str
        Prepended to every key (``val_``, ``test_``).

    Returns
    -------
    dict
        ``<prefix><metric>`` for each of `METRICS`; NaN values where undefined (no rows).
    """
    n_classes = sum(column.startswith("prob_") for column in predictions.columns)
    if n_classes < 2 or f"prob_{positive}" not in predictions:
        raise ValueError(
            f"predictions need columns prob_0 … prob_K-1 (K >= 2) and prob_{positive}, got {list(predictions.columns)}"
        )
    labels = predictions["label"].to_numpy()
    matrix = confusion_matrix(labels, predictions["prediction"].to_numpy(), n_classes)
    auc, low, high = auc_interval(labels == positive, predictions[f"prob_{positive}"].to_numpy())
    values = {"n": len(predictions), **class_rates(matrix, positive), "auc": auc, "auc_low": low, "auc_high": high}
    return {f"{prefix}{name}": values[name] for name in METRICS}


def positive_index(classes, positive_class=None):
    """Index of the positive class among a dataset's class names (default: the first class).

    Raises
    ------
    ValueError
        If `positive_class` is not one of `classes`, naming the config key to fix.
    """
    if positive_class is None:
        return 0
    if positive_class not in classes:
        raise ValueError(
            f"positive_class '{positive_class}' is not one of the dataset's classes {list(classes)} "
            "(config key 'datasets.<name>.positive_class')"
        )
    return list(classes).index(positive_class)


def run_clinical_metrics(predictions, positive):
    """`COLUMNS` of a run, from its ``predictions.csv`` rows of the model from its chosen epoch.

    Parameters
    ----------
    predictions : DataFrame
        A run's predictions (columns ``split``, ``model``, ``label``, ``prediction``, ``prob_*``).
    positive : int
        Index of the positive class (`positive_index`).

    Returns
    -------
    dict
        Every key of `COLUMNS`; NaN for a split the run has no predictions of (no test split).
    """
    values = dict.fromkeys(COLUMNS, np.nan)
    for split, prefix in SPLITS.items():
        rows = predictions[(predictions["split"] == split) & (predictions["model"] == "best")]
        if len(rows):
            values.update(split_metrics(rows, positive, prefix))
    return values
