rule summarize_study:
    """Per-study tables, learning curves and the lab question's answer, each figure with its CSV."""
    input:
        packs=study_packs,
        features=study_features,
        gradcam=study_gradcam,
    output:
        summary=report(
            paths.study_file("{study}", "summary.csv"),
            caption="../report/summary.rst",
            category=study_category,
            labels=report_labels("summary table (CSV)"),
        ),
        html=report(
            paths.study_file("{study}", "summary.html"),
            caption="../report/summary.rst",
            category=study_category,
            labels=report_labels("summary table"),
        ),
        curves=report(
            paths.study_file("{study}", "curves.png"),
            caption="../report/curves.rst",
            category=study_category,
            labels=report_labels("learning curves"),
        ),
        curves_csv=paths.study_file("{study}", "curves.csv"),
        final=report(
            paths.study_file("{study}", "final.png"),
            caption="../report/final.rst",
            category=study_category,
            labels=report_labels("validation accuracy per variant"),
        ),
        final_csv=paths.study_file("{study}", "final.csv"),
        answer=paths.study_file("{study}", "answer.txt"),
        answer_json=paths.study_file("{study}", "answer.json"),
    log:
        "logs/summarize_study/{study}.log",
    localrule: True
    conda:
        "../envs/cnnreg.yaml"
    params:
        study=lambda wildcards: PLAN.studies[wildcards.study].as_dict(),
        runs=study_runs,
        run_dirs=study_run_dirs,
        other=compared_study,
        code=CODE["aggregate"],
    script:
        "../scripts/summarize_study.py"


rule runs_metrics:
    """Every run, every parameter, its studies, and its final, best and test metrics."""
    input:
        packs=[paths.pack(pack) for pack in PACKS],
    output:
        report(
            paths.RUNS_METRICS,
            caption="../report/runs_metrics.rst",
            category="All runs",
        ),
    log:
        "logs/runs_metrics.log",
    localrule: True
    conda:
        "../envs/cnnreg.yaml"
    params:
        plan=PLAN.as_dict(),
        run_dirs={run: paths.run_dir(run) for run in PLAN.runs},
        positive_classes=positive_classes(),
        code=CODE["aggregate"],
    script:
        "../scripts/runs_metrics.py"


rule lab_sheet:
    """The lab write-up: each task's question, answer and figure, in task order, on one page."""
    input:
        sheet_inputs(SHEET_SECTIONS),
    output:
        report(
            paths.LAB_SHEET,
            caption="../report/lab_sheet.rst",
            category=LAB_SHEET_CATEGORY,
        ),
    log:
        "logs/lab_sheet.log",
    localrule: True
    conda:
        "../envs/cnnreg.yaml"
    params:
        sections=SHEET_SECTIONS,
        datasets={name: spec["path"] for name, spec in config["datasets"].items()},
        code=CODE["aggregate"],
    script:
        "../scripts/lab_sheet.py"
