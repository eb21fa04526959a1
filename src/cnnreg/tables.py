"""Run histories → per-study summary tables: per run, per variant (mean and CI over seeds), paired
effects, comparisons and curves. The sentences that read them are in `cnnreg.presentation`."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cnnreg.history import history_values
from cnnreg.studies import format_value, is_baseline_run, pair_key, variant_label

#: Per-run values that get a mean and 95 % CI per variant.
COMPARED = (
    "final_accuracy",
    "final_val_accuracy",
    "best_val_accuracy",
    "generalization_gap",
    "best_epoch",
    "wall_seconds",
)
#: Per-run values whose paired difference against the study's baseline is reported.
EFFECTS = ("final_val_accuracy", "best_val_accuracy", "generalization_gap")
#: Per-run epoch at which the baseline's final training accuracy was first reached (NaN: never).
REACHED = "epoch_reached_reference"


def mean_ci(values):
    """Mean and half-width of its two-sided 95 % t confidence interval (NaN for one value)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.nan, np.nan
    if len(values) < 2:
        return float(values.mean()), np.nan
    sem = values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(stats.t.ppf(0.975, len(values) - 1) * sem)


def read_run(run_dir):
    """(history DataFrame, metrics dict) of a finished run folder."""
    run_dir = Path(run_dir)
    return pd.read_csv(run_dir / "history.csv"), json.loads((run_dir / "metrics.json").read_text())


def first_epoch_reaching(history, column, target):
    """First epoch whose ``column`` is at least ``target``; NaN if never."""
    reached = history.loc[history[column] >= target - 1e-9, "epoch"]
    return int(reached.iloc[0]) if len(reached) else np.nan


def run_rows(study, runs, metrics, histories):
    """One row per run (and per ``at_epochs`` entry): varied parameters, seed, final and best
    values, gap, AUC, training seconds.

    A row ``at_epoch`` E is read from the first E epochs of the run's history: with a constant
    learning rate and a fixed seed, a run is identical up to E whatever its total epochs.
    """
    rows = []
    for rid in study.runs:
        params, history = runs[rid], histories[rid]
        for at_epoch in study.at_epochs or (None,):
            row = {"run": rid, "dataset": params["dataset"], "variant": variant_label(params, study.varied)}
            if at_epoch is not None:
                row["at_epoch"] = at_epoch
            row.update({p: format_value(params[p]) for p in study.varied if p != "dataset"})
            row["seed"] = params["seed"]
            row.update(history_values(history if at_epoch is None else history[history["epoch"] <= at_epoch]))
            complete = at_epoch is None or at_epoch == metrics[rid]["epochs_run"]
            row["val_auc"] = metrics[rid]["val_auc"] if complete else np.nan
            row["epochs_run"] = metrics[rid]["epochs_run"] if at_epoch is None else at_epoch
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


def variant_table(table):
    """Mean ± 95 % CI per variant (and dataset, epoch read at) of the compared values, across
    seeds, ranked by mean best validation accuracy within each dataset (and epoch).

    With reference epochs (`add_reference_epochs`), ``epoch_reached_reference_n_reached`` counts
    the seeds that reached the reference (of ``n_seeds``), and the ``..._mean_of_reached`` and
    ``..._ci95_of_reached`` columns are over those seeds only.
    """
    keys = group_keys(table)
    rows = []
    for key, group in table.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True), n_seeds=len(group))
        if "is_baseline" in group:
            row["is_baseline"] = bool(group["is_baseline"].all())
        for column in COMPARED:
            row[f"{column}_mean"], row[f"{column}_ci95"] = mean_ci(group[column])
        if REACHED in group:
            row.update(_reached_columns(group[REACHED]))
        rows.append(row)
    variants = pd.DataFrame(rows)
    shared = keys[:-1]
    variants["rank"] = variants.groupby(shared)["best_val_accuracy_mean"].rank(ascending=False, method="min")
    return variants.sort_values([*shared, "rank"], kind="stable").reset_index(drop=True)


def _reached_columns(epochs):
    """How many seeds reached the reference, and the mean ± 95 % CI of their epochs."""
    reached = epochs.dropna()
    mean, ci = mean_ci(reached)
    return {f"{REACHED}_n_reached": len(reached), f"{REACHED}_mean_of_reached": mean, f"{REACHED}_ci95_of_reached": ci}


def effects(table, study, runs):
    """Paired differences (variant − baseline, same dataset, seed and other parameters) of
    validation accuracy and generalization gap, mean ± 95 % CI per variant.

    Empty when the study has no ``baseline``. A variant none of whose runs has a baseline run to
    pair with is left out (`cnnreg.studies.build_plan` rejects such studies).
    """
    if not study.baseline:
        return pd.DataFrame()
    table = table.assign(pair=[pair_key(runs[r], study.baseline) for r in table["run"]])
    if "at_epoch" in table:
        table["pair"] = table["pair"] + table["at_epoch"].astype(str)
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
        for column in EFFECTS:
            row[f"delta_{column}_mean"], row[f"delta_{column}_ci95"] = mean_ci(
                matched[column].to_numpy() - reference[column].to_numpy()
            )
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_study(study, runs, run_dirs, other=None):
    """Per-run summary with each run's variant mean ± CI joined on.

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
        One row per dataset and variant, ranked.
    extra : dict
        ``histories`` (run id → history), ``effects`` (paired differences against the
        baseline) and ``comparison`` (this study's and ``other``'s variants side by side).
    """
    loaded = {rid: read_run(run_dirs[rid]) for rid in run_dirs}
    histories = {rid: h for rid, (h, _) in loaded.items()}
    metrics = {rid: m for rid, (_, m) in loaded.items()}
    table = add_reference_epochs(run_rows(study, runs, metrics, histories), study, runs, histories)
    variants = variant_table(table)
    per_variant = variants.drop(columns=["n_seeds", "is_baseline", "rank"], errors="ignore")
    summary = table.merge(per_variant, on=group_keys(table), how="left")
    extra = {"histories": histories, "effects": effects(table, study, runs), "comparison": pd.DataFrame()}
    if other is not None:
        extra["comparison"] = comparison_table(study, variants, other, runs, metrics, histories)
    return summary, variants, extra


def comparison_table(study, variants, other, runs, metrics, histories):
    """This study's variants and the compared study's, per dataset this study uses."""
    theirs = variant_table(run_rows(other, runs, metrics, histories))
    frames = [variants.assign(study=study.name), theirs.assign(study=other.name)]
    both = pd.concat(frames, ignore_index=True)
    both = both[both["dataset"].isin(set(variants["dataset"]))]
    columns = ["dataset", "study", "variant", "n_seeds"] + [
        f"{c}_{s}" for c in ("best_val_accuracy", "best_epoch", "wall_seconds") for s in ("mean", "ci95")
    ]
    return both[columns].sort_values(["dataset", "study"], kind="stable").reset_index(drop=True)


def curve_table(study, runs, histories):
    """Long table of mean ± 95 % CI per (dataset, variant, metric, split, epoch) over seeds."""
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
        mean, ci = mean_ci(group["value"])
        rows.append(dict(zip(keys, key, strict=True), mean=mean, ci95=ci, n=len(group)))
    return pd.DataFrame(rows)
