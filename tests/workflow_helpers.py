"""Run the real snakemake CLI on a small project folder (config/config.yaml + generated data)."""

import subprocess
import sys
from pathlib import Path

import yaml

from cnnreg.synthetic import make_demo_datasets

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

TINY_DEFAULTS = {
    "model": "alexnet",
    "base": 4,
    "dense": [8, 8],
    "head": "sigmoid",
    "batch_norm": False,
    "dropout": 0.0,
    "spatial_dropout": 0.0,
    "lr": 1.0e-3,
    "optimizer": "adam",
    "batch_size": 8,
    "epochs": 2,
    "image_size": [32, 32],
    "channels": 1,
    "augment": "none",
}


def make_data(folder, n_train=12, n_val=6, size=40):
    """Small demo datasets (Skin, Bone) in the real layout under ``folder``."""
    make_demo_datasets(folder, n_train=n_train, n_val=n_val, size=size, seed=3)
    return {
        "skin": {"path": str(folder / "Skin"), "classes": ["Mel", "Nevi"]},
        "bone": {"path": str(folder / "Bone"), "classes": ["AFF", "NFF"]},
    }


def write_config(project, config):
    """The project's config/config.yaml; its GPU jobs may run on the CPU unless `config` says."""
    (project / "config").mkdir(parents=True, exist_ok=True)
    config = {"allow_cpu": True, **config}
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(project, *args, check=True, timeout=900, background=False):
    """Run ``snakemake`` on the repository's Snakefile with ``project`` as working directory."""
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(project), *args]
    if background:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def move_to_test(root, per_class):
    """Give a dataset folder a held-out ``test/`` split: the last `per_class` training images of
    every class move there."""
    root = Path(root)
    for folder in sorted((root / "train").iterdir()):
        for image in sorted(folder.iterdir())[-per_class:]:
            target = root / "test" / folder.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            image.rename(target)
    return root
