"""Benchmark one training run's epoch time against steps_per_execution, and what a checkpoint costs.

    .venv/bin/python tools/bench_steps_per_execution.py [--model alexnet] [--size 32] [--images 1000] [--epochs 4]
        [--repeats 3] [--executions 1 8 32 64]

Trains the same run (random images, seed 0, batch 8) with `cnnreg.train.train_run` at each
steps_per_execution, interleaved over the repeats, and prints the median and the least over the
repeats of its mean epoch time after the first (which includes tracing), checking that every
history is the same. Then times one checkpoint of the trained model
(`cnnreg.resume.ResumeState.save`: model and optimizer) against the in-memory copy of its
weights that replaces it between checkpoints.
"""

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from cnnreg.atomic import save_npz
from cnnreg.data import array_digest
from cnnreg.execution import Execution
from cnnreg.history import HISTORY_COLUMNS
from cnnreg.resume import ResumeState
from cnnreg.train import train_run


def random_cache(path, n_train, n_val, size, rng):
    """A data cache of random gray images (as `cnnreg.data.prepare_cache` writes one)."""

    def split(n, name):
        return {
            f"x_{name}": rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
            f"y_{name}": rng.integers(0, 2, n).astype(np.int64),
            f"files_{name}": np.array([f"{name}/{i}.png" for i in range(n)], dtype=str),
        }

    arrays = {
        **split(n_train, "train"), **split(n_val, "val"), **split(0, "test"), "classes": np.array(["a", "b"]),
        "image_size": np.array([size, size]), "channels": np.array(1),
    }  # fmt: skip
    save_npz(path, {**arrays, "digest": np.array(array_digest(arrays))})
    return path


def epoch_seconds(params, cache, folder, steps_per_execution):
    """Mean epoch time after the first, and the history without its timing."""
    run_dir = folder / f"n{steps_per_execution}"
    train_run("bench", params, cache, run_dir, threads=2, execution=Execution(steps_per_execution))
    history = pd.read_csv(run_dir / "history.csv")
    return history["seconds"].iloc[1:].mean(), history[[c for c in HISTORY_COLUMNS if c != "seconds"]]


def checkpoint_seconds(run_dir, repeats=5):
    """Median seconds of one checkpoint of the run's model, and of one copy of its weights."""
    model = keras.models.load_model(run_dir / "model.keras")
    rows = pd.read_csv(run_dir / "history.csv").to_dict("records")
    state = ResumeState(run_dir / "resume", {"params": "bench"})
    saves, copies = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        state.save(model, rows)
        saves.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.get_weights()
        copies.append(time.perf_counter() - started)
    state.clear()
    return float(np.median(saves)), float(np.median(copies))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="alexnet", choices=["alexnet", "vgg16"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executions", type=int, nargs="+", default=[1, 8, 32, 64])
    args = parser.parse_args()
    base = 8 if args.model == "alexnet" else 32
    params = {
        "model": args.model, "dataset": "bench", "image_size": [args.size, args.size], "channels": 1, "base": base,
        "dense": [64, 64], "head": "sigmoid", "batch_norm": False, "dropout": 0.0, "spatial_dropout": 0.0,
        "optimizer": "adam", "lr": 1e-4, "batch_size": 8, "epochs": args.epochs, "seed": 0, "augment": "none",
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cache = random_cache(folder / "cache.npz", args.images, args.images // 5, args.size, np.random.default_rng(0))
        print(f"{args.model} base {base}, {args.images} images {args.size}x{args.size}x1, {args.epochs} epochs")
        times = {n: [] for n in args.executions}
        histories = {}
        for _ in range(args.repeats):
            for n in args.executions:
                seconds, histories[n] = epoch_seconds(params, cache, folder, n)
                times[n].append(seconds)
        reference = np.median(times[args.executions[0]])
        for n, values in times.items():
            same = histories[n].equals(histories[args.executions[0]])
            print(
                f"  steps_per_execution {n:3d}: median {np.median(values):.3f} s/epoch, min {min(values):.3f} "
                f"(runs: {' '.join(f'{v:.3f}' for v in values)}), x{reference / np.median(values):.2f}, "
                f"history {'identical' if same else 'DIFFERENT'}"
            )
        save, copy = checkpoint_seconds(folder / f"n{args.executions[0]}")
        print(f"  checkpoint (model + optimizer): {save:.3f} s; weights copy kept instead: {copy * 1000:.2f} ms")


if __name__ == "__main__":
    main()
