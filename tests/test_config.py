"""Bad configs fail when the workflow is parsed, before any job, naming the key path."""

import copy
import re

import pytest
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"), n_train=2, n_val=1, size=32)


def good_config(datasets):
    return copy.deepcopy(
        {
            "datasets": datasets,
            "defaults": TINY_DEFAULTS,
            "studies": {
                "s": {"grid": {"batch_norm": [False, True]}, "datasets": ["skin"], "seeds": [0]},
            },
        }
    )


def _set(path, value):
    def edit(config):
        *parents, last = path
        target = config
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


MALFORMED = [
    (
        _set(["studies", "s", "set"], {"model": "resnet"}),
        "studies.s.set.model",
        "model expects alexnet, vgg16, vgg16_imagenet or your own",
    ),
    (_set(["defaults", "lr"], -0.1), "defaults.lr", "less than or equal to the minimum"),
    (_set(["studies", "s", "colour"], "red"), "studies.s", "'colour' was unexpected"),
    (_set(["studies", "s", "datasets"], ["lungs"]), "studies.s.datasets[0]", "not under 'datasets'"),
    (_set(["studies", "s", "grid"], {"momentum": [0.9]}), "studies.s.grid", "'momentum' was unexpected"),
    (_set(["studies", "s", "set"], {"dropout": 1.5}), "studies.s.set.dropout", "greater than or equal to"),
    (_set(["defaults", "image_size"], [128]), "defaults.image_size", "too short"),
    (_set(["datasets", "skin"], {"classes": ["Mel", "Nevi"]}), "datasets.skin", "'path' is a required property"),
    (_set(["studies", "s", "seeds"], []), "studies.s.seeds", "should be non-empty"),
    (_set(["studies", "s", "set"], {"batch_norm": True}), "studies.s.grid.batch_norm", "also fixed in 'set'"),
    (_set(["unknown_top_level"], 1), "(top level)", "'unknown_top_level' was unexpected"),
    (_set(["defaults", "augment"], {"rotaton_range": 10}), "defaults.augment", "'rotaton_range' was unexpected"),
    (_set(["defaults", "augment"], {"zoom_range": 1.5}), "defaults.augment.zoom_range", "1.5"),
    (_set(["defaults", "augment"], "heavy"), "defaults.augment", "'heavy'"),
    (_set(["augmentation_gallery"], {"datasets": ["lungs"]}), "augmentation_gallery.datasets[0]", "not under"),
    (
        _set(["studies", "s", "set"], {"model": "vgg16", "image_size": [16, 16]}),
        "studies.s.set.image_size",
        "at least 32",
    ),
    (
        _set(
            ["studies", "s"],
            {
                "variants": [{}, {"batch_norm": True, "dropout": 0.4}],
                "baseline": {"batch_norm": False},
                "datasets": ["skin"],
            },
        ),
        "studies.s.baseline",
        "that would be batch_norm=False, dropout=0.4, which the study does not train",
    ),
]


@pytest.mark.parametrize(("edit", "key_path", "problem"), MALFORMED)
def test_malformed_config_fails_at_parse_time_naming_the_key(tmp_path, datasets, edit, key_path, problem):
    config = good_config(datasets)
    edit(config)
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key '{key_path}'" in output, output
    assert problem in output, output
    assert not (tmp_path / "results").exists()


def test_missing_dataset_folder_stops_a_run_and_is_a_warning_in_a_dry_run(tmp_path, datasets):
    config = good_config(datasets)
    config["datasets"]["skin"]["path"] = "data/Skin"
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "data/Skin does not exist" in output
    assert "data/Skin/train/<class>/<images>" in output and "make demo" in output
    assert not (tmp_path / "results").exists()  # stopped before any job
    dry = snakemake(tmp_path, "--dry-run")  # the whole job graph, before the data is staged
    warned = dry.stdout + dry.stderr
    assert "data/Skin does not exist" in warned and "a run would stop here" in warned
    assert re.search(r"^prepare_data\s+1$", dry.stdout, flags=re.MULTILINE), dry.stdout


def test_without_data_lint_unlock_and_other_targets_work(tmp_path, datasets):
    """The data is checked for the jobs that read it, not when the workflow is parsed."""
    config = good_config(datasets)
    for name in config["datasets"]:
        config["datasets"][name]["path"] = f"data/{name}"
    write_config(tmp_path, config)
    snakemake(tmp_path, "--lint")
    assert "Unlocked working directory" in snakemake(tmp_path, "--unlock").stderr
    planned = snakemake(tmp_path, "--dry-run", "results/runs.tsv").stdout
    assert re.search(r"^run_table\s+1$", planned, flags=re.MULTILINE) and "prepare_data" not in planned


def test_good_config_dry_run_lists_one_train_job_per_run(tmp_path, datasets):
    write_config(tmp_path, good_config(datasets))
    result = snakemake(tmp_path, "--dry-run")
    assert re.search(r"^train\s+2$", result.stdout, flags=re.MULTILINE), result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults:\n  lr: 0.1\n  lr: 0.2\n", r"line \d+, column 3: key .lr. under defaults is given twice"),
        ("defaults:\n\tlr: 0.1\n", r"tabs are not allowed for indentation"),
    ],
)
def test_config_file_problems_name_the_file_and_line(tmp_path, datasets, text, message):
    write_config(tmp_path, good_config(datasets))
    config = tmp_path / "config" / "config.yaml"
    config.write_text(config.read_text() + text.replace("defaults:", "extra:"))
    result = snakemake(tmp_path, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config/config.yaml" in output and re.search(message.replace("defaults", "extra"), output)


def test_a_key_given_twice_in_a_command_line_config_file_is_an_error(tmp_path, datasets):
    write_config(tmp_path, good_config(datasets))
    override = tmp_path / "override.yaml"
    override.write_text("defaults:\n  lr: 0.1\n  lr: 0.2\n")
    lab = tmp_path / "config" / "config.yaml"
    result = snakemake(tmp_path, "-n", "--configfile", str(lab), str(override), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{override}, line 3" in output and "key 'lr' under defaults is given twice" in output
