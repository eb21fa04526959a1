"""A study's question answered in its own terms, from its tables (`cnnreg.tables`).

A study's ``answer:`` key names its kind (`KINDS`), one function each, the lab's tasks in order;
a study without one gets `generic` (ranking, gaps, paired effects). Every number comes with its
interval and n (`cnnreg.intervals`) and every comparison with a verdict (`cnnreg.wording.verdict`),
so an answer knows whether it is settled.
"""

from dataclasses import dataclass, field

import pandas as pd

from cnnreg.readable import column_title
from cnnreg.tables import REACHED, difference_interval, group_keys
from cnnreg.wording import (
    DESCRIPTION,
    METHOD_TITLES,
    MODEL_WORDS,
    NOT_SETTLED,
    Verdicts,
    negated,
    parameter_words,
    row_interval,
    said,
    stated,
    variant_words,
    verdict,
    where,
)

__all__ = ["KINDS", "Answer", "StudyTables", "answer_study", "gallery", "generic"]

CHANCE = "their training accuracy never rose above the majority class's share by more than chance"


@dataclass(frozen=True)
class Answer:
    """An answer's sentences, its kind and whether its verdicts are settled (`cnnreg.wording`)."""

    kind: str
    sentences: tuple
    status: str

    @property
    def text(self):
        return " ".join(self.sentences)

    def as_dict(self):
        return {"kind": self.kind, "status": self.status, "text": self.text, "sentences": list(self.sentences)}


@dataclass
class StudyTables:
    """What an answer reads: the study's per-run and variant tables (`summarise_study`), those
    of the study it is compared with, the runs' parameters and any Grad-CAM summaries."""

    study: object
    runs: pd.DataFrame
    variants: pd.DataFrame
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    runner_up: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    other: object = None
    other_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    other_variants: pd.DataFrame = field(default_factory=pd.DataFrame)
    params: dict = field(default_factory=dict)
    gradcam: dict = field(default_factory=dict)

    @classmethod
    def of_summary(cls, study, summarised, params, other=None, gradcam=None):
        """The tables of `cnnreg.tables.summarise_study`'s (summary, variants, extra)."""
        summary, variants, extra = summarised
        keys = ("effects", "runner_up", "comparison", "other_runs", "other_variants")
        return cls(study, summary, variants, **{k: extra[k] for k in keys}, other=other, params=params,
                   gradcam=gradcam or {})  # fmt: skip

    @property
    def shown(self):
        """The varied parameters that tell a dataset's variants apart."""
        return [p for p in self.study.varied if p != "dataset"]

    def groups(self):
        """(shared key, variants, run rows) per dataset (and epoch read at)."""
        shared = group_keys(self.variants)[:-1]
        for key, variants in self.variants.groupby(shared, sort=False):
            key = dict(zip(shared, key if isinstance(key, tuple) else (key,), strict=True))
            chosen = (self.runs[list(key)] == pd.Series(key)).all(axis=1)
            yield key, variants, self.runs[chosen]

    def words(self, row):
        return variant_words(row, self.shown)


def paired(first_rows, second_rows, column, epochs=None):
    """Per-pair differences first − second of `column` (runs paired by seed and fold)."""
    keys = [k for k in ("seed", "fold") if k in first_rows and k in second_rows]
    first, second = (rows.set_index(keys)[column] for rows in (first_rows, second_rows))
    common = first.index.intersection(second.index)
    return difference_interval(column, first[common].to_numpy() - second[common].to_numpy(), epochs)


def of_variant(rows, row):
    return rows[rows["variant"] == row["variant"]]


def learned(variants):
    """The variants some of whose runs learned, best ranked first."""
    return variants[~variants["did_not_learn"].astype(bool)].sort_values("rank", kind="stable")


def not_learned_sentence(t, variants):
    """Which variants have runs that did not learn (they would read as small gaps)."""
    failed = variants[variants["n_not_learned"] > 0]
    if failed.empty:
        return ""
    parts = [f"{t.words(r)}: {int(r['n_not_learned'])} of {int(r['n_runs'])} runs" for _, r in failed.iterrows()]
    return f"Runs that did not learn ({CHANCE}): " + "; ".join(parts) + "."


def training_accuracy(t):
    """Lab task 1a/1b: final training accuracy per variant against the baseline, the epoch at
    which each variant first reaches the baseline's final training accuracy, and what that says
    about the speed of training."""
    verdicts, sentences = Verdicts(), []
    for key, variants, rows in t.groups():
        base = variants[variants["is_baseline"].astype(bool)].iloc[0]
        base_rows, base_words = of_variant(rows, base), t.words(base)
        in_order = variants.sort_values("is_baseline", ascending=False, kind="stable")  # the baseline first
        finals = "; ".join(f"{t.words(row)} {stated(row, 'final_accuracy')}" for _, row in in_order.iterrows())
        sentences.append(f"{where(key)}, the final training accuracy is: {finals}.")
        epochs = int(rows["epochs_run"].max())
        reference = rows["reference_accuracy"].iloc[0]
        for _, row in variants[~variants["is_baseline"].astype(bool)].iterrows():
            own, name = of_variant(rows, row), t.words(row)
            difference = paired(own, base_rows, "final_accuracy")
            sentences.append(
                f"Paired by seed, {name} − {base_words} = {said(difference, '+.3f')}: "
                + verdict(difference, verdicts, f"{name} ends higher", f"{base_words} ends higher")
                + "."
            )
            sentences.append(
                f"{name.capitalize()} reaches the final training accuracy of {base_words} ({reference:.3f}) "
                + _reached(row, epochs)
                + f"; {base_words} itself first reaches it "
                + _reached(base, epochs)
                + "."
            )
            speed = paired(own, base_rows, REACHED, epochs)
            if speed.n:
                sentences.append(
                    f"Epochs to get there, paired by seed ({name} − {base_words}): {said(speed, '+.1f')}: "
                    + verdict(negated(speed), verdicts, f"{name} trains faster", f"{name} trains slower")
                    + "."
                )
        sentences.append(not_learned_sentence(t, variants))
    return [s for s in sentences if s], verdicts


def _reached(row, epochs):
    """When a variant's runs first reached the reference: over those that did, how many of all."""
    reached, runs = int(row[f"{REACHED}_n_of_reached"]), int(row["n_runs"])
    if reached == 0:
        return f"— no seed reached it within the {epochs} epochs run"
    return f"at epoch {stated(row, REACHED, '.1f', '_of_reached')} in {reached} of {runs} seeds"


def generalization(t):
    """Lab tasks 1c, 2 and 3: which variant reaches the higher validation accuracy, which
    generalizes better (the smaller gap between final training and validation accuracy), and,
    against a `compare_with` study, what the parameters it changes do."""
    verdicts, sentences = Verdicts(), []
    metric = column_title(t.study.rank_by)
    for key, variants, rows in t.groups():
        ranked = learned(variants)
        if len(ranked) < 2:
            verdicts.add(NOT_SETTLED)
            sentences.append(f"{where(key)}, fewer than two variants learned, so none can be compared.")
        else:
            first, second = ranked.iloc[0], ranked.iloc[1]
            higher = paired(of_variant(rows, first), of_variant(rows, second), t.study.rank_by)
            sentences.append(
                f"{where(key)}, the higher {metric} is {t.words(first)}'s, {stated(first, t.study.rank_by)}, against "
                f"{stated(second, t.study.rank_by)} for {t.words(second)}; paired by seed, the difference is "
                f"{said(higher, '+.3f')}: "
                + verdict(higher, verdicts, f"{t.words(first)} is higher", f"{t.words(second)} is higher")
                + "."
            )
            sentences.append(_gap_sentence(t, ranked, rows, verdicts))
        sentences.append(not_learned_sentence(t, variants))
    if t.other is not None:
        sentences.extend(_against_other(t, verdicts))
    return [s for s in sentences if s], verdicts


def _gap_sentence(t, ranked, rows, verdicts):
    by_gap = ranked.sort_values("generalization_gap_mean", kind="stable")
    smaller, larger = by_gap.iloc[0], by_gap.iloc[1]
    gap = paired(of_variant(rows, larger), of_variant(rows, smaller), "generalization_gap")
    return (
        "Generalization (the gap between final training and validation accuracy, smaller is better): "
        f"{t.words(smaller)} {stated(smaller, 'generalization_gap')}, {t.words(larger)} "
        f"{stated(larger, 'generalization_gap')}; paired by seed, {t.words(larger)} − {t.words(smaller)} = "
        f"{said(gap, '+.3f')}: "
        + verdict(gap, verdicts, f"{t.words(smaller)} generalizes better", f"{t.words(larger)} generalizes better")
        + "."
    )


def changed_parameters(t):
    """The parameters the compared study sets otherwise, as "dropout 0.4 here, no dropout there"."""
    ours = [t.params[r] for r in t.study.runs]
    theirs = [t.params[r] for r in t.other.runs]
    changed = []
    for name in ours[0]:
        here, there = {repr(p[name]) for p in ours}, {repr(p[name]) for p in theirs}
        if len(here) == 1 and len(there) == 1 and here != there and name not in ("dataset", "seed"):
            changed.append((name, ours[0][name], theirs[0][name]))
    return changed


def _against_other(t, verdicts):
    """Each variant against the compared study's variant of the same label, paired by seed."""
    changed = changed_parameters(t)
    differs = ", ".join(f"{parameter_words(n, a)} here, {parameter_words(n, b)} there" for n, a, b in changed)
    sentences = [f"Against {t.other.name} ({differs or 'the same parameters'}):"]
    for key, variants, rows in t.groups():
        for _, row in variants.iterrows():
            theirs = of_variant(t.other_runs[t.other_runs["dataset"] == key["dataset"]], row)
            if theirs.empty:
                continue
            own = of_variant(rows, row)
            parts = []
            for column, lower_is_better in ((t.study.rank_by, False), ("generalization_gap", True)):
                difference = paired(own, theirs, column)
                better = negated(difference) if lower_is_better else difference
                parts.append(
                    f"{column_title(column)} {said(difference, '+.3f')} — "
                    + verdict(better, verdicts, "better here", "better there")
                )
            sentences.append(f"{where(key)}, {t.words(row)}, here − there paired by seed: " + "; ".join(parts) + ".")
    return sentences


def best_combination(t):
    """Lab task 4: the best variant per dataset (and epoch read at), and whether it is separated
    from the runner-up by a paired difference."""
    verdicts, sentences = Verdicts(), []
    metric = column_title(t.study.rank_by)
    for key, variants, rows in t.groups():
        ranked = learned(variants)
        failed = len(variants) - len(ranked)
        tail = f" {failed} of {len(variants)} combinations did not learn ({CHANCE})." if failed else ""
        if ranked.empty:
            verdicts.add(NOT_SETTLED)
            sentences.append(f"{where(key)}, no combination learned.{tail}")
            continue
        best = ranked.iloc[0]
        text = f"{where(key)}, the best combination is {t.words(best)}, {metric} {stated(best, t.study.rank_by)}"
        if len(ranked) > 1:
            second = ranked.iloc[1]
            difference = paired(of_variant(rows, best), of_variant(rows, second), t.study.rank_by)
            text += (
                f"; the runner-up is {t.words(second)}, {stated(second, t.study.rank_by)}; paired by seed, the "
                f"difference is {said(difference, '+.3f')}: "
                + verdict(difference, verdicts, "the best is separated from the runner-up", "")
            )
        sentences.append(text + "." + tail)
    return sentences, verdicts


def helps(t):
    """Lab tasks 6 and 7: whether each variant helps against the baseline, on which dataset and
    by how much (paired by seed), with what it does to the generalization gap."""
    verdicts, sentences, outcomes = Verdicts(), [], {"helps": [], "hurts": [], "not settled": []}
    metric = t.study.rank_by
    for key, variants, rows in t.groups():
        base = variants[variants["is_baseline"].astype(bool)].iloc[0]
        for _, row in variants[~variants["is_baseline"].astype(bool)].iterrows():
            own, theirs = of_variant(rows, row), of_variant(rows, base)
            difference = paired(own, theirs, metric)
            gap = paired(own, theirs, "generalization_gap")
            said_verdict = verdict(difference, verdicts, "it helps", "it hurts")
            outcomes[{"it helps": "helps", "it hurts": "hurts"}.get(said_verdict, "not settled")].append(key["dataset"])
            sentences.append(
                f"{where(key)}, {t.words(row)} against {t.words(base)}, paired by seed: "
                f"{column_title(metric)} {said(difference, '+.3f')} — {said_verdict}; "
                f"generalization gap {said(gap, '+.3f')}, against the baseline's {stated(base, 'generalization_gap')}."
            )
        sentences.append(not_learned_sentence(t, variants))
    summary = "; ".join(f"{kind} on {', '.join(dict.fromkeys(names))}" for kind, names in outcomes.items() if names)
    return [s for s in [*sentences, f"In short: {summary}." if summary else ""] if s], verdicts


def transfer(t):
    """Lab tasks 8 and 9: this study's variants against the compared study's best variant from
    scratch, per dataset: accuracy, epoch and seconds to the best epoch, paired by seed, and how
    reliable the numbers are (held-out test split or folds)."""
    verdicts, sentences = Verdicts(), []
    metric = t.study.rank_by
    for key, variants, rows in t.groups():
        scratch = learned(t.other_variants[t.other_variants["dataset"] == key["dataset"]])
        if scratch.empty:
            verdicts.add(NOT_SETTLED)
            sentences.append(f"{where(key)}, no variant of {t.other.name} learned: nothing to compare with.")
            continue
        reference = scratch.iloc[0]
        their_rows = of_variant(t.other_runs[t.other_runs["dataset"] == key["dataset"]], reference)
        scratch_words = f"{MODEL_WORDS.get(_model(t, their_rows), 'the model')} from scratch ({t.other.name}, " + (
            variant_words(reference, [p for p in t.other.varied if p != "dataset"]) + ")"
        )
        for _, row in variants.iterrows():
            own = of_variant(rows, row)
            difference = paired(own, their_rows, metric)
            sentences.append(
                f"{where(key)}, {t.words(row)}: {_progress(row, metric)}; "
                f"{scratch_words}: {_progress(reference, metric)}. "
                f"Paired by seed, the difference is {said(difference, '+.3f')}: "
                + verdict(difference, verdicts, "transfer learning is better", "training from scratch is better")
                + ". "
                + _reliability(own, their_rows, verdicts)
            )
        sentences.append(not_learned_sentence(t, variants))
    return [s for s in sentences if s], verdicts


def _model(t, rows):
    return t.params[rows["run"].iloc[0]]["model"] if len(rows) else ""


def _progress(row, metric):
    return (
        f"{column_title(metric)} {stated(row, metric)} at epoch {stated(row, 'best_epoch', '.1f')}, after "
        f"{stated(row, 'seconds_to_best', '.1f')} s of training"
    )


def _reliability(own, theirs, verdicts):
    """The held-out test accuracy of both, paired by seed; else what the numbers rest on."""
    if "test_accuracy" in own and "test_accuracy" in theirs and own["test_accuracy"].notna().any():
        difference = paired(own, theirs, "test_accuracy")
        return (
            f"On the held-out test split (never used for training or choosing the epoch) the difference is "
            f"{said(difference, '+.3f')}: "
            + verdict(difference, verdicts, "transfer learning is better there", "from scratch is better there")
            + "."
        )
    if "fold" in own:
        return f"Over {own['fold'].nunique()} folds, so every image was validated on once."
    return "There is no held-out test split: the validation images chose the best epoch, so these are optimistic."


def attention(t):
    """Lab task 10: where the network looks, per run and method: the pointing game per class,
    border and marker attention, faithfulness, each beside the randomised-weights baseline, and
    what they say about shortcut learning."""
    sentences = []
    for run, summary in t.gradcam.items():
        place = f"On {t.params[run]['dataset']} (validation accuracy {summary['validation_accuracy']:.3f})"
        for method, title in METHOD_TITLES.items():
            ours, random = summary[method], summary["randomised_weights"][method]
            parts = _attention_parts(ours, random, summary["pointing_tolerance"])
            sentences.append(f"{place}, {title}: {parts}.")
        sentences.append(_shortcut(summary))
    return sentences, Verdicts()


def _attention_parts(ours, random, tolerance):
    classes = [key.removeprefix("n_pointing_") for key in ours if key.startswith("n_pointing_")]
    pointing = []
    for name in classes:
        hit, strict, n = ours[f"pointing_{name}"], ours[f"pointing_strict_{name}"], ours[f"n_pointing_{name}"]
        if not n:
            pointing.append(f"{name}: no correctly classified image with a known evidence box")
            continue
        baseline = random[f"pointing_{name}"]
        pointing.append(f"{name} {hit:.0%} of {n} maps (inside the box: {strict:.0%}; random weights {baseline:.0%})")
    parts = [
        f"the pointing game (maximum within {tolerance['pixels']} px of the evidence at {tolerance['at_side']} px, "
        "scaled) " + "; ".join(pointing),
        f"blurring the map's hottest pixels lowers the class score more than another image's map does in "
        f"{ours['n_faithful']} of {ours['n_images']} images ({ours['faithful_fraction']:.0%}; random weights "
        f"{random['faithful_fraction']:.0%})",
        f"{ours['n_border_flagged']} of {ours['n_images']} maps are border-flagged",
    ]
    if ours["marker_rate"] is not None:
        parts.append(f"{ours['marker_rate']:.0%} of correct maps point at the {ours['marker_source']}")
    return "; ".join(parts)


def _shortcut(summary):
    if summary["marker_attention"]:
        return (
            "The maps dwell on the marker: the network may have learned a shortcut rather than the evidence; "
            "check the gallery before trusting its accuracy."
        )
    return "No sign of shortcut learning: the maps do not dwell on the marker or the border."


#: The answer kinds, by the name a study's ``answer:`` gives, with what each needs of its study.
KINDS = {
    "training_accuracy": (training_accuracy, "a baseline"),
    "generalization": (generalization, "at least two variants"),
    "best_combination": (best_combination, "at least two variants"),
    "helps": (helps, "a baseline"),
    "transfer": (transfer, "compare_with"),
    "attention": (attention, "gradcam: true"),
}


def answer_study(tables, warnings=()):
    """The study's `Answer`: its ``answer`` kind's, or `generic`'s without one; `warnings`,
    sentences about its inputs, come last."""
    kind = tables.study.answer
    if kind is None:
        verdicts = Verdicts()
        sentences = generic_sentences(tables.variants, tables.effects, tables.comparison, tables.runner_up, verdicts)
        return Answer("generic", (*sentences, *warnings), verdicts.status)
    sentences, verdicts = KINDS[kind][0](tables)
    return Answer(kind, (*sentences, *warnings), verdicts.status)


def generic(variants, effect_table=None, comparison=None, runner_up=None, verdicts=None):
    """`generic_sentences` as one text."""
    return " ".join(generic_sentences(variants, effect_table, comparison, runner_up, verdicts))


def generic_sentences(variants, effect_table=None, comparison=None, runner_up=None, verdicts=None):
    """The answer of a study without an ``answer`` kind: its ranking, gaps and effects.

    Parameters
    ----------
    variants : DataFrame
        `cnnreg.tables.variant_table`.
    effect_table, comparison, runner_up : DataFrame, optional
        The ``effects``, ``comparison`` and ``runner_up`` of `cnnreg.tables.summarise_study`;
        without ``runner_up`` the ranking says nothing about whether it is settled.
    verdicts : cnnreg.wording.Verdicts, optional
        Collects the status of each verdict given.

    A ranking or an effect is called "not settled" when the 95 % interval of its paired
    difference includes 0, and with fewer than 3 pairs no verdict is given.
    """
    verdicts = Verdicts() if verdicts is None else verdicts
    shared = group_keys(variants)[:-1]
    pairs = {} if runner_up is None else {tuple(row[k] for k in shared): row for _, row in runner_up.iterrows()}
    sentences = []
    for key, group in variants.groupby(shared, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        place = _at(dict(zip(shared, key, strict=True)))
        sentences.append(_ranking_sentence(place, group, pairs.get(key), verdicts))
        sentences.extend(_failed_variants(place, group))
        if len(group) <= DETAILED_VARIANTS:
            finals = [
                f"{row['variant']}: final validation accuracy {stated(row, 'final_val_accuracy')}, "
                f"gap {stated(row, 'generalization_gap')}"
                for _, row in group.iterrows()
            ]
            sentences.append("; ".join(finals) + ".")
        if "is_baseline" in group:
            sentences.extend(_reference_sentences(place, group))
    if effect_table is not None and len(effect_table):
        sentences.extend(_effect_sentences(effect_table, variants["rank_by"].iloc[0], verdicts))
    if comparison is not None and len(comparison):
        sentences.extend(_comparison_sentences(comparison))
    return sentences


#: Studies with at most this many variants get every variant's final values in the answer.
DETAILED_VARIANTS = 3
GENERIC_CHANCE = (
    "training accuracy never rose above the majority class's share of the training images by more than chance"
)


def _at(key):
    text = f"On {key['dataset']}"
    return text + (f" at epoch {key['at_epoch']}" if "at_epoch" in key else "")


def _ranking_sentence(place, group, pair, verdicts):
    """The best variant by the study's ``rank_by``, the runner-up and their paired difference."""
    metric = group["rank_by"].iloc[0]
    if group["did_not_learn"].all():
        runs = int(group["n_runs"].sum())
        return f"{place}, no variant learned: {runs} of {runs} runs did not learn ({GENERIC_CHANCE}), so none is best."
    ranked = group.dropna(subset=["rank"]).sort_values("rank", kind="stable")
    if ranked.empty:
        return f"{place}, no variant has a {column_title(metric)} to be ranked by."
    best = ranked.iloc[0]
    sentence = f"{place}, the best is {best['variant']} with {column_title(metric)} {stated(best, metric)}"
    if len(ranked) > 1:
        second = ranked.iloc[1]
        sentence += f", ahead of {second['variant']} with {stated(second, metric)}"
        if pair is not None:
            difference = row_interval(pair, "delta")
            better = f"is better by {abs(difference.mean):.3f}"
            sentence += (
                f"; paired by seed, {best['variant']} − {second['variant']} = {said(difference, '+.3f')}: "
                + verdict(difference, verdicts, f"{best['variant']} {better}", f"{second['variant']} {better}")
            )
    return sentence + "."


def _failed_variants(place, group):
    """The variants with runs that did not learn (all of them: said by `_ranking_sentence`)."""
    failed = group[group["n_not_learned"] > 0]
    if failed.empty or group["did_not_learn"].all():
        return []
    parts = [
        f"{row['variant']}: {int(row['n_not_learned'])} of {int(row['n_runs'])} runs did not learn"
        + (", so it is not ranked" if row["did_not_learn"] else "")
        for _, row in failed.iterrows()
    ]
    return [f"{place}, " + "; ".join(parts) + f" ({GENERIC_CHANCE})."]


def _effect_sentences(effect_table, rank_by, verdicts):
    sentences = []
    for _, row in effect_table.iterrows():
        metrics = dict.fromkeys((rank_by, "best_val_accuracy", "final_val_accuracy"))
        parts = [f"{column_title(m)} {stated(row, f'delta_{m}', '+.3f')}" for m in metrics]
        difference = row_interval(row, f"delta_{rank_by}")
        better = f"is better by {abs(difference.mean):.3f}"
        parts[0] += " — " + verdict(difference, verdicts, f"{row['variant']} {better}", f"{row['versus']} {better}")
        parts.append(f"generalization gap {stated(row, 'delta_generalization_gap', '+.3f')}")
        pairs = int(row["n_pairs"])
        sentences.append(
            f"{_at(row)}, {row['variant']} against {row['versus']} (paired by seed, n = {pairs} pairs): "
            + "; ".join(parts)
            + "."
        )
    return sentences


def _comparison_sentences(comparison):
    sentences = []
    for dataset, group in comparison.groupby("dataset", sort=False):
        parts = [
            f"{row['study']} {row['variant']}: best validation accuracy {stated(row, 'best_val_accuracy')} at epoch "
            f"{stated(row, 'best_epoch', '.1f')}, after {stated(row, 'seconds_to_best', '.1f')} s of training"
            + _not_learned(row)
            for _, row in group.iterrows()
        ]
        sentences.append(f"On {dataset}: " + "; ".join(parts) + ".")
    return sentences


def _not_learned(row):
    n = int(row["n_not_learned"])
    return f" ({n} of {int(row['n_runs'])} runs did not learn)" if n else ""


def _reference_sentences(place, group):
    baseline = " and ".join(group.loc[group["is_baseline"], "variant"])
    return [
        f"{place}, {row['variant']} first reached the final training accuracy of {baseline} {_epoch(row)}."
        for _, row in group[~group["is_baseline"]].iterrows()
    ]


def _epoch(row):
    """When a variant reached the reference: over the runs that did, saying how many of all."""
    reached, runs = int(row[f"{REACHED}_n_of_reached"]), int(row["n_runs"])
    if reached == 0:
        return "— no run reached it within the epochs run"
    epoch = stated(row, REACHED, ".1f", suffix="_of_reached")
    return f"at epoch {epoch}, over the {reached} of {runs} {'run' if runs == 1 else 'runs'} that reached it"


def gallery(transforms, draws):
    """Lab task 5: what each transformation does to the image (its size and value range), read
    from the galleries' own data (`cnnreg.galleries`).

    Parameters
    ----------
    transforms : mapping
        Dataset → its scikit-image gallery table (``skimage.csv``).
    draws : mapping
        Dataset → its training-augmentation gallery record (``generator.json``).
    """
    sentences = []
    for dataset, table in transforms.items():
        original, changed = table.iloc[0], table.iloc[1:]
        parts = [f"{row['title']} (values {_value_range(row)})" for _, row in changed.iterrows()]
        sentences.append(
            f"On {dataset}, the original is {original['height']}×{original['width']} with values "
            f"{_value_range(original)}; " + "; ".join(parts) + "."
        )
    for dataset, record in draws.items():
        sizes = {(row["height"], row["width"]) for row in record["rows"]}
        size = " or ".join(f"{h}×{w}" for h, w in sorted(sizes))
        parts = [f"{row['row']} {_value_range(row)}" for row in record["rows"]]
        sentences.append(
            f"On {dataset}, the training augmentation keeps every draw at {size}; the values of its "
            f"{record['samples']} draws per row span " + "; ".join(parts) + "."
        )
    return Answer("gallery", tuple(sentences), DESCRIPTION)


def _value_range(values):
    return f"{values['min']:.2f}–{values['max']:.2f}"
