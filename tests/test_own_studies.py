"""Your own data and studies, through the CLI: a config file of your own replaces the lab's."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from image_helpers import write_image
from workflow_helpers import REPO, TINY_DEFAULTS, snakemake

pytestmark = pytest.mark.workflow

CLASSES = ["Normal", "Pneumonia"]


def write_chest_images(root, per_class=8):
    """A two-class dataset that is not the lab's: bright and dark noisy 40x40 images."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        for label, (name, mean) in enumerate(zip(CLASSES, (170, 80), strict=True)):
            for i in range(per_class):
                image = np.clip(rng.normal(mean, 30, (40, 40)), 0, 255).astype(np.uint8)
                write_image(root / split / name / f"{name}_{label}{i:03d}.png", image)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The lab's config/config.yaml in place, its data absent, and a config of one's own."""
    root = tmp_path_factory.mktemp("own")
    (root / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", root / "config" / "config.yaml")
    write_chest_images(root / "data" / "Chest")
    mine = {
        "datasets": {"chest": {"path": "data/Chest", "classes": CLASSES, "positive_class": "Pneumonia"}},
        "defaults": TINY_DEFAULTS,
        "threads": 1,
        "allow_cpu": True,
        "studies": {"chest_bn": {"grid": {"batch_norm": [False, True]}, "datasets": ["chest"], "seeds": [0]}},
    }
    (root / "mine.yaml").write_text(yaml.safe_dump(mine, sort_keys=False))
    snakemake(root, "--configfile", str(root / "mine.yaml"), "--cores", "2")
    return root


def test_your_config_runs_only_your_dataset_and_studies(project):
    runs = pd.read_csv(project / "results" / "runs.tsv", sep="\t")
    assert len(runs) == 2 and set(runs["dataset"]) == {"chest"} and set(runs["studies"]) == {"chest_bn"}
    assert [p.name for p in (project / "results" / "studies").iterdir()] == ["chest_bn"]
    summary = pd.read_csv(project / "results" / "studies" / "chest_bn" / "summary.csv")
    assert set(summary["batch_norm"]) == {False, True}
    # No answer kind: the generic answer; the lab sheet has the one study, and no generated-data note.
    answer = json.loads((project / "results" / "studies" / "chest_bn" / "answer.json").read_text())
    assert answer["kind"] == "generic" and answer["text"].startswith("On chest, ")
    sheet = (project / "results" / "lab_sheet.html").read_text()
    assert sheet.count("<section id=") == 1 and "<section id='chest_bn'>" in sheet
    assert "Generated data" not in sheet


def test_your_config_is_up_to_date_and_leaves_the_labs_alone(project):
    assert snakemake(project, "-n", "--configfile", str(project / "mine.yaml")).stdout.count("rule train") == 0
    assert (project / "config" / "config.yaml").read_bytes() == (REPO / "config" / "config.yaml").read_bytes()
    # Without a config file of one's own, the lab's is the config, and it needs the lab's data.
    lab = snakemake(project, "-n")
    assert "data/Skin does not exist" in lab.stdout + lab.stderr and "task1_batchnorm" in lab.stdout
