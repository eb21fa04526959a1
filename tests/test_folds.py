"""Tests for cnnreg.folds: stratified, seeded k-fold splits of train + validation."""

import numpy as np
import pytest

from cnnreg.data import Cache
from cnnreg.folds import fold_assignment, fold_rows, split_fold
from cnnreg.images import DatasetError

LABELS = np.array([0] * 7 + [1] * 11 + [2] * 5)


def test_folds_are_stratified_disjoint_and_cover_every_row():
    folds = 4
    validation = [fold_rows(LABELS, folds, fold, seed=0)[1] for fold in range(folds)]
    assert np.array_equal(np.sort(np.concatenate(validation)), np.arange(len(LABELS)))  # disjoint, covering
    for fold, rows in enumerate(validation):
        train, val = fold_rows(LABELS, folds, fold, seed=0)
        assert not set(train) & set(val) and len(train) + len(val) == len(LABELS)
        for label, count in zip(*np.unique(LABELS, return_counts=True), strict=True):
            assert (LABELS[rows] == label).sum() in (count // folds, count // folds + 1)  # stratified
    sizes = [len(rows) for rows in validation]
    assert max(sizes) - min(sizes) <= 1


def test_folds_are_seeded():
    first = fold_assignment(LABELS, 3, seed=5)
    assert np.array_equal(first, fold_assignment(LABELS, 3, seed=5))
    assert not np.array_equal(first, fold_assignment(LABELS, 3, seed=6))


def test_more_folds_than_a_class_has_images_names_the_key():
    with pytest.raises(DatasetError, match=r"study key 'folds': 6 folds .* class 2 has 5.* folds: 5 or fewer"):
        fold_assignment(LABELS, 6, seed=0)
    with pytest.raises(DatasetError, match="at least 2"):
        fold_assignment(LABELS, 1, seed=0)
    with pytest.raises(DatasetError, match=r"run parameter 'fold' must be in 0\.\.2"):
        fold_rows(LABELS, 3, 3, seed=0)


def test_split_fold_pools_train_and_validation_and_keeps_the_test_split():
    def images(labels, offset):
        return np.arange(offset, offset + len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)

    y_train, y_val, y_test = LABELS[:15], LABELS[15:], np.array([0, 1])
    cache = Cache(
        x_train=images(y_train, 0), y_train=y_train, x_val=images(y_val, 15), y_val=y_val,
        x_test=images(y_test, 100), y_test=y_test, classes=["a", "b", "c"],
        files_train=np.array([f"train/{i}" for i in range(15)]), files_val=np.array([f"val/{i}" for i in range(8)]),
        files_test=np.array(["test/0", "test/1"]), digest="d",
    )  # fmt: skip
    assert split_fold(cache, 0, 0, 0) is cache
    folded = split_fold(cache, 3, 1, seed=0)
    train, val = fold_rows(LABELS, 3, 1, seed=0)
    assert folded.x_train.ravel().tolist() == train.tolist() and folded.x_val.ravel().tolist() == val.tolist()
    assert folded.y_val.tolist() == LABELS[val].tolist()
    files = np.concatenate([cache.files_train, cache.files_val])
    assert folded.files_val.tolist() == files[val].tolist()
    for key in ("x_test", "y_test", "files_test", "classes"):
        assert np.array_equal(getattr(folded, key), getattr(cache, key))
