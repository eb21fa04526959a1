"""End to end: the real snakemake CLI on a tiny config, every output contract, the report."""

import json
import re

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg.studies import PARAMETERS

pytestmark = pytest.mark.workflow

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
METRICS_KEYS = {
    "run", "params", "final", "best", "generalization_gap", "val_auc", "confusion_matrix", "epochs_run",
    "wall_seconds", "train_images_per_second", "device", "versions", "seed",
}  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A finished tiny workflow: 2 studies sharing one run, 2 seeds, 2 epochs, 32x32, and its report."""
    root = tmp_path_factory.mktemp("project")
    config = {
        "datasets": make_data(root / "data"),
        "defaults": TINY_DEFAULTS,
        "threads": 1,
        "studies": {
            "tiny_bn": {
                "title": "Tiny batch norm",
                "question": "Does batch norm help?",
                "grid": {"batch_norm": [False, True]},
                "baseline": {"batch_norm": False},
                "datasets": ["skin"],
                "seeds": [0, 1],
            },
            "tiny_shared": {
                "title": "Tiny shared",
                "variants": [{"batch_norm": True}, {"batch_norm": True, "dropout": 0.4}],
                "datasets": ["skin"],
                "seeds": [1],
            },
        },
    }
    write_config(root, config)
    first = snakemake(root, "--cores", "2")
    report = snakemake(root, "--report", "results/report.html")
    again = snakemake(root, "--cores", "2")
    return {"root": root, "config": config, "first": first, "report": report, "again": again}


def test_one_train_job_per_unique_run(project):
    runs = pd.read_csv(project["root"] / "results/runs.tsv", sep="\t")
    # tiny_bn: 2 variants x 2 seeds; tiny_shared: 2 runs, one of which (batch_norm, seed 1) is in tiny_bn.
    assert len(runs) == 5
    assert list(runs.columns) == ["run", *PARAMETERS, "studies"]
    shared = runs[runs["studies"] == "tiny_bn,tiny_shared"]
    assert len(shared) == 1 and shared["batch_norm"].item() and shared["seed"].item() == 1
    log = project["first"].stdout + project["first"].stderr
    assert re.search(r"^train\s+5$", log, flags=re.MULTILINE)
    assert len(list((project["root"] / "results/runs").iterdir())) == 5


def test_run_outputs_meet_their_contracts(project):
    root = project["root"]
    runs = pd.read_csv(root / "results/runs.tsv", sep="\t")
    for run in runs["run"]:
        folder = root / "results/runs" / run
        history = pd.read_csv(folder / "history.csv")
        metrics = json.loads((folder / "metrics.json").read_text())
        params = yaml.safe_load((folder / "params.yaml").read_text())
        assert list(history.columns) == HISTORY_COLUMNS
        assert history["epoch"].tolist() == [1, 2]
        assert history[["loss", "accuracy", "val_loss", "val_accuracy"]].notna().all().all()
        assert history["lr"].to_numpy() == pytest.approx([1e-3, 1e-3]) and (history["seconds"] > 0).all()
        assert set(metrics) >= METRICS_KEYS
        assert metrics["run"] == run and metrics["params"] == params and metrics["seed"] == params["seed"]
        assert metrics["final"]["val_accuracy"] == pytest.approx(history["val_accuracy"].iloc[-1])
        assert metrics["best"]["val_accuracy"] == pytest.approx(history["val_accuracy"].max())
        assert metrics["generalization_gap"] == pytest.approx(
            history["accuracy"].iloc[-1] - history["val_accuracy"].iloc[-1]
        )
        matrix = np.array(metrics["confusion_matrix"]["matrix"])
        assert matrix.shape == (2, 2) and matrix.sum() == 12  # 6 validation images per class
        assert metrics["epochs_run"] == 2 and metrics["device"] == "CPU"
        assert not (folder / "resume").exists()  # a finished run keeps no checkpoint
        assert set(metrics["fingerprint"]) == {"params", "data", "weights", "code"}
        model = keras.models.load_model(folder / "model.keras")
        assert model.input_shape == (None, 32, 32, 1)
        assert (root / "logs/train" / f"{run}.log").read_text().count("epoch ") == 2
        assert (root / "benchmarks/train" / f"{run}.tsv").exists()


def test_summary_numbers_match_the_histories(project):
    root = project["root"]
    summary = pd.read_csv(root / "results/studies/tiny_bn/summary.csv")
    assert len(summary) == 4 and set(summary["variant"]) == {"batch_norm=False", "batch_norm=True"}
    for _, row in summary.iterrows():
        history = pd.read_csv(root / "results/runs" / row["run"] / "history.csv")
        assert row["final_accuracy"] == pytest.approx(history["accuracy"].iloc[-1])
        assert row["best_val_accuracy"] == pytest.approx(history["val_accuracy"].max())
    for _, group in summary.groupby("variant"):
        values = group["final_val_accuracy"].to_numpy()
        first = group.iloc[0]
        assert first["final_val_accuracy_mean"] == pytest.approx(values.mean())
        # Two seeds: their range, not a t-interval (t = 12.7 would leave [0, 1]).
        assert (first["final_val_accuracy_low"], first["final_val_accuracy_high"]) == pytest.approx(
            (values.min(), values.max())
        )
        assert first["final_val_accuracy_interval"] == "range" and first["final_val_accuracy_n"] == 2
    # Task 1b's question: when does each run reach the baseline's mean final training accuracy?
    reference = summary.loc[summary["variant"] == "batch_norm=False", "final_accuracy"].mean()
    assert summary["reference_accuracy"].to_numpy() == pytest.approx(np.full(4, reference))
    for _, row in summary.iterrows():
        history = pd.read_csv(root / "results/runs" / row["run"] / "history.csv")
        reached = history.loc[history["accuracy"] >= reference - 1e-9, "epoch"]
        expected = reached.iloc[0] if len(reached) else np.nan
        assert row["epoch_reached_reference"] == pytest.approx(expected, nan_ok=True)
    curves = pd.read_csv(root / "results/studies/tiny_bn/curves.csv")
    assert len(curves) == 2 * 2 * 2 * 2  # variants x metrics x splits x epochs
    answer = (root / "results/studies/tiny_bn/answer.txt").read_text()
    assert "batch_norm=True" in answer and "first reached the final training accuracy" in answer


def test_every_figure_has_its_data_beside_it(project):
    for study in ("tiny_bn", "tiny_shared"):
        folder = project["root"] / "results/studies" / study
        for figure in ("curves", "final"):
            assert (folder / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert len(pd.read_csv(folder / f"{figure}.csv")) > 0
        assert "Measured answer" in (folder / "summary.html").read_text()


def test_runs_metrics_table_has_every_run_with_its_results(project):
    root = project["root"]
    table = pd.read_csv(root / "results/runs_metrics.tsv", sep="\t").set_index("run")
    runs = pd.read_csv(root / "results/runs.tsv", sep="\t").set_index("run")
    assert set(table.index) == set(runs.index)
    assert (table["studies"] == runs.loc[table.index, "studies"]).all()
    assert {*PARAMETERS, "best_val_accuracy", "best_epoch", "learned", "val_sensitivity", "val_auc_low"} <= set(
        table.columns
    )
    for run, row in table.iterrows():
        history = pd.read_csv(root / "results/runs" / run / "history.csv")
        predictions = pd.read_csv(root / "results/runs" / run / "predictions.csv")
        best = predictions[(predictions["split"] == "validation") & (predictions["model"] == "best")]
        assert row["best_val_accuracy"] == pytest.approx(history["val_accuracy"].max())
        assert row["val_accuracy"] == pytest.approx((best["label"] == best["prediction"]).mean())
        positives = best[best["label"] == 0]  # no positive_class: the first class
        assert row["val_sensitivity"] == pytest.approx((positives["prediction"] == 0).mean())
    html = (root / "results/report.html").read_text()
    assert "runs_metrics.tsv" in html


def test_report_embeds_figures_and_answers(project):
    html = (project["root"] / "results/report.html").read_text()
    assert html.count("iVBORw0KGgo") >= 4  # base64 PNG signature: curves + final of both studies
    assert "Tiny batch norm" in html and "Does batch norm help?" in html
    assert "first reached the final training accuracy" in html


def test_second_invocation_reruns_nothing(project):
    assert "Nothing to be done" in project["again"].stdout + project["again"].stderr


def test_finished_results_need_no_data(project):
    """With the data gone, the finished workflow is up to date and its report can be made."""
    root = project["root"]
    (root / "data").rename(root / "data-away")
    try:
        assert "Nothing to be done" in snakemake(root, "--dry-run").stdout
        snakemake(root, "--report", "results/report-without-data.html")
    finally:
        (root / "data-away").rename(root / "data")
    assert (root / "results/report-without-data.html").stat().st_size > 100_000


def test_a_changed_study_reruns_what_reads_it(project):
    """Studies reach the aggregation jobs as params; a change to one must rerun exactly its jobs."""
    root = project["root"]
    studies = project["config"]["studies"]
    changed = {
        "studies": {
            "tiny_bn": {**studies["tiny_bn"], "baseline": {"batch_norm": True}},
            # A new study of an existing run: nothing to train, but runs.tsv lists it.
            "tiny_again": {"variants": [{"batch_norm": True}], "datasets": ["skin"], "seeds": [1]},
        }
    }
    (root / "changed.yaml").write_text(yaml.safe_dump(changed))
    config_files = [str(root / "config" / "config.yaml"), str(root / "changed.yaml")]
    planned = snakemake(root, "-n", "--configfile", *config_files).stdout
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", planned.split("Job stats:")[1].split("Reasons:")[0], re.MULTILINE))
    assert jobs.get("train") is None  # no run changed
    assert jobs["summarize_study"] == "2"  # tiny_bn's baseline and the new tiny_again; not tiny_shared
    assert jobs["run_table"] == jobs["runs_metrics"] == "1"
    tiny_bn = next(block for block in planned.split("\n\n") if "wildcards: study=tiny_bn" in block)
    assert re.search(r"reason: .*Params have changed", tiny_bn), tiny_bn
