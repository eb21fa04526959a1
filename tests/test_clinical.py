"""Clinical metrics on hand-made confusion matrices and scores, and the table of all runs."""

import json

import numpy as np
import pandas as pd
import pytest

from cnnreg.clinical import auc_interval, class_rates, confusion_matrix, positive_index, split_metrics
from cnnreg.run_metrics import runs_metrics_table
from cnnreg.studies import build_plan


def test_rates_of_a_hand_made_confusion_matrix():
    # 40 melanomas (positive, class 0): 30 found; 60 nevi: 45 called nevi, 15 called melanoma.
    matrix = [[30, 10], [15, 45]]
    rates = class_rates(matrix, positive=0)
    assert rates["sensitivity"] == pytest.approx(30 / 40)
    assert rates["specificity"] == pytest.approx(45 / 60)
    assert rates["accuracy"] == pytest.approx(75 / 100)
    assert rates["balanced_accuracy"] == pytest.approx((30 / 40 + 45 / 60) / 2)
    swapped = class_rates(matrix, positive=1)
    assert swapped["sensitivity"] == pytest.approx(45 / 60)
    assert swapped["specificity"] == pytest.approx(30 / 40)


def test_balanced_accuracy_exposes_a_model_that_calls_everything_negative():
    matrix = [[0, 10], [0, 90]]  # 10 positives, all missed; accuracy 0.9
    rates = class_rates(matrix, positive=0)
    assert rates["accuracy"] == pytest.approx(0.9)
    assert rates["sensitivity"] == 0
    assert rates["specificity"] == 1
    assert rates["balanced_accuracy"] == pytest.approx(0.5)


def test_three_classes_are_one_against_the_rest():
    matrix = [[5, 1, 0], [2, 6, 2], [0, 0, 4]]
    rates = class_rates(matrix, positive=2)
    assert rates["sensitivity"] == pytest.approx(1.0)
    assert rates["specificity"] == pytest.approx((16 - 2) / 16)  # 16 negatives, 2 called class 2
    assert rates["balanced_accuracy"] == pytest.approx(np.mean([5 / 6, 6 / 10, 4 / 4]))


def test_confusion_matrix_counts_and_rejects_bad_indices():
    matrix = confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 2)
    assert matrix.tolist() == [[1, 1], [1, 2]]
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], 2)


def _delong_by_definition(is_positive, scores):
    """DeLong's AUC and variance from the full positive x negative comparison matrix."""
    x, y = scores[is_positive], scores[~is_positive]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(y)


def test_auc_and_its_interval_match_delongs_definition_with_ties():
    rng = np.random.default_rng(0)
    is_positive = rng.random(80) < 0.3
    scores = np.round(rng.random(80) * 0.6 + 0.4 * is_positive, 1)  # coarse scores: many ties
    auc, low, high = auc_interval(is_positive, scores)
    expected, variance = _delong_by_definition(is_positive, scores)
    assert auc == pytest.approx(expected)
    assert (low, high) == pytest.approx(
        (expected - 1.959964 * variance**0.5, min(1, expected + 1.959964 * variance**0.5))
    )
    assert 0 <= low < auc < high <= 1


def test_auc_of_perfect_separation_is_one_with_an_interval_inside_the_range():
    auc, low, high = auc_interval([True, True, False, False, False], [0.9, 0.8, 0.1, 0.2, 0.3])
    assert (auc, low, high) == (1.0, 1.0, 1.0)


def test_auc_is_undefined_without_both_classes():
    assert all(np.isnan(v) for v in auc_interval([True, True], [0.2, 0.3]))
    auc, low, high = auc_interval([True, False, False], [0.9, 0.1, 0.2])
    assert auc == 1.0 and np.isnan(low) and np.isnan(high)


def test_split_metrics_read_a_predictions_table():
    predictions = pd.DataFrame(
        {
            "label": [0, 0, 1, 1],
            "prediction": [0, 1, 1, 1],
            "prob_0": [0.9, 0.4, 0.2, 0.3],
            "prob_1": [0.1, 0.6, 0.8, 0.7],
        }
    )
    metrics = split_metrics(predictions, positive=0, prefix="test_")
    assert metrics["test_n"] == 4
    assert metrics["test_sensitivity"] == pytest.approx(0.5)
    assert metrics["test_specificity"] == pytest.approx(1.0)
    assert metrics["test_auc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="prob_2"):
        split_metrics(predictions, positive=2, prefix="val_")


def _finished_run(folder, labels, probabilities, test=True):
    """A run folder with a two-epoch history and predictions of its best model."""
    folder.mkdir(parents=True)
    pd.DataFrame(
        {"epoch": [1, 2], "loss": [0.7, 0.5], "accuracy": [0.6, 0.8], "val_loss": [0.7, 0.6],
         "val_accuracy": [0.55, 0.7], "lr": 1e-4, "seconds": 1.0}
    ).to_csv(folder / "history.csv", index=False)  # fmt: skip
    metrics = {"epochs_run": 2, "confusion_matrix": {"classes": ["Mel", "Nevi"]}, "class_counts": {"train": [50, 50]}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    splits = ["validation", "test"] if test else ["validation"]
    rows = [
        {"split": split, "model": model, "file": f"{split}/{i}.png", "label": label,
         "prediction": int(p >= 0.5), "prob_0": 1 - p, "prob_1": p}
        for split in splits
        for model in ("best", "final")
        for i, (label, p) in enumerate(zip(labels, probabilities, strict=True))
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "predictions.csv", index=False)


def test_runs_metrics_table_has_every_run_parameter_study_and_metric(lab_config, tmp_path):
    lab_config["studies"] = {"s": {"set": {"epochs": 2}, "datasets": ["skin", "bone"], "seeds": [0]}}
    plan = build_plan(lab_config)
    labels, probabilities = [0, 0, 0, 1, 1, 1], [0.2, 0.3, 0.6, 0.7, 0.8, 0.4]
    dirs = {}
    for rid, params in plan.runs.items():
        dirs[rid] = tmp_path / rid
        _finished_run(dirs[rid], labels, probabilities, test=params["dataset"] == "skin")
    table = runs_metrics_table(plan, dirs, {"skin": "Mel", "bone": None}).set_index("dataset")
    assert set(table["run"]) == set(plan.runs) and set(table["studies"]) == {"s"}
    assert {"lr", "batch_norm", "seed", "best_val_accuracy", "best_epoch", "final_accuracy"} <= set(table.columns)
    skin = table.loc["skin"]
    # Positive class Mel (index 0): 2 of 3 melanomas called Mel (p < 0.5), 2 of 3 nevi called Nevi.
    assert skin["val_sensitivity"] == pytest.approx(2 / 3) and skin["val_specificity"] == pytest.approx(2 / 3)
    assert skin["test_balanced_accuracy"] == pytest.approx(2 / 3)
    assert skin["best_val_accuracy"] == pytest.approx(0.7) and skin["best_epoch"] == 2
    assert np.isnan(table.loc["bone", "test_auc"]) and table.loc["bone", "positive_class"] == "Mel"
    assert table["learned"].all()  # training accuracy 0.8 against a majority rate of 0.5 on 100 images


def test_an_unknown_positive_class_names_the_config_key():
    with pytest.raises(ValueError, match=r"'Melanoma' is not one of .*datasets.<name>.positive_class"):
        positive_index(["Mel", "Nevi"], "Melanoma")
