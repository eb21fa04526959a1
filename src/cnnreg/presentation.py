"""Presentation: the HTML pages and sentences the report shows, from tables computed elsewhere.

`study_page` and `gradcam_page` lay out a study's and a Grad-CAM run's tables; the sentences
that answer a study's question are `cnnreg.answers`'.
"""

import html

import pandas as pd

from cnnreg.readable import readable_table
from cnnreg.wording import METHOD_TITLES

__all__ = ["gradcam_page", "html_table", "section", "study_page"]

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
