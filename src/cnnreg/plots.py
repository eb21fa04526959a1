"""Seaborn figures, each drawn only from the table that is saved beside it."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from cnnreg.atomic import write_atomic  # noqa: E402

SPLIT_STYLES = {"train": "-", "validation": "--"}


def learning_curves(curves, path, title=""):
    """Loss and accuracy per epoch: one colour per variant, solid train, dashed validation.

    Parameters
    ----------
    curves : DataFrame
        `cnnreg.tables.curve_table` output (mean, low and high over runs).
    path : path-like
        PNG to write.
    """
    datasets = list(dict.fromkeys(curves["dataset"]))
    variants = list(dict.fromkeys(curves["variant"]))
    colours = dict(zip(variants, sns.color_palette("colorblind", len(variants)), strict=True))
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.6 * len(datasets)), squeeze=False, sharex=True)
    for row, dataset in enumerate(datasets):
        for col, metric in enumerate(("loss", "accuracy")):
            ax = axes[row, col]
            subset = curves[(curves["dataset"] == dataset) & (curves["metric"] == metric)]
            for (variant, split), line in subset.groupby(["variant", "split"], sort=False):
                ax.plot(
                    line["epoch"], line["mean"], SPLIT_STYLES[split],
                    color=colours[variant], label=f"{variant} ({split})",
                )  # fmt: skip
                ax.fill_between(
                    line["epoch"], line["low"], line["high"],
                    color=colours[variant], alpha=0.15, linewidth=0,
                )  # fmt: skip
            ax.set_title(f"{dataset}: {metric}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
    axes[0, 1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def final_accuracies(variants, path, title=""):
    """Final and best validation accuracy per variant, mean with 95 % CI error bars."""
    sns.set_theme(style="whitegrid", context="paper")
    datasets = list(dict.fromkeys(variants["dataset"]))
    width = max(5.5, 0.45 * len(variants) / len(datasets))
    fig, axes = plt.subplots(1, len(datasets), figsize=(width * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        subset = variants[variants["dataset"] == dataset].reset_index(drop=True)
        labels = subset["variant"]
        if "at_epoch" in subset:
            labels = labels + " @ epoch " + subset["at_epoch"].astype(str)
        for offset, column, label in (
            (-0.2, "final_val_accuracy", "final"),
            (0.2, "best_val_accuracy", "best"),
        ):
            ax.errorbar(
                subset.index + offset, subset[f"{column}_mean"], yerr=_error_bars(subset, column),
                fmt="o", capsize=4, label=f"{label} validation accuracy",
            )  # fmt: skip
        ax.set_xticks(subset.index, labels, rotation=20, ha="right", fontsize=7)
        ax.set_title(dataset)
        ax.set_ylabel("validation accuracy")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _error_bars(subset, column):
    mean = subset[f"{column}_mean"]
    return [(mean - subset[f"{column}_low"]).fillna(0), (subset[f"{column}_high"] - mean).fillna(0)]


def save_figure(fig, path):
    """Write `fig` as a PNG atomically, and free it."""
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
