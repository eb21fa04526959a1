"""Study summaries from run folders: epochs read at, ranking (by rank_by, of the runs that learned),
paired differences, comparisons, curves."""

import dataclasses
import json

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO

from cnnreg.answers import generic as answer
from cnnreg.data import Cache
from cnnreg.history import HISTORY_COLUMNS
from cnnreg.studies import ConfigError, build_plan
from cnnreg.tables import curve_table, summarise_study
from cnnreg.train import class_counts


def write_run(folder, val_accuracy, accuracy=None, seconds=1.0, class_counts=(500, 500), val_auc=0.5, negatives=10):
    """A finished run folder whose history has the given per-epoch validation accuracies; it
    trained on ``class_counts`` images per class, and its predictions of 10 validation images of
    the positive class and `negatives` others have the AUC `val_auc` (in [0.5, 1])."""
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
    counts = {"train": list(class_counts), "validation": [10, negatives]}
    metrics = {"epochs_run": epochs, "class_counts": counts, "confusion_matrix": {"classes": ["Mel", "Nevi"]}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_predictions(folder, val_auc, negatives)


def write_predictions(folder, val_auc, negatives):
    """Positives score 0.5; of the negatives, 20 * val_auc - 10 score below them, the rest tie."""
    below = round(20 * val_auc - 10) if negatives else 0
    scores = [0.5] * 10 + [0.2] * below + [0.5] * (negatives - below)
    labels = [0] * 10 + [1] * negatives
    rows = [
        {"split": "validation", "model": model, "file": f"{i}.png", "label": label, "prediction": int(p < 0.5),
         "prob_0": p, "prob_1": 1 - p}
        for model in ("best", "final")
        for i, (label, p) in enumerate(zip(labels, scores, strict=True))
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "predictions.csv", index=False)


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
    summary, variants, extra = summarise_study(study, plan.runs, dirs)
    assert len(summary) == 2 * 2 * 2  # runs x epochs read at
    at2 = variants[variants["at_epoch"] == 2].set_index("variant")
    at4 = variants[variants["at_epoch"] == 4].set_index("variant")
    assert at2.loc["dropout=0.0", "best_val_accuracy_mean"] == pytest.approx(0.9)
    assert at2.loc["dropout=0.0", "final_val_accuracy_mean"] == pytest.approx(0.9)
    assert at2.loc["dropout=0.4", "rank"] == 2 and at2.loc["dropout=0.0", "rank"] == 1
    assert at4.loc["dropout=0.4", "final_val_accuracy_mean"] == pytest.approx(0.8)
    assert at4.loc["dropout=0.0", "best_epoch_mean"] == pytest.approx(2)
    assert at2.loc["dropout=0.0", "wall_seconds_mean"] == pytest.approx(2.0)
    assert list(at2["rank_by"]) == ["best_val_accuracy"] * 2 and list(at2["dropout"]) == ["0.0", "0.4"]
    assert at2.loc["dropout=0.0", "best_val_accuracy_interval"] == "range"  # 2 seeds: no interval
    text = answer(variants, runner_up=extra["runner_up"])
    assert "On skin at epoch 2, the best is dropout=0.0 with best validation accuracy 0.900 (range" in text
    assert "On skin at epoch 4, the best is dropout=0.0" in text  # 0.9 beats 0.8
    # Two pairs: the differences' range, and no verdict either way.
    assert "dropout=0.0 − dropout=0.4 = +0.300 (range +0.300 to +0.300, n = 2): too few pairs" in text
    assert "settled" not in text


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
    assert effects.loc["skin", "delta_best_val_accuracy_interval"] == "t 95 %"
    assert effects.loc["skin", "delta_best_val_accuracy_low"] == pytest.approx(0.11 - 4.303 * 0.01 / 3**0.5, rel=1e-3)
    text = answer(variants, extra["effects"])
    assert (
        "On skin, augment=lab against augment=none (paired by seed, n = 3 pairs): best validation accuracy +0.110 "
        "(+0.085 to +0.135, t 95 %, n = 3) — augment=lab is better by 0.110" in text
    )
    assert "On bone, augment=lab against augment=none" in text and "includes 0, so it is not settled" in text


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
    assert mine["seconds_to_best_mean"] == pytest.approx(1.0)  # the best is epoch 2 of 3
    text = answer(variants, comparison=comparison)
    assert (
        "scratch augment=lab: best validation accuracy 0.700 (range 0.700–0.700, n = 2) at epoch 3.0 "
        "(range 3.0–3.0, n = 2), after 30.0" in text
    )
    assert "at epoch 2.0 (range 2.0–2.0, n = 2), after 1.0 (range 1.0–1.0, n = 2) s of training" in text
    assert text.count("On skin: ") == 1


def bn_baseline_study(lab_config, seeds, **extra):
    """AlexNet without and with batch norm, ``batch_norm: false`` the baseline, 4 epochs."""
    study = {"set": {"epochs": 4}, "grid": {"batch_norm": [False, True]}, "baseline": {"batch_norm": False},
             "datasets": ["skin"], "seeds": seeds, **extra}  # fmt: skip
    plan = plan_for(lab_config, {"bn": study})
    return plan, plan.studies["bn"]


def write_accuracies(tmp_path, plan, study, accuracy):
    """Run folders whose training accuracy is ``accuracy[(batch_norm, seed)]``."""
    dirs = {}
    for rid in study.runs:
        p = plan.runs[rid]
        dirs[rid] = tmp_path / rid
        write_run(dirs[rid], [0.5] * 4, accuracy=accuracy[(p["batch_norm"], p["seed"])])
    return dirs


BASELINE_ACCURACY = [0.5, 0.6, 0.7, 0.8]  # reference: final training accuracy 0.8, reached at epoch 4


def test_epoch_reached_reference_is_averaged_over_the_seeds_that_reached_it(lab_config, tmp_path):
    plan, study = bn_baseline_study(lab_config, [0, 1, 2])
    accuracy = {(False, s): BASELINE_ACCURACY for s in range(3)}
    accuracy.update({(True, 0): [0.6, 0.8, 0.9, 0.9], (True, 1): [0.5, 0.7, 0.8, 0.85], (True, 2): [0.5] * 4})
    summary, variants, _ = summarise_study(study, plan.runs, write_accuracies(tmp_path, plan, study, accuracy))
    reached = summary[summary["variant"] == "batch_norm=True"].set_index("seed")["epoch_reached_reference"]
    assert reached[0] == 2 and reached[1] == 3 and np.isnan(reached[2])
    bn = variants.set_index("variant").loc["batch_norm=True"]
    assert bn["n_runs"] == 3 and bn["epoch_reached_reference_n_of_reached"] == 2
    assert bn["epoch_reached_reference_mean_of_reached"] == pytest.approx(2.5)
    assert bn["epoch_reached_reference_low_of_reached"] == 2 and bn["epoch_reached_reference_high_of_reached"] == 3
    assert "epoch_reached_reference_mean" not in variants
    text = answer(variants)
    assert (
        "On skin, batch_norm=True first reached the final training accuracy of batch_norm=False at epoch 2.5 "
        "(range 2.0–3.0, n = 2), over the 2 of 3 runs that reached it." in text
    )


def test_no_seed_reaching_the_reference_is_said(lab_config, tmp_path):
    plan, study = bn_baseline_study(lab_config, [0, 1])
    accuracy = {(False, s): BASELINE_ACCURACY for s in (0, 1)} | {(True, 0): [0.5] * 4, (True, 1): [0.6] * 4}
    _, variants, _ = summarise_study(study, plan.runs, write_accuracies(tmp_path, plan, study, accuracy))
    bn = variants.set_index("variant").loc["batch_norm=True"]
    assert bn["epoch_reached_reference_n_of_reached"] == 0 and np.isnan(bn["epoch_reached_reference_mean_of_reached"])
    assert (
        "batch_norm=True first reached the final training accuracy of batch_norm=False — no run reached it within "
        "the epochs run." in answer(variants)
    )


def test_epoch_reached_reference_at_an_epoch_looks_only_up_to_it(lab_config, tmp_path):
    plan, study = bn_baseline_study(lab_config, [0], at_epochs=[2, 4])
    accuracy = {(False, 0): BASELINE_ACCURACY, (True, 0): [0.5, 0.55, 0.65, 0.9]}
    summary, variants, _ = summarise_study(study, plan.runs, write_accuracies(tmp_path, plan, study, accuracy))
    bn = summary[summary["variant"] == "batch_norm=True"].set_index("at_epoch")
    assert bn.loc[2, "reference_accuracy"] == pytest.approx(0.6)
    assert np.isnan(bn.loc[2, "epoch_reached_reference"])  # 0.65 at epoch 3 is after the epochs read
    assert bn.loc[4, "epoch_reached_reference"] == 4
    text = answer(variants)
    assert "at epoch 2, batch_norm=True first reached the final training accuracy of batch_norm=False — no run" in text
    assert "at epoch 4.0 (n = 1), over the 1 of 1 run that reached it" in text


def test_effects_leave_out_a_variant_without_a_paired_baseline_run(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"sd": {"set": {"epochs": 2}, "variants": [{}, {"spatial_dropout": 0.1},
                                                   {"spatial_dropout": 0.1, "dropout": 0.4}],
                "baseline": {"spatial_dropout": 0.0, "dropout": 0.0}, "datasets": ["skin"], "seeds": [0, 1]}},
    )  # fmt: skip
    # A library caller's baseline that leaves (spatial_dropout 0.1, dropout 0.4) unpaired; build_plan rejects it.
    study = dataclasses.replace(plan.studies["sd"], baseline={"spatial_dropout": 0.0})
    dirs = {}
    for rid in study.runs:
        dirs[rid] = tmp_path / rid
        write_run(dirs[rid], [0.6, 0.6 + plan.runs[rid]["spatial_dropout"]])
    _, variants, extra = summarise_study(study, plan.runs, dirs)
    (row,) = extra["effects"].to_dict("records")
    assert row["variant"] == "dropout=0.0, spatial_dropout=0.1" and row["versus"] == "dropout=0.0, spatial_dropout=0.0"
    assert row["n_pairs"] == 2 and row["delta_final_val_accuracy_mean"] == pytest.approx(0.1)
    assert "(paired by seed, n = 2 pairs)" in answer(variants, extra["effects"])


def dropout_study(lab_config, seeds=(0, 1, 2), **extra):
    """Dropout 0.0 against 0.4 on skin, 2 epochs, the given seeds."""
    study = {"set": {"epochs": 2}, "grid": {"dropout": [0.0, 0.4]}, "datasets": ["skin"], "seeds": list(seeds),
             **extra}  # fmt: skip
    plan = plan_for(lab_config, {"d": study})
    return plan, plan.studies["d"]


def write_dropout_runs(tmp_path, plan, study, write):
    """Run folders written by ``write(folder, dropout, seed)``."""
    dirs = {}
    for rid in study.runs:
        dirs[rid] = tmp_path / rid
        write(dirs[rid], plan.runs[rid]["dropout"], plan.runs[rid]["seed"])
    return dirs


def test_a_run_at_the_majority_rate_did_not_learn_and_is_not_ranked(lab_config, tmp_path):
    plan, study = dropout_study(lab_config)

    def write(folder, dropout, seed):
        if dropout == 0.4:  # always "the majority class": 60 % of the training images, and a lucky validation
            write_run(folder, [0.9, 0.9], accuracy=[0.6, 0.6], class_counts=(60, 40))
        else:  # seed 2 stays within 3 binomial SEs (0.147 on 100 images) of the majority rate
            write_run(folder, [0.7, 0.7], accuracy=[0.6, 0.74 if seed == 2 else 0.9], class_counts=(60, 40))

    summary, variants, extra = summarise_study(study, plan.runs, write_dropout_runs(tmp_path, plan, study, write))
    assert summary["majority_rate"].to_numpy() == pytest.approx(np.full(6, 0.6))
    assert summary.groupby("variant")["learned"].sum().to_dict() == {"dropout=0.0": 2, "dropout=0.4": 0}
    table = variants.set_index("variant")
    assert table.loc["dropout=0.4", "did_not_learn"] and np.isnan(table.loc["dropout=0.4", "rank"])
    assert table.loc["dropout=0.0", "rank"] == 1 and table.loc["dropout=0.0", "n_not_learned"] == 1
    assert table.loc["dropout=0.4", "best_val_accuracy_mean"] == pytest.approx(0.9)  # higher, but not ranked
    assert extra["runner_up"].empty  # one ranked variant: nothing to pair
    text = answer(variants, runner_up=extra["runner_up"])
    assert "the best is dropout=0.0 with best validation accuracy 0.700 (0.700–0.700, bootstrap 95 %, n = 3)" in text
    assert "dropout=0.0: 1 of 3 runs did not learn; dropout=0.4: 3 of 3 runs did not learn, so it is not ranked" in text


def test_when_no_variant_learned_no_best_is_named(lab_config, tmp_path):
    plan, study = dropout_study(lab_config, seeds=(0, 1))

    def write(folder, dropout, seed):
        write_run(folder, [0.5, 0.5 + dropout / 4], accuracy=[0.5, 0.5])

    _, variants, extra = summarise_study(study, plan.runs, write_dropout_runs(tmp_path, plan, study, write))
    assert variants["did_not_learn"].all() and variants["rank"].isna().all()
    text = answer(variants, runner_up=extra["runner_up"])
    assert "On skin, no variant learned: 4 of 4 runs did not learn" in text and "the best is" not in text


@pytest.mark.parametrize(
    ("gains", "settled"),
    [([0.10, 0.12, 0.08], True), ([0.10, -0.08, 0.02], False)],
    ids=["interval-excludes-0", "interval-includes-0"],
)
def test_not_settled_exactly_when_the_paired_interval_includes_0(lab_config, tmp_path, gains, settled):
    plan, study = dropout_study(lab_config, baseline={"dropout": 0.0})

    def write(folder, dropout, seed):
        base = 0.6 + 0.1 * seed  # seeds differ more than the variants: only pairing separates them
        write_run(folder, [base + (gains[seed] if dropout == 0.4 else 0.0)] * 2, accuracy=[0.9, 0.95])

    _, variants, extra = summarise_study(study, plan.runs, write_dropout_runs(tmp_path, plan, study, write))
    (pair,) = extra["runner_up"].to_dict("records")
    (effect,) = extra["effects"].to_dict("records")
    assert pair["best"] == "dropout=0.4" and pair["runner_up"] == "dropout=0.0" and pair["n_pairs"] == 3
    assert pair["delta_mean"] == pytest.approx(np.mean(gains)) and pair["delta_interval"] == "t 95 %"
    assert (pair["delta_low"] > 0) == settled and (effect["delta_best_val_accuracy_low"] > 0) == settled
    best = table_row(variants, "dropout=0.4")
    assert best["best_val_accuracy_low"] < table_row(variants, "dropout=0.0")["best_val_accuracy_high"]  # overlap
    text = answer(variants, extra["effects"], runner_up=extra["runner_up"])
    assert ("not settled" in text) != settled
    assert ("dropout=0.4 is better by 0.100" in text) == settled
    assert text.count("dropout=0.4 is better by") == (2 if settled else 0)  # ranking and effect sentences


def table_row(variants, variant):
    return variants.set_index("variant").loc[variant]


def write_auc_runs(tmp_path, plan, study):
    """dropout 0.0 has the higher validation accuracy, dropout 0.4 the higher AUC."""

    def write(folder, dropout, seed):
        write_run(folder, [0.7, 0.8 - dropout / 4], val_auc=0.6 + dropout)

    return write_dropout_runs(tmp_path, plan, study, write)


def test_rank_by_another_metric_changes_the_best(lab_config, tmp_path):
    plan, study = dropout_study(lab_config)
    dirs = write_auc_runs(tmp_path, plan, study)
    _, variants, _ = summarise_study(study, plan.runs, dirs)
    assert table_row(variants, "dropout=0.0")["rank"] == 1 and study.rank_by == "best_val_accuracy"
    top = dropout_study({**lab_config, "rank_by": "val_auc"})
    override = dropout_study({**lab_config, "rank_by": "final_val_accuracy"}, rank_by="val_auc")
    for plan, study in (top, override):
        assert study.rank_by == "val_auc"
        _, variants, extra = summarise_study(study, plan.runs, dirs)
        assert table_row(variants, "dropout=0.4")["rank"] == 1 and set(variants["rank_by"]) == {"val_auc"}
        assert extra["runner_up"].iloc[0]["delta_mean"] == pytest.approx(0.4)
        assert "the best is dropout=0.4 with validation AUC 1.000" in answer(variants, runner_up=extra["runner_up"])


def test_rank_by_is_checked_at_the_edge(lab_config, tmp_path):
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    jsonschema.validate({**lab_config, "rank_by": "val_sensitivity"}, schema)
    with pytest.raises(jsonschema.ValidationError, match="'test_accuracy' is not one of"):
        jsonschema.validate({**lab_config, "rank_by": "test_accuracy"}, schema)
    with pytest.raises(ConfigError, match="'test_accuracy' is not a metric to rank by; expected one of") as error:
        dropout_study(lab_config, rank_by="test_accuracy")
    assert error.value.key_path == "studies.d.rank_by"
    plan, study = dropout_study(lab_config, rank_by="val_specificity")  # no negatives: undefined
    dirs = write_dropout_runs(tmp_path, plan, study, lambda folder, *_: write_run(folder, [0.5, 0.9], negatives=0))
    with pytest.raises(
        ValueError, match=r"rank_by 'val_specificity' has no values in these runs; they have .* 'val_sensitivity'"
    ):
        summarise_study(study, plan.runs, dirs)


def test_curve_bands_are_ranges_for_two_seeds_and_stay_within_accuracy(lab_config, tmp_path):
    plan, study = dropout_study(lab_config, seeds=(0, 1))

    def write(folder, dropout, seed):
        write_run(folder, [0.2 + 0.7 * seed, 0.9], accuracy=[0.1, 1.0])

    dirs = write_dropout_runs(tmp_path, plan, study, write)
    _, _, extra = summarise_study(study, plan.runs, dirs)
    curves = curve_table(study, plan.runs, extra["histories"])
    first = curves[(curves["split"] == "validation") & (curves["metric"] == "accuracy") & (curves["epoch"] == 1)]
    assert list(first["low"]) == pytest.approx([0.2, 0.2]) and list(first["high"]) == pytest.approx([0.9, 0.9])
    assert set(curves["interval"]) == {"range"} and set(curves["n"]) == {2}
    accuracy = curves[curves["metric"] == "accuracy"]
    assert accuracy["low"].min() >= 0 and accuracy["high"].max() <= 1


def test_class_counts_are_per_class_in_label_order():
    data = Cache(*[None] * len(Cache._fields))._replace(
        y_train=np.array([1, 1, 0, 1]), y_val=np.array([1, 1]), y_test=np.array([], int), classes=["Mel", "Nevi"]
    )
    assert class_counts(data) == {"train": [1, 3], "validation": [0, 2]}
    tested = data._replace(y_test=np.array([0, 0, 1]))
    assert class_counts(tested) == {"train": [1, 3], "validation": [0, 2], "test": [2, 1]}


def test_a_run_without_class_counts_says_what_is_missing(lab_config, tmp_path):
    plan, study = dropout_study(lab_config, seeds=(0,))
    dirs = write_dropout_runs(tmp_path, plan, study, lambda folder, dropout, seed: write_run(folder, [0.5, 0.6]))
    for folder in dirs.values():
        (folder / "metrics.json").write_text(json.dumps({"epochs_run": 2, "confusion_matrix": {"classes": ["A", "B"]}}))
    with pytest.raises(ValueError, match="has no class_counts.train"):
        summarise_study(study, plan.runs, dirs)
