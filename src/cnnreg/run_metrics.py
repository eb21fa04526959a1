"""Every run with its results: ``results/runs_metrics.tsv``, for analysis in pandas or a spreadsheet.

One row per run: its id, the studies that use it, every parameter, what its history says at the
last and the best epoch, and the clinical metrics (`cnnreg.clinical`) of the model from its
chosen epoch on validation and, where the dataset has one, on the test split.
"""

import pandas as pd

from cnnreg.clinical import COLUMNS
from cnnreg.history import history_values
from cnnreg.studies import PARAMETERS, format_value
from cnnreg.tables import learned, majority_rate, read_run

__all__ = ["runs_metrics_table"]


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
        history, metrics = read_run(run_dirs[rid], positive_classes.get(params["dataset"]))
        rate, n_train = majority_rate(metrics, rid)
        row = {"run": rid, "studies": ",".join(plan.studies_of(rid))}
        row.update({p: format_value(params[p]) for p in PARAMETERS})
        row.update(epochs_run=metrics["epochs_run"], majority_rate=rate, learned=learned(history, rate, n_train))
        row.update(history_values(history))
        row["positive_class"] = metrics["positive_class"]
        row.update({column: metrics[column] for column in COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)
