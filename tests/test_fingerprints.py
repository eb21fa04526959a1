"""Through the real snakemake CLI: a result is reused only if it was made from the same inputs.

The project runs on a copy of the library (first on PYTHONPATH), so that a test can change the
training or plotting code the way a developer would, without touching the checkout.
"""

import ast
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO, TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg.fingerprint import CODE_OF, DECIDE_NOTHING

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A finished one-run project that uses its own copy of the library."""
    root = tmp_path_factory.mktemp("fingerprints")
    shutil.copytree(REPO / "src" / "cnnreg", root / "lib" / "cnnreg", ignore=shutil.ignore_patterns("__pycache__"))
    write_config(
        root,
        {
            "datasets": make_data(root / "data"),
            "defaults": TINY_DEFAULTS,
            "threads": 1,
            "studies": {"one": {"datasets": ["skin"], "seeds": [0]}},
        },
    )
    run(root, "--cores", "1")
    (run_dir,) = (root / "results" / "runs").iterdir()
    return {"root": root, "run": run_dir.name, "run_dir": run_dir}


def run(root, *args):
    """snakemake with the project's copy of the library first on the path (and then as it was)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "lib"), before]))
    try:
        return snakemake(root, *args)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def planned(root, *args):
    """Job counts of a dry run, by rule, and its full output."""
    result = run(root, "-n", *args)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}, result.stdout


def trained_seconds(project):
    return pd.read_csv(project["run_dir"] / "history.csv")["seconds"].tolist()


def test_nothing_is_rerun_when_nothing_changed(project):
    assert planned(project["root"])[0] == {}


def test_a_forced_rerun_trains_again(project):
    before = trained_seconds(project)
    run(project["root"], "--cores", "1", "-f", f"results/packs/{project['run']}.json")  # a pack of one run
    assert trained_seconds(project) != before  # new timings: the epochs ran again
    log = (project["root"] / "logs" / "train" / f"{project['run']}.log").read_text()
    assert "resuming" not in log
    assert not (project["run_dir"] / "resume").exists()


def test_changed_images_rebuild_the_cache_and_retrain(project):
    root = project["root"]
    mel = root / "data" / "Skin" / "train" / "Mel"
    added = mel / "zz-added.png"
    shutil.copy(sorted(mel.iterdir())[0], added)
    jobs, output = planned(root)
    assert jobs.get("prepare_data") == 1 and jobs.get("train") == 1, output
    assert "Params have changed" in output or "params" in output.lower()
    run(root, "--cores", "1")
    (cache,) = (root / "results" / "data").glob("skin-*.npz")
    with np.load(cache) as arrays:
        assert "train/Mel/zz-added.png" in arrays["files_train"]
    added.unlink()
    assert planned(root)[0].get("prepare_data") == 1  # removing it rebuilds the cache again
    run(root, "--cores", "1")


def test_changed_training_code_reruns_training_and_changed_plotting_only_aggregation(project):
    root = project["root"]
    for module, expected, absent in (("train.py", "train", "prepare_data"), ("plots.py", "summarize_study", "train")):
        source = root / "lib" / "cnnreg" / module
        original = source.read_text()
        source.write_text(original + "\n# a change\n")
        try:
            jobs, output = planned(root)
        finally:
            source.write_text(original)
        assert jobs.get(expected) == 1 and absent not in jobs, output
    assert planned(root)[0] == {}  # the code as it was: its results are current again


def test_changed_parameters_train_a_new_run(project):
    root = project["root"]
    override = root / "config" / "lr.yaml"
    override.write_text(yaml.safe_dump({"defaults": {"lr": 0.01}}))
    jobs, output = planned(root, "--configfile", str(root / "config" / "config.yaml"), str(override))
    assert jobs.get("train") == 1, output


def cnnreg_imports(module):
    """The cnnreg modules `module` imports (at any depth of its source)."""
    tree = ast.parse((REPO / "src" / "cnnreg" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnreg."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "cnnreg":
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("kind", sorted(CODE_OF))
def test_a_jobs_code_digest_covers_every_module_it_imports(kind):
    # A module left out would let its change reuse results made by the old code.
    closure, todo = set(CODE_OF[kind]), list(CODE_OF[kind])
    while todo:
        for imported in cnnreg_imports(todo.pop()) - closure:
            closure.add(imported)
            todo.append(imported)
    assert sorted(closure - set(CODE_OF[kind]) - set(DECIDE_NOTHING)) == []
    assert not set(CODE_OF[kind]) & set(DECIDE_NOTHING)
