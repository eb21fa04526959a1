"""The path of every artifact the workflow writes, defined once.

Rules use the patterns (with Snakemake wildcards); input functions and scripts use the functions,
which fill the same patterns, so no code builds a path by string surgery or parses one to recover
an id.
"""

CACHE = "results/data/{dataset}-{height}x{width}x{channels}.npz"
FEATURES = "results/features/{dataset}-{height}x{width}x{channels}.npz"
FEATURES_SUMMARY = "results/features/{dataset}-{height}x{width}x{channels}.json"
RUN = "results/runs/{run}"
#: What a finished run's folder holds; metrics.json is written last.
RUN_OUTPUTS = ("history.csv", "model.keras", "best.keras", "predictions.csv", "params.yaml", "metrics.json")
PACK = "results/packs/{pack}.json"
RUN_TABLE = "results/runs.tsv"
RUNS_METRICS = "results/runs_metrics.tsv"
STUDY = "results/studies/{study}"
GALLERY = "results/augmentation/{dataset}"
GRADCAM = "results/gradcam/{run}"
LAB_SHEET = "results/lab_sheet.html"


def _size(params):
    height, width = params["image_size"]
    return {"dataset": params["dataset"], "height": height, "width": width, "channels": params["channels"]}


def cache(params):
    """The decoded-dataset cache a run's images come from."""
    return CACHE.format(**_size(params))


def features(params):
    """The ImageNet VGG16 features of a run's images."""
    return FEATURES.format(**_size(params))


def features_summary(params):
    """Which weights the features were extracted with, and how fast."""
    return FEATURES_SUMMARY.format(**_size(params))


def run_dir(run):
    return RUN.format(run=run)


def pack(pack_id):
    """The manifest of a training pack: written when all of its runs are done."""
    return PACK.format(pack=pack_id)


def run_file(run, name):
    """A file of a run's folder (history.csv, metrics.json, model.keras, params.yaml)."""
    return f"{run_dir(run)}/{name}"


def study_file(study, name):
    return f"{STUDY.format(study=study)}/{name}"
