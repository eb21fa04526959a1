"""The model registry and the run-parameter declarations: one place says what a model uses and
what a parameter takes, and the schema, the plan and the builders agree with it."""

import copy
import importlib
import inspect

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO, TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg import parameters
from cnnreg.registry import BUILDER_PARAMETERS, LAB_MODELS, ModelError, lookup
from cnnreg.studies import STUDY_PARAMETERS, ConfigError, build_plan, run_id

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())

# Per parameter: values it takes, and values it does not.
SAMPLES = {
    "model": (["alexnet", "vgg16", "vgg16_imagenet", "pkg.nets:resnet18"], [3, None]),
    "base": ([1, 64], [0, -1, 2.5, True]),
    "dense": ([[64], [128, 64]], [[], [0], 64, [1.5]]),
    "head": (["sigmoid", "softmax"], ["relu", 1]),
    "batch_norm": ([True, False], ["yes", 1]),
    "dropout": ([0, 0.4, 0.99], [1, -0.1, "0.4"]),
    "spatial_dropout": ([0.0, 0.1], [1.0, -0.5]),
    "lr": ([1e-5, 0.1], [0, -1e-3, "fast"]),
    "optimizer": (["adam", "sgd", "rmsprop"], ["adamw"]),
    "batch_size": ([1, 32], [0, 8.5]),
    "epochs": ([1, 150], [0, -3]),
    "image_size": ([[128, 128], [8, 300]], [[128], [7, 128], [128, 128, 3], 128]),
    "channels": ([1, 3], [2, 0]),
    "augment": (
        ["none", "lab", {"rotation_range": 10}, {"zoom_range": [0.5, 2]}, {"brightness_range": [0.8, 1.2]}],
        ["heavy", {"rotaton_range": 10}, {"zoom_range": [0.5, 3]}, {"rotation_range": 200}],
    ),
    "fine_tune": ([0, 5], [-1, 1.5]),
    "fine_tune_lr": ([1e-5], [0]),
    "class_weight": (["none", "balanced"], ["auto", 1, None]),
    "jit_compile": ([True, False], ["auto", 1]),
    "mixed_precision": ([True, False], ["mixed_float16", 0]),
}
# What JSON schema cannot say (an order between two numbers): the schema lets these through and
# the plan stops them, before any job.
# The model's name is checked by the plan alone, whose message lists the models and the form of a
# user's own.
PLAN_ONLY = {
    "augment": [{"brightness_range": [1.2, 0.8]}, {"zoom_range": [1.5, 0.5]}],
    "model": ["resnet", "pkg.nets:"],
}


def schema_accepts(name, value):
    validator = jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/params"})
    return validator.is_valid({name: value})


def declaration_accepts(name, value):
    try:
        parameters.check(name, value)
    except ValueError:
        return False
    return True


def test_schema_lists_exactly_the_declared_study_parameters():
    assert set(SCHEMA["$defs"]["params"]["properties"]) == set(STUDY_PARAMETERS)
    assert set(SCHEMA["$defs"]["grid"]["properties"]) == set(STUDY_PARAMETERS)
    assert set(SAMPLES) == set(STUDY_PARAMETERS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_schema_and_declaration_agree_on_every_parameter(name):
    valid, invalid = SAMPLES[name]
    for value in valid:
        assert schema_accepts(name, value) and declaration_accepts(name, value), value
    for value in invalid:
        assert not schema_accepts(name, value) and not declaration_accepts(name, value), value
    for value in PLAN_ONLY.get(name, []):
        assert schema_accepts(name, value) and not declaration_accepts(name, value), value


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg16_imagenet"])
def test_lab_entries_declare_what_their_builders_take(name):
    spec = LAB_MODELS[name]
    module, _, function = spec.builder.partition(":")
    signature = inspect.signature(getattr(importlib.import_module(module), function))
    assert set(spec.uses) == set(signature.parameters) & set(BUILDER_PARAMETERS)


def test_lab_and_its_explicit_mapping_are_one_run():
    params = {
        "model": "alexnet", "dataset": "skin", "base": 8, "dense": [64, 64], "head": "sigmoid", "batch_norm": False,
        "dropout": 0.0, "spatial_dropout": 0.0, "lr": 1e-4, "optimizer": "adam", "batch_size": 8, "epochs": 50,
        "image_size": [128, 128], "channels": 1, "seed": 0,
    }  # fmt: skip
    explicit = {"horizontal_flip": True, "height_shift_range": 0.1, "width_shift_range": 0.1, "rotation_range": 10.0}
    assert run_id({**params, "augment": "lab"}) == run_id({**params, "augment": explicit})
    assert run_id({**params, "augment": "lab"}) != run_id({**params, "augment": {**explicit, "rotation_range": 20}})


def _transfer_study(config):
    return config["studies"]["task9_transfer"]


@pytest.mark.parametrize(
    ("edit", "key_path", "message"),
    [
        (
            lambda s: s["set"].update(batch_norm=True),
            "studies.task9_transfer.set.batch_norm",
            "does not use batch_norm",
        ),
        (
            lambda s: s.update(grid={"spatial_dropout": [0.0, 0.1]}),
            "studies.task9_transfer.grid.spatial_dropout",
            "does not use spatial_dropout",
        ),
        (lambda s: s.update(variants=[{"base": 16}]), "studies.task9_transfer.variants[0].base", "does not use base"),
        (lambda s: s["set"].update(dense=[128, 64]), "studies.task9_transfer.set.dense", "1 hidden dense layer"),
    ],
)
def test_a_parameter_the_model_ignores_is_a_config_error(lab_config, edit, key_path, message):
    config = copy.deepcopy(lab_config)
    edit(_transfer_study(config))
    with pytest.raises(ConfigError, match=message) as error:
        build_plan(config)
    assert error.value.key_path == key_path


def test_unknown_and_unimportable_models_say_what_was_expected():
    with pytest.raises(ModelError, match="unknown model 'resnet'"):
        lookup("resnet")
    with pytest.raises(ModelError, match="cannot import the model builder 'no_such_package.nets:resnet18'"):
        lookup("no_such_package.nets:resnet18")


CUSTOM_MODULE = '''
import keras


def tiny(input_shape, dense, dropout, head):
    """A user's own network: one convolution, pooled, and a dense layer."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(keras.layers.Dense(dense[0], activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(1 if head == "sigmoid" else 2, activation=head)(x))


tiny.explains = "features"


def not_a_model(input_shape):
    return "a string"
'''


@pytest.mark.workflow
def test_a_users_own_builder_trains_is_summarised_and_explained_through_the_cli(tmp_path):
    (tmp_path / "mynets.py").write_text(CUSTOM_MODULE)
    study = {"set": {"model": "mynets:tiny", "head": "softmax"}, "gradcam": True, "datasets": ["skin"]}
    write_config(
        tmp_path,
        {"datasets": make_data(tmp_path / "data"), "defaults": TINY_DEFAULTS, "threads": 1, "studies": {"own": study}},
    )
    snakemake(tmp_path, "--cores", "1")
    (run,) = pd.read_csv(tmp_path / "results" / "runs.tsv", sep="\t")["run"]
    assert run.startswith("tiny-skin-")
    assert len(pd.read_csv(tmp_path / "results" / "runs" / run / "history.csv")) == TINY_DEFAULTS["epochs"]
    assert len(pd.read_csv(tmp_path / "results" / "studies" / "own" / "summary.csv")) == 1
    with np.load(tmp_path / "results" / "gradcam" / run / "cams.npz") as cams:
        assert str(cams["layer"]) == "features"

    for model, message in (
        ("mynets:missing", "cannot import the model builder 'mynets:missing'"),
        ("mynets:not_a_model", "returned str, not a keras.Model"),
    ):
        study["set"]["model"] = model
        write_config(
            tmp_path, {**yaml.safe_load((tmp_path / "config" / "config.yaml").read_text()), "studies": {"own": study}}
        )
        result = snakemake(tmp_path, "-n", check=False)
        assert result.returncode != 0 and "studies.own.set.model" in result.stdout + result.stderr, result.stdout
        assert message in result.stdout + result.stderr
    study["set"].update(model="mynets:tiny", batch_norm=True)
    write_config(
        tmp_path, {**yaml.safe_load((tmp_path / "config" / "config.yaml").read_text()), "studies": {"own": study}}
    )
    result = snakemake(tmp_path, "-n", check=False)
    assert (
        "config key 'studies.own.set.batch_norm': model mynets:tiny does not use batch_norm"
        in result.stdout + result.stderr
    )
