"""Every run with its results: ``results/runs_metrics.tsv``, for analysis in pandas or a spreadsheet.

One row per run: its id, the studies that use it, every parameter, what its history says at the
last and the best epoch, and the clinical metrics (`cnnreg.clinical`) of the model from its
chosen epoch on validation and, where the dataset has one, on the test split.
"""

import json
from pathlib import Path

import pandas as pd

from cnnreg.clinical import METRICS, split_metrics
from cnnreg.history import history_values
from cnnreg.studies import PARAMETERS, format_value

__all__ = ["clinical_values", "positive_index", "runs_metrics_table"]

#: The clinical columns of a run, ``<split>_<metric>`` (NaN for a split the dataset lacks).
CLINICAL_COLUMNS = tuple(f"{prefix}{metric}" for prefix in ("val_", "test_") for metric in METRICS)


def positive_index(classes, positive_class=None):
    """Index of the positive class among a run's class names (default: the first class).

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


def clinical_values(run_dir, positive_class=None):
    """`CLINICAL_COLUMNS` of a finished run, from its ``predictions.csv`` (best-epoch model).

    Parameters
    ----------
    run_dir : path-like
        The run folder, with ``predictions.csv`` and ``metrics.json``.
    positive_class : str, optional
        Name of the positive class (config key ``datasets.<name>.positive_class``).
    """
    run_dir = Path(run_dir)
    predictions = pd.read_csv(run_dir / "predictions.csv")
    classes = json.loads((run_dir / "metrics.json").read_text())["confusion_matrix"]["classes"]
    positive = positive_index(classes, positive_class)
    values = dict.fromkeys(CLINICAL_COLUMNS, float("nan"))
    for split, prefix in (("validation", "val_"), ("test", "test_")):
        rows = predictions[(predictions["split"] == split) & (predictions["model"] == "best")]
        if len(rows):
            values.update(split_metrics(rows, positive, prefix))
    return values


def runs_metrics_table(plan, run_dirs, positive_classes):
    """One row per run of `plan`: parameters, studies, history values and clinical metrics.

    Parameters
    ----------
    plan : cnnreg.studies.Plan
    run_dirs : dict
        Run id → finished run folder.
    positive_classes : dict
        Dataset name → its positive class name (or None for the first class).
    """
    rows = []
    for rid, params in plan.runs.items():
        run_dir = Path(run_dirs[rid])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        row = {"run": rid, "studies": ",".join(plan.studies_of(rid))}
        row.update({p: format_value(params[p]) for p in PARAMETERS})
        row["epochs_run"] = metrics["epochs_run"]
        row.update(history_values(pd.read_csv(run_dir / "history.csv")))
        row["positive_class"] = positive_classes.get(params["dataset"]) or metrics["confusion_matrix"]["classes"][0]
        row.update(clinical_values(run_dir, row["positive_class"]))
        rows.append(row)
    return pd.DataFrame(rows)
