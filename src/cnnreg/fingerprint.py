"""What a result was made from: digests of parameters, data, starting weights and code.

A run's fingerprint has four parts. A resume state is used only when every part matches the run
about to train; the first part that differs is what the log names as the reason to start afresh.
The code digests are also the workflow's ``params`` (see ``workflow/rules/common.smk``), so that
Snakemake reruns exactly the jobs whose code changed and says why in a dry run.
"""

import hashlib
import importlib.util
import json

#: The library modules that decide what each kind of job computes: every cnnreg module its entry
#: modules import, directly or not, but those in `DECIDE_NOTHING` (a test checks it).
CODE_OF = {
    "prepare_data": ("data", "folders", "images"),
    "train": (
        "train",
        "execution",
        "stopping",
        "resume",
        "history",
        "models",
        "registry",
        "parameters",
        "augment",
        "randomness",
        "transfer",
        "weights",
        "data",
        "folders",
        "images",
        "fingerprint",
        "folds",
        "predictions",
        "studies",
    ),
    "extract_features": ("transfer", "weights", "models", "registry", "parameters", "data", "folders", "images"),
    "aggregate": (
        "tables",
        "intervals",
        "history",
        "presentation",
        "readable",
        "answers",
        "wording",
        "lab_sheet",
        "plots",
        "aggregate",
        "studies",
        "registry",
        "parameters",
        "clinical",
        "run_metrics",
    ),
    "gallery": ("galleries", "augment", "randomness", "parameters", "registry"),
    "gradcam": (
        "gradcam",
        "cam_inputs",
        "cam_metrics",
        "cam_outputs",
        "presentation",
        "readable",
        "wording",
        "tables",
        "intervals",
        "history",
        "clinical",
        "studies",
        "registry",
        "parameters",
        "models",
        "synthetic",
        "data",
        "folders",
        "images",
    ),
}
#: Modules that change how a job runs (atomic writes, its lock, the GPU check), never what it
#: computes: a change to them reruns nothing.
DECIDE_NOTHING = ("atomic", "runlock", "devices")


def code_digest(kind):
    """Hex sha256 of the source of the modules that decide what a `kind` of job computes.

    Reads the files only (no import), so that it is cheap enough to run while a Snakefile is parsed.
    """
    digest = hashlib.sha256()
    for module in CODE_OF[kind]:
        origin = importlib.util.find_spec(f"cnnreg.{module}").origin
        with open(origin, "rb") as source:
            digest.update(module.encode() + b"\0" + source.read() + b"\0")
    return digest.hexdigest()


def params_digest(params):
    """Hex sha256 of a run's resolved parameters (key order does not matter)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_fingerprint(params, data, weights):
    """The fingerprint of a run about to train.

    Parameters
    ----------
    params : dict
        Resolved run parameters.
    data : str
        Digest of the arrays it trains on.
    weights : str or None
        Digest (md5) of the pretrained weights it starts from; None when it starts from scratch.

    Returns
    -------
    dict
        ``params``, ``data``, ``weights`` and ``code`` digests.
    """
    return {"params": params_digest(params), "data": data, "weights": weights, "code": code_digest("train")}


def differences(recorded, current):
    """Names of the fingerprint parts that differ (all of them when nothing was recorded)."""
    recorded = recorded or {}
    return [part for part in current if recorded.get(part) != current[part]]
