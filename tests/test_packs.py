"""Packs: several runs trained in one job and one process, through the real CLI."""

import json

import pandas as pd
import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config

# Broken only where a pack trains (its threads), not where the plan checks the builder.
FLAKY_BUILDER = """
import threading
from pathlib import Path

from cnnreg.models import alexnet


def net(input_shape, base, dense, head, batch_norm, dropout, spatial_dropout):
    training = threading.current_thread() is not threading.main_thread()
    if batch_norm and training and Path("broken").exists():
        raise RuntimeError("the batch-normalized net is broken")
    return alexnet(input_shape, base, dense, head, batch_norm, dropout, spatial_dropout)
"""


def _project(folder, pack, model="alexnet"):
    folder.mkdir()
    write_config(
        folder,
        {
            "datasets": make_data(folder / "data"),
            "defaults": {**TINY_DEFAULTS, "model": model, "epochs": 3, "dropout": 0.3},
            "threads": 1,
            "pack": pack,
            "checkpoint_seconds": 0,
            "studies": {"bn": {"grid": {"batch_norm": [False, True]}, "datasets": ["skin"], "seeds": [0, 1]}},
        },
    )
    return folder


def _histories(project):
    return {
        path.parent.name: pd.read_csv(path).drop(columns="seconds")
        for path in sorted((project / "results" / "runs").glob("*/history.csv"))
    }


def _jobs(output, rule):
    return sum(line.strip() == f"rule {rule}:" for line in output.splitlines())


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("alone") / "p", {"runs": 1})
    snakemake(project, "--cores", "2")
    return project


def test_a_pack_is_one_job_and_its_runs_have_the_histories_they_have_alone(alone, tmp_path):
    packed = _project(tmp_path / "packed", {"runs": 4})
    plan = snakemake(packed, "-n", "--cores", "2").stdout
    assert _jobs(plan, "train") == 1, plan
    snakemake(packed, "--cores", "2")

    (manifest,) = (packed / "results" / "packs").glob("*.json")
    runs = json.loads(manifest.read_text())["runs"]
    expected, got = _histories(alone), _histories(packed)
    assert sorted(runs) == sorted(got) == sorted(expected) and len(got) == 4
    for run, history in got.items():
        pd.testing.assert_frame_equal(history, expected[run])
        assert json.loads((packed / "results" / "runs" / run / "metrics.json").read_text())["pack"] == manifest.stem
    assert len(list((alone / "results" / "packs").glob("*.json"))) == 4


def test_a_failing_run_keeps_its_pack_mates_work_and_the_next_attempt_reuses_it(alone, tmp_path):
    project = _project(tmp_path / "flaky", {"runs": 4}, model="flaky:net")
    (project / "flaky.py").write_text(FLAKY_BUILDER)
    (project / "broken").touch()
    failed = snakemake(project, "--cores", "2", check=False)
    assert failed.returncode != 0
    (log,) = (project / "logs" / "train").glob("*.log")
    assert "2 of the 4 runs of pack" in log.read_text() and "the batch-normalized net is broken" in log.read_text()
    finished = _histories(project)
    assert len(finished) == 2 and not (project / "results" / "packs" / f"{log.stem}.json").exists()

    (project / "broken").unlink()
    snakemake(project, "--cores", "2")
    assert "reusing 2 finished run(s)" in log.read_text()
    histories = _histories(project)
    assert len(histories) == 4
    for run, history in finished.items():
        pd.testing.assert_frame_equal(histories[run], history)


def test_a_forced_pack_trains_its_runs_again(alone):
    before = {path: path.stat().st_mtime_ns for path in (alone / "results" / "runs").glob("*/model.keras")}
    snakemake(alone, "--cores", "2", "--forcerun", "train")
    assert all(path.stat().st_mtime_ns > mtime for path, mtime in before.items())
    assert not any("reusing" in log.read_text() for log in (alone / "logs" / "train").glob("*.log"))
