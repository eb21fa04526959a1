"""One study's runs → the files the report shows (tables, figures with their CSVs, answer)."""

import json
from pathlib import Path

import pandas as pd

from cnnreg import plots
from cnnreg.answers import StudyTables, answer_study
from cnnreg.atomic import write_atomic, write_text
from cnnreg.presentation import section, study_page
from cnnreg.tables import curve_table, summarise_study


def write_study_outputs(study, runs, run_dirs, outputs, other=None, features=(), gradcam=None):
    """Write summary.csv/.html, curves.png/.csv, final.png/.csv and answer.txt/.json for a study.

    Parameters
    ----------
    study : cnnreg.studies.Study
    runs : dict
        Run id → resolved parameters, for the study's runs (and those of ``other``).
    run_dirs : dict
        Run id → finished run folder.
    outputs : mapping
        Paths keyed ``summary``, ``html``, ``curves``, ``curves_csv``, ``final``, ``final_csv``,
        ``answer`` (the text) and ``answer_json`` (`cnnreg.answers.Answer.as_dict`).
    other : cnnreg.studies.Study, optional
        The study this one is compared with.
    features : sequence of path-like
        Feature-extraction summaries (JSON) of a transfer study, shown with their weights.
    gradcam : mapping, optional
        Run id → its Grad-CAM summary (``summary.json``), for a study with ``gradcam``.
    """
    summary, variants, extra = summarise_study(study, runs, run_dirs, other)
    curves = curve_table(study, runs, extra["histories"])
    feature_rows = [_features_row(p) for p in features]
    summaries = {run: json.loads(Path(path).read_text()) for run, path in (gradcam or {}).items()}
    tables = StudyTables.of_summary(study, (summary, variants, extra), runs, other, summaries)
    found = answer_study(tables, _weights_warnings(feature_rows))
    text = found.text
    for table, key in ((summary, "summary"), (variants, "final_csv"), (curves, "curves_csv")):
        write_atomic(outputs[key], lambda tmp, table=table: table.to_csv(tmp, index=False))
    plots.learning_curves(curves, outputs["curves"], title=study.title)
    plots.final_accuracies(variants, outputs["final"], title=study.title)
    write_text(outputs["answer"], text + "\n")
    write_text(outputs["answer_json"], json.dumps(found.as_dict(), indent=2) + "\n")
    varied = study.varied
    sections = [
        section("Best against second best, paired by seed (mean difference and interval)", extra["runner_up"], varied),
        section("Paired differences against the baseline (mean difference and interval)", extra["effects"], varied),
        section(f"Compared with {other.name if other else ''}: {other.title if other else ''}", extra["comparison"]),
        section("Features the heads trained on", pd.DataFrame(feature_rows)),
    ]
    page = study_page(study.title, study.question, text, variants, sections, summary, varied)
    write_text(outputs["html"], page)


def _weights_warnings(feature_rows):
    if all(row["imagenet"] for row in feature_rows):
        return []
    return [
        "The features were extracted with VGG16 weights that are not ImageNet's (their md5 differs:"
        " a stand-in, such as the offline demo's random weights), so these heads say nothing about"
        " transfer learning."
    ]


def _features_row(path):
    summary = json.loads(Path(path).read_text())
    return {"features": Path(path).stem, **summary}
