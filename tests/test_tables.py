"""Study summaries from run folders: epochs read at, ranking, paired effects, comparisons."""

import json

import numpy as np
import pandas as pd
import pytest

from cnnreg.studies import build_plan
from cnnreg.tables import answer, summarise_study
from cnnreg.train import HISTORY_COLUMNS


def write_run(folder, val_accuracy, accuracy=None, seconds=1.0):
    """A finished run folder whose history has the given per-epoch validation accuracies."""
    folder.mkdir(parents=True)
    epochs = len(val_accuracy)
    accuracy = accuracy if accuracy is not None else [min(1.0, v + 0.1) for v in val_accuracy]
    history = pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "loss": np.linspace(1, 0.1, epochs),
            "accuracy": accuracy,
            "val_loss": np.linspace(1, 0.2, epochs),
            "val_accuracy": val_accuracy,
            "lr": 1e-5,
            "seconds": seconds,
        },
        columns=HISTORY_COLUMNS,
    )
    history.to_csv(folder / "history.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps({"epochs_run": epochs, "val_auc": 0.5}))


def plan_for(lab_config, studies):
    lab_config["studies"] = studies
    return build_plan(lab_config)


def test_at_epochs_read_the_history_prefix_and_rank_variants(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"g": {"set": {"epochs": 4}, "grid": {"dropout": [0.0, 0.4]}, "at_epochs": [2, 4],
               "datasets": ["skin"], "seeds": [0, 1]}},
    )  # fmt: skip
    study = plan.studies["g"]
    curves = {0.0: [0.5, 0.9, 0.6, 0.6], 0.4: [0.5, 0.6, 0.7, 0.8]}
    dirs = {}
    for rid in study.runs:
        dirs[rid] = tmp_path / rid
        write_run(dirs[rid], curves[plan.runs[rid]["dropout"]])
    summary, variants, _ = summarise_study(study, plan.runs, dirs)
    assert len(summary) == 2 * 2 * 2  # runs x epochs read at
    at2 = variants[variants["at_epoch"] == 2].set_index("variant")
    at4 = variants[variants["at_epoch"] == 4].set_index("variant")
    assert at2.loc["dropout=0.0", "best_val_accuracy_mean"] == pytest.approx(0.9)
    assert at2.loc["dropout=0.0", "final_val_accuracy_mean"] == pytest.approx(0.9)
    assert at2.loc["dropout=0.4", "rank"] == 2 and at2.loc["dropout=0.0", "rank"] == 1
    assert at4.loc["dropout=0.4", "final_val_accuracy_mean"] == pytest.approx(0.8)
    assert at4.loc["dropout=0.0", "best_epoch_mean"] == pytest.approx(2)
    assert at2.loc["dropout=0.0", "wall_seconds_mean"] == pytest.approx(2.0)
    text = answer(variants)
    assert "On skin at epoch 2, the best is dropout=0.0" in text
    assert "On skin at epoch 4, the best is dropout=0.0" in text  # best 0.9 (epoch 2) beats 0.8
    assert "the 95 % CIs do not overlap" in text  # identical seeds: CIs of zero width


def test_paired_effects_against_the_baseline(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"a": {"set": {"epochs": 2}, "grid": {"augment": ["none", "lab"]}, "baseline": {"augment": "none"},
               "datasets": ["skin", "bone"], "seeds": [0, 1, 2]}},
    )  # fmt: skip
    study = plan.studies["a"]
    dirs = {}
    for rid in study.runs:
        p = plan.runs[rid]
        # Augmentation adds 0.1 (+ a seed-dependent wobble) on skin and nothing on bone.
        gain = (0.1 + 0.01 * p["seed"]) if (p["augment"] == "lab" and p["dataset"] == "skin") else 0.0
        base = 0.6 + 0.05 * p["seed"]
        dirs[rid] = tmp_path / rid
        write_run(dirs[rid], [base, base + gain], accuracy=[0.9, 0.95])
    _, variants, extra = summarise_study(study, plan.runs, dirs)
    effects = extra["effects"].set_index("dataset")
    assert effects.loc["skin", "n_pairs"] == 3
    assert effects.loc["skin", "versus"] == "augment=none"
    assert effects.loc["skin", "delta_final_val_accuracy_mean"] == pytest.approx(0.11)
    assert effects.loc["skin", "delta_generalization_gap_mean"] == pytest.approx(-0.11)
    assert effects.loc["bone", "delta_best_val_accuracy_mean"] == pytest.approx(0.0)
    text = answer(variants, extra["effects"])
    assert "On skin, augment=lab against augment=none (paired by seed, n=3): best validation accuracy +0.110" in text
    assert "helps: the CI excludes 0" in text
    assert "On bone, augment=lab against augment=none" in text and "no clear effect" in text


def test_comparison_with_another_study_per_dataset(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {
            "scratch": {"set": {"epochs": 3}, "grid": {"augment": ["none", "lab"]}, "datasets": ["skin", "bone"],
                        "seeds": [0, 1]},
            "transfer": {"set": {"epochs": 3, "model": "vgg16_imagenet", "dense": [128], "dropout": 0.5},
                         "compare_with": "scratch", "datasets": ["skin"], "seeds": [0, 1]},
        },
    )  # fmt: skip
    study, other = plan.studies["transfer"], plan.studies["scratch"]
    dirs = {}
    for rid in (*study.runs, *other.runs):
        transfer = plan.runs[rid]["model"] == "vgg16_imagenet"
        dirs[rid] = tmp_path / rid
        write_run(dirs[rid], [0.9, 0.95, 0.9] if transfer else [0.5, 0.6, 0.7], seconds=0.5 if transfer else 10)
    _, variants, extra = summarise_study(study, plan.runs, dirs, other)
    comparison = extra["comparison"]
    assert set(comparison["dataset"]) == {"skin"}  # only the datasets the study uses
    assert list(comparison["study"]) == ["scratch", "scratch", "transfer"]
    mine = comparison[comparison["study"] == "transfer"].iloc[0]
    assert mine["best_val_accuracy_mean"] == pytest.approx(0.95)
    assert mine["best_epoch_mean"] == pytest.approx(2)
    assert mine["wall_seconds_mean"] == pytest.approx(1.5)
    text = answer(variants, comparison=comparison)
    assert "scratch augment=lab: best validation accuracy 0.700 ± 0.000 at epoch 3.0 ± 0.0 after 30.0" in text
    assert text.count("On skin: ") == 1
