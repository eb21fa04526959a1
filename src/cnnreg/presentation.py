"""Presentation: the HTML pages and sentences the report shows, from tables computed elsewhere.

`study_page` and `gradcam_page` lay out a study's and a Grad-CAM run's tables; `answer` turns a
study's variant table (with its paired effects and comparison, see `cnnreg.tables`) into the
measured answer to the lab's question.
"""

import html

import pandas as pd

from cnnreg.intervals import MIN_INTERVAL
from cnnreg.readable import bounds, readable_table
from cnnreg.tables import REACHED, STATISTICS, group_keys

__all__ = ["METHOD_TITLES", "answer", "gradcam_page", "html_table", "section", "study_page"]

#: How the report names each Grad-CAM method (`cnnreg.gradcam.METHODS`).
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++"}
#: How the report names the sanity baseline's columns: the maps of a randomised-weights model.
RANDOMISED_TITLE = "(random weights)"

_STUDY_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
td {{ font-variant-numeric: tabular-nums; white-space: nowrap; }}
th {{ background: #f0f0f0; }}
.answer {{ background: #eef6ee; padding: 0.75em; border-left: 4px solid #4a4; }}
</style></head><body>
<h2>{title}</h2>
<p><b>Question.</b> {question}</p>
<p class="answer"><b>Measured answer.</b> {answer}</p>
<h3>Per variant (mean and interval over runs, the range for fewer than 3; ranked by rank_by)</h3>
{variants}
{sections}
<h3>Per run</h3>
{runs}
</body></html>
"""


def html_table(table, parameters=()):
    """A table as people read it (`cnnreg.readable`) in HTML: without its index, floats to three
    decimals, missing values as a dash; `parameters`, the varied ones, first."""
    return readable_table(table, parameters).to_html(index=False, float_format="{:.3f}".format, na_rep="—")


def section(heading, table, parameters=()):
    """A headed table, or nothing for an empty table."""
    return f"<h3>{html.escape(heading)}</h3>\n{html_table(table, parameters)}" if len(table) else ""


def study_page(title, question, answer, variants, sections, runs, parameters=()):
    """A study's page (``summary.html``).

    Parameters
    ----------
    title, question, answer : str
        Plain text, escaped here; no question shows a dash.
    variants, runs : DataFrame
        The per-variant and per-run tables.
    sections : sequence of str
        HTML between them, such as `section` gives.
    parameters : sequence of str
        The varied run parameters, shown first in both tables.
    """
    return _STUDY_PAGE.format(
        title=html.escape(title),
        question=html.escape(question or "—"),
        answer=html.escape(answer),
        variants=html_table(variants, parameters),
        sections="\n".join(sections),
        runs=html_table(runs, parameters),
    )


def gradcam_page(summary, table):
    """A run's Grad-CAM page (``table.html``): the per-method summary and the per-image table.

    Parameters
    ----------
    summary : dict
        `cnnreg.cam_metrics.summarise` of the table, with ``gradcam_ms_per_image``,
        ``validation_accuracy`` and ``randomised_weights`` (the summary of the sanity baseline,
        `cnnreg.cam_outputs.sanity_table`).
    table : DataFrame
        The per-image table of `cnnreg.cam_outputs.explain`.
    """
    sanity = summary["randomised_weights"]
    methods = pd.DataFrame(
        {title: summary[method] for method, title in METHOD_TITLES.items()}
        | {f"{title} {RANDOMISED_TITLE}": sanity[method] for method, title in METHOD_TITLES.items()}
    )
    flagged = "on the marker: check for a shortcut" if summary["marker_attention"] else "not on the marker"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grad-CAM</title></head><body>"
        f"<h3>Per method (Grad-CAM {summary['gradcam_ms_per_image']:.1f} ms per image; validation accuracy "
        f"{summary['validation_accuracy']:.3f})</h3>"
        f"<p>Marker attention: {html.escape(flagged)}. The {html.escape(RANDOMISED_TITLE)} columns are the "
        "sanity baseline: the same network with untrained weights, whose maps a check that works scores "
        "clearly worse.</p>"
        + methods.to_html(float_format="{:.3f}".format, na_rep="—")
        + "<h3>Per image</h3>"
        + html_table(table)
        + "</body></html>"
    )


def answer(variants, effect_table=None, comparison=None, runner_up=None):
    """Sentences answering the study's question from its numbers (report labels, summary.html).

    Parameters
    ----------
    variants : DataFrame
        `cnnreg.tables.variant_table`.
    effect_table, comparison, runner_up : DataFrame, optional
        The ``effects``, ``comparison`` and ``runner_up`` of `cnnreg.tables.summarise_study`;
        without ``runner_up`` the ranking says nothing about whether it is settled.

    Every number comes with its interval and n (`cnnreg.intervals`); a ranking or an effect is
    called "not settled" only when the 95 % interval of its paired difference includes 0, and
    with fewer than 3 pairs no verdict is given.
    """
    shared = group_keys(variants)[:-1]
    pairs = {} if runner_up is None else {tuple(row[k] for k in shared): row for _, row in runner_up.iterrows()}
    sentences = []
    for key, group in variants.groupby(shared, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        where = _where(dict(zip(shared, key, strict=True)))
        sentences.append(_ranking_sentence(where, group, pairs.get(key)))
        sentences.extend(_not_learned_sentences(where, group))
        if len(group) <= DETAILED_VARIANTS:
            sentences.append(
                "; ".join(
                    f"{row['variant']}: final validation accuracy {_interval(row, 'final_val_accuracy')}, "
                    f"gap {_interval(row, 'generalization_gap')}"
                    for _, row in group.iterrows()
                )
                + "."
            )
        if "is_baseline" in group:
            sentences.extend(_reference_sentences(where, group))
    if effect_table is not None and len(effect_table):
        sentences.extend(_effect_sentences(effect_table, variants["rank_by"].iloc[0]))
    if comparison is not None and len(comparison):
        sentences.extend(_comparison_sentences(comparison))
    return " ".join(sentences)


#: Studies with at most this many variants get every variant's final values in the answer.
DETAILED_VARIANTS = 3
#: How the answer names a metric.
METRIC_NAMES = {
    "best_val_accuracy": "best validation accuracy",
    "final_val_accuracy": "final validation accuracy",
    "generalization_gap": "generalization gap",
    "val_auc": "validation AUC",
    "val_balanced_accuracy": "validation balanced accuracy",
    "val_sensitivity": "validation sensitivity",
    "val_specificity": "validation specificity",
}
CHANCE = "training accuracy never rose above the majority class's share of the training images by more than chance"


def _where(key):
    text = f"On {key['dataset']}"
    return text + (f" at epoch {key['at_epoch']}" if "at_epoch" in key else "")


def _ranking_sentence(where, group, pair):
    """The best variant by the study's ``rank_by``, the runner-up and their paired difference."""
    metric = group["rank_by"].iloc[0]
    if group["did_not_learn"].all():
        runs = int(group["n_runs"].sum())
        return f"{where}, no variant learned: {runs} of {runs} runs did not learn ({CHANCE}), so none is best."
    ranked = group.dropna(subset=["rank"]).sort_values("rank", kind="stable")
    if ranked.empty:
        return f"{where}, no variant has a {METRIC_NAMES[metric]} to be ranked by."
    best = ranked.iloc[0]
    sentence = f"{where}, the best is {best['variant']} with {METRIC_NAMES[metric]} {_interval(best, metric)}"
    if len(ranked) > 1:
        second = ranked.iloc[1]
        sentence += f", ahead of {second['variant']} with {_interval(second, metric)}"
        if pair is not None:
            sentence += (
                f"; paired by seed, {best['variant']} − {second['variant']} = {_interval(pair, 'delta', '+.3f')}: "
                + _verdict(pair, "delta", best["variant"], second["variant"])
            )
    return sentence + "."


def _not_learned_sentences(where, group):
    """The variants with runs that did not learn (all of them: said by `_ranking_sentence`)."""
    failed = group[group["n_not_learned"] > 0]
    if failed.empty or group["did_not_learn"].all():
        return []
    parts = [
        f"{row['variant']}: {int(row['n_not_learned'])} of {int(row['n_runs'])} runs did not learn"
        + (", so it is not ranked" if row["did_not_learn"] else "")
        for _, row in failed.iterrows()
    ]
    return [f"{where}, " + "; ".join(parts) + f" ({CHANCE})."]


def _verdict(row, prefix, higher, lower):
    """Which of two is better by a paired difference ``higher − lower``, if its interval says so."""
    n, mean, low, high = int(row[f"{prefix}_n"]), row[f"{prefix}_mean"], row[f"{prefix}_low"], row[f"{prefix}_high"]
    if n == 0:
        return "no pairs to compare"
    if n < MIN_INTERVAL:
        return "too few pairs for an interval, so no verdict"
    if low <= 0 <= high:
        return "the interval includes 0, so it is not settled"
    return f"{higher if mean > 0 else lower} is better by {abs(mean):.3f}"


def _effect_sentences(effect_table, rank_by):
    sentences = []
    for _, row in effect_table.iterrows():
        metrics = dict.fromkeys((rank_by, "best_val_accuracy", "final_val_accuracy"))
        parts = [f"{METRIC_NAMES[m]} {_interval(row, f'delta_{m}', '+.3f')}" for m in metrics]
        parts[0] += " — " + _verdict(row, f"delta_{rank_by}", row["variant"], row["versus"])
        parts.append(f"generalization gap {_interval(row, 'delta_generalization_gap', '+.3f')}")
        pairs = int(row["n_pairs"])
        sentences.append(
            f"{_where(row)}, {row['variant']} against {row['versus']} (paired by seed, n = {pairs} pairs): "
            + "; ".join(parts)
            + "."
        )
    return sentences


def _comparison_sentences(comparison):
    sentences = []
    for dataset, group in comparison.groupby("dataset", sort=False):
        parts = [
            f"{row['study']} {row['variant']}: best validation accuracy {_interval(row, 'best_val_accuracy')} at epoch "
            f"{_interval(row, 'best_epoch', '.1f')} after {_interval(row, 'wall_seconds', '.1f')} s of training"
            + _not_learned(row)
            for _, row in group.iterrows()
        ]
        sentences.append(f"On {dataset}: " + "; ".join(parts) + ".")
    return sentences


def _not_learned(row):
    n = int(row["n_not_learned"])
    return f" ({n} of {int(row['n_runs'])} runs did not learn)" if n else ""


def _reference_sentences(where, group):
    baseline = " and ".join(group.loc[group["is_baseline"], "variant"])
    return [
        f"{where}, {row['variant']} first reached the final training accuracy of {baseline} {_epoch(row)}."
        for _, row in group[~group["is_baseline"]].iterrows()
    ]


def _epoch(row):
    """When a variant reached the reference: over the runs that did, saying how many of all."""
    reached, runs = int(row[f"{REACHED}_n_of_reached"]), int(row["n_runs"])
    if reached == 0:
        return "— no run reached it within the epochs run"
    epoch = _interval(row, REACHED, ".1f", suffix="_of_reached")
    return f"at epoch {epoch}, over the {reached} of {runs} {'run' if runs == 1 else 'runs'} that reached it"


def _interval(row, name, spec=".3f", suffix=""):
    """A mean with its interval and n: ``0.858 (0.800–0.910, bootstrap 95 %, n = 3)``, ``0.858
    (range 0.800–0.910, n = 2)`` or ``0.858 (n = 1)``; signed or negative bounds join with "to"."""
    mean, low, high, method, n = (row[f"{name}_{statistic}{suffix}"] for statistic in STATISTICS)
    n = int(n)
    if n == 0:
        return "no value"
    if n == 1:
        return f"{mean:{spec}} (n = 1)"
    between = bounds(low, high, spec)
    if method == "range":
        return f"{mean:{spec}} (range {between}, n = {n})"
    return f"{mean:{spec}} ({between}, {method}, n = {n})"
