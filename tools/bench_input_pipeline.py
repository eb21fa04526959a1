"""Benchmark the training input pipeline, side by side in one process on the same arrays.

Default: the textbook tf.data pipeline (shuffled by tf.data) against the one cnnreg trains with.
``--augment``: cnnreg's pipeline without augmentation against the lab's augmentation (training
images per second, and their ratio). Epoch times after the first (which includes tracing).

    .venv/bin/python tools/bench_input_pipeline.py [--model alexnet] [--size 128] [--epochs 4] [--augment]
"""

import argparse
import math
import time

import keras
import numpy as np
import tensorflow as tf

from cnnreg.data import Cache
from cnnreg.models import compile_model
from cnnreg.registry import lookup
from cnnreg.train import configure_tensorflow, make_datasets


def random_stage(n_train, n_val, size, rng):
    def images(n):
        return rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)

    y_train, y_val = rng.integers(0, 2, n_train), rng.integers(0, 2, n_val)
    return Cache(
        images(n_train), y_train, images(n_val), y_val, images(0), y_val[:0], ["a", "b"],
        files_train=None, files_val=None, files_test=None, digest="",
    )  # fmt: skip


def per_epoch_datasets(cache, params):
    """The textbook pipeline: a fresh iterator every epoch."""

    def rescale(x, y):
        return tf.cast(x, tf.float32) / 255.0, tf.cast(tf.reshape(y, (-1, 1)), tf.float32)

    train = (
        tf.data.Dataset.from_tensor_slices((cache.x_train, cache.y_train))
        .shuffle(len(cache.x_train), seed=0)
        .batch(params["batch_size"])
        .map(rescale)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = tf.data.Dataset.from_tensor_slices((cache.x_val, cache.y_val)).batch(params["batch_size"]).map(rescale)
    return train, val


def epoch_seconds(params, cache, cnnreg_pipeline):
    keras.utils.set_random_seed(0)
    height, width = params["image_size"]
    model = compile_model(lookup(params["model"]).build(params, (height, width, params["channels"])), params)
    times = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda e, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    if cnnreg_pipeline:
        pipelines = make_datasets(cache, params, 0, params["epochs"])
        select = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: pipelines.epoch.assign(epoch))
        model.fit(pipelines.train, validation_data=pipelines.val, epochs=params["epochs"], callbacks=[select, callback],
                  verbose=0)  # fmt: skip
    else:
        train, val = per_epoch_datasets(cache, params)
        model.fit(train, validation_data=val, epochs=params["epochs"], callbacks=[callback], verbose=0)
    return times


def compare(label_a, run_a, label_b, run_b, n_images):
    """Print both variants' epoch times and images/s, and the ratio of their epoch times."""
    results = {}
    for name, run in ((label_a, run_a), (label_b, run_b)):
        times = run()
        results[name] = float(np.mean(times[1:]))
        print(
            f"  {name:28s} epochs: {' '.join(f'{t:.1f}' for t in times)} s; mean after first "
            f"{results[name]:.2f} s = {n_images / results[name]:.0f} train images/s"
        )
    print(f"  ratio {label_a} / {label_b} (epoch time): {results[label_a] / results[label_b]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet", choices=["alexnet", "vgg16"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--augment", action="store_true", help="compare augment none with lab")
    args = parser.parse_args()
    configure_tensorflow(threads=2)
    base = 8 if args.model == "alexnet" else 32
    params = {
        "model": args.model, "image_size": [args.size, args.size], "channels": 1, "base": base,
        "dense": [64, 64], "head": "sigmoid", "batch_norm": False, "dropout": 0.0, "spatial_dropout": 0.0,
        "optimizer": "adam", "lr": 1e-4, "batch_size": args.batch, "epochs": args.epochs, "seed": 0,
        "augment": "none",
    }  # fmt: skip
    data = random_stage(args.images, args.images // 5, args.size, np.random.default_rng(0))
    steps = math.ceil(args.images / args.batch)
    print(
        f"{args.model} base {base}, {args.images} images {args.size}x{args.size}x1, batch {args.batch}, "
        f"{steps} steps/epoch"
    )
    if args.augment:
        compare(
            "augment none", lambda: epoch_seconds(params, data, cnnreg_pipeline=True),
            "augment lab", lambda: epoch_seconds({**params, "augment": "lab"}, data, cnnreg_pipeline=True),
            args.images,
        )  # fmt: skip
    else:
        compare(
            "textbook pipeline", lambda: epoch_seconds(params, data, cnnreg_pipeline=False),
            "cnnreg's pipeline", lambda: epoch_seconds(params, data, cnnreg_pipeline=True),
            args.images,
        )  # fmt: skip


if __name__ == "__main__":
    main()
