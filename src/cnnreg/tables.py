"""Run histories → per-study summary tables, and the lab's questions answered in numbers."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cnnreg.studies import format_value, variant_label

FINAL_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")
#: Per-run values that get a mean and 95 % CI per variant.
COMPARED = ("final_accuracy", "final_val_accuracy", "best_val_accuracy", "generalization_gap")


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


def run_rows(study, runs, metrics):
    """One row per run: varied parameters, seed, final and best values, gap, AUC."""
    rows = []
    for rid in study.runs:
        params, m = runs[rid], metrics[rid]
        row = {"run": rid, "dataset": params["dataset"], "variant": variant_label(params, study.varied)}
        row.update({p: format_value(params[p]) for p in study.varied if p != "dataset"})
        row["seed"] = params["seed"]
        row.update({f"final_{k}": m["final"][k] for k in FINAL_COLUMNS})
        row["best_val_accuracy"] = m["best"]["val_accuracy"]
        row["best_epoch"] = m["best"]["epoch"]
        row["generalization_gap"] = m["generalization_gap"]
        row["val_auc"] = m["val_auc"]
        row["epochs_run"] = m["epochs_run"]
        rows.append(row)
    return pd.DataFrame(rows)


def add_reference_epochs(table, study, runs, histories):
    """Add when each run first reached the baseline's final training accuracy (task 1b).

    The reference is the mean final training accuracy of the study's ``baseline`` runs on the
    same dataset. Without a baseline the table is returned unchanged.
    """
    if not study.baseline:
        return table
    is_baseline = [all(runs[r][k] == v for k, v in study.baseline.items()) for r in table["run"]]
    table = table.assign(is_baseline=is_baseline)
    reference = table[table["is_baseline"]].groupby("dataset")["final_accuracy"].mean()
    table["reference_accuracy"] = table["dataset"].map(reference)
    table["epoch_reached_reference"] = [
        first_epoch_reaching(histories[r], "accuracy", ref)
        for r, ref in zip(table["run"], table["reference_accuracy"], strict=True)
    ]
    return table


def variant_table(table):
    """Mean ± 95 % CI per (dataset, variant) of the compared values, across seeds."""
    rows = []
    for (dataset, variant), group in table.groupby(["dataset", "variant"], sort=False):
        row = {"dataset": dataset, "variant": variant, "n_seeds": len(group)}
        if "is_baseline" in group:
            row["is_baseline"] = bool(group["is_baseline"].all())
        columns = list(COMPARED) + (["epoch_reached_reference"] if "epoch_reached_reference" in group else [])
        for column in columns:
            row[f"{column}_mean"], row[f"{column}_ci95"] = mean_ci(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


def summarise_study(study, runs, run_dirs):
    """Per-run summary with each run's variant mean ± CI joined on.

    Parameters
    ----------
    study : cnnreg.studies.Study
    runs : dict
        Run id → resolved parameters.
    run_dirs : dict
        Run id → folder holding history.csv and metrics.json.

    Returns
    -------
    summary : DataFrame
        One row per run (summary.csv).
    variants : DataFrame
        One row per dataset and variant.
    histories : dict
        Run id → history DataFrame.
    """
    loaded = {rid: read_run(run_dirs[rid]) for rid in study.runs}
    histories = {rid: h for rid, (h, _) in loaded.items()}
    metrics = {rid: m for rid, (_, m) in loaded.items()}
    table = add_reference_epochs(run_rows(study, runs, metrics), study, runs, histories)
    variants = variant_table(table)
    per_variant = variants.drop(columns=["n_seeds", "is_baseline"], errors="ignore")
    summary = table.merge(per_variant, on=["dataset", "variant"], how="left")
    return summary, variants, histories


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


def answer(variants):
    """Sentences answering the study's question from its numbers (used in report captions)."""
    sentences = []
    for dataset, group in variants.groupby("dataset", sort=False):
        best = group.loc[group["best_val_accuracy_mean"].idxmax()]
        sentences.append(
            f"On {dataset}, the highest mean best validation accuracy is "
            f"{_pm(best, 'best_val_accuracy')} ({best['variant']}); "
            + "; ".join(
                f"{row['variant']}: final validation accuracy {_pm(row, 'final_val_accuracy')}, "
                f"gap {_pm(row, 'generalization_gap')}"
                for _, row in group.iterrows()
            )
            + "."
        )
        if "is_baseline" in group:
            sentences.extend(_reference_sentences(dataset, group))
    return " ".join(sentences)


def _reference_sentences(dataset, group):
    baseline = " and ".join(group.loc[group["is_baseline"], "variant"])
    return [
        f"On {dataset}, {row['variant']} first reached the final training accuracy of "
        f"{baseline} at epoch {_epoch(row)}."
        for _, row in group[~group["is_baseline"]].iterrows()
    ]


def _epoch(row):
    mean, ci = row["epoch_reached_reference_mean"], row["epoch_reached_reference_ci95"]
    if np.isnan(mean):
        return "— (never, within the epochs run)"
    return f"{mean:.1f}" + ("" if np.isnan(ci) else f" ± {ci:.1f}")


def _pm(row, column):
    mean, ci = row[f"{column}_mean"], row[f"{column}_ci95"]
    return f"{mean:.3f}" + ("" if np.isnan(ci) else f" ± {ci:.3f}")
