"""Config validation, the run plan, and the lookups every rule uses."""

import math
from pathlib import Path

from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from cnnreg.studies import ConfigError, build_plan


def validate_config(config):
    """Schema-check the config; re-raise with the offending key path first."""
    try:
        validate(config, workflow.source_path("../../config/schema.yaml"))
    except WorkflowError as error:
        cause = error.__context__
        if not isinstance(cause, ValidationError):
            raise
        key = ".".join(str(p) for p in cause.absolute_path) or "(top level)"
        raise WorkflowError(
            f"Invalid config: config key '{key}': {cause.message}"
        ) from None


def load_plan(config):
    """Expand the studies into runs; a semantic config error stops the workflow here."""
    try:
        return build_plan(config)
    except ConfigError as error:
        raise WorkflowError(f"Invalid config: {error}") from None


def check_dataset_folders(config, plan):
    """Stop before any job when a used dataset folder is missing, saying how to get one."""
    used = {params["dataset"] for params in plan.runs.values()}
    for name in sorted(used):
        root = Path(config["datasets"][name]["path"])
        missing = [
            p for p in (root, root / "train", root / "validation") if not p.is_dir()
        ]
        if missing:
            raise WorkflowError(
                f"Dataset '{name}': folder {missing[0]} does not exist (config key "
                f"'datasets.{name}.path' is {root}). Expected layout: "
                f"{root}/train/<class>/<images> and {root}/validation/<class>/<images>, "
                "with the same class folders in both. Put the data there or change the path; "
                "to try the workflow on generated demo data instead, run `make demo`."
            )


validate_config(config)
PLAN = load_plan(config)
check_dataset_folders(config, PLAN)


def cache_path(params):
    """The decoded-dataset cache a run reads."""
    height, width = params["image_size"]
    return f"results/data/{params['dataset']}-{height}x{width}x{params['channels']}.npz"


def run_cache(wildcards):
    return cache_path(PLAN.runs[wildcards.run])


def run_params(wildcards):
    return PLAN.runs[wildcards.run]


# Generous GPU seconds per epoch of 1000 images at 128x128 and the lab's base width; a run's
# estimate scales with its pixels and base. Used only to size SLURM time limits.
EPOCH_SECONDS = {"alexnet": (8, 6.0), "vgg16": (32, 30.0)}


def train_runtime(wildcards, attempt):
    """SLURM time limit in minutes, estimated from the run's size and grown per attempt.

    A job that hits its limit is resubmitted (the profile's `retries`) with a longer one and
    resumes from its last finished epoch.
    """
    params = PLAN.runs[wildcards.run]
    lab_base, seconds = EPOCH_SECONDS[params["model"]]
    height, width = params["image_size"]
    scale = (height * width) / 128**2 * max(1.0, params["base"] / lab_base)
    return attempt * math.ceil(10 + params["epochs"] * seconds * scale / 60)


def train_mem_mb(wildcards, attempt):
    """Host memory for TensorFlow and a decoded dataset of the lab's size, grown per attempt."""
    return attempt * 8000


def dataset_folder(wildcards):
    return config["datasets"][wildcards.dataset]["path"]


def dataset_classes(wildcards):
    return config["datasets"][wildcards.dataset].get("classes")


def study_run_files(name):
    """Input function: ``name`` (history.csv, metrics.json) of every run of the study."""

    def files(wildcards):
        runs = PLAN.studies[wildcards.study].runs
        return [f"results/runs/{run}/{name}" for run in runs]

    return files


def study_runs(wildcards):
    study = PLAN.studies[wildcards.study]
    return {run: PLAN.runs[run] for run in study.runs}


def study_title(wildcards):
    return PLAN.studies[wildcards.study].title


def report_labels(item):
    """Report labels of a study's item, with the answer computed from its runs.

    Labels are evaluated when the report is built, after the answer file exists.
    """

    def labels(wildcards, output):
        return {"item": item, "answer": Path(output.answer).read_text().strip()}

    return labels


def all_targets():
    summaries = expand(
        "results/studies/{study}/{file}",
        study=PLAN.studies,
        file=["summary.csv", "summary.html", "curves.png", "final.png"],
    )
    return ["results/runs.tsv", *summaries]
