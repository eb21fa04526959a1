"""One study's runs → the files the report shows (tables, figures with their CSVs, answer)."""

import html
from pathlib import Path

from cnnreg import plots
from cnnreg.tables import answer, curve_table, summarise_study

PAGE = """<!DOCTYPE html>
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
<h3>Per variant (mean ± 95 % CI over seeds)</h3>
{variants}
<h3>Per run</h3>
{runs}
</body></html>
"""


def write_study_outputs(study, runs, run_dirs, outputs):
    """Write summary.csv/.html, curves.png/.csv, final.png/.csv and answer.txt for a study.

    Parameters
    ----------
    study : cnnreg.studies.Study
    runs : dict
        Run id → resolved parameters, for the study's runs.
    run_dirs : dict
        Run id → finished run folder.
    outputs : mapping
        Paths keyed ``summary``, ``html``, ``curves``, ``curves_csv``, ``final``, ``final_csv``,
        ``answer``.
    """
    summary, variants, histories = summarise_study(study, runs, run_dirs)
    curves = curve_table(study, runs, histories)
    text = answer(variants)
    summary.to_csv(outputs["summary"], index=False)
    variants.to_csv(outputs["final_csv"], index=False)
    curves.to_csv(outputs["curves_csv"], index=False)
    plots.learning_curves(curves, outputs["curves"], title=study.title)
    plots.final_accuracies(variants, outputs["final"], title=study.title)
    Path(outputs["answer"]).write_text(text + "\n")
    Path(outputs["html"]).write_text(
        PAGE.format(
            title=html.escape(study.title),
            question=html.escape(study.question or "—"),
            answer=html.escape(text),
            variants=variants.to_html(index=False, float_format="{:.3f}".format, na_rep="—"),
            runs=summary.to_html(index=False, float_format="{:.3f}".format, na_rep="—"),
        )
    )
