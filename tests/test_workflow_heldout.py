"""Through the real snakemake CLI: a held-out test split is predicted, never trained on, and a
study with ``folds: 3`` trains one run per fold of train + validation."""

import json

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, move_to_test, snakemake, write_config

from cnnreg.data import load_cache

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A finished tiny project: skin with a test split (one run), bone in 3 folds (three runs)."""
    root = tmp_path_factory.mktemp("heldout")
    datasets = make_data(root / "data")
    move_to_test(datasets["skin"]["path"], 3)
    config = {
        "datasets": datasets,
        "defaults": TINY_DEFAULTS,
        "threads": 1,
        "studies": {
            "held": {"datasets": ["skin"], "seeds": [0]},
            "cv": {"folds": 3, "datasets": ["bone"], "seeds": [0]},
        },
    }
    write_config(root, config)
    snakemake(root, "--cores", "2")
    runs = pd.read_csv(root / "results/runs.tsv", sep="\t")
    return {"root": root, "runs": runs}


def _folder(project, run):
    return project["root"] / "results/runs" / run


def test_a_test_split_gets_test_rows_from_the_best_model(project):
    (run,) = project["runs"].loc[project["runs"]["studies"] == "held", "run"]
    folder = _folder(project, run)
    cache = load_cache(project["root"] / "results/data/skin-32x32x1.npz")
    predictions = pd.read_csv(folder / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    assert set(test["model"]) == {"best"} and test["file"].tolist() == cache.files_test.tolist()
    assert len(cache.files_test) == 6 and not set(cache.files_test) & set(cache.files_train)
    assert (predictions[predictions["split"] == "validation"].groupby("model").size() == 12).all()
    np.testing.assert_allclose(predictions[["prob_0", "prob_1"]].sum(axis=1), 1, rtol=1e-12)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["n"] == 6 and metrics["best_model"]["epoch"] == metrics["best"]["epoch"]
    assert (folder / "best.keras").is_file()


def test_folds_make_one_run_each_with_its_own_fold_and_history(project):
    runs = project["runs"][project["runs"]["studies"] == "cv"]
    assert sorted(runs["fold"]) == [0, 1, 2] and set(runs["folds"]) == {3} and len(set(runs["run"])) == 3
    cache = load_cache(project["root"] / "results/data/bone-32x32x1.npz")
    pooled = set(cache.files_train) | set(cache.files_val)
    validated, digests = [], set()
    for run in runs["run"]:
        folder = _folder(project, run)
        assert pd.read_csv(folder / "history.csv")["epoch"].tolist() == [1, 2]
        predictions = pd.read_csv(folder / "predictions.csv")
        assert set(predictions["split"]) == {"validation"}  # bone has no test split
        validated.append(set(predictions.loc[predictions["model"] == "final", "file"]))
        digests.add(json.loads((folder / "metrics.json").read_text())["fingerprint"]["data"])
    assert len(digests) == 3  # each fold trains on its own arrays
    assert set().union(*validated) == pooled and sum(map(len, validated)) == len(pooled)  # disjoint, covering
    assert all(len(files) == len(pooled) // 3 for files in validated)  # 36 images, 12 per fold
