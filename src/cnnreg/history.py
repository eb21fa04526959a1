"""A run's per-epoch history (history.csv): its columns, writing it, and what is read from it.

Training writes it and derives metrics.json from it; the study summaries read it, at the last
epoch or at any earlier one. Both use `history_values`, so the two always agree.
"""

import pandas as pd

from cnnreg.atomic import write_atomic

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
FINAL_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


def write_history(rows, path):
    """history.csv of `rows` (dicts with `HISTORY_COLUMNS`), atomically."""
    write_atomic(path, lambda tmp: pd.DataFrame(rows, columns=HISTORY_COLUMNS).to_csv(tmp, index=False))


def history_values(history):
    """Final and best values of a (possibly truncated) history DataFrame.

    Returns
    -------
    dict
        ``final_{loss,accuracy,val_loss,val_accuracy}``, ``best_val_accuracy`` and the epoch it
        was reached at (``best_epoch``, the first if tied), ``generalization_gap`` (final accuracy
        − final validation accuracy), ``wall_seconds`` (seconds of training) and
        ``seconds_to_best`` (those up to and including the best epoch: how long it took to get
        there).
    """
    final = history.iloc[-1]
    best = history.loc[history["val_accuracy"].idxmax()]
    values = {f"final_{k}": float(final[k]) for k in FINAL_COLUMNS}
    values["best_val_accuracy"] = float(best["val_accuracy"])
    values["best_epoch"] = int(best["epoch"])
    values["generalization_gap"] = float(final["accuracy"] - final["val_accuracy"])
    values["wall_seconds"] = float(history["seconds"].sum())
    values["seconds_to_best"] = float(history.loc[history["epoch"] <= best["epoch"], "seconds"].sum())
    return values
