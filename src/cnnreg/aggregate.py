"""One study's runs → the files the report shows (tables, figures with their CSVs, answer)."""

import html
import json
from pathlib import Path

import pandas as pd

from cnnreg import plots
from cnnreg.atomic import write_atomic, write_text
from cnnreg.presentation import answer
from cnnreg.tables import curve_table, summarise_study

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
<h3>Per variant (mean ± 95 % CI over seeds, ranked by best validation accuracy)</h3>
{variants}
{sections}
<h3>Per run</h3>
{runs}
</body></html>
"""


def write_study_outputs(study, runs, run_dirs, outputs, other=None, features=()):
    """Write summary.csv/.html, curves.png/.csv, final.png/.csv and answer.txt for a study.

    Parameters
    ----------
    study : cnnreg.studies.Study
    runs : dict
        Run id → resolved parameters, for the study's runs (and those of ``other``).
    run_dirs : dict
        Run id → finished run folder.
    outputs : mapping
        Paths keyed ``summary``, ``html``, ``curves``, ``curves_csv``, ``final``, ``final_csv``,
        ``answer``.
    other : cnnreg.studies.Study, optional
        The study this one is compared with.
    features : sequence of path-like
        Feature-extraction summaries (JSON) of a transfer study, shown with their weights.
    """
    summary, variants, extra = summarise_study(study, runs, run_dirs, other)
    curves = curve_table(study, runs, extra["histories"])
    feature_rows = [_features_row(p) for p in features]
    text = answer(variants, extra["effects"], extra["comparison"]) + _weights_warning(feature_rows)
    for table, key in ((summary, "summary"), (variants, "final_csv"), (curves, "curves_csv")):
        write_atomic(outputs[key], lambda tmp, table=table: table.to_csv(tmp, index=False))
    plots.learning_curves(curves, outputs["curves"], title=study.title)
    plots.final_accuracies(variants, outputs["final"], title=study.title)
    write_text(outputs["answer"], text + "\n")
    sections = [
        _section("Paired differences against the baseline (mean ± 95 % CI over seeds)", extra["effects"]),
        _section(f"Compared with {other.name if other else ''}: {other.title if other else ''}", extra["comparison"]),
        _section("Features the heads trained on", pd.DataFrame(feature_rows)),
    ]
    write_text(
        outputs["html"],
        PAGE.format(
            title=html.escape(study.title),
            question=html.escape(study.question or "—"),
            answer=html.escape(text),
            variants=_html_table(variants),
            sections="\n".join(sections),
            runs=_html_table(summary),
        ),
    )


def _html_table(table):
    return table.to_html(index=False, float_format="{:.3f}".format, na_rep="—")


def _section(heading, table):
    return f"<h3>{html.escape(heading)}</h3>\n{_html_table(table)}" if len(table) else ""


def _weights_warning(feature_rows):
    if all(row["imagenet"] for row in feature_rows):
        return ""
    return (
        " The features were extracted with VGG16 weights that are not ImageNet's (their md5 differs:"
        " a stand-in, such as the offline demo's random weights), so these heads say nothing about"
        " transfer learning."
    )


def _features_row(path):
    summary = json.loads(Path(path).read_text())
    return {"features": Path(path).stem, **summary}
