"""k-fold cross-validation: which cached images a fold run trains and validates on.

A run with ``folds: K`` and ``fold: i`` pools the dataset's train and validation images, deals
them into K stratified folds and trains on every fold but fold i, validating on fold i. The
deal is seeded by the run's ``seed``, so a study's seeds give repeated stratified K-fold
cross-validation; the test split is never dealt (it stays held out). All folds read one cache
file; the split is applied after loading it.
"""

import numpy as np

from cnnreg.images import DatasetError
from cnnreg.randomness import stream_seed

__all__ = ["FOLDS", "fold_assignment", "fold_rows", "split_fold"]

#: The randomness stream of the deal (beside `cnnreg.randomness`' shuffle, augment and model).
FOLDS = 3


def fold_assignment(labels, folds, seed):
    """The fold of every row: a stratified, seeded deal of the rows into `folds` folds.

    Each class's rows are shuffled (seeded by `seed`) and dealt round-robin, the deal
    continuing from one class to the next, so every fold holds ``n_c // folds`` or one more of
    each class c, and the folds' sizes differ by at most one.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Class index of every row.
    folds : int
        K, at least 2 and at most the smallest class's count.
    seed : int
        The run's seed.

    Returns
    -------
    ndarray of int64, shape (N,)
        Fold index (0..K-1) of every row.

    Raises
    ------
    DatasetError
        If `folds` is less than 2, or more than a class's count (a fold would lack that class).
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not isinstance(folds, int | np.integer) or folds < 2:
        raise DatasetError(f"folds (the study key 'folds') must be an int of at least 2, got {folds!r}")
    if counts.min() < folds:
        smallest = classes[counts.argmin()]
        raise DatasetError(
            f"study key 'folds': {folds} folds need at least {folds} images of every class in train + "
            f"validation, but class {smallest} has {counts.min()}; each fold would lack that class. "
            f"Use folds: {counts.min()} or fewer, or add images"
        )
    rng = np.random.default_rng(stream_seed(seed, 0, FOLDS))
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in classes])
    assignment = np.empty(len(labels), dtype=np.int64)
    assignment[order] = np.arange(len(order)) % folds
    return assignment


def fold_rows(labels, folds, fold, seed):
    """(training rows, validation rows) of fold `fold`: indices into `labels`, each sorted.

    See `fold_assignment`; the validation rows are the fold's, the training rows all others.

    Raises
    ------
    DatasetError
        If `fold` is not in 0..folds-1, or as `fold_assignment` says.
    """
    if not isinstance(fold, int | np.integer) or not 0 <= fold < folds:
        raise DatasetError(f"run parameter 'fold' must be in 0..{folds - 1} for {folds} folds, got {fold!r}")
    assignment = fold_assignment(labels, folds, seed)
    return np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)


def split_fold(data, folds, fold, seed):
    """`data` with train and validation replaced by fold `fold`'s (see `fold_rows`).

    Parameters
    ----------
    data : NamedTuple
        A cache (`cnnreg.data.Cache`) or anything with ``x_train``, ``y_train``, ``x_val`` and
        ``y_val`` and, optionally, ``files_train`` and ``files_val``; other fields (the test
        split among them) are kept.
    folds, fold, seed : int
        The run's ``folds`` (0: no cross-validation, `data` is returned as it is), ``fold``
        and ``seed``.

    Returns
    -------
    NamedTuple
        Of `data`'s type. The pooled rows are train's then validation's, so a fold's rows are
        in that order.
    """
    if folds == 0:
        return data
    labels = np.concatenate([data.y_train, data.y_val])
    train, val = fold_rows(labels, folds, fold, seed)
    names = [name for name in ("x", "y", "files") if f"{name}_train" in data._fields]
    pooled = {name: np.concatenate([getattr(data, f"{name}_train"), getattr(data, f"{name}_val")]) for name in names}
    return data._replace(
        **{f"{name}_train": pooled[name][train] for name in names},
        **{f"{name}_val": pooled[name][val] for name in names},
    )
