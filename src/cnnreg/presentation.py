"""Presentation: the HTML pages and sentences the report shows, from tables computed elsewhere.

`study_page` and `gradcam_page` lay out a study's and a Grad-CAM run's tables; `answer` turns a
study's variant table (with its paired effects and comparison, see `cnnreg.tables`) into the
measured answer to the lab's question.
"""

import html

import numpy as np
import pandas as pd

from cnnreg.tables import REACHED, group_keys

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
th {{ background: #f0f0f0; }}
.answer {{ background: #eef6ee; padding: 0.75em; border-left: 4px solid #4a4; }}
</style></head><body>
<h2>{title}</h2>
<p><b>Question.</b> {question}</p>
<p class="answer"><b>Measured answer.</b> {answer}</p>
<h3>Per variant (mean ± 95 % CI over seeds, ranked by best validation accuracy)</h3>
{variants}
{sections}
<h3>Per run</h3>
{runs}
</body></html>
"""


def html_table(table):
    """A table as HTML, without its index, floats to three decimals, missing values as a dash."""
    return table.to_html(index=False, float_format="{:.3f}".format, na_rep="—")


def section(heading, table):
    """A headed table, or nothing for an empty table."""
    return f"<h3>{html.escape(heading)}</h3>\n{html_table(table)}" if len(table) else ""


def study_page(title, question, answer, variants, sections, runs):
    """A study's page (``summary.html``).

    Parameters
    ----------
    title, question, answer : str
        Plain text, escaped here; no question shows a dash.
    variants, runs : DataFrame
        The per-variant and per-run tables.
    sections : sequence of str
        HTML between them, such as `section` gives.
    """
    return _STUDY_PAGE.format(
        title=html.escape(title),
        question=html.escape(question or "—"),
        answer=html.escape(answer),
        variants=html_table(variants),
        sections="\n".join(sections),
        runs=html_table(runs),
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


def answer(variants, effect_table=None, comparison=None):
    """Sentences answering the study's question from its numbers (report labels, summary.html)."""
    shared = group_keys(variants)[:-1]
    sentences = []
    for key, group in variants.groupby(shared, sort=False):
        where = _where(dict(zip(shared, key if isinstance(key, tuple) else (key,), strict=True)))
        sentences.append(_ranking_sentence(where, group))
        if len(group) <= DETAILED_VARIANTS:
            sentences.append(
                "; ".join(
                    f"{row['variant']}: final validation accuracy {_pm(row, 'final_val_accuracy')}, "
                    f"gap {_pm(row, 'generalization_gap')}"
                    for _, row in group.iterrows()
                )
                + "."
            )
        if "is_baseline" in group:
            sentences.extend(_reference_sentences(where, group))
    if effect_table is not None and len(effect_table):
        sentences.extend(_effect_sentences(effect_table))
    if comparison is not None and len(comparison):
        sentences.extend(_comparison_sentences(comparison))
    return " ".join(sentences)


#: Studies with at most this many variants get every variant's final values in the answer.
DETAILED_VARIANTS = 3


def _where(key):
    text = f"On {key['dataset']}"
    return text + (f" at epoch {key['at_epoch']}" if "at_epoch" in key else "")


def _ranking_sentence(where, group):
    ranked = group.sort_values("rank")
    best = ranked.iloc[0]
    sentence = f"{where}, the best is {best['variant']} (best validation accuracy {_pm(best, 'best_val_accuracy')})"
    if len(ranked) > 1:
        second = ranked.iloc[1]
        sentence += (
            f", ahead of {second['variant']} ({_pm(second, 'best_val_accuracy')}; "
            + _settled(best, second, "best_val_accuracy")
            + ")"
        )
    return sentence + "."


def _settled(a, b, column):
    """Whether two variants' 95 % CIs separate them."""
    ci_a, ci_b = a[f"{column}_ci95"], b[f"{column}_ci95"]
    if np.isnan(ci_a) or np.isnan(ci_b):
        return "one seed each: no CI, so the ranking is not settled"
    if abs(a[f"{column}_mean"] - b[f"{column}_mean"]) <= ci_a + ci_b:
        return "the 95 % CIs overlap, so the ranking is not settled"
    return "the 95 % CIs do not overlap"


def _effect_sentences(effect_table):
    sentences = []
    for _, row in effect_table.iterrows():
        where = _where(row)
        accuracy = _signed(row, "delta_best_val_accuracy")
        verdict = _verdict(row, "delta_best_val_accuracy")
        sentences.append(
            f"{where}, {row['variant']} against {row['versus']} (paired by seed, n={row['n_pairs']}): "
            f"best validation accuracy {accuracy} ({verdict}), final validation accuracy "
            f"{_signed(row, 'delta_final_val_accuracy')}, generalization gap "
            f"{_signed(row, 'delta_generalization_gap')}."
        )
    return sentences


def _signed(row, column):
    mean, ci = row[f"{column}_mean"], row[f"{column}_ci95"]
    return f"{mean:+.3f}" + ("" if np.isnan(ci) else f" ± {ci:.3f}")


def _verdict(row, column):
    mean, ci = row[f"{column}_mean"], row[f"{column}_ci95"]
    if np.isnan(ci):
        return "one seed: no confidence interval"
    if mean - ci > 0:
        return "helps: the CI excludes 0"
    if mean + ci < 0:
        return "hurts: the CI excludes 0"
    return "no clear effect: the CI includes 0"


def _comparison_sentences(comparison):
    sentences = []
    for dataset, group in comparison.groupby("dataset", sort=False):
        parts = [
            f"{row['study']} {row['variant']}: best validation accuracy {_pm(row, 'best_val_accuracy')} at epoch "
            f"{_pm(row, 'best_epoch', '.1f')} after {_pm(row, 'wall_seconds', '.1f')} s of training"
            for _, row in group.iterrows()
        ]
        sentences.append(f"On {dataset}: " + "; ".join(parts) + ".")
    return sentences


def _reference_sentences(where, group):
    baseline = " and ".join(group.loc[group["is_baseline"], "variant"])
    return [
        f"{where}, {row['variant']} first reached the final training accuracy of {baseline} {_epoch(row)}."
        for _, row in group[~group["is_baseline"]].iterrows()
    ]


def _epoch(row):
    """When a variant reached the reference: over the seeds that did, saying how many of all."""
    reached, seeds = int(row[f"{REACHED}_n_reached"]), int(row["n_seeds"])
    if reached == 0:
        return "— no seed reached it within the epochs run"
    mean, ci = row[f"{REACHED}_mean_of_reached"], row[f"{REACHED}_ci95_of_reached"]
    epoch = f"{mean:.1f}" + ("" if np.isnan(ci) else f" ± {ci:.1f}")
    return f"at epoch {epoch} (mean of the {reached} of {seeds} {'seed' if seeds == 1 else 'seeds'} that reached it)"


def _pm(row, column, spec=".3f"):
    mean, ci = row[f"{column}_mean"], row[f"{column}_ci95"]
    return format(mean, spec) + ("" if np.isnan(ci) else f" ± {format(ci, spec)}")
