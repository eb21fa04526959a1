import pandas as pd
import pytest

from cnnreg.readable import column_title, interval_cell, readable_table


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ((0.9712, 0.95, 0.99, "bootstrap", 3), "0.971 (0.950–0.990), n = 3"),
        ((0.858, 0.8, 0.91, "range", 2), "0.858 (range 0.800–0.910), n = 2"),
        ((-0.05, -0.12, 0.02, "t", 4), "-0.050 (-0.120 to 0.020), n = 4"),
        ((0.858, float("nan"), float("nan"), "none", 1), "0.858, n = 1"),
        ((float("nan"), float("nan"), float("nan"), "none", 0), "—"),
    ],
)
def test_interval_cell(cell, expected):
    assert interval_cell(*cell) == expected


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("final_accuracy", "final training accuracy"),
        ("final_val_accuracy", "final validation accuracy"),
        ("val_auc", "validation AUC"),
        ("delta_best_val_accuracy", "difference in best validation accuracy"),
        ("delta", "difference"),  # the runner-up table's difference in rank_by
        ("n_runs", "runs"),
        ("spatial_dropout", "spatial dropout"),
    ],
)
def test_column_titles_are_words(name, title):
    assert column_title(name) == title


def test_readable_table_puts_varied_parameters_first_and_folds_each_value():
    table = pd.DataFrame(
        {
            "dataset": ["skin", "skin"],
            "variant": ["batch_norm=True", "batch_norm=False"],
            "dropout": [0.4, 0.0],
            "batch_norm": [True, False],
            "n_runs": [3, 3],
            "rank": [1.0, float("nan")],  # read back from CSV: a float column; no rank for a run that did not learn
            "rank_by": ["best_val_accuracy"] * 2,
            "final_accuracy_mean": [0.971, 0.735],
            "final_accuracy_low": [0.95, 0.65],
            "final_accuracy_high": [0.99, 0.82],
            "final_accuracy_interval": ["bootstrap", "bootstrap"],
            "final_accuracy_n": [3, 3],
            "epoch_reached_reference_mean_of_reached": [12.5, None],
            "epoch_reached_reference_low_of_reached": [12.0, None],
            "epoch_reached_reference_high_of_reached": [13.0, None],
            "epoch_reached_reference_interval_of_reached": ["range", None],
            "epoch_reached_reference_n_of_reached": [2, 0],
        }
    )
    before = table.copy()
    readable = readable_table(table, parameters=["batch_norm", "dropout"])
    assert list(readable.columns) == [
        "batch norm", "dropout", "dataset", "runs", "rank", "final training accuracy",
        "epoch reaching the baseline's final training accuracy",
    ]  # fmt: skip
    assert readable["final training accuracy"].tolist() == ["0.971 (0.950–0.990), n = 3", "0.735 (0.650–0.820), n = 3"]
    assert readable["rank"].tolist() == ["1", "—"]
    assert readable.iloc[:, -1].tolist() == ["12.5 (range 12.0–13.0), n = 2", "—"]
    pd.testing.assert_frame_equal(table, before)  # the CSV's table is not changed
