"""Config → run table: grid expansion, run ids and de-duplication.

A *study* names a set of training runs: every run starts from the config's ``defaults``, takes the
study's ``set`` values, one entry of ``variants`` and one point of the cartesian ``grid``, and is
repeated for every dataset and seed, and, with the study key ``folds: K``, for every fold
(``folds: K``, ``fold: 0..K-1``; see `cnnreg.folds`). A *run* is identified by its fully resolved parameters, so
the same parameters in two studies are one run, trained once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from cnnreg import parameters, registry

PARAMETERS = parameters.NAMES
#: ``dataset``, ``seed``, ``folds`` and ``fold`` come from a study's ``datasets``, ``seeds`` and
#: ``folds``; all others from defaults/set/variants/grid.
STUDY_PARAMETERS = tuple(p for p in PARAMETERS if p not in ("dataset", "seed", "folds", "fold"))
#: Parameters added after the first release, with the value every run had before them. A config's
#: ``defaults`` may omit them, and while a run keeps these values they stay out of its id, so
#: adding a capability reruns nothing that was already trained.
LATER_PARAMETERS = {
    "fine_tune": 0, "fine_tune_lr": 1.0e-5, "class_weight": "none", "folds": 0, "fold": 0, "jit_compile": False,
    "mixed_precision": False,
}  # fmt: skip
#: What a study's variants may be ranked by (higher is better for each); validation values only,
#: since ranking is model selection and the test split is never used for it.
RANK_METRICS = (
    "best_val_accuracy",
    "final_val_accuracy",
    "val_auc",
    "val_balanced_accuracy",
    "val_sensitivity",
    "val_specificity",
)
DEFAULT_RANK_BY = "best_val_accuracy"
#: Later parameters that count only with another: the fine-tuning rate only when fine-tuning, and
#: then even at its default (so those run ids stay as they were).
_COUNTS_WITH = {"fine_tune_lr": "fine_tune"}


class ConfigError(ValueError):
    """A config problem; the message starts with the key path (``studies.task1.grid.lr``)."""

    def __init__(self, key_path, problem):
        super().__init__(f"config key '{key_path}': {problem}")
        self.key_path = key_path


@dataclass(frozen=True)
class Study:
    """One study of the plan: its runs and what varies between them."""

    name: str
    title: str
    question: str
    runs: tuple[str, ...]
    varied: tuple[str, ...]
    baseline: dict = field(default_factory=dict)
    #: Epochs at which to summarise every run, from its history (empty: its last epoch).
    at_epochs: tuple[int, ...] = ()
    #: Another study whose runs this one's summary is compared with, per dataset.
    compare_with: str | None = None
    #: Whether every run of the study gets a Grad-CAM gallery.
    gradcam: bool = False
    #: The per-run metric (one of `RANK_METRICS`) whose mean ranks the variants.
    rank_by: str = DEFAULT_RANK_BY
    #: The kind of answer its question gets (`cnnreg.answers.KINDS`; None: the generic one).
    answer: str | None = None

    def as_dict(self):
        """The study as plain values, for a Snakemake param (see `Plan.as_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The study `as_dict` gave."""
        return cls(**values)


@dataclass(frozen=True)
class Plan:
    """Every unique run (id → resolved parameters) and every study (name → Study)."""

    runs: dict
    studies: dict

    def studies_of(self, run_id):
        """Names of the studies that use ``run_id``."""
        return [name for name, study in self.studies.items() if run_id in study.runs]

    def as_dict(self):
        """The plan as plain values, for a Snakemake param.

        Snakemake's params trigger compares only builtin values: a dataclass param is left out
        of it, so a changed study would not rerun the jobs that read it.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The plan `as_dict` gave."""
        return cls(values["runs"], {name: Study.from_dict(study) for name, study in values["studies"].items()})


def normalise(params):
    """Return ``params`` with every value cast to its parameter's canonical type.

    ``0`` and ``0.0`` for a rate, or ``1e-4`` and ``0.0001`` for ``lr``, must give the same run.
    """
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown run parameters {sorted(unknown)}; expected some of {list(PARAMETERS)}")
    return {name: parameters.check(name, params[name]) for name in PARAMETERS if name in params}


def run_id(params):
    """Stable id of a run: ``{model}-{dataset}-{hash}`` of the canonical resolved parameters.

    A `LATER_PARAMETERS` entry at its default is not hashed, nor is one that counts only with
    another (`_COUNTS_WITH`) while that one is at its default.
    """
    return _hashed_id(normalise(params))


def _hashed_id(normalised):
    """`run_id` of parameters that are already normalised."""
    left_out = {name for name in LATER_PARAMETERS if _at_later_default(normalised, _COUNTS_WITH.get(name, name))}
    hashed = {name: value for name, value in normalised.items() if name not in left_out}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    return f"{registry.short_name(normalised['model'])}-{normalised['dataset']}-{digest}"


def _at_later_default(params, name):
    return params.get(name, LATER_PARAMETERS[name]) == LATER_PARAMETERS[name]


def build_plan(config):
    """Expand every study of a (schema-validated) config into runs.

    Parameters
    ----------
    config : dict
        The workflow config with ``datasets``, ``defaults`` and ``studies``.

    Returns
    -------
    Plan

    Raises
    ------
    ConfigError
        For what a schema cannot express: an unknown dataset, a grid key that is not a run
        parameter, a parameter both fixed and varied, an image too small for its model, a baseline
        that matches no run or leaves a run without a baseline run to pair with; and an unknown
        ``rank_by`` (for callers that skip the schema).
    """
    defaults = {**LATER_PARAMETERS, **_check_defaults(config.get("defaults", {}))}
    datasets = config.get("datasets", {})
    rank_by = _check_rank_by("rank_by", config.get("rank_by", DEFAULT_RANK_BY))
    _check_positive_classes(datasets)
    runs, studies = {}, {}
    for name, spec in config.get("studies", {}).items():
        study_runs = _expand_study(name, spec, defaults, datasets)
        runs.update(study_runs)
        studies[name] = _describe_study(name, spec, study_runs, rank_by)
    for name, study in studies.items():
        if study.compare_with and study.compare_with not in studies:
            raise ConfigError(
                f"studies.{name}.compare_with",
                f"names study '{study.compare_with}', which is not under 'studies' (known: {sorted(studies)})",
            )
    return Plan(runs=runs, studies=studies)


def _check_rank_by(key_path, metric):
    if metric not in RANK_METRICS:
        raise ConfigError(key_path, f"{metric!r} is not a metric to rank by; expected one of {list(RANK_METRICS)}")
    return metric


def _check_positive_classes(datasets):
    """A dataset's ``positive_class`` is one of its ``classes`` (when they are listed)."""
    for name, dataset in datasets.items():
        positive, classes = dataset.get("positive_class"), dataset.get("classes")
        if positive is not None and classes is not None and positive not in classes:
            raise ConfigError(
                f"datasets.{name}.positive_class",
                f"names class {positive!r}, which is not one of the dataset's classes {list(classes)}",
            )


def _study_folds(path, spec):
    """The study's ``folds`` (0 without the key): K >= 2 runs per run, one per fold."""
    folds = spec.get("folds", 0)
    if "folds" in spec and not (parameters.PARAMETERS["folds"].valid(folds) and folds >= 2):
        raise ConfigError(f"{path}.folds", f"expects a number of folds K >= 2; got {folds!r}")
    return folds


def _check_defaults(defaults):
    missing = [p for p in STUDY_PARAMETERS if p not in defaults and p not in LATER_PARAMETERS]
    if missing:
        raise ConfigError("defaults", f"missing run parameters {missing}; every run starts from these")
    _check_names("defaults", defaults)
    return defaults


def _check_names(key_path, mapping):
    """Every key is a run parameter, and every value one it takes (a grid's: every listed value)."""
    for key, value in mapping.items():
        if key not in STUDY_PARAMETERS:
            raise ConfigError(
                f"{key_path}.{key}",
                f"'{key}' is not a run parameter; expected one of {list(STUDY_PARAMETERS)}",
            )
        for where, one in _values(key_path, key, value):
            try:
                parameters.check(key, one)
            except ValueError as error:
                raise ConfigError(where, str(error)) from None


def _values(key_path, key, value):
    if key_path.endswith(".grid") and isinstance(value, list):
        return [(f"{key_path}.{key}[{i}]", one) for i, one in enumerate(value)]
    return [(f"{key_path}.{key}", value)]


def _expand_study(name, spec, defaults, datasets):
    path = f"studies.{name}"
    fixed = spec.get("set", {})
    grid = spec.get("grid", {})
    variants = spec.get("variants") or [{}]
    _check_names(f"{path}.set", fixed)
    _check_names(f"{path}.grid", grid)
    for i, variant in enumerate(variants):
        _check_names(f"{path}.variants[{i}]", variant)
        for key in set(variant) & set(grid):
            raise ConfigError(f"{path}.variants[{i}].{key}", "is also varied in the grid; keep it in one place")
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"{path}.grid.{key}", "is an empty list; give at least one value")
        if key in fixed:
            raise ConfigError(f"{path}.grid.{key}", "is also fixed in 'set'; keep it in one place")
    for i, dataset in enumerate(spec.get("datasets", [])):
        if dataset not in datasets:
            raise ConfigError(
                f"{path}.datasets[{i}]",
                f"names dataset '{dataset}', which is not under 'datasets' (known: {sorted(datasets)})",
            )
    folds = _study_folds(path, spec)
    fold_points = [{"folds": folds, "fold": fold} for fold in range(folds)] or [{}]
    runs = {}
    grid_points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    # Each part normalised once (a parameter's canonical value depends on that value alone), not
    # every run's 21 values: a plan of 10,000 runs is built while the workflow is parsed.
    common = normalise({**defaults, **fixed})
    normalised_variants = [normalise(variant) for variant in variants]
    normalised_points = [normalise(point) for point in grid_points]
    for dataset in spec.get("datasets", []):
        for index, variant in enumerate(variants):
            for point, normalised_point in zip(grid_points, normalised_points, strict=True):
                for seed, in_fold in itertools.product(spec.get("seeds", [0]), fold_points):
                    own = normalise({"dataset": dataset, "seed": seed, **in_fold})
                    params = _in_order({**common, **normalised_variants[index], **normalised_point, **own})
                    _check_run(path, params, _given(path, fixed, index, variant, point))
                    runs[_hashed_id(params)] = params
    return runs


def _in_order(params):
    """``params`` in the order of `PARAMETERS`, as `normalise` returns them."""
    return {name: params[name] for name in PARAMETERS if name in params}


def _given(path, fixed, index, variant, point):
    """Where the study itself gives each of its parameters: key → key path."""
    given = {key: f"{path}.set.{key}" for key in fixed}
    given.update({key: f"{path}.variants[{index}].{key}" for key in variant})
    given.update({key: f"{path}.grid.{key}" for key in point})
    return given


def _check_run(path, params, given):
    """What the run's model cannot train: a parameter it ignores that the study sets or varies,
    an image too small, a head it lacks, augmentation of cached features, fine-tuning."""
    model = params["model"]
    try:
        spec = registry.lookup(model)
    except registry.ModelError as error:
        raise ConfigError(given.get("model", "defaults.model"), str(error)) from None
    ignored = [key for key in given if key not in spec.parameters]
    if ignored:
        raise ConfigError(
            given[ignored[0]],
            f"model {model} does not use {ignored[0]} (it uses {', '.join(spec.parameters)}); varying or setting it "
            "would train the same model under another run id; remove it from this study",
        )

    def where(key):
        return given.get(key, f"{path}.{key}")

    if params["head"] not in spec.heads:
        raise ConfigError(where("head"), f"model {model} trains a {' or '.join(spec.heads)} head, not {params['head']}")
    if spec.inputs == "features" and params["augment"] != "none":
        raise ConfigError(
            where("augment"),
            f"model {model} trains on features extracted once per dataset, so it cannot augment; use augment: none",
        )
    if spec.dense_layers is not None and len(params["dense"]) != spec.dense_layers:
        raise ConfigError(
            where("dense"), f"model {model} has {spec.dense_layers} hidden dense layer(s); give dense that many units"
        )
    if params["fine_tune"] and not spec.fine_tunes:
        raise ConfigError(where("fine_tune"), f"model {model} has no fine-tuning stage; use fine_tune: 0")
    if min(params["image_size"]) < spec.min_side:
        raise ConfigError(
            where("image_size"),
            f"{params['image_size']} is too small for {model}: its poolings need every side to be at least "
            f"{spec.min_side}; use image_size: [{spec.min_side}, {spec.min_side}] or larger",
        )
    if registry.is_custom(model):
        _check_builds(where("model"), spec, params)


def _check_builds(key_path, spec, params):
    """A user's builder must return a Keras model whose output fits the run's head (built once
    per distinct set of the parameters it uses)."""
    used = json.dumps({name: params[name] for name in (*spec.uses, "head", "image_size", "channels")}, sort_keys=True)
    if (spec.name, used) not in _BUILT:
        _check_built_model(key_path, spec, params)
        _BUILT.add((spec.name, used))


_BUILT = set()


def _check_built_model(key_path, spec, params):
    import keras  # only for users' own models: the lab's need no Keras at plan time

    height, width = params["image_size"]
    try:
        model = spec.build(params, (height, width, params["channels"]))
    except Exception as error:  # a user's code may raise anything; say where it came from
        raise ConfigError(key_path, f"the builder {spec.builder} failed: {type(error).__name__}: {error}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(key_path, f"the builder {spec.builder} returned {type(model).__name__}, not a keras.Model")
    units = 1 if params["head"] == "sigmoid" else 2
    if tuple(model.output.shape[1:]) != (units,):
        raise ConfigError(
            key_path,
            f"the builder {spec.builder} outputs shape {tuple(model.output.shape[1:])}; head {params['head']} "
            f"needs ({units},)",
        )


def _describe_study(name, spec, study_runs, rank_by):
    params = list(study_runs.values())
    # repr as the key (not json.dumps, ten times slower): a parameter's canonical values have one
    # type, so two have equal reprs exactly when they have equal JSON.
    varied = tuple(p for p in PARAMETERS if p not in ("seed", "fold") and len({repr(run[p]) for run in params}) > 1)
    baseline = normalise(spec.get("baseline", {}))
    if baseline:
        _check_baseline(f"studies.{name}.baseline", baseline, params, varied)
    gradcam = bool(spec.get("gradcam", False))
    unexplainable = sorted({run["model"] for run in params if registry.lookup(run["model"]).explains is None})
    if gradcam and unexplainable:
        raise ConfigError(
            f"studies.{name}.gradcam",
            f"Grad-CAM needs a model that names the layer it explains; this study trains {unexplainable}",
        )
    epochs_run = min(run["epochs"] for run in params) if params else 0
    at_epochs = tuple(sorted(spec.get("at_epochs", [])))
    if at_epochs and at_epochs[-1] > epochs_run:
        raise ConfigError(
            f"studies.{name}.at_epochs",
            f"{at_epochs[-1]} is beyond the {epochs_run} epochs the study's runs train",
        )
    return Study(
        name=name,
        title=spec.get("title", name),
        question=spec.get("question", ""),
        runs=tuple(study_runs),
        varied=varied,
        baseline=baseline,
        at_epochs=at_epochs,
        compare_with=spec.get("compare_with"),
        gradcam=gradcam,
        rank_by=_check_rank_by(f"studies.{name}.rank_by", spec.get("rank_by", rank_by)),
        answer=_check_answer(f"studies.{name}.answer", spec, baseline, varied, gradcam),
    )


#: What each answer kind (`cnnreg.answers.KINDS`) needs of its study, and how to give it.
ANSWER_NEEDS = {
    "training_accuracy": ("baseline", "a 'baseline' (the variant whose final training accuracy is the reference)"),
    "generalization": ("variants", "at least two variants to compare ('grid' or 'variants')"),
    "best_combination": ("variants", "at least two variants to compare ('grid' or 'variants')"),
    "helps": ("baseline", "a 'baseline' (the variant the others are tested against)"),
    "transfer": ("compare_with", "'compare_with' (the study trained from scratch)"),
    "attention": ("gradcam", "'gradcam: true' (the maps it describes)"),
}


def _check_answer(key_path, spec, baseline, varied, gradcam):
    """The study's ``answer`` kind, if it names one, and has what that kind reads."""
    kind = spec.get("answer")
    if kind is None:
        return None
    if kind not in ANSWER_NEEDS:
        raise ConfigError(key_path, f"{kind!r} is not an answer kind; expected one of {list(ANSWER_NEEDS)}")
    need, words = ANSWER_NEEDS[kind]
    has = {
        "baseline": bool(baseline),
        "variants": any(p != "dataset" for p in varied),
        "compare_with": bool(spec.get("compare_with")),
        "gradcam": gradcam,
    }
    if not has[need]:
        raise ConfigError(key_path, f"answer kind '{kind}' needs {words}; add it or remove 'answer'")
    return kind


def is_baseline_run(params, baseline):
    """Whether a run has every value of the study's ``baseline``."""
    return all(params[k] == v for k, v in baseline.items())


def pair_key(params, baseline):
    """What a run shares with the baseline run it is compared with: every parameter not in ``baseline``
    (dataset, seed and fold included, so a fold run pairs with the baseline's run of that fold)."""
    return json.dumps({k: v for k, v in params.items() if k not in baseline}, sort_keys=True)


def _check_baseline(path, baseline, params, varied):
    """The baseline matches some runs, and every other run has one of them to pair with."""
    baselines = [run for run in params if is_baseline_run(run, baseline)]
    if not baselines:
        raise ConfigError(path, f"{baseline} matches none of the study's runs")
    paired = {pair_key(run, baseline) for run in baselines}
    for run in params:
        if pair_key(run, baseline) not in paired:
            raise ConfigError(
                path,
                f"the runs with {variant_label(run, varied)} have no baseline run to pair with: that would be "
                f"{variant_label({**run, **baseline}, varied)}, which the study does not train. Add that variant, "
                f"add to 'baseline' the other parameters those runs differ in, or remove 'baseline'",
            )


def variant_label(params, varied):
    """Short readable label of a run's varied parameters, e.g. ``batch_norm=True`` (the model's
    name when only datasets, seeds and folds vary; a study's `varied` never holds seed or fold)."""
    shown = [p for p in varied if p != "dataset"]
    if not shown:
        return params["model"]
    return ", ".join(f"{p}={format_value(params[p])}" for p in shown)


def format_value(value):
    """Display form of a parameter value (lists joined with ',', augmentation mappings as JSON)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def runs_table(plan):
    """One row per unique run: every parameter and the studies that use it (``runs.tsv``)."""
    rows = []
    for rid, params in plan.runs.items():
        row = {"run": rid, **{p: format_value(params[p]) for p in PARAMETERS}}
        row["studies"] = ",".join(plan.studies_of(rid))
        rows.append(row)
    return pd.DataFrame(rows, columns=["run", *PARAMETERS, "studies"])
