"""Figures read from their saved geometry: one label per variant, no overlapping text, bands in range."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from cnnreg import plots

GRID = {"batch_norm": ["False", "True"], "spatial_dropout": ["0.0", "0.1"], "dropout": ["0.0", "0.4"],
        "augment": ["none", "flip"], "lr": ["1e-05", "0.0001"]}  # fmt: skip


def variant_rows(n_variants, datasets=("skin", "bone"), at_epochs=(50, 150), n_runs=2, not_learned=()):
    """A `variant_table` in contract C1's format: a grid of `n_variants` (2, 4, 8, 16 or 32); the
    variants numbered in `not_learned` did not learn."""
    names = list(GRID)[: int(np.log2(n_variants))]
    rng = np.random.default_rng(n_variants)
    rows = []
    for dataset, epoch in itertools.product(datasets, at_epochs):
        group = []
        for index, values in enumerate(itertools.product(*(GRID[n] for n in names))):
            variant = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
            row = {"dataset": dataset, "at_epoch": epoch, "variant": variant, **dict(zip(names, values, strict=True))}
            failed = index in not_learned
            row.update(
                n_runs=n_runs, n_not_learned=n_runs if failed else 0, did_not_learn=failed, rank_by="best_val_accuracy"
            )
            for metric, centre in (("best_val_accuracy", 0.8), ("final_val_accuracy", 0.75)):
                mean = 0.5 if failed else rng.uniform(centre - 0.15, centre + 0.15)
                low, high = max(0.0, mean - rng.uniform(0, 0.08)), min(1.0, mean + rng.uniform(0, 0.08))
                row.update({f"{metric}_mean": mean, f"{metric}_low": low, f"{metric}_high": high})
                row[f"{metric}_interval"] = "range" if n_runs < 3 else "bootstrap 95 %"
            group.append(row)
        learned = [r for r in group if not r["did_not_learn"]]
        order = sorted(learned, key=lambda r: -r["best_val_accuracy_mean"])
        for rank, row in enumerate(order, start=1):
            row["rank"] = float(rank)
        for row in group:
            row.setdefault("rank", np.nan)
        rows += group
    return pd.DataFrame(rows)


def curve_rows(variants=("batch_norm=False", "batch_norm=True"), epochs=6, n=2):
    """A `curve_table` in contract C1's format; epoch 1 has one run only (no band there)."""
    rng = np.random.default_rng(0)
    rows = []
    for variant, metric, split in itertools.product(variants, ("loss", "accuracy"), ("train", "validation")):
        for epoch in range(1, epochs + 1):
            mean = rng.uniform(0.3, 0.7)
            known = epoch > 1
            rows.append({
                "dataset": "skin", "variant": variant, "metric": metric, "split": split, "epoch": epoch,
                "mean": mean, "low": mean - 0.05 if known else np.nan, "high": mean + 0.05 if known else np.nan,
                "n": n if known else 1, "interval": "range",
            })  # fmt: skip
    return pd.DataFrame(rows)


def text_boxes(fig):
    """Window extents of every drawn text: each legend as one box, the others one box per text."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.findobj(Legend)
    inside = {id(t) for legend in legends for t in legend.findobj(Text)} | {id(t) for t in undrawn_tick_labels(fig)}
    boxes = [(legend, legend.get_window_extent(renderer)) for legend in legends]
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and id(text) not in inside:
            boxes.append((text, text.get_window_extent(renderer)))
    return boxes


def undrawn_tick_labels(fig):
    """Tick labels of ticks outside their axis's view interval (matplotlib keeps but skips them)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick, loc in zip(axis.get_major_ticks(), axis.get_majorticklocs(), strict=False):
                if not low - 1e-9 <= loc <= high + 1e-9:
                    yield from (tick.label1, tick.label2)


def overlaps(fig):
    """Pairs of drawn texts whose boxes overlap (by more than half a pixel each way), and texts
    that leave the figure."""
    boxes = text_boxes(fig)
    pairs = [
        (name(a), name(b))
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if (common := Bbox.intersection(box_a, box_b)) is not None and min(common.width, common.height) > 0.5
    ]
    frame = fig.bbox.padded(1)
    outside = [name(a) for a, box in boxes if Bbox.union([frame, box]).bounds != frame.bounds]
    return pairs, outside


def name(artist):
    return artist.get_text() if isinstance(artist, Text) else type(artist).__name__


@pytest.mark.parametrize("n_variants", [2, 8, 32])
def test_final_accuracies_label_each_variant_once_per_row_without_overlaps(n_variants, tmp_path):
    variants = variant_rows(n_variants, not_learned=(1,))
    fig = plots.final_accuracies_figure(variants, title="Task 4: VGG16 with batch norm, spatial dropout and dropout")
    pairs, outside = overlaps(fig)
    assert pairs == [] and outside == []
    axes = np.array(fig.axes[:4]).reshape(2, 2)  # rows: skin, bone; columns: epoch 50, 150
    for row in axes:
        shown = [t.get_text() for t in row[0].get_yticklabels() if t.get_visible()]
        assert len(shown) == len(set(shown)) == n_variants
        assert all(not t.get_visible() or not t.get_text() for t in row[1].get_yticklabels())
    labels = [t.get_text() for t in axes[0, 0].get_yticklabels()]
    assert labels[-1].endswith("(did not learn)")  # last, and said so
    assert sum(label.endswith("(did not learn)") for label in labels) == 1
    text = " ".join(t.get_text() for t in fig.findobj(Text))
    assert "range, n = 2" in fig._suptitle.get_text() and "range, n = 2" in fig.axes[-1].get_xlabel()
    assert "best (rank 1" in text
    plt.close(fig)


def test_final_accuracies_star_the_best_and_write_a_png(tmp_path):
    variants = variant_rows(8, datasets=("skin",), at_epochs=(150,), n_runs=3)
    fig = plots.final_accuracies_figure(variants)
    stars = [c for c in fig.axes[0].collections if c.get_gid() == "best"]
    (star,) = stars
    best = variants.loc[variants["rank"] == 1, "best_val_accuracy_mean"].item()
    assert star.get_offsets()[0][0] == pytest.approx(best)
    assert fig.axes[0].get_yticklabels()[0].get_text() == variants.loc[variants["rank"] == 1, "variant"].item()
    assert "bootstrap 95 %, n = 3" in fig._suptitle.get_text()
    plt.close(fig)
    path = tmp_path / "final.png"
    plots.final_accuracies(variants, path, title="Task 1")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_final_accuracies_without_at_epoch_have_one_column_per_dataset():
    variants = variant_rows(4).query("at_epoch == 150").drop(columns="at_epoch")
    fig = plots.final_accuracies_figure(variants)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["skin", "bone"]
    assert overlaps(fig) == ([], [])
    plt.close(fig)


def test_final_accuracies_say_where_a_variant_did_not_learn():
    variants = variant_rows(2, datasets=("skin",))
    late = (variants["variant"] == "batch_norm=True") & (variants["at_epoch"] == 150)
    variants.loc[late, ["did_not_learn", "rank"]] = [True, np.nan]
    fig = plots.final_accuracies_figure(variants)
    assert fig.axes[0].get_yticklabels()[-1].get_text() == "batch_norm=True (did not learn at epoch 150)"
    plt.close(fig)


def test_final_accuracies_name_the_missing_columns():
    with pytest.raises(ValueError, match="final_val_accuracy_low"):
        plots.final_accuracies_figure(variant_rows(2).drop(columns="final_val_accuracy_low"))


def test_learning_curve_bands_lie_within_low_and_high_and_skip_unknown_epochs(tmp_path):
    curves = curve_rows()
    fig = plots.learning_curves_figure(curves, title="Task 1a/1b")
    for ax, metric in zip(fig.axes[:2], ("loss", "accuracy"), strict=True):
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 4  # two variants x two splits
        subset = curves[curves["metric"] == metric]
        low, high = subset["low"].min(), subset["high"].max()
        for band in bands:
            vertices = np.concatenate([p.vertices for p in band.get_paths()])
            assert vertices[:, 0].min() >= 2  # epoch 1 has no band
            assert low - 1e-9 <= vertices[:, 1].min() and vertices[:, 1].max() <= high + 1e-9
        for (variant, split), line in subset.groupby(["variant", "split"]):
            known = line.dropna()
            inside = [b for b in bands if _covers(b, known)]
            assert inside, f"no band spans {variant} {split} from low to high"
    assert "bands: range, n = 2" in fig._suptitle.get_text()
    pairs, outside = overlaps(fig)
    assert pairs == [] and outside == []
    plt.close(fig)
    plots.learning_curves(curves, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def _covers(band, known):
    """Whether the band's outline passes through every epoch's low and high."""
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    points = {(round(x, 6), round(y, 6)) for x, y in vertices}
    return all(
        (round(e, 6), round(lo, 6)) in points and (round(e, 6), round(hi, 6)) in points
        for e, lo, hi in zip(known["epoch"], known["low"], known["high"], strict=True)
    )
