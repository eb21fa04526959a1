"""Benchmark: per-epoch tf.data pipeline vs the repeated pipeline cnnreg trains with.

Trains the same model on the same synthetic arrays both ways, side by side in one process, and
prints seconds per epoch (after the first, which includes tracing) and their ratio.

    .venv/bin/python tools/bench_input_pipeline.py [--model alexnet] [--size 128] [--epochs 4]
"""

import argparse
import math
import time

import keras
import numpy as np
import tensorflow as tf

from cnnreg.models import build_model, compile_model
from cnnreg.train import configure_tensorflow, make_datasets


class Arrays:
    def __init__(self, n_train, n_val, size, rng):
        self.x_train = rng.integers(0, 256, (n_train, size, size, 1), dtype=np.uint8)
        self.y_train = rng.integers(0, 2, n_train)
        self.x_val = rng.integers(0, 256, (n_val, size, size, 1), dtype=np.uint8)
        self.y_val = rng.integers(0, 2, n_val)


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


def epoch_seconds(params, cache, repeated):
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(params), params)
    times = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda e, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    if repeated:
        train, val, steps, val_steps = make_datasets(cache, params)
        model.fit(train, validation_data=val, epochs=params["epochs"], steps_per_epoch=steps,
                  validation_steps=val_steps, callbacks=[callback], verbose=0)  # fmt: skip
    else:
        train, val = per_epoch_datasets(cache, params)
        model.fit(train, validation_data=val, epochs=params["epochs"], callbacks=[callback], verbose=0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet", choices=["alexnet", "vgg16"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    configure_tensorflow(threads=2)
    base = 8 if args.model == "alexnet" else 32
    params = {
        "model": args.model, "image_size": [args.size, args.size], "channels": 1, "base": base,
        "dense": [64, 64], "head": "sigmoid", "batch_norm": False, "dropout": 0.0, "spatial_dropout": 0.0,
        "optimizer": "adam", "lr": 1e-4, "batch_size": 8, "epochs": args.epochs, "seed": 0,
    }  # fmt: skip
    cache = Arrays(args.images, args.images // 5, args.size, np.random.default_rng(0))
    steps = math.ceil(args.images / 8)
    print(f"{args.model} base {base}, {args.images} images {args.size}x{args.size}x1, batch 8, {steps} steps/epoch")
    results = {}
    for name, repeated in (("per-epoch iterator", False), ("repeated + steps_per_epoch", True)):
        times = epoch_seconds(params, cache, repeated)
        results[name] = float(np.mean(times[1:]))
        print(f"  {name:28s} epochs: {' '.join(f'{t:.1f}' for t in times)} s; mean after first {results[name]:.2f} s")
    plain, repeated = results.values()
    print(f"  ratio per-epoch / repeated: {plain / repeated:.2f}")


if __name__ == "__main__":
    main()
