"""Each answer kind on small hand-made run folders: the numbers its sentences state, its verdicts
(settled, not settled, too few seeds), runs that did not learn, and the generic answer kept for a
study without a kind."""

import numpy as np
import pandas as pd
import pytest
from test_tables import plan_for, write_run

from cnnreg.answers import StudyTables, answer_study, gallery, generic
from cnnreg.galleries import skimage_panels
from cnnreg.studies import ConfigError
from cnnreg.tables import summarise_study
from cnnreg.wording import DESCRIPTION, NOT_SETTLED, SETTLED


def answer_of(plan, name, tmp_path, curves, gradcam=None):
    """The study's Answer, its runs written by ``curves(params) -> (val_accuracy, accuracy)``."""
    study = plan.studies[name]
    other = plan.studies.get(study.compare_with)
    dirs = {}
    for rid in [*study.runs, *(other.runs if other else ())]:
        val_accuracy, accuracy = curves(plan.runs[rid])
        dirs[rid] = tmp_path / rid
        if not dirs[rid].exists():
            write_run(dirs[rid], val_accuracy, accuracy=accuracy)
    tables = StudyTables.of_summary(study, summarise_study(study, plan.runs, dirs, other), plan.runs, other, gradcam)
    return answer_study(tables), tables


def bn_study(lab_config, seeds=(0, 1, 2)):
    return plan_for(
        lab_config,
        {"bn": {"set": {"epochs": 5}, "grid": {"batch_norm": [False, True]}, "baseline": {"batch_norm": False},
                "answer": "training_accuracy", "datasets": ["skin"], "seeds": list(seeds)}},
    )  # fmt: skip


def test_training_accuracy_states_both_finals_and_when_the_reference_is_reached(lab_config, tmp_path):
    plan = bn_study(lab_config)

    def curves(p):
        if not p["batch_norm"]:
            return [0.6] * 5, [0.6, 0.65, 0.7, 0.75, 0.8]  # the reference: 0.8, first at epoch 5
        top = 0.95 + 0.01 * p["seed"]
        return [0.7] * 5, [0.7, 0.85, 0.9, 0.92, top]  # passes 0.8 at epoch 2

    found, _ = answer_of(plan, "bn", tmp_path, curves)
    assert found.kind == "training_accuracy"
    assert "the final training accuracy is: no batch normalization 0.800" in found.text
    assert "batch normalization 0.960 (" in found.text and "n = 3)" in found.text
    assert "batch normalization ends higher" in found.text  # +0.16 for every seed: settled
    assert "reaches the final training accuracy of no batch normalization (0.800) at epoch 2.0" in found.text
    assert "in 3 of 3 seeds; no batch normalization itself first reaches it at epoch 5.0" in found.text
    assert "(batch normalization − no batch normalization): -3.0" in found.text
    assert "batch normalization trains faster" in found.text
    assert found.status == SETTLED


def test_training_accuracy_when_no_seed_reaches_the_reference(lab_config, tmp_path):
    plan = bn_study(lab_config, seeds=(0, 1))

    def curves(p):
        return [0.6] * 5, ([0.6, 0.65, 0.7, 0.75, 0.8] if not p["batch_norm"] else [0.6, 0.7, 0.72, 0.74, 0.75])

    found, _ = answer_of(plan, "bn", tmp_path, curves)
    assert "no seed reached it within the 5 epochs run" in found.text
    assert "trains faster" not in found.text and "Epochs to get there" not in found.text
    # Two seeds give the differences' range, not an interval: no verdict, so not settled.
    assert "-0.050 (range -0.050 to -0.050, n = 2): too few pairs for an interval, so no verdict" in found.text
    assert found.status == NOT_SETTLED


def test_generalization_compares_accuracy_and_gap_and_leaves_out_runs_that_did_not_learn(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"do": {"set": {"epochs": 3}, "grid": {"dropout": [0.0, 0.4, 0.6]}, "answer": "generalization",
                "datasets": ["skin"], "seeds": [0, 1, 2]}},
    )  # fmt: skip
    wobble = {0: 0.1, 1: -0.05, 2: 0.0}

    def curves(p):
        if p["dropout"] == 0.6:
            return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]  # never above chance: did not learn, gap 0
        if p["dropout"] == 0.0:
            return [0.6, 0.7, 0.8], [0.7, 0.9, 1.0]  # gap 0.2
        final = 0.8 + wobble[p["seed"]]
        return [0.6, 0.7, final], [0.65, 0.75, 0.8 + wobble[p["seed"]] + 0.05]  # gap 0.05

    found, _ = answer_of(plan, "do", tmp_path, curves)
    text = found.text
    # Validation accuracy: 0.817 against 0.800, differences +0.1, -0.05, 0: the interval includes 0.
    assert "the higher best validation accuracy is dropout 0.4's, 0.817" in text
    assert "against 0.800 (0.800–0.800, bootstrap 95 %, n = 3) for no dropout" in text
    assert "the difference is +0.017" in text and "the interval includes 0, so it is not settled" in text
    # The gap: 0.05 against 0.2 in every seed, settled; dropout 0.6 (gap 0) is not a contender.
    assert "no dropout − dropout 0.4 = +0.150" in text and "dropout 0.4 generalizes better" in text
    assert "dropout 0.6 generalizes better" not in text
    assert "Runs that did not learn" in text and "dropout 0.6: 3 of 3 runs" in text
    assert found.status == NOT_SETTLED


def test_generalization_against_a_compared_study_says_what_changes(lab_config, tmp_path):
    lab_config["studies"] = {
        "plain": {"set": {"epochs": 3}, "grid": {"batch_norm": [False, True]}, "datasets": ["skin"],
                  "seeds": [0, 1, 2]},
        "dropout": {"set": {"epochs": 3, "dropout": 0.4}, "grid": {"batch_norm": [False, True]},
                    "compare_with": "plain", "answer": "generalization", "datasets": ["skin"], "seeds": [0, 1, 2]},
    }  # fmt: skip
    plan = plan_for(lab_config, lab_config["studies"])

    def curves(p):
        if p["dropout"]:
            return [0.6, 0.7, 0.8 + 0.01 * p["seed"]], [0.7, 0.8, 0.85]
        return [0.6, 0.65, 0.7], [0.8, 0.9, 1.0]

    found, _ = answer_of(plan, "dropout", tmp_path, curves)
    assert "Against plain (dropout 0.4 here, no dropout there):" in found.text
    # Best validation accuracy 0.1 + 0.01 seed higher, gap 0.05 - 0.01 seed against 0.3: both settled.
    assert "On skin, batch normalization, here − there paired by seed: best validation accuracy +0.110" in found.text
    assert "better here; generalization gap -0.260" in found.text


def test_best_combination_per_epoch_and_whether_it_is_separated(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"g": {"set": {"epochs": 4}, "grid": {"batch_norm": [False, True], "dropout": [0.0, 0.4]},
               "at_epochs": [2, 4], "answer": "best_combination", "datasets": ["skin"], "seeds": [0, 1, 2]}},
    )  # fmt: skip

    def curves(p):
        if not p["batch_norm"] and p["dropout"]:
            return [0.5] * 4, [0.5] * 4  # did not learn
        if p["batch_norm"] and p["dropout"]:
            return [0.6, 0.7, 0.8, 0.9 + 0.01 * p["seed"]], [0.9] * 4  # best after 4 epochs, clearly
        return [0.6, 0.75 + 0.01 * p["seed"], 0.76, 0.77], [0.9] * 4  # best after 2 epochs, with a tie

    found, _ = answer_of(plan, "g", tmp_path, curves)
    text = found.text
    assert "On skin after 4 epochs, the best combination is batch normalization, dropout 0.4" in text
    assert "the runner-up is batch normalization, no dropout" in text or "runner-up is no batch normalization" in text
    assert "the best is separated from the runner-up" in text
    # After 2 epochs the two without dropout tie exactly: a zero difference is not settled.
    after_2 = text[text.index("On skin after 2 epochs") : text.index("On skin after 4 epochs")]
    assert "the difference is +0.000" in after_2 and "not settled" in after_2
    assert "1 of 4 combinations did not learn" in after_2
    assert found.status == NOT_SETTLED


def test_best_combination_with_one_seed_has_no_interval(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"g": {"set": {"epochs": 2}, "grid": {"dropout": [0.0, 0.4]}, "answer": "best_combination",
               "datasets": ["skin"], "seeds": [0]}},
    )  # fmt: skip
    found, _ = answer_of(plan, "g", tmp_path, lambda p: ([0.6, 0.8 - p["dropout"] / 4], [0.9, 0.9]))
    assert "the best combination is no dropout, best validation accuracy 0.800 (n = 1)" in found.text
    assert "+0.100 (n = 1): too few pairs for an interval, so no verdict" in found.text
    assert found.status == NOT_SETTLED


def test_helps_says_where_and_by_how_much(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"a": {"set": {"epochs": 2}, "grid": {"augment": ["none", "lab"]}, "baseline": {"augment": "none"},
               "answer": "helps", "datasets": ["skin", "bone"], "seeds": [0, 1, 2]}},
    )  # fmt: skip
    wobble = {0: 0.05, 1: -0.05, 2: 0.0}

    def curves(p):
        base = 0.6 + 0.05 * p["seed"]
        if p["augment"] == "lab":
            base += 0.1 + 0.01 * p["seed"] if p["dataset"] == "skin" else wobble[p["seed"]]
        return [0.55, base], [0.9, 0.95]

    found, _ = answer_of(plan, "a", tmp_path, curves)
    text = found.text
    assert "On skin, augmentation (lab) against no augmentation, paired by seed: best validation accuracy" in text
    assert "+0.110 (+0.085 to +0.135, t 95 %, n = 3) — it helps" in text
    assert "On bone, augmentation (lab) against no augmentation" in text and "— the interval includes 0" in text
    assert text.endswith("In short: helps on skin; not settled on bone.")
    assert found.status == NOT_SETTLED


def test_transfer_against_training_from_scratch(lab_config, tmp_path):
    lab_config["studies"] = {
        "scratch": {"set": {"model": "vgg16", "base": 8, "head": "softmax", "epochs": 5},
                    "grid": {"augment": ["none", "lab"]}, "datasets": ["skin"], "seeds": [0, 1, 2]},
        "transfer": {"set": {"model": "vgg16_imagenet", "image_size": [224, 224], "channels": 3, "dense": [128],
                             "epochs": 5}, "compare_with": "scratch", "answer": "transfer", "datasets": ["skin"],
                     "seeds": [0, 1, 2]},
    }  # fmt: skip
    plan = plan_for(lab_config, lab_config["studies"])

    def curves(p):
        if p["model"] == "vgg16_imagenet":
            return [0.7, 0.9 + 0.01 * p["seed"], 0.85, 0.85, 0.85], [0.9] * 5  # best at epoch 2
        top = 0.7 if p["augment"] == "lab" else 0.65
        return [0.5, 0.55, 0.6, 0.65, top], [0.9] * 5  # best at epoch 5; lab is the better scratch

    found, _ = answer_of(plan, "transfer", tmp_path, curves)
    text = found.text
    assert "On skin, ImageNet VGG16 features with a new head: best validation accuracy 0.910" in text
    assert "at epoch 2.0 (2.0–2.0, bootstrap 95 %, n = 3), after 2.0 (2.0–2.0, t 95 %, n = 3) s" in text  # 1 s/epoch
    assert "VGG16 from scratch (scratch, augmentation (lab)): best validation accuracy 0.700" in text
    assert "at epoch 5.0 (5.0–5.0, bootstrap 95 %, n = 3), after 5.0" in text
    assert "the difference is +0.210" in text and "transfer learning is better" in text
    assert "There is no held-out test split" in text
    assert found.status == SETTLED


def attention_summary(marker_flag):
    method = {
        "n_images": 10, "mean_drop_top": 0.3, "mean_drop_shuffled": 0.1, "faithful_fraction": 0.8, "n_faithful": 8,
        "border_flag_rate": 0.1, "n_border_flagged": 1, "pointing_AFF": 0.75, "pointing_strict_AFF": 0.5,
        "n_pointing_AFF": 4, "pointing_NFF": 0.25, "pointing_strict_NFF": 0.0, "n_pointing_NFF": 4,
        "marker_rate": 0.5 if marker_flag else 0.0, "marker_source": "marker box", "marker_flag": marker_flag,
    }  # fmt: skip
    random = {**method, "pointing_AFF": 0.25, "faithful_fraction": 0.4, "marker_flag": False}
    return {
        "gradcam": method, "gradcam_pp": method, "marker_attention": marker_flag, "validation_accuracy": 0.9,
        "pointing_tolerance": {"pixels": 15, "at_side": 224},
        "randomised_weights": {"gradcam": random, "gradcam_pp": random, "marker_attention": False},
    }  # fmt: skip


@pytest.mark.parametrize("marker_flag", [False, True])
def test_attention_per_class_and_on_the_marker(lab_config, marker_flag):
    plan = plan_for(
        lab_config,
        {"cam": {"set": {"model": "vgg16", "base": 8, "head": "softmax"}, "gradcam": True, "answer": "attention",
                 "datasets": ["bone"], "seeds": [0]}},
    )  # fmt: skip
    study = plan.studies["cam"]
    tables = StudyTables(study, pd.DataFrame(), pd.DataFrame(), params=plan.runs,
                         gradcam={study.runs[0]: attention_summary(marker_flag)})  # fmt: skip
    found = answer_study(tables)
    assert "On bone (validation accuracy 0.900), Grad-CAM: the pointing game" in found.text
    assert "(maximum within 15 px of the evidence at 224 px, scaled)" in found.text
    assert "AFF 75% of 4 maps (inside the box: 50%; random weights 25%); NFF 25% of 4 maps" in found.text
    assert "in 8 of 10 images (80%; random weights 40%)" in found.text
    assert ("may have learned a shortcut" in found.text) is marker_flag
    assert ("No sign of shortcut learning" in found.text) is not marker_flag
    assert found.status == DESCRIPTION


def test_gallery_says_what_each_transformation_does(tmp_path):
    image = np.tile(np.linspace(0.2, 0.6, 50), (50, 1))
    panels = skimage_panels(image, scales=[0.2], angles=[30], percentiles=[[2, 98]])
    table = pd.DataFrame(
        [{"height": p["shape"][0], "width": p["shape"][1], "min": p["image"].min(), "max": p["image"].max(),
          "title": p["title"]} for p in panels]
    )  # fmt: skip
    draws = {"samples": 2, "rows": [{"row": "zoom_range=0.3", "height": 50, "width": 50, "min": 0.0, "max": 0.6}]}
    found = gallery({"skin": table}, {"skin": draws})
    assert "On skin, the original is 50×50 with values 0.20–0.60;" in found.text
    assert "rescale 0.2 → 10×10 (values" in found.text
    assert "rescale_intensity p2–p98 → 50×50 (values 0.00–1.00)" in found.text
    assert "keeps every draw at 50×50; the values of its 2 draws per row span zoom_range=0.3 0.00–0.60" in found.text
    assert found.status == DESCRIPTION


def test_a_study_without_an_answer_kind_keeps_the_generic_answer(lab_config, tmp_path):
    plan = plan_for(
        lab_config,
        {"mine": {"set": {"epochs": 2}, "grid": {"dropout": [0.0, 0.4]}, "datasets": ["skin"], "seeds": [0, 1, 2]}},
    )
    found, tables = answer_of(plan, "mine", tmp_path, lambda p: ([0.6, 0.8 - p["dropout"] / 4], [0.9, 0.9]))
    assert plan.studies["mine"].answer is None and found.kind == "generic"
    assert found.text == generic(tables.variants, tables.effects, tables.comparison, tables.runner_up)
    assert "On skin, the best is dropout=0.0 with best validation accuracy 0.800" in found.text
    assert found.status == SETTLED  # +0.1 in every seed


@pytest.mark.parametrize(
    "study, message",
    [
        ({"grid": {"dropout": [0.0, 0.4]}, "answer": "helps"}, "answer kind 'helps' needs a 'baseline'"),
        ({"set": {"dropout": 0.4}, "answer": "generalization"}, "needs at least two variants"),
        ({"grid": {"dropout": [0.0, 0.4]}, "answer": "transfer"}, "needs 'compare_with'"),
        ({"grid": {"dropout": [0.0, 0.4]}, "answer": "attention"}, "needs 'gradcam: true'"),
        ({"grid": {"dropout": [0.0, 0.4]}, "answer": "why"}, "'why' is not an answer kind; expected one of"),
    ],
)
def test_an_answer_kind_needs_what_it_reads(lab_config, study, message):
    with pytest.raises(ConfigError, match=message) as raised:
        plan_for(lab_config, {"s": {**study, "datasets": ["skin"]}})
    assert raised.value.key_path == "studies.s.answer"


def test_every_grad_cam_method_has_a_title():
    from cnnreg.gradcam import METHODS
    from cnnreg.wording import METHOD_TITLES

    assert tuple(METHOD_TITLES) == METHODS
