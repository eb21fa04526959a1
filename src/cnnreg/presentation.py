"""Presentation: HTML pages and sentences the report shows."""

import html

import pandas as pd

__all__ = ["METHOD_TITLES", "gradcam_page", "html_table", "section", "study_page"]

#: How the report names each Grad-CAM method (`cnnreg.gradcam.METHODS`).
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++"}

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
        `cnnreg.cam_metrics.summarise` of the table, with ``gradcam_ms_per_image`` and
        ``validation_accuracy``.
    table : DataFrame
        The per-image table of `cnnreg.cam_outputs.explain`.
    """
    methods = pd.DataFrame({title: summary[method] for method, title in METHOD_TITLES.items()})
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grad-CAM</title></head><body>"
        f"<h3>Per method (Grad-CAM {summary['gradcam_ms_per_image']:.1f} ms per image; validation accuracy "
        f"{summary['validation_accuracy']:.3f})</h3>"
        + methods.to_html(float_format="{:.3f}".format, na_rep="—")
        + "<h3>Per image</h3>"
        + html_table(table)
        + "</body></html>"
    )
