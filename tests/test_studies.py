import pytest
import yaml
from snakemake.utils import update_config
from workflow_helpers import REPO

from cnnreg.parameters import LAB_AUGMENTATION
from cnnreg.studies import (
    PARAMETERS,
    ConfigError,
    build_plan,
    normalise,
    pair_key,
    run_id,
    runs_table,
    variant_label,
)

CONFIG = (REPO / "config" / "config.yaml").read_text()


def test_lab_config_expands_to_one_run_per_unique_parameter_set(lab_config):
    plan = build_plan(lab_config)
    sizes = {
        "task1_batchnorm": 2 * 3,
        "task1c_low_lr": 2 * 3,
        "task2_dropout": 2 * 3,
        "task3_spatial_dropout": 2 * 3,
        "task4_vgg": 8 * 2 * 3,  # BN x spatial dropout x dropout, skin and bone, 3 seeds
        "task6_augment_alexnet": 2 * 3,
        "task7_augment_vgg": 2 * 2 * 3,
        "task9_transfer": 2 * 3,
        "task10_gradcam": 1,
    }
    assert {name: len(s.runs) for name, s in plan.studies.items()} == sizes
    # No parameter set is shared between the lab's tasks.
    assert len(plan.runs) == sum(sizes.values()) == 97
    task3 = [plan.runs[r] for r in plan.studies["task3_spatial_dropout"].runs]
    assert {(p["spatial_dropout"], p["dropout"]) for p in task3} == {(0.1, 0.4), (0.0, 0.0)}
    assert all(p["base"] == 64 and p["epochs"] == 150 and not p["batch_norm"] for p in task3)


def test_grid_is_cartesian_and_crossed_with_variants_datasets_and_seeds(lab_config):
    lab_config["studies"] = {
        "s": {
            "grid": {"batch_norm": [False, True], "lr": [1e-4, 1e-5, 1e-6]},
            "variants": [{"dropout": 0.0}, {"dropout": 0.4}],
            "datasets": ["skin", "bone"],
            "seeds": [0, 1],
        }
    }
    plan = build_plan(lab_config)
    assert len(plan.runs) == 2 * 3 * 2 * 2 * 2
    combos = {(p["batch_norm"], p["lr"], p["dropout"], p["dataset"], p["seed"]) for p in plan.runs.values()}
    assert len(combos) == 48
    assert set(plan.studies["s"].varied) == {"dataset", "batch_norm", "dropout", "lr"}


def test_identical_runs_in_two_studies_train_once(lab_config):
    lab_config["studies"]["again"] = {"set": {"lr": 1e-4, "epochs": 50}, "datasets": ["skin"], "seeds": [1]}
    plan = build_plan(lab_config)
    assert len(plan.runs) == 97
    (shared,) = plan.studies["again"].runs
    assert shared in plan.studies["task1_batchnorm"].runs
    table = runs_table(plan).set_index("run")
    assert table.loc[shared, "studies"] == "task1_batchnorm,again"
    assert list(table.columns) == [*PARAMETERS, "studies"]


def test_run_id_is_stable_and_canonical():
    params = {
        "model": "alexnet", "dataset": "skin", "base": 8, "dense": [64, 64], "head": "sigmoid",
        "batch_norm": False, "dropout": 0, "spatial_dropout": 0, "lr": 0.0001, "optimizer": "adam",
        "batch_size": 8, "epochs": 50, "image_size": [128, 128], "channels": 1, "augment": "none",
        "seed": 0,
    }  # fmt: skip
    same = {**params, "dropout": 0.0, "lr": 1e-4}
    assert run_id(params) == run_id(same) == run_id(dict(reversed(list(params.items()))))
    assert run_id(params).startswith("alexnet-skin-")
    assert run_id({**params, "seed": 1}) != run_id(params)
    assert normalise(params)["dropout"] == 0.0 and isinstance(normalise(params)["dropout"], float)


def test_every_run_holds_the_canonical_parameters_its_id_hashes(lab_config):
    # The plan normalises defaults, set, variants and grid points once each, not every run; each run
    # still holds canonical values in parameter order (lr 1.0, not 1: its id hashes their JSON).
    study = lab_config["studies"]["task1_batchnorm"]
    study.pop("baseline")
    study.pop("answer")  # it reads the baseline
    study["set"] = {"lr": 1, "epochs": 50}
    study["variants"] = [{"dropout": 0}, {"augment": {"horizontal_flip": True, **LAB_AUGMENTATION}}]
    plan = build_plan(lab_config)
    runs = {rid: plan.runs[rid] for rid in plan.studies["task1_batchnorm"].runs}
    assert len(runs) == 2 * 2 * 3  # variants x batch_norm x seeds
    for rid, params in runs.items():
        assert list(params.items()) == list(normalise(params).items())
        assert run_id(params) == rid
    assert {(params["lr"], params["dropout"], params["augment"]) for params in runs.values()} == {
        (1.0, 0.0, "none"),
        (1.0, 0.0, "lab"),
    }


def test_editing_a_study_without_changing_parameters_keeps_run_ids(lab_config):
    before = build_plan(lab_config)
    lab_config["studies"]["task1_batchnorm"]["title"] = "renamed"
    lab_config["studies"]["task1_batchnorm"]["grid"] = {"batch_norm": [True, False]}
    after = build_plan(lab_config)
    assert set(before.runs) == set(after.runs)


def _study(config, name):
    return config["studies"][name]


@pytest.mark.parametrize(
    ("edit", "key_path"),
    [
        (lambda c: _study(c, "task1_batchnorm").update(datasets=["lungs"]), "studies.task1_batchnorm.datasets[0]"),
        (lambda c: _study(c, "task2_dropout")["grid"].update(colour=[1]), "studies.task2_dropout.grid.colour"),
        (lambda c: _study(c, "task2_dropout")["grid"].update(dropout=[0.1]), "studies.task2_dropout.grid.dropout"),
        (lambda c: _study(c, "task1_batchnorm").update(baseline={"lr": 0.5}), "studies.task1_batchnorm.baseline"),
        (lambda c: c["defaults"].pop("lr"), "defaults"),
        (lambda c: _study(c, "task1c_low_lr")["grid"].update(batch_norm=[]), "studies.task1c_low_lr.grid.batch_norm"),
        (lambda c: _study(c, "task9_transfer")["set"].update(augment="lab"), "studies.task9_transfer.set.augment"),
        (lambda c: _study(c, "task9_transfer")["set"].update(head="softmax"), "studies.task9_transfer.set.head"),
        (lambda c: _study(c, "task1_batchnorm")["set"].update(fine_tune=5), "studies.task1_batchnorm.set.fine_tune"),
        (lambda c: _study(c, "task1_batchnorm").update(gradcam=True), "studies.task1_batchnorm.gradcam"),
        (lambda c: _study(c, "task4_vgg").update(at_epochs=[50, 151]), "studies.task4_vgg.at_epochs"),
        (lambda c: _study(c, "task9_transfer").update(compare_with="task7"), "studies.task9_transfer.compare_with"),
        (lambda c: _study(c, "task4_vgg")["set"].update(image_size=[31, 128]), "studies.task4_vgg.set.image_size"),
        (
            lambda c: _study(c, "task9_transfer")["set"].update(image_size=[224, 16]),
            "studies.task9_transfer.set.image_size",
        ),
        (lambda c: c["defaults"].update(image_size=[7, 7]), "defaults.image_size"),
        (
            lambda c: _study(c, "task3_spatial_dropout").update(baseline={"spatial_dropout": 0.0}),
            "studies.task3_spatial_dropout.baseline",
        ),
    ],
)
def test_semantic_errors_name_the_key_path(lab_config, edit, key_path):
    edit(lab_config)
    with pytest.raises(ConfigError) as error:
        build_plan(lab_config)
    assert error.value.key_path == key_path
    assert f"'{key_path}'" in str(error.value)


def test_parameters_added_later_keep_earlier_run_ids(lab_config):
    before = build_plan(lab_config)
    lab_config["defaults"].update(fine_tune=0, fine_tune_lr=0.5, jit_compile=False, mixed_precision=False)
    assert set(build_plan(lab_config).runs) == set(before.runs)
    lab_config["studies"]["task1_batchnorm"]["set"]["mixed_precision"] = True
    assert set(build_plan(lab_config).studies["task1_batchnorm"].runs).isdisjoint(before.runs)
    del lab_config["studies"]["task1_batchnorm"]["set"]["mixed_precision"]
    lab_config["studies"]["task9_transfer"]["set"]["fine_tune"] = 3
    changed = build_plan(lab_config)
    assert set(changed.studies["task9_transfer"].runs).isdisjoint(before.studies["task9_transfer"].runs)
    assert all(changed.runs[r]["fine_tune_lr"] == 0.5 for r in changed.studies["task9_transfer"].runs)


def test_augmentation_mappings_are_canonical(lab_config):
    study = lab_config["studies"]["task6_augment_alexnet"]
    study.pop("baseline")
    study.pop("answer")  # it reads the baseline
    study["grid"] = {"augment": [{"rotation_range": 10, "horizontal_flip": True}]}
    first = build_plan(lab_config).studies["task6_augment_alexnet"].runs
    study["grid"] = {"augment": [{"horizontal_flip": True, "rotation_range": 10.0}]}
    assert build_plan(lab_config).studies["task6_augment_alexnet"].runs == first
    table = runs_table(build_plan(lab_config)).set_index("run")
    assert table.loc[first[0], "augment"] == '{"horizontal_flip":true,"rotation_range":10.0}'


def test_demo_config_over_the_lab_config_builds(lab_config):
    """``--configfile config/config.yaml config/demo.yaml``: Snakemake merges the second over the first
    key by key."""
    update_config(lab_config, yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    plan = build_plan(lab_config)
    assert set(plan.studies) == set(lab_config["studies"])
    assert {tuple(p["image_size"]) for p in plan.runs.values()} == {(32, 32), (64, 64)}


@pytest.mark.parametrize(("model", "smallest"), [("alexnet", 8), ("vgg16", 32)])
def test_image_size_down_to_the_models_smallest_side(lab_config, model, smallest):
    study = {"set": {"model": model, "image_size": [smallest, 128]}, "datasets": ["skin"]}
    lab_config["studies"] = {"s": study}
    assert build_plan(lab_config).runs  # one pooling per halving: a side of 2**poolings ends at 1
    study["set"]["image_size"] = [128, smallest - 1]
    with pytest.raises(ConfigError, match=rf"at least {smallest}"):
        build_plan(lab_config)


def test_baseline_must_pair_every_other_run(lab_config):
    lab_config["studies"] = {
        "s": {
            "variants": [{}, {"spatial_dropout": 0.1}, {"spatial_dropout": 0.1, "dropout": 0.4}],
            "baseline": {"spatial_dropout": 0.0},
            "datasets": ["skin"],
            "seeds": [0, 1],
        }
    }
    with pytest.raises(ConfigError) as error:
        build_plan(lab_config)
    assert error.value.key_path == "studies.s.baseline"
    message = str(error.value)
    assert "the runs with dropout=0.4, spatial_dropout=0.1 have no baseline run to pair with" in message
    assert "that would be dropout=0.4, spatial_dropout=0.0, which the study does not train" in message
    assert "Add that variant" in message and "remove 'baseline'" in message
    # Naming both parameters in the baseline pairs every run with the one that has neither.
    lab_config["studies"]["s"]["baseline"] = {"spatial_dropout": 0.0, "dropout": 0.0}
    assert len(build_plan(lab_config).studies["s"].runs) == 6


def test_baseline_over_a_grid_and_variants_pairs_with_the_run_that_has_all_its_values(lab_config):
    lab_config["studies"] = {
        "s": {
            "grid": {"batch_norm": [False, True]},
            "variants": [{}, {"dropout": 0.4}],
            "baseline": {"batch_norm": False, "dropout": 0.0},
            "datasets": ["skin"],
        }
    }
    assert len(build_plan(lab_config).studies["s"].runs) == 4  # three variants, each paired with the baseline


def test_new_parameters_at_their_defaults_stay_out_of_run_ids(lab_config):
    before = build_plan(lab_config)
    lab_config["defaults"].update(class_weight="none")
    assert set(build_plan(lab_config).runs) == set(before.runs)
    lab_config["studies"]["task1_batchnorm"]["set"]["class_weight"] = "balanced"
    changed = build_plan(lab_config).studies["task1_batchnorm"].runs
    assert set(changed).isdisjoint(before.studies["task1_batchnorm"].runs)


def test_folds_make_one_run_per_fold_paired_by_fold_and_labelled_without_it(lab_config):
    study = lab_config["studies"]["task1_batchnorm"]
    study.update(folds=3, seeds=[0, 1])
    plan = build_plan(lab_config)
    runs = [plan.runs[r] for r in plan.studies["task1_batchnorm"].runs]
    assert len(runs) == 2 * 2 * 3  # batch norm x seeds x folds
    assert {(p["batch_norm"], p["seed"], p["folds"], p["fold"]) for p in runs} == {
        (bn, seed, 3, fold) for bn in (False, True) for seed in (0, 1) for fold in range(3)
    }
    assert plan.studies["task1_batchnorm"].varied == ("batch_norm",)
    assert {variant_label(p, ("batch_norm",)) for p in runs} == {"batch_norm=False", "batch_norm=True"}
    baseline = plan.studies["task1_batchnorm"].baseline
    pairs = {pair_key(p, baseline) for p in runs}
    assert len(pairs) == 2 * 3  # one pair per (seed, fold)
    assert set(plan.studies["task1c_low_lr"].runs) <= set(build_plan(yaml.safe_load(CONFIG)).runs)


@pytest.mark.parametrize("folds", [1, 0, 2.5])
def test_folds_below_two_name_the_key(lab_config, folds):
    lab_config["studies"]["task1_batchnorm"]["folds"] = folds
    with pytest.raises(ConfigError, match=r"'studies.task1_batchnorm.folds': expects a number of folds K >= 2"):
        build_plan(lab_config)


def test_positive_class_must_be_one_of_the_classes(lab_config):
    lab_config["datasets"]["skin"]["positive_class"] = "Mel"
    build_plan(lab_config)
    lab_config["datasets"]["bone"]["positive_class"] = "Nevi"
    with pytest.raises(ConfigError, match=r"'datasets.bone.positive_class': names class 'Nevi', .*\['AFF', 'NFF'\]"):
        build_plan(lab_config)
