"""Run histories → per-study summary tables: per run (with whether it learned), per variant
(mean and interval over runs, ranked), paired differences, comparisons and curves. The sentences
that read them are in `cnnreg.presentation`; the intervals' rule is `cnnreg.intervals`'."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cnnreg.clinical import positive_index, run_clinical_metrics
from cnnreg.history import history_values
from cnnreg.intervals import paired_interval, summary_interval
from cnnreg.studies import format_value, is_baseline_run, pair_key, variant_label

#: Per-run values that get a mean and interval per variant.
COMPARED = (
    "final_accuracy",
    "final_val_accuracy",
    "best_val_accuracy",
    "generalization_gap",
    "best_epoch",
    "wall_seconds",
    "seconds_to_best",
)
#: Clinical values (`cnnreg.clinical`) of the chosen-epoch model, compared when some run has them.
OPTIONAL_COMPARED = (
    "val_auc",
    "val_balanced_accuracy",
    "val_sensitivity",
    "val_specificity",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_sensitivity",
    "test_specificity",
    "test_auc",
)
#: Per-run values whose paired difference against the study's baseline is reported (and the
#: study's ``rank_by`` metric).
EFFECTS = ("final_val_accuracy", "best_val_accuracy", "generalization_gap")
#: Per-run epoch at which the baseline's final training accuracy was first reached (NaN: never).
REACHED = "epoch_reached_reference"
#: What each value's interval is (`cnnreg.intervals.summary_interval` kind) and the range the
#: value can take; ``"epochs"`` is [1, epochs run].
SCALES = {
    "accuracy": ("bootstrap", (0.0, 1.0)),
    "loss": ("t", (0.0, np.inf)),
    "generalization_gap": ("bootstrap", (-1.0, 1.0)),
    "best_epoch": ("bootstrap", "epochs"),
    REACHED: ("bootstrap", "epochs"),
    "wall_seconds": ("t", (0.0, np.inf)),
    "seconds_to_best": ("t", (0.0, np.inf)),
}
#: The statistics each interval gives a table (``{value}_{statistic}``).
STATISTICS = ("mean", "low", "high", "interval", "n")
#: Variant-table columns that describe the variant rather than a value (not joined onto runs).
VARIANT_COLUMNS = ("n_runs", "n_not_learned", "did_not_learn", "rank", "rank_by", "is_baseline")


def scale(column):
    """(interval kind, bounds) of a per-run value; accuracies, AUC and rates are in [0, 1]."""
    if column in SCALES:
        return SCALES[column]
    return SCALES["loss"] if column.endswith("loss") else SCALES["accuracy"]


def value_interval(column, values, epochs=None):
    """`cnnreg.intervals.summary_interval` of a value, with the value's kind and bounds."""
    kind, bounds = scale(column)
    return summary_interval(values, (1.0, float(epochs)) if bounds == "epochs" else bounds, kind)


def difference_interval(column, differences, epochs=None):
    """`cnnreg.intervals.paired_interval` of per-pair differences of a bounded value (an epoch's
    bounds are [1, `epochs`])."""
    _, bounds = scale(column)
    low, high = (1.0, float(epochs)) if bounds == "epochs" else bounds
    return paired_interval(differences, high - low)


def interval_columns(name, interval, suffix=""):
    """``{name}_mean{suffix}``, ``_low``, ``_high``, ``_interval`` (the method) and ``_n``."""
    values = (interval.mean, interval.low, interval.high, interval.method, interval.n)
    return {f"{name}_{statistic}{suffix}": v for statistic, v in zip(STATISTICS, values, strict=True)}


def read_run(run_dir, positive_class=None):
    """(history DataFrame, metrics dict) of a finished run folder.

    The metrics are metrics.json's with the clinical metrics (`cnnreg.clinical.COLUMNS`) of the
    model from the run's chosen epoch, read from its predictions.csv with `positive_class` (a
    class name, default the first class) as the positive class, and ``positive_class`` itself.
    """
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    classes = metrics["confusion_matrix"]["classes"]
    positive = positive_index(classes, positive_class)
    predictions = pd.read_csv(run_dir / "predictions.csv")
    metrics.update(run_clinical_metrics(predictions, positive), positive_class=classes[positive])
    return pd.read_csv(run_dir / "history.csv"), metrics


def first_epoch_reaching(history, column, target):
    """First epoch whose ``column`` is at least ``target``; NaN if never."""
    reached = history.loc[history[column] >= target - 1e-9, "epoch"]
    return int(reached.iloc[0]) if len(reached) else np.nan


def majority_rate(metrics, run):
    """(largest class share, image count) of a run's training data (metrics.json ``class_counts``)."""
    counts = metrics.get("class_counts", {}).get("train")
    if not counts or sum(counts) == 0:
        raise ValueError(
            f"metrics.json of run {run} has no class_counts.train (images per class it trained on, written by "
            "cnnreg.train since the did-not-learn check); retrain the run"
        )
    return max(counts) / sum(counts), sum(counts)


def chance_tolerance(rate, n_train):
    """How far above the majority rate a training accuracy must be to count as learning.

    Three binomial standard errors of an accuracy of ``rate`` on ``n_train`` images: a model
    that guesses at the level of the class shares scores about ``rate``, and its accuracy
    wobbles by ``sqrt(rate (1 - rate) / n_train)`` from batch to batch and epoch to epoch, so
    anything within three of those is still chance. At least 0.01, so that a large training set
    does not call a 1 % edge learning.
    """
    return max(0.01, 3 * np.sqrt(rate * (1 - rate) / n_train))


def learned(history, rate, n_train):
    """Whether a run's training accuracy ever rose above chance (`chance_tolerance`)."""
    return bool(history["accuracy"].max() > rate + chance_tolerance(rate, n_train))


def run_rows(study, runs, metrics, histories):
    """One row per run (and per ``at_epochs`` entry): varied parameters, seed, final and best
    values, gap, AUC, training seconds, the majority class's share of the training images and
    whether the run ``learned`` (its training accuracy rose above that share; see `learned`).

    A row ``at_epoch`` E is read from the first E epochs of the run's history: with a constant
    learning rate and a fixed seed, a run is identical up to E whatever its total epochs.
    """
    rows = []
    for rid in study.runs:
        params, history = runs[rid], histories[rid]
        rate, n_train = majority_rate(metrics[rid], rid)
        for at_epoch in study.at_epochs or (None,):
            read = history if at_epoch is None else history[history["epoch"] <= at_epoch]
            row = {"run": rid, "dataset": params["dataset"], "variant": variant_label(params, study.varied)}
            if at_epoch is not None:
                row["at_epoch"] = at_epoch
            row.update({p: format_value(params[p]) for p in study.varied if p != "dataset"})
            row["seed"] = params["seed"]
            if params.get("folds"):
                row["fold"] = params["fold"]
            row.update(history_values(read))
            complete = at_epoch is None or at_epoch == metrics[rid]["epochs_run"]
            row.update({m: metrics[rid][m] if complete else np.nan for m in OPTIONAL_COMPARED if m in metrics[rid]})
            row["epochs_run"] = metrics[rid]["epochs_run"] if at_epoch is None else at_epoch
            row["majority_rate"] = rate
            row["learned"] = learned(read, rate, n_train)
            rows.append(row)
    return pd.DataFrame(rows)


def group_keys(table):
    """What a variant's runs share: dataset, the epoch they are read at (if any), variant."""
    return ["dataset", "at_epoch", "variant"] if "at_epoch" in table else ["dataset", "variant"]


def add_reference_epochs(table, study, runs, histories):
    """Add when each run first reached the baseline's final training accuracy (task 1b).

    The reference is the mean final training accuracy of the study's ``baseline`` runs on the
    same dataset (read at the same epoch); a row looks only at its ``epochs_run`` (its ``at_epoch``).
    Without a baseline the table is returned unchanged.
    """
    if not study.baseline:
        return table
    table = table.assign(is_baseline=_is_baseline(table, study, runs))
    shared = group_keys(table)[:-1]
    reference = table[table["is_baseline"]].groupby(shared)["final_accuracy"].mean().rename("reference_accuracy")
    table = table.join(reference, on=shared)
    table[REACHED] = [
        first_epoch_reaching(histories[r][histories[r]["epoch"] <= last], "accuracy", ref)
        for r, ref, last in zip(table["run"], table["reference_accuracy"], table["epochs_run"], strict=True)
    ]
    return table


def _is_baseline(table, study, runs):
    return [is_baseline_run(runs[r], study.baseline) for r in table["run"]]


def compared_columns(table):
    """The compared values the run rows have: `COMPARED` and those of `OPTIONAL_COMPARED` some run
    has (test values only where the dataset has a test split)."""
    return [*COMPARED, *(c for c in OPTIONAL_COMPARED if c in table and table[c].notna().any())]


def check_rank_by(table, rank_by):
    """The run rows have values of the ``rank_by`` metric; say which they have if not."""
    if rank_by not in compared_columns(table):
        raise ValueError(
            f"rank_by '{rank_by}' has no values in these runs; they have {compared_columns(table)} (a clinical "
            "metric is undefined where the validation split lacks a class)"
        )


def variant_table(table, study):
    """Mean and interval (`cnnreg.intervals`) per variant (and dataset, epoch read at) of the
    compared values over its runs (seeds × folds), ranked within each dataset (and epoch) by the
    mean of the study's ``rank_by`` metric, higher first.

    A variant none of whose runs learned (``did_not_learn``) is not ranked (``rank`` NaN); a
    variant some of whose runs did not learn keeps them in its means, and ``n_not_learned``
    counts them. With reference epochs (`add_reference_epochs`), the ``..._of_reached`` columns
    are over the runs that reached the reference only (``epoch_reached_reference_n_of_reached``
    of ``n_runs``).
    """
    check_rank_by(table, study.rank_by)
    keys = group_keys(table)
    shown = [p for p in study.varied if p != "dataset"]
    rows = []
    for key, group in table.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True), **{p: group[p].iloc[0] for p in shown})
        row.update(n_runs=len(group), n_not_learned=int((~group["learned"]).sum()))
        row["did_not_learn"] = not group["learned"].any()
        if "is_baseline" in group:
            row["is_baseline"] = bool(group["is_baseline"].all())
        epochs = group["epochs_run"].max()
        for column in compared_columns(group):
            row.update(interval_columns(column, value_interval(column, group[column], epochs)))
        if REACHED in group:
            reached = value_interval(REACHED, group[REACHED], epochs)
            row.update(interval_columns(REACHED, reached, suffix="_of_reached"))
        rows.append(row)
    variants = pd.DataFrame(rows)
    shared = keys[:-1]
    score = variants[f"{study.rank_by}_mean"].where(~variants["did_not_learn"])
    variants["rank"] = score.groupby([variants[k] for k in shared]).rank(ascending=False, method="min")
    variants["rank_by"] = study.rank_by
    front = [*keys, *shown, "n_runs", "n_not_learned", "did_not_learn", "rank", "rank_by"]
    variants = variants[front + [c for c in variants if c not in front]]
    return variants.sort_values([*shared, "rank"], kind="stable", na_position="last").reset_index(drop=True)


def _pairs(table, runs, differing):
    """Each row's pair key: its run's parameters but ``differing`` (and the epoch it is read at)."""
    pairs = pd.Series([pair_key(runs[r], differing) for r in table["run"]], index=table.index)
    return pairs + table["at_epoch"].astype(str) if "at_epoch" in table else pairs


def effects(table, study, runs):
    """Paired differences (variant − baseline, same dataset, seed and other parameters) of
    validation accuracy, generalization gap and the ``rank_by`` metric: the mean difference with
    a t-interval over the pairs (their range for fewer than 3; `cnnreg.intervals`).

    Empty when the study has no ``baseline``. A variant none of whose runs has a baseline run to
    pair with is left out (`cnnreg.studies.build_plan` rejects such studies).
    """
    if not study.baseline:
        return pd.DataFrame()
    table = table.assign(pair=_pairs(table, runs, study.baseline))
    is_baseline = np.array(_is_baseline(table, study, runs))
    baseline = table[is_baseline].set_index("pair")
    others = table[~is_baseline]
    keys = group_keys(table)
    rows = []
    for key, group in others.groupby(keys, sort=False):
        matched = group[group["pair"].isin(baseline.index)]
        if matched.empty:
            continue
        reference = baseline.loc[matched["pair"]]
        row = dict(zip(keys, key, strict=True), versus=reference["variant"].iloc[0], n_pairs=len(matched))
        for column in dict.fromkeys((study.rank_by, *EFFECTS)):
            differences = matched[column].to_numpy() - reference[column].to_numpy()
            row.update(interval_columns(f"delta_{column}", difference_interval(column, differences)))
        rows.append(row)
    return pd.DataFrame(rows)


def runner_up(table, variants, study, runs):
    """Paired difference of the ``rank_by`` metric between the best and the second-best ranked
    variant of each dataset (and epoch read at): runs paired by every parameter but the varied
    ones (same seed, fold and other parameters), mean with a t-interval (range for < 3 pairs).

    Groups with fewer than two ranked variants have no row.
    """
    shown = [p for p in study.varied if p != "dataset"]
    table = table.assign(pair=_pairs(table, runs, dict.fromkeys(shown)))
    shared = group_keys(table)[:-1]
    ranked = {key: group for key, group in variants.dropna(subset=["rank"]).groupby(shared, sort=False)}
    rows = []
    for key, group in table.groupby(shared, sort=False):
        order = ranked.get(key)
        if order is None or len(order) < 2:
            continue
        order = order.sort_values("rank", kind="stable")
        best, second = (group[group["variant"] == v].set_index("pair")[study.rank_by] for v in order["variant"][:2])
        common = best.index.intersection(second.index)
        row = dict(zip(shared, key, strict=True), best=order["variant"].iloc[0], runner_up=order["variant"].iloc[1])
        row.update(rank_by=study.rank_by, n_pairs=len(common))
        differences = best[common].to_numpy() - second[common].to_numpy()
        row.update(interval_columns("delta", difference_interval(study.rank_by, differences)))
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_study(study, runs, run_dirs, other=None):
    """Per-run summary with each run's variant means and intervals joined on.

    Parameters
    ----------
    study : cnnreg.studies.Study
    runs : dict
        Run id → resolved parameters (of this study and of ``other``).
    run_dirs : dict
        Run id → folder holding history.csv and metrics.json.
    other : cnnreg.studies.Study, optional
        The study this one is compared with (``compare_with``).

    Returns
    -------
    summary : DataFrame
        One row per run (summary.csv).
    variants : DataFrame
        One row per dataset and variant, ranked (`variant_table`).
    extra : dict
        ``histories`` (run id → history), ``effects`` (paired differences against the
        baseline), ``runner_up`` (paired difference of the best and the second-best variant),
        ``comparison`` (this study's and ``other``'s variants side by side) and ``other_runs``
        and ``other_variants`` (``other``'s per-run and variant tables; empty without it).
    """
    loaded = {rid: read_run(run_dirs[rid]) for rid in run_dirs}
    histories = {rid: h for rid, (h, _) in loaded.items()}
    metrics = {rid: m for rid, (_, m) in loaded.items()}
    table = add_reference_epochs(run_rows(study, runs, metrics, histories), study, runs, histories)
    variants = variant_table(table, study)
    described = [*VARIANT_COLUMNS, *(p for p in study.varied if p != "dataset")]
    summary = table.merge(variants.drop(columns=described, errors="ignore"), on=group_keys(table), how="left")
    extra = {
        "histories": histories,
        "effects": effects(table, study, runs),
        "runner_up": runner_up(table, variants, study, runs),
        "comparison": pd.DataFrame(),
        "other_runs": pd.DataFrame(),
        "other_variants": pd.DataFrame(),
    }
    if other is not None:
        extra["other_runs"] = run_rows(other, runs, metrics, histories)
        extra["other_variants"] = variant_table(extra["other_runs"], other)
        extra["comparison"] = comparison_table(variants, extra["other_variants"], study, other)
    return summary, variants, extra


def comparison_table(variants, theirs, study, other):
    """This study's variants and the compared study's (`theirs`), per dataset this study uses."""
    frames = [variants.assign(study=study.name), theirs.assign(study=other.name)]
    both = pd.concat(frames, ignore_index=True)
    both = both[both["dataset"].isin(set(variants["dataset"]))]
    columns = ["dataset", "study", "variant", "n_runs", "n_not_learned", "did_not_learn"] + [
        f"{c}_{s}" for c in ("best_val_accuracy", "best_epoch", "seconds_to_best", "wall_seconds") for s in STATISTICS
    ]
    return both[columns].sort_values(["dataset", "study"], kind="stable").reset_index(drop=True)


def curve_table(study, runs, histories):
    """Long table of mean and interval (`cnnreg.intervals`) over runs per (dataset, variant,
    metric, split, epoch): columns ``mean, low, high, n, interval``."""
    frames = []
    for rid in study.runs:
        h = histories[rid]
        for metric in ("loss", "accuracy"):
            for split, column in (("train", metric), ("validation", f"val_{metric}")):
                frames.append(
                    pd.DataFrame(
                        {
                            "dataset": runs[rid]["dataset"],
                            "variant": variant_label(runs[rid], study.varied),
                            "metric": metric,
                            "split": split,
                            "epoch": h["epoch"],
                            "value": h[column],
                        }
                    )
                )
    long = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "variant", "metric", "split", "epoch"]
    rows = []
    for key, group in long.groupby(keys, sort=False):
        interval = value_interval(key[2], group["value"])
        rows.append(
            dict(zip(keys, key, strict=True), mean=interval.mean, low=interval.low, high=interval.high,
                 n=interval.n, interval=interval.method)
        )  # fmt: skip
    return pd.DataFrame(rows)
