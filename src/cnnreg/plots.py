"""Seaborn figures, each drawn only from the table that is saved beside it (`cnnreg.tables`, contract C1)."""

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from cnnreg.atomic import write_atomic  # noqa: E402

SPLIT_STYLES = {"train": "-", "validation": "--"}
#: Font size (points) of every text but the title.
FONT = 8
#: Inches of figure height per variant in a panel of `final_accuracies`: its marks and its label.
ROW_INCHES = 0.3
#: Colour of the variants that did not learn.
GREY = "0.6"
NBSP = "\u00a0"
VARIANT_COLUMNS = ("dataset", "variant", "n_runs", "did_not_learn", "rank", "rank_by")
CURVE_COLUMNS = ("dataset", "variant", "metric", "split", "epoch", "mean", "low", "high", "n", "interval")


def learning_curves(curves, path, title=""):
    """Write `learning_curves_figure` as a PNG."""
    save_figure(learning_curves_figure(curves, title), path)


def learning_curves_figure(curves, title=""):
    """Loss and accuracy per epoch: one colour per variant, solid train, dashed validation.

    Parameters
    ----------
    curves : DataFrame
        `cnnreg.tables.curve_table` rows (C1): mean per epoch, band from ``low`` to ``high``
        (none where they are NaN).
    title : str
        The study's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_columns(curves, CURVE_COLUMNS, "curve table")
    if curves.empty:
        raise ValueError("the curve table has no rows: expected one per variant, metric, split and epoch")
    datasets = list(dict.fromkeys(curves["dataset"]))
    variants = list(dict.fromkeys(curves["variant"]))
    colours = dict(zip(variants, sns.color_palette("colorblind", len(variants)), strict=True))
    ncol = 2 if max(len(v) for v in variants) > 45 else 3
    legend_inches = 0.22 * (np.ceil((len(variants) + 2) / ncol) + 1)
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    fig, axes = plt.subplots(
        len(datasets), 2, figsize=(11, 3.4 * len(datasets) + legend_inches + 0.6),
        squeeze=False, sharex=True, layout="constrained",
    )  # fmt: skip
    for row, dataset in enumerate(datasets):
        for col, metric in enumerate(("loss", "accuracy")):
            subset = curves[(curves["dataset"] == dataset) & (curves["metric"] == metric)]
            _curve_panel(axes[row, col], subset, colours)
            axes[row, col].set_title(f"{dataset}: {metric}", fontsize=FONT + 1)
            axes[row, col].set_ylabel(metric, fontsize=FONT)
            if metric == "accuracy":
                axes[row, col].set_ylim(0, 1.02)
        for ax in axes[row]:
            ax.tick_params(labelsize=FONT)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=FONT)
    handles = [Line2D([], [], color=colours[v], label=v) for v in variants]
    handles += [Line2D([], [], color="0.2", linestyle=s, label=split) for split, s in SPLIT_STYLES.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=FONT, frameon=False)
    note = interval_note(curves.dropna(subset=["low", "high"]), "interval", "n")
    _suptitle(fig, title, f"lines: mean over runs; bands: {note or 'none (one run)'}", width=11)
    return fig


def _curve_panel(ax, subset, colours):
    """One mean line per variant and split, with its low–high band where both are known."""
    for (variant, split), line in subset.groupby(["variant", "split"], sort=False):
        line = line.sort_values("epoch")
        ax.plot(line["epoch"], line["mean"], SPLIT_STYLES[split], color=colours[variant], linewidth=1.2)
        known = (line["low"].notna() & line["high"].notna()).to_numpy()
        if known.any():
            ax.fill_between(
                line["epoch"], line["low"], line["high"], where=known,
                color=colours[variant], alpha=0.15, linewidth=0,
            )  # fmt: skip


def final_accuracies(variants, path, title=""):
    """Write `final_accuracies_figure` as a PNG."""
    save_figure(final_accuracies_figure(variants, title), path)


def final_accuracies_figure(variants, title=""):
    """The ranking metric and final validation accuracy per variant: mean with low–high whiskers.

    Small multiples: with ``at_epoch``, one row of panels per dataset and one column per epoch
    read at; without, one row with a column per dataset. In a row of panels the variants share
    their labels (on the left) and are ordered by mean rank, best on top; variants that did not
    learn are grey, last and labelled so; the best (rank 1) of each panel is starred. The figure
    grows with the number of variants, so labels never overlap.

    Parameters
    ----------
    variants : DataFrame
        `cnnreg.tables.variant_table` rows (C1).
    title : str
        The study's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    metrics = _compared_metrics(variants)
    row_key, col_key = ("dataset", "at_epoch") if "at_epoch" in variants else (None, "dataset")
    rows = list(dict.fromkeys(variants[row_key])) if row_key else [None]
    cols = list(dict.fromkeys(variants[col_key]))
    orders = {r: _variant_order(_in_row(variants, row_key, r)) for r in rows}
    label_inches = max(len(v) for v in variants["variant"]) * FONT * 0.5 / 72 + 1.1
    width = max(7.0, label_inches + 3.6 * len(cols))
    heights = [len(orders[r]) * ROW_INCHES + 0.8 for r in rows]
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(width, sum(heights) + 1.8), squeeze=False, sharex=True,
        sharey="row", layout="constrained", gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    fig.get_layout_engine().set(w_pad=0.1, h_pad=0.1)
    colours = dict(zip(metrics, sns.color_palette("colorblind", len(metrics)), strict=True))
    for i, r in enumerate(rows):
        in_row = _in_row(variants, row_key, r)
        for j, c in enumerate(cols):
            panel = in_row[in_row[col_key] == c].set_index("variant").reindex(orders[r])
            _accuracy_panel(axes[i, j], panel, metrics, colours)
            axes[i, j].set_title(_panel_title(r, col_key, c), fontsize=FONT + 1)
        _label_variants(axes[i, 0], [_variant_label(v, in_row, col_key) for v in orders[r]])
    note = interval_note(variants, f"{metrics[0]}_interval", "n_runs")
    for ax in axes[-1]:
        ax.set_xlabel(f"{_axis_name(metrics)}: mean, whiskers {note}", fontsize=FONT)
    handles = _accuracy_handles(metrics, colours)
    fig.legend(handles=handles, loc="outside lower center", ncol=4 if width > 10 else 2, fontsize=FONT, frameon=False)
    shown = " and ".join(metric_name(m) + (" (ranks the variants)" if k == 0 else "") for k, m in enumerate(metrics))
    _suptitle(fig, title, f"{shown}; whiskers {note}", width)
    return fig


def _compared_metrics(variants):
    """The ranking metric (C1's ``rank_by``) and final validation accuracy, once each."""
    require_columns(variants, VARIANT_COLUMNS, "variant table")
    if variants.empty:
        raise ValueError("the variant table has no rows: expected one per variant and panel")
    metrics = list(dict.fromkeys([variants["rank_by"].iloc[0], "final_val_accuracy"]))
    columns = [f"{m}_{part}" for m in metrics for part in ("mean", "low", "high", "interval")]
    require_columns(variants, columns, "variant table")
    return metrics


def _label_variants(ax, labels):
    """One y tick label per (label, learned) pair, top down; grey for variants that never learned."""
    ax.set_yticks(range(len(labels)), [text for text, _ in labels])
    for tick, (_, learned) in zip(ax.get_yticklabels(), labels, strict=True):
        tick.set_color("0.1" if learned else GREY)
    ax.set_ylim(len(labels) - 0.5, -0.5)


def _in_row(variants, row_key, row):
    return variants if row_key is None else variants[variants[row_key] == row]


def _variant_order(table):
    """Variants by mean rank over the panels, best first; those that never ranked (did not learn) last."""
    ranks = table.assign(rank=table["rank"].fillna(np.inf)).groupby("variant", sort=False)["rank"].mean()
    return list(ranks.sort_values(kind="stable").index)


def _variant_label(variant, table, col_key):
    """(label, learned): the variant, noting the panels where it did not learn."""
    rows = table[table["variant"] == variant]
    failed = list(rows.loc[rows["did_not_learn"].astype(bool), col_key])
    if not failed:
        return variant, True
    if len(failed) == len(rows):
        return f"{variant} (did not learn)", False
    where = ", ".join(_panel_title(None, col_key, c) for c in failed)
    return f"{variant} (did not learn {'at ' if col_key == 'at_epoch' else 'on '}{where})", True


def _panel_title(row, col_key, col):
    name = f"epoch {col}" if col_key == "at_epoch" else str(col)
    return name if row is None else f"{row}, read at {name}"


def _accuracy_panel(ax, panel, metrics, colours):
    """Per metric, mean and low–high whisker of each variant (rows in `panel`'s order); star the best."""
    offsets = np.linspace(-0.17, 0.17, len(metrics)) if len(metrics) > 1 else [0.0]
    positions = np.arange(len(panel))
    failed = panel["did_not_learn"].eq(True).to_numpy()
    for position in positions[1::2]:
        ax.axhspan(position - 0.5, position + 0.5, color="0.5", alpha=0.06, linewidth=0)
    for offset, metric in zip(offsets, metrics, strict=True):
        colour = [GREY if f else colours[metric] for f in failed]
        y = positions + offset
        ax.hlines(y, panel[f"{metric}_low"], panel[f"{metric}_high"], colors=colour, linewidth=1.4)
        ax.scatter(panel[f"{metric}_mean"], y, color=colour, s=18, zorder=3, marker="o" if offset <= 0 else "s")
    best = (panel["rank"] == 1).to_numpy()
    ax.scatter(panel.loc[best, f"{metrics[0]}_mean"], positions[best] + offsets[0], marker="*", s=110,
               color="gold", edgecolors="0.1", linewidths=0.6, zorder=4, gid="best")  # fmt: skip
    ax.set_xlim(-0.02, 1.02)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    ax.tick_params(labelsize=FONT)
    ax.grid(axis="y", visible=False)


def _accuracy_handles(metrics, colours):
    handles = [
        Line2D([], [], color=colours[m], marker="o" if k == 0 else "s", markersize=4, label=metric_name(m))
        for k, m in enumerate(metrics)
    ]
    return [
        *handles,
        Line2D([], [], color=GREY, marker="o", markersize=4, label="did not learn"),
        Line2D([], [], linestyle="", marker="*", markersize=10, color="gold", markeredgecolor="0.1",
               label=f"best (rank 1 by {metric_name(metrics[0])})"),
    ]  # fmt: skip


def metric_name(column):
    """Readable name of a C1 metric column, e.g. ``val_auc`` → "validation AUC"."""
    words = column.replace("val_", "validation_").replace("auc", "AUC").split("_")
    return " ".join(words)


def _axis_name(metrics):
    return "validation accuracy" if all("accuracy" in m for m in metrics) else "validation score"


def interval_note(table, interval_column, n_column):
    """How the whiskers or bands were made, e.g. "range, n = 2" or "range, n = 2; bootstrap 95 %, n = 3"."""
    parts = []
    for interval, group in table.groupby(interval_column, sort=False):
        ns = sorted({int(n) for n in group[n_column]})
        count = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        parts.append(f"{interval}, n = {count}")
    return "; ".join(parts)


def _suptitle(fig, title, subtitle, width):
    """Title over the figure, wrapped to its width, and the subtitle saying what is drawn (whose
    phrases after a semicolon are not broken)."""
    chars = int(width * 72 / ((FONT + 2) * 0.55))
    head, _, note = subtitle.partition("; ")
    unbroken = f"{head}; {note.replace(' ', NBSP)}" if note else head
    lines = textwrap.wrap(title, chars) + [line.replace(NBSP, " ") for line in textwrap.wrap(unbroken, chars)]
    fig.suptitle("\n".join(lines), fontsize=FONT + 2)


def require_columns(table, columns, what):
    """Raise ValueError naming the columns of `columns` that `table` lacks."""
    missing = [c for c in columns if c not in table]
    if missing:
        raise ValueError(f"the {what} lacks the columns {missing} (expected those of contract C1)")


def save_figure(fig, path):
    """Write `fig` as a PNG atomically, and free it."""
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
