"""Config → run table: grid expansion, run ids and de-duplication.

A *study* names a set of training runs: every run starts from the config's ``defaults``, takes the
study's ``set`` values, one entry of ``variants`` and one point of the cartesian ``grid``, and is
repeated for every dataset and seed. A *run* is identified by its fully resolved parameters, so
the same parameters in two studies are one run, trained once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field

import pandas as pd

#: Run parameters and the type each is normalised to before hashing. ``dataset`` and ``seed``
#: come from a study's ``datasets`` and ``seeds``; all others from defaults/set/variants/grid.
PARAMETER_TYPES = {
    "model": str,
    "dataset": str,
    "base": int,
    "dense": list,
    "head": str,
    "batch_norm": bool,
    "dropout": float,
    "spatial_dropout": float,
    "lr": float,
    "optimizer": str,
    "batch_size": int,
    "epochs": int,
    "image_size": list,
    "channels": int,
    "augment": str,
    "seed": int,
}
PARAMETERS = tuple(PARAMETER_TYPES)
STUDY_PARAMETERS = tuple(p for p in PARAMETERS if p not in ("dataset", "seed"))


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


@dataclass(frozen=True)
class Plan:
    """Every unique run (id → resolved parameters) and every study (name → Study)."""

    runs: dict
    studies: dict

    def studies_of(self, run_id):
        """Names of the studies that use ``run_id``."""
        return [name for name, study in self.studies.items() if run_id in study.runs]


def normalise(params):
    """Return ``params`` with every value cast to its parameter's canonical type.

    ``0`` and ``0.0`` for a rate, or ``1e-4`` and ``0.0001`` for ``lr``, must give the same run.
    """
    canonical = {}
    for name, value in params.items():
        kind = PARAMETER_TYPES[name]
        if kind is list:
            canonical[name] = [int(v) for v in value]
        elif kind is float:
            canonical[name] = float(value)
        else:
            canonical[name] = kind(value)
    return canonical


def run_id(params):
    """Stable id of a run: ``{model}-{dataset}-{hash}`` of the canonical resolved parameters."""
    canonical = json.dumps(normalise(params), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    return f"{params['model']}-{params['dataset']}-{digest}"


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
        parameter, a parameter both fixed and varied, a baseline that matches no run.
    """
    defaults = _check_defaults(config.get("defaults", {}))
    datasets = config.get("datasets", {})
    runs, studies = {}, {}
    for name, spec in config.get("studies", {}).items():
        study_runs = _expand_study(name, spec, defaults, datasets)
        runs.update(study_runs)
        studies[name] = _describe_study(name, spec, study_runs)
    return Plan(runs=runs, studies=studies)


def _check_defaults(defaults):
    missing = [p for p in STUDY_PARAMETERS if p not in defaults]
    if missing:
        raise ConfigError("defaults", f"missing run parameters {missing}; every run starts from these")
    _check_names("defaults", defaults)
    return defaults


def _check_names(key_path, mapping):
    for key in mapping:
        if key not in STUDY_PARAMETERS:
            raise ConfigError(
                f"{key_path}.{key}",
                f"'{key}' is not a run parameter; expected one of {list(STUDY_PARAMETERS)}",
            )


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
    runs = {}
    grid_points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for dataset in spec.get("datasets", []):
        for variant in variants:
            for point in grid_points:
                for seed in spec.get("seeds", [0]):
                    params = normalise({**defaults, **fixed, **variant, **point, "dataset": dataset, "seed": seed})
                    runs[run_id(params)] = params
    return runs


def _describe_study(name, spec, study_runs):
    params = list(study_runs.values())
    varied = tuple(p for p in PARAMETERS if p != "seed" and len({json.dumps(run[p]) for run in params}) > 1)
    baseline = normalise(spec.get("baseline", {}))
    if baseline and not any(all(run[k] == v for k, v in baseline.items()) for run in params):
        raise ConfigError(f"studies.{name}.baseline", f"{baseline} matches none of the study's runs")
    return Study(
        name=name,
        title=spec.get("title", name),
        question=spec.get("question", ""),
        runs=tuple(study_runs),
        varied=varied,
        baseline=baseline,
    )


def variant_label(params, varied):
    """Short readable label of a run's varied parameters, e.g. ``batch_norm=True``."""
    shown = [p for p in varied if p != "dataset"]
    if not shown:
        return "all runs"
    return ", ".join(f"{p}={format_value(params[p])}" for p in shown)


def format_value(value):
    """Display form of a parameter value (lists joined with 'x' for sizes, ',' for units)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def runs_table(plan):
    """One row per unique run: every parameter and the studies that use it (``runs.tsv``)."""
    rows = []
    for rid, params in plan.runs.items():
        row = {"run": rid, **{p: format_value(params[p]) for p in PARAMETERS}}
        row["studies"] = ",".join(plan.studies_of(rid))
        rows.append(row)
    return pd.DataFrame(rows, columns=["run", *PARAMETERS, "studies"])
