"""Tables for people: the report's view of a table whose CSV stays as it is, for machines.

`readable_table` folds each value's ``{name}_mean/_low/_high/_interval/_n`` columns into one cell,
``0.971 (0.950–0.990), n = 3``, names the columns in words ("final training accuracy") and puts
the parameters that tell the rows apart first.
"""

import re

import pandas as pd

from cnnreg.tables import STATISTICS, VARIANT_COLUMNS

__all__ = ["bounds", "column_title", "interval_cell", "readable_table"]

#: Names in words, for the parts of column names that are not plain English.
WORDS = {
    "final_accuracy": "final training accuracy",
    "val": "validation",
    "auc": "AUC",
    "n_runs": "runs",
    "n_not_learned": "runs that did not learn",
    "wall_seconds": "seconds",
    "seconds_to_best": "seconds to the best epoch",
    "epoch_reached_reference": "epoch reaching the baseline's final training accuracy",
    "delta": "difference in",
    "at_epoch": "at epoch",
    "lr": "learning rate",
}
#: Whole names whose parts would read wrong: a bare difference is of the study's rank_by metric.
TITLES = {"delta": "difference"}
#: Columns every row shares or that only serve machines: left out of the readable view.
MACHINE_COLUMNS = ("variant", "rank_by")
_MEAN = re.compile(r"^(?P<name>.+)_mean(?P<suffix>.*)$")


def column_title(name):
    """A column name in words: ``final_val_accuracy`` → "final validation accuracy"."""
    if name in TITLES or name in WORDS:
        return TITLES.get(name) or WORDS[name]
    for key, words in WORDS.items():
        name = re.sub(rf"(^|_){re.escape(key)}(_|$)", rf"\g<1>{words}\g<2>", name)
    return name.replace("_", " ")


def bounds(low, high, spec=".3f"):
    """An interval's bounds: ``0.800–0.910``; joined with "to" where a sign would blur the dash
    (a signed `spec` or a negative lower bound): ``-0.120 to 0.020``."""
    joint = " to " if spec.startswith("+") or low < 0 else "–"
    return f"{low:{spec}}{joint}{high:{spec}}"


def interval_cell(mean, low, high, method, n, spec=".3f"):
    """One value with its interval and n, as a table cell.

    ``0.971 (0.950–0.990), n = 3``; ``0.858 (range 0.800–0.910), n = 2`` for fewer than three
    runs; ``0.858, n = 1``; a dash without a value. Bounds below zero join with "to".
    """
    if pd.isna(n) or int(n) == 0 or pd.isna(mean):
        return "—"
    if int(n) == 1 or pd.isna(low):
        return f"{mean:{spec}}, n = {int(n)}"
    kind = "range " if method == "range" else ""
    return f"{mean:{spec}} ({kind}{bounds(low, high, spec)}), n = {int(n)}"


def readable_table(table, parameters=()):
    """The table as people read it; `table` itself is not changed.

    Parameters
    ----------
    table : DataFrame
        A variant, run or effect table of `cnnreg.tables`.
    parameters : sequence of str
        The run parameters the study varies: shown first, in this order.

    Returns
    -------
    DataFrame
        One column per value (its mean, interval and n in one cell) or plain column, titled in
        words; the varied parameters first, then what groups the rows, then the values.
    """
    cells, used = {}, set()
    for column in table.columns:
        match = _MEAN.match(column)
        if not match:
            continue
        name, suffix = match["name"], match["suffix"]
        parts = [f"{name}_{statistic}{suffix}" for statistic in STATISTICS]
        if not set(parts) <= set(table.columns):
            continue
        spec = ".1f" if re.search(r"epoch|seconds", name) else ".3f"
        cells[column] = [interval_cell(*row, spec=spec) for row in table[parts].itertuples(index=False)]
        used.update(parts)
    first = [c for c in parameters if c in table.columns]
    plain = [c for c in table.columns if c not in used and c not in first and c not in MACHINE_COLUMNS]
    grouping = [c for c in plain if c not in VARIANT_COLUMNS]
    counts = [c for c in plain if c in VARIANT_COLUMNS]
    ordered = {c: _whole_numbers_as_integers(table[c]).reset_index(drop=True) for c in [*first, *grouping, *counts]}
    ordered.update(cells)
    titles = {c: column_title(_MEAN.sub(r"\g<name>", c)) for c in ordered}
    return pd.DataFrame(ordered).rename(columns=titles)


def _whole_numbers_as_integers(column):
    """A float column of whole numbers (a rank, a count read back from CSV) as integers."""
    values = column.dropna()
    if column.dtype.kind == "f" and len(values) and (values == values.round()).all():
        return column.map(lambda value: "—" if pd.isna(value) else str(int(value)))
    return column
