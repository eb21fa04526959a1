"""End to end for lab tasks 4-10 at tiny scale: VGG16 grid read at two epochs, augmentation
effects, transfer heads on features extracted once, galleries, Grad-CAM, and the report."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg.weights import write_random_weights

pytestmark = pytest.mark.workflow

TINY_VGG = {"model": "vgg16", "base": 2, "head": "softmax"}
TITLES = {
    "vgg_grid": "Tiny VGG16 grid",
    "augmentation": "Tiny augmentation",
    "transfer": "Tiny transfer",
    "explain": "Tiny Grad-CAM",
}

#: The lab sheet's order; "augmentation" keeps the generic answer (it names no answer kind).
SHEET = ["vgg_grid", "augmentation_gallery", "augmentation", "transfer", "explain"]


def lab_config(root, weights):
    return {
        "datasets": make_data(root / "data"),
        "defaults": TINY_DEFAULTS,
        "threads": 1,
        "imagenet_weights": str(weights),
        "studies": {
            "vgg_grid": {
                "title": TITLES["vgg_grid"],
                "set": {**TINY_VGG, "epochs": 3},
                "grid": {"batch_norm": [False, True], "spatial_dropout": [0.0, 0.1]},
                "at_epochs": [2, 3],
                "answer": "best_combination",
                "datasets": ["skin"],
                "seeds": [0],
            },
            "augmentation": {
                "title": TITLES["augmentation"],
                "question": "Does augmentation help?",
                "set": {"channels": 3},
                "grid": {"augment": ["none", "lab"]},
                "baseline": {"augment": "none"},
                "datasets": ["skin"],
                "seeds": [0, 1],
            },
            "transfer": {
                "title": TITLES["transfer"],
                "set": {"model": "vgg16_imagenet", "dense": [8], "dropout": 0.5, "channels": 3, "epochs": 3},
                "compare_with": "augmentation",
                "answer": "transfer",
                "datasets": ["skin"],
                "seeds": [0, 1],
            },
            "explain": {
                "title": TITLES["explain"],
                "set": TINY_VGG,
                "gradcam": True,
                "answer": "attention",
                "datasets": ["bone"],
                "seeds": [0],
            },
        },
        "lab_sheet": SHEET,
        "augmentation_gallery": {
            "datasets": ["skin"],
            "samples": 2,
            "generator": {"rotation_range": 40, "horizontal_flip": True, "fill_mode": ["constant", "wrap"]},
        },
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    weights = write_random_weights(root / "weights" / "vgg16-random.weights.h5", seed=1)
    config = lab_config(root, weights)
    write_config(root, config)
    first = snakemake(root, "--cores", "2")
    snakemake(root, "--report", "results/report.html")
    return {"root": root, "config": config, "log": first.stdout + first.stderr}


def job_counts(log):
    """Snakemake's 'Job stats' table: rule → number of jobs."""
    table = log.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_features_are_extracted_once_for_every_head_run(project):
    counts = job_counts(project["log"])
    assert counts["extract_features"] == 1
    assert counts["train"] == 4 + 4 + 2 + 1
    runs = pd.read_csv(project["root"] / "results/runs.tsv", sep="\t")
    heads = runs[runs["model"] == "vgg16_imagenet"]
    assert len(heads) == 2
    for run in heads["run"]:
        metrics = json.loads((project["root"] / "results/runs" / run / "metrics.json").read_text())
        assert metrics["epochs_run"] == 3
    features = json.loads((project["root"] / "results/features/skin-32x32x3.json").read_text())
    assert features["imagenet"] is False


def test_other_weights_extract_the_features_and_train_the_heads_again(project):
    weights = Path(project["config"]["imagenet_weights"])
    write_random_weights(weights, seed=2)
    counts = job_counts(snakemake(project["root"], "-n").stdout)
    assert counts["extract_features"] == 1 and counts["train"] == 2  # the two heads, nothing else


def test_vgg_grid_is_ranked_at_each_epoch_read(project):
    variants = pd.read_csv(project["root"] / "results/studies/vgg_grid/final.csv")
    assert sorted(set(variants["at_epoch"])) == [2, 3]
    assert len(variants) == 4 * 2
    answer = (project["root"] / "results/studies/vgg_grid/answer.txt").read_text()
    for at_epoch, group in variants.groupby("at_epoch"):
        ranked = group[~group["did_not_learn"]]
        assert list(ranked["rank"]) == list(ranked["best_val_accuracy_mean"].rank(ascending=False, method="min"))
        assert group.loc[group["did_not_learn"], "rank"].isna().all()
        verdict = "the best combination is" if len(ranked) else "no combination learned"  # may stay at chance
        assert f"On skin after {at_epoch} epochs, {verdict}" in answer


def test_augmentation_effect_and_transfer_comparison(project):
    answer = (project["root"] / "results/studies/augmentation/answer.txt").read_text()
    assert "augment=lab against augment=none (paired by seed, n = 2 pairs)" in answer
    page = (project["root"] / "results/studies/transfer/summary.html").read_text()
    assert "Compared with augmentation" in page
    assert "Features the heads trained on" in page
    transfer = json.loads((project["root"] / "results/studies/transfer/answer.json").read_text())
    assert transfer["kind"] == "transfer"
    scratch = "AlexNet from scratch (augmentation, " in transfer["text"]  # its best variant, if one learned
    assert scratch or "no variant of augmentation learned" in transfer["text"]
    assert "not ImageNet" in transfer["text"]
    generic = json.loads((project["root"] / "results/studies/augmentation/answer.json").read_text())
    assert generic["kind"] == "generic" and generic["text"] == answer.strip()


def test_the_lab_sheet_walks_the_tasks_in_order(project):
    page = (project["root"] / "results/lab_sheet.html").read_text()
    sections = re.findall(r"<section id='([^']+)'>(.*?)</section>", page, flags=re.DOTALL)
    assert [name for name, _ in sections] == SHEET
    for name, body in sections:
        assert "<b>Question.</b>" in body and "<b>Answer</b>" in body, name
        assert re.search(r"<li>[^<]{20,}</li>", body), name  # an answer of some length
        assert "src='data:image/png;base64,iVBORw0KGgo" in body, name  # its figure, embedded
    explain = dict(sections)["explain"]
    assert "the pointing game" in explain and "description (no comparison to settle)" in explain
    assert "the original is 40×40" in dict(sections)["augmentation_gallery"]
    assert "href='studies/vgg_grid/summary.html'" in page
    assert "<b>Generated data.</b> The images of skin and bone were generated" in page  # cnnreg.synthetic's


def test_galleries_have_one_panel_per_parameter_and_their_data(project):
    folder = project["root"] / "results/augmentation/skin"
    panels = pd.read_csv(folder / "skimage.csv")
    # original, 2 scales, 3 angles with and without resize, 2 percentile pairs (the defaults)
    assert len(panels) == 1 + 2 + 3 * 2 + 2
    assert set(panels["operation"]) == {"original", "rescale", "rotate", "rescale_intensity"}
    rows = json.loads((folder / "generator.json").read_text())["rows"]
    assert len(rows) == 1 + 1 + 2  # rotation, flip, two fill modes
    assert (folder / "skimage.png").stat().st_size > 0 and (folder / "generator.png").stat().st_size > 0


def test_gradcam_outputs_follow_the_contract(project):
    runs = pd.read_csv(project["root"] / "results/runs.tsv", sep="\t")
    (run,) = runs.loc[runs["studies"].str.contains("explain"), "run"]
    folder = project["root"] / "results/gradcam" / run
    with np.load(folder / "cams.npz") as cams:
        assert {"files", "label", "pred", "prob", "gradcam", "gradcam_pp", "layer"} <= set(cams.files)
        n = len(cams["files"])
        assert n == 12  # validation images of the tiny bone set
        for method in ("gradcam", "gradcam_pp"):
            assert cams[method].shape == (n, 32, 32)
            assert cams[method].min() >= 0 and cams[method].max() <= 1
        assert str(cams["layer"]) == "block5_3_relu"  # the rectified output of Last_ConvLayer
    summary = json.loads((folder / "summary.json").read_text())
    assert "gradcam" in summary and "gradcam_pp" in summary
    table = pd.read_csv(folder / "gradcam.csv")
    assert len(table) == n
    assert (folder / "gallery.png").stat().st_size > 0


def test_report_has_a_section_per_task(project):
    html = (project["root"] / "results/report.html").read_text()
    for title in TITLES.values():
        assert title in html
    assert "Task 5: augmentation galleries" in html
    assert "0. Lab sheet" in html
    assert html.count("iVBORw0KGgo") >= 4 * 2 + 2 + 1  # curves and final per study, galleries, Grad-CAM


def test_missing_weights_stop_the_graph_before_any_job_and_spare_other_targets(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16.h5"
    config = lab_config(tmp_path, missing)
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "--cores", "1", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(missing) in output
    assert "imagenet_weights" in output and "python -m cnnreg.weights stage" in output
    assert not (tmp_path / "results").exists()  # no job ran
    dry = snakemake(tmp_path, "-n")  # the whole graph, with a warning
    assert str(missing) in dry.stdout + dry.stderr
    assert re.search(r"^extract_features\s+1$", dry.stdout, flags=re.MULTILINE), dry.stdout
    others = [f"results/studies/{study}/summary.csv" for study in ("vgg_grid", "augmentation", "explain")]
    dry = snakemake(tmp_path, "-n", *others)
    assert "extract_features" not in dry.stdout
