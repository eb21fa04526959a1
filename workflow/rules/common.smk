"""Config validation, the run plan, and the lookups every rule uses."""

import functools
from pathlib import Path

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from cnnreg import paths
from cnnreg.categories import leading_category, report_categories
from cnnreg.folders import dataset_signature, first_image
from cnnreg.fingerprint import CODE_OF, code_digest
from cnnreg.packing import (
    DEFAULT_MAX_RUNTIME,
    DEFAULTS as PACK_DEFAULTS,
    form_packs,
    job_minutes,
    run_minutes,
    time_limit,
)
from cnnreg.registry import lookup
from cnnreg.studies import ConfigError, build_plan


def validate_config(config):
    """Schema-check the config; re-raise with the offending key path first."""
    try:
        validate(config, workflow.source_path("../../config/schema.yaml"))
    except WorkflowError as error:
        cause = error.__context__
        if not isinstance(cause, ValidationError):
            raise
        cause = closest_error(cause)
        key = ".".join(str(p) for p in cause.absolute_path) or "(top level)"
        raise WorkflowError(
            f"Invalid config: config key '{key}': {cause.message}"
        ) from None


def closest_error(error):
    """For a value that fits none of a oneOf's alternatives, the error of the one it was meant
    for: a mapping was not meant to be one of the strings, so say which option is wrong.
    """
    if not error.context:
        return error
    meant = [
        e
        for e in error.context
        if e.relative_path or e.validator not in ("enum", "type", "const")
    ]
    return closest_error(best_match(meant or error.context))


def load_plan(config):
    """Expand the studies into runs; a semantic config error stops the workflow here."""
    try:
        return build_plan(config)
    except ConfigError as error:
        raise WorkflowError(f"Invalid config: {error}") from None


def check_gallery_datasets(config):
    """Task 5's galleries may only name configured datasets."""
    names = config.get("augmentation_gallery", {}).get("datasets", [])
    for i, name in enumerate(names):
        if name not in config["datasets"]:
            raise WorkflowError(
                f"Invalid config: config key 'augmentation_gallery.datasets[{i}]': names dataset "
                f"'{name}', which is not under 'datasets' (known: {sorted(config['datasets'])})"
            )


def require_dataset_folder(name):
    """Whether dataset `name`'s folder has its layout; if not, stop saying how to get one
    (see `available`).

    Called only for jobs whose outputs are still to be made, so that `--lint`, `--unlock`,
    `--report` of finished results and dry runs of other targets need no data.
    """
    root = Path(config["datasets"][name]["path"])
    missing = [p for p in (root, root / "train", root / "validation") if not p.is_dir()]
    if not missing:
        return True
    return available(
        f"Dataset '{name}': folder {missing[0]} does not exist (config key "
        f"'datasets.{name}.path' is {root}). Expected layout: "
        f"{root}/train/<class>/<images> and {root}/validation/<class>/<images>, "
        "with the same class folders in both. Put the data there or change the path; "
        "to try the workflow on generated demo data instead, run `make demo`."
    )


MISSING_INPUTS_SEEN = set()


def available(problem):
    """Whether an input is there, given `problem`, what is wrong with it (or nothing).

    When jobs are to run, a problem stops the workflow before any starts. When none will (a dry
    run, `--report`; Snakemake then runs no executor or a dry one), it is a warning, given once,
    and the job goes without that input: the job graph is shown whole before the data is staged.
    """
    if not problem:
        return True
    if workflow.executor_plugin is not None and not workflow.dryrun:
        raise WorkflowError(problem)
    if problem not in MISSING_INPUTS_SEEN:
        MISSING_INPUTS_SEEN.add(problem)
        logger.warning(f"{problem}\n(Nothing runs now; a run would stop here.)")
    return False


def made(pattern, wildcards):
    """Whether the output `pattern` names for these wildcards exists already."""
    return Path(pattern.format(**dict(wildcards.items()))).exists()


validate_config(config)
PLAN = load_plan(config)
check_gallery_datasets(config)
# Digests of the library code each kind of job runs: a param, so that a change reruns exactly
# those jobs (Snakemake tracks the script files, not the modules they import).
CODE = {kind: code_digest(kind) for kind in CODE_OF}
# Which runs share a training job (`cnnreg.packing`): config keys `pack` and `max_runtime`.
PACKING = {**PACK_DEFAULTS, **config.get("pack", {})}
MAX_RUNTIME = config.get("max_runtime", DEFAULT_MAX_RUNTIME)
PACKS = form_packs(
    PLAN.runs,
    estimate=lambda run: run_minutes(PLAN.runs[run]),
    group=lambda run: paths.cache(PLAN.runs[run]),
    settings=PACKING,
    max_runtime=MAX_RUNTIME,
)
PACK_OF = {run: pack for pack, runs in PACKS.items() for run in runs}
# How training jobs execute, without changing what they compute (`cnnreg.execution`).
EXECUTION = {
    key: config[key]
    for key in ("steps_per_execution", "checkpoint_seconds")
    if key in config
}


def run_inputs(run):
    """A run's data, as its model's registry entry says: the image cache (which also names the
    files and holds the test split), and the feature cache and, when it fine-tunes, the weights
    (checked by `pack_inputs`).
    """
    params = PLAN.runs[run]
    inputs = {"cache": paths.cache(params)}
    if lookup(params["model"]).inputs == "features":
        inputs["features"] = paths.features(params)
        if params["fine_tune"]:
            inputs["weights"] = imagenet_weights(required=False)
    return inputs


def pack_inputs(wildcards):
    """The data of every run of a pack, by kind (cache, features, weights); the weights are
    checked unless the pack is made."""
    inputs = {}
    for run in PACKS[wildcards.pack]:
        for kind, path in run_inputs(run).items():
            inputs.setdefault(kind, set()).add(path)
    if "weights" in inputs:
        weights = imagenet_weights(required=not made(paths.PACK, wildcards))
        inputs["weights"] = {weights} if weights else set()
    return {kind: sorted(files) for kind, files in inputs.items()}


def pack_members(wildcards):
    """Run id → its parameters, folder and data files, for every run of a pack."""
    return {
        run: {
            "params": PLAN.runs[run],
            "run_dir": paths.run_dir(run),
            **run_inputs(run),
        }
        for run in PACKS[wildcards.pack]
    }


def partition(kind):
    """The `slurm_partition` resource of "gpu" or "cpu" jobs when config key `partitions` names
    one; else no resource at all, so that a profile's default-resources still decide."""
    name = config.get("partitions", {}).get(kind)
    return {"slurm_partition": name} if name else {}


def pack_runtime(wildcards, attempt):
    """SLURM time limit in minutes: what the pack's runs need, grown per attempt, at most
    `max_runtime` (`cnnreg.packing`). A job that reaches it resumes in the next attempt.
    """
    minutes = [run_minutes(PLAN.runs[run]) for run in PACKS[wildcards.pack]]
    return time_limit(job_minutes(minutes, PACKING["concurrent"]), attempt, MAX_RUNTIME)


def pack_mem_mb(wildcards, attempt):
    """Host memory for TensorFlow and a decoded dataset of the lab's size per concurrent run,
    grown per attempt."""
    lanes = min(PACKING["concurrent"], len(PACKS[wildcards.pack]))
    return attempt * (8000 + 4000 * (lanes - 1))


def run_pack(run):
    """The manifest of the pack that trains `run`: what a run's downstream jobs depend on."""
    return paths.pack(PACK_OF[run])


def imagenet_weights(required=True):
    """The VGG16 weights file (config key `imagenet_weights`).

    Evaluated only for jobs in the graph, so targets that need no weights never look. When a
    job still to run needs the file (`required`) and it is absent, a run stops before any job
    with a message saying how to stage it; a dry run warns and gets no file (`available`).
    """
    from cnnreg.weights import missing_weights_message, resolve_weights_path

    path = resolve_weights_path(config.get("imagenet_weights", "imagenet"))
    if required and not path.is_file():
        if not available(missing_weights_message(path, "imagenet_weights")):
            return []
    return str(path)


def extraction_weights(wildcards):
    """The weights extract_features reads: checked unless its features are made."""
    return imagenet_weights(required=not made(paths.FEATURES, wildcards))


def run_cache(wildcards):
    return paths.cache(PLAN.runs[wildcards.run])


def explained_layer(wildcards):
    """The layer Grad-CAM explains, as the run's model's registry entry names it."""
    return lookup(PLAN.runs[wildcards.run]["model"]).explains


def run_params(wildcards):
    return PLAN.runs[wildcards.run]


def dataset_folder(wildcards):
    """The folder prepare_data decodes: checked unless its cache is made."""
    if not made(paths.CACHE, wildcards) and not require_dataset_folder(
        wildcards.dataset
    ):
        return []
    return config["datasets"][wildcards.dataset]["path"]


def dataset_classes(wildcards):
    return config["datasets"][wildcards.dataset].get("classes")


def dataset_images(wildcards):
    """Signature of the dataset's image files (names, sizes, times): a param, since Snakemake
    sees only the folder's own time, which adding a file to a class folder does not change.
    """
    return folder_signature(config["datasets"][wildcards.dataset]["path"])


@functools.cache
def folder_signature(folder):
    return dataset_signature(folder)


def compared_runs(study):
    """The study's runs, then those of the study it is compared with."""
    other = PLAN.studies[study.compare_with].runs if study.compare_with else ()
    return list(dict.fromkeys([*study.runs, *other]))


def study_packs(wildcards):
    """The manifests of the packs that train the runs a study reads."""
    runs = compared_runs(PLAN.studies[wildcards.study])
    return sorted({run_pack(run) for run in runs})


def positive_classes():
    """Dataset name → its positive class (config key ``datasets.<name>.positive_class``)."""
    return {
        name: spec.get("positive_class") for name, spec in config["datasets"].items()
    }


def study_runs(wildcards):
    study = PLAN.studies[wildcards.study]
    return {run: PLAN.runs[run] for run in compared_runs(study)}


def study_run_dirs(wildcards):
    return {
        run: paths.run_dir(run) for run in compared_runs(PLAN.studies[wildcards.study])
    }


def compared_study(wildcards):
    """The study this one is compared with (plain values), or None."""
    study = PLAN.studies[wildcards.study]
    return PLAN.studies[study.compare_with].as_dict() if study.compare_with else None


def study_features(wildcards):
    """Feature-extraction summaries of a transfer study's datasets (which weights, how fast)."""
    study = PLAN.studies[wildcards.study]
    params = [PLAN.runs[run] for run in study.runs]
    return sorted(
        {
            paths.features_summary(p)
            for p in params
            if lookup(p["model"]).inputs == "features"
        }
    )


def study_gradcam(wildcards):
    """The Grad-CAM summaries of a study with ``gradcam``, in its runs' order (its answer reads
    them)."""
    study = PLAN.studies[wildcards.study]
    runs = study.runs if study.gradcam else []
    return [f"{paths.GRADCAM.format(run=run)}/summary.json" for run in runs]


def study_category(wildcards):
    """The report category of a study's items: its title, numbered in task order."""
    return CATEGORIES[PLAN.studies[wildcards.study].title]


def report_labels(item):
    """Report labels of a study's item, with the answer computed from its runs.

    Labels are evaluated when the report is built, after the answer file exists.
    """

    def labels(wildcards, output):
        return {"item": item, "answer": Path(output.answer).read_text().strip()}

    return labels


GALLERY = config.get("augmentation_gallery", {})
GALLERY_TITLE = GALLERY.get("title", "Task 5: augmentation galleries")
# Report categories, numbered so that the report lists them in task order (`cnnreg.categories`):
# the studies as declared, task 5's galleries where their task number puts them.
CATEGORIES = report_categories(
    [study.title for study in PLAN.studies.values()],
    [GALLERY_TITLE] if GALLERY.get("datasets") else [],
)
# Without gallery datasets the galleries' rule never runs, and their title is no category.
GALLERY_CATEGORY = CATEGORIES.get(GALLERY_TITLE, GALLERY_TITLE)
# The lab sheet comes first.
LAB_SHEET_CATEGORY = leading_category(CATEGORIES, "Lab sheet")


def gallery_image(wildcards):
    """The image task 5's galleries transform: configured, or the dataset's first training image."""
    root = Path(config["datasets"][wildcards.dataset]["path"])
    configured = GALLERY.get("image", {}).get(wildcards.dataset)
    if configured:
        return str(root / configured)
    if not made(f"{paths.GALLERY}/skimage.png", wildcards):
        if not require_dataset_folder(wildcards.dataset):
            return []
    elif not root.is_dir():
        return str(root)  # made, and its data gone since: nothing to redo
    return str(first_image(root, dataset_classes(wildcards)))


def gradcam_runs():
    return sorted({run for s in PLAN.studies.values() if s.gradcam for run in s.runs})


def gradcam_category(wildcards):
    """A Grad-CAM gallery's report category: that of the first study that asks for it."""
    return CATEGORIES[gradcam_study(wildcards).title]


def gradcam_study(wildcards):
    """The first study that asks for this run's Grad-CAM gallery."""
    return next(
        s for s in PLAN.studies.values() if s.gradcam and wildcards.run in s.runs
    )


def evidence_boxes(wildcards):
    """The dataset's evidence.csv (demo data has one) for the pointing game, if present."""
    params = PLAN.runs[wildcards.run]
    path = Path(config["datasets"][params["dataset"]]["path"]) / "evidence.csv"
    return [str(path)] if path.is_file() else []


# The lab sheet's name for task 5's galleries, in config key `lab_sheet`.
SHEET_GALLERY = "augmentation_gallery"
# The figure that shows a study's answer, by its answer kind (else its learning curves).
SHEET_FIGURES = {"best_combination": "final.png"}


def sheet_names():
    """The lab sheet's sections in order: config `lab_sheet`, or every study then the galleries."""
    galleries = [SHEET_GALLERY] if GALLERY.get("datasets") else []
    names = config.get("lab_sheet", [*PLAN.studies, *galleries])
    for i, name in enumerate(names):
        if name not in PLAN.studies and name not in galleries:
            raise WorkflowError(
                f"Invalid config: config key 'lab_sheet[{i}]': names '{name}', which is no study "
                f"(known: {sorted(PLAN.studies)}) nor '{SHEET_GALLERY}' with datasets"
            )
    return names


def sheet_section(name):
    """A lab sheet section's plain description (`cnnreg.lab_sheet.read_section`)."""
    if name == SHEET_GALLERY:
        datasets = GALLERY["datasets"]
        return {
            "name": name,
            "title": GALLERY_TITLE,
            "question": GALLERY.get("question", ""),
            "transforms": {
                d: f"{paths.GALLERY.format(dataset=d)}/skimage.csv" for d in datasets
            },
            "draws": {
                d: f"{paths.GALLERY.format(dataset=d)}/generator.json" for d in datasets
            },
            "figure": f"{paths.GALLERY.format(dataset=datasets[0])}/skimage.png",
            "tables": f"{paths.GALLERY.format(dataset=datasets[0])}/skimage.csv",
        }
    study = PLAN.studies[name]
    tables = paths.study_file(name, "summary.html")
    figure = paths.study_file(name, SHEET_FIGURES.get(study.answer, "curves.png"))
    if study.answer == "attention":
        figure = f"{paths.GRADCAM.format(run=study.runs[0])}/gallery.png"
    return {
        "name": name,
        "title": study.title,
        "question": study.question,
        "answer": paths.study_file(name, "answer.json"),
        "figure": figure,
        "tables": tables,
    }


def sheet_inputs(sections):
    """Every file the lab sheet reads."""
    files = []
    for section in sections:
        files += [section["figure"], section.get("answer")]
        files += [
            *section.get("transforms", {}).values(),
            *section.get("draws", {}).values(),
        ]
    return [file for file in dict.fromkeys(files) if file]


SHEET_SECTIONS = [sheet_section(name) for name in sheet_names()]


def all_targets():
    summaries = expand(
        paths.study_file("{study}", "{file}"),
        study=PLAN.studies,
        file=["summary.csv", "summary.html", "curves.png", "final.png"],
    )
    galleries = expand(
        f"{paths.GALLERY}/{{file}}",
        dataset=GALLERY.get("datasets", []),
        file=["skimage.png", "generator.png"],
    )
    gradcams = expand(
        f"{paths.GRADCAM}/{{file}}",
        run=gradcam_runs(),
        file=["gallery.png", "table.html"],
    )
    return [
        paths.RUN_TABLE,
        paths.RUNS_METRICS,
        *summaries,
        *galleries,
        *gradcams,
        paths.LAB_SHEET,
    ]
