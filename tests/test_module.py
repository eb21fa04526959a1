"""cnnreg used as a Snakemake module from a folder of one's own, with a path to this checkout."""

import subprocess

import pandas as pd
import pytest
from workflow_helpers import REPO, SNAKEMAKE, TINY_DEFAULTS, make_data, write_config

pytestmark = pytest.mark.workflow

USING_SNAKEFILE = f"""\
configfile: "config/config.yaml"


module cnnreg:
    snakefile:
        "{REPO / "workflow" / "Snakefile"}"
    config:
        config


use rule * from cnnreg
"""


def test_a_tiny_study_runs_from_a_separate_folder(tmp_path):
    (tmp_path / "Snakefile").write_text(USING_SNAKEFILE)
    write_config(
        tmp_path,
        {
            "datasets": make_data(tmp_path / "data"),
            "defaults": {**TINY_DEFAULTS, "epochs": 1},
            "threads": 1,
            "studies": {"mine": {"grid": {"batch_norm": [False, True]}, "datasets": ["bone"], "seeds": [0]}},
        },
    )
    for args in (["--cores", "2"], ["--report", "results/report.html"]):
        result = subprocess.run([str(SNAKEMAKE), *args], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
    runs = pd.read_csv(tmp_path / "results" / "runs.tsv", sep="\t")
    assert len(runs) == 2 and set(runs["dataset"]) == {"bone"}
    for run in runs["run"]:
        assert len(pd.read_csv(tmp_path / "results" / "runs" / run / "history.csv")) == 1
    assert (tmp_path / "results" / "studies" / "mine" / "summary.csv").exists()
    assert "mine" in (tmp_path / "results" / "report.html").read_text()
    assert not (REPO / "results" / "studies" / "mine").exists()  # everything lands in the user's folder
