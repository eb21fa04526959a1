"""Benchmark training: seconds per epoch of the lab's models along three paths, and a pack of runs
against one job per run. Not a test (it takes minutes); progress goes to stderr, the tables come
last on stdout (SIGTERM prints what has been measured so far).

Epoch times, side by side in one process on the same seeded random images (2 classes, 1 channel),
each path building the same model with the same seed (`cnnreg.registry`, `compile_model`):

- lab: the lab notebook's ``model.fit(x / 255.0, y, ..., shuffle=True)`` on numpy arrays;
- tf.data: a hand-written from_tensor_slices -> shuffle -> batch -> map(/255) -> prefetch pipeline;
- cnnreg: `cnnreg.train.train_run` on a dataset cache, as a training job runs it, with
  steps_per_execution 1 and ``--steps`` (its epoch times read from history.csv).

An epoch's time is the median of the epochs after the first (which traces the graph); all paths
share the process settings cnnreg makes (thread pools, op determinism). Ratios > 1: cnnreg faster.
For cnnreg at ``--steps`` the table also gives its first epoch, what one checkpoint of the trained
run costs (`cnnreg.resume.ResumeState.save`: model and optimizer) and the copy of its weights
kept in memory instead between checkpoints (medians of 3).

Pack: ``--pack-runs`` runs (seeds 0, 1, ...; AlexNet base 8) trained as one process each, one
after another (Python and TensorFlow start every time), against one process calling
`cnnreg.packs.train_pack` (``--concurrent`` runs at a time). Wall time is from before each spawn
to its exit; start-up is the runs' ``startup_seconds`` (spawn, or the run's start in a pack, to
its first epoch).

    PYTHONPATH=src .venv/bin/python tools/bench_training.py        # everything, ~10 min on 2 CPU cores
    ... --configs alexnet-base8 --sizes 32 --n-train 200 --epochs 3 --pack-runs 0     # one quick row
    ... --device gpu --sizes 128 --steps-sweep 1,8,32,128 --xla --mixed-precision     # tools/gpu_check.sh
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import cnnreg
from cnnreg.atomic import save_npz
from cnnreg.data import array_digest, load_cache
from cnnreg.devices import device_name
from cnnreg.execution import Execution
from cnnreg.models import compile_model
from cnnreg.registry import lookup
from cnnreg.resume import ResumeState
from cnnreg.train import configure_tensorflow, train_run


class Config(NamedTuple):
    model: str
    head: str
    lab_base: int  # at 128x128, as config/config.yaml
    demo_base: int  # below 128x128, as config/demo.yaml
    cpu_images: tuple  # (training, validation) images at 128x128 without a GPU, to fit ~10 minutes


CONFIGS = {
    "alexnet-base8": Config("alexnet", "sigmoid", 8, 8, cpu_images=(200, 40)),
    "alexnet-base64": Config("alexnet", "sigmoid", 64, 16, cpu_images=(16, 8)),
    "vgg16-base32": Config("vgg16", "softmax", 32, 8, cpu_images=(16, 8)),
}
LAB_SIZE = 128
#: What the main table gives besides epoch times, for cnnreg at the best N (seconds).
COSTS = ("first epoch", "checkpoint", "weights copy")
SEPARATE_JOB = """import sys, json
from cnnreg.execution import Execution
from cnnreg.train import train_run
spawned, cache, run_dir, params, threads, steps = sys.argv[1:]
train_run("bench", json.loads(params), cache, run_dir, threads=int(threads), started=float(spawned),
          execution=Execution(int(steps)))
"""
PACK_JOB = """import sys, json
from cnnreg.execution import Execution
from cnnreg.packs import Member, train_pack
spawned, members, manifest, threads, concurrent, steps = sys.argv[1:]
train_pack("bench", [Member(**m) for m in json.loads(members)], manifest, threads=int(threads),
           concurrent=int(concurrent), execution=Execution(int(steps)), started=float(spawned))
"""


class Stopped(Exception):
    """SIGTERM (a `timeout`): print what has been measured."""


def stop(signum, frame):
    raise Stopped()


STARTED = time.monotonic()


def progress(message):
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- data and models ------------------------------------------------------------------------


def random_cache(path, n_train, n_val, size, seed=0):
    """A dataset cache (`cnnreg.data` format, no test split) of seeded random uint8 images."""
    rng = np.random.default_rng(seed)
    arrays = {"classes": np.array(["a", "b"])}
    for split, n in (("train", n_train), ("val", n_val), ("test", 0)):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 2, n).astype(np.int64)
        arrays[f"files_{split}"] = np.array([f"{split}/{i}.png" for i in range(n)], dtype=str)
    arrays.update(image_size=np.array([size, size], dtype=np.int64), channels=np.array(1, dtype=np.int64))
    save_npz(path, {**arrays, "digest": np.array(array_digest(arrays))})
    return load_cache(path)


def run_params(config, size, args, seed=0):
    spec = CONFIGS[config]
    return {
        "model": spec.model, "base": spec.lab_base if size >= LAB_SIZE else spec.demo_base, "dense": [64, 64],
        "head": spec.head, "batch_norm": False, "dropout": 0.0, "spatial_dropout": 0.0, "lr": 1e-4,
        "optimizer": "adam", "batch_size": args.batch, "epochs": args.epochs, "image_size": [size, size],
        "channels": 1, "augment": "none", "dataset": "random", "seed": seed,
        "jit_compile": False, "mixed_precision": False,
    }  # fmt: skip


def labels(y, params):
    return y.astype("float32").reshape(-1, 1) if params["head"] == "sigmoid" else y


def fresh_model(params, input_shape):
    keras.mixed_precision.set_global_policy("float32")  # whatever a mixed-precision run left
    keras.utils.set_random_seed(params["seed"])
    return compile_model(lookup(params["model"]).build(params, input_shape), params)


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def per_epoch(seconds):
    """Median epoch time after the first (which traces the graph)."""
    return float(np.median(seconds[1:]))


# --- the three paths ------------------------------------------------------------------------


def lab_path(cache, params):
    model, timer = fresh_model(params, cache.x_train.shape[1:]), EpochTimes()
    model.fit(
        cache.x_train / 255.0, labels(cache.y_train, params), batch_size=params["batch_size"],
        epochs=params["epochs"], validation_data=(cache.x_val / 255.0, labels(cache.y_val, params)),
        shuffle=True, callbacks=[timer], verbose=0,
    )  # fmt: skip
    return per_epoch(timer.seconds)


def tfdata_path(cache, params):
    def dataset(x, y, shuffle):
        data = tf.data.Dataset.from_tensor_slices((x, labels(y, params)))
        data = data.shuffle(len(x), seed=params["seed"]) if shuffle else data
        rescale = data.batch(params["batch_size"]).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        return rescale.prefetch(tf.data.AUTOTUNE)

    model, timer = fresh_model(params, cache.x_train.shape[1:]), EpochTimes()
    model.fit(
        dataset(cache.x_train, cache.y_train, shuffle=True), epochs=params["epochs"],
        validation_data=dataset(cache.x_val, cache.y_val, shuffle=False), shuffle=False, callbacks=[timer],
        verbose=0,
    )  # fmt: skip
    return per_epoch(timer.seconds)


def cnnreg_path(cache_path, params, steps, threads):
    """Seconds per epoch, of the first epoch, of a checkpoint and of a weights copy."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
        train_run("bench", params, cache_path, folder, threads=threads, execution=Execution(steps))
        seconds = pd.read_csv(Path(folder) / "history.csv")["seconds"].tolist()
        return {"epoch": per_epoch(seconds), "first epoch": seconds[0], **checkpoint_costs(Path(folder))}


def checkpoint_costs(run_dir, repeats=3):
    """Median seconds of one checkpoint of a finished run's model, and of one copy of its weights."""
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
    return {"checkpoint": float(np.median(saves)), "weights copy": float(np.median(copies))}


def variants(args):
    """(steps per execution, jit_compile, mixed_precision) of every cnnreg measurement."""
    plain = [(n, False, False) for n in (1, args.steps, *args.steps_sweep)]
    swept = [(args.steps, xla, mixed) for xla in args.xla for mixed in args.mixed_precision]
    return list(dict.fromkeys(plain + swept))


def images(args, config, size):
    """Training and validation images of a configuration at a size."""
    if size >= LAB_SIZE and not args.full_n and not tf.config.list_physical_devices("GPU"):
        return CONFIGS[config].cpu_images
    return args.n_train, args.n_val


def measure_epochs(args, folder, results):
    """One main row per configuration and size; sweep rows for the variants beyond N=1 and N=best."""
    for config in args.configs:
        for size in args.sizes:
            n_train, n_val = images(args, config, size)
            cache_path = folder / f"random-{size}-{n_train}-{n_val}.npz"
            cache = random_cache(cache_path, n_train, n_val, size)
            params = run_params(config, size, args)
            row = {"config": config, "size": size, "base": params["base"], "train/val": f"{n_train}/{n_val}"}
            results["main"].append(row)
            for name, path in (("lab", lab_path), ("tf.data", tfdata_path)):
                row[name] = path(cache, params)
                progress(f"{config} {size}: {name} {row[name]:.3f} s/epoch")
            for variant in variants(args):
                measure_cnnreg(args, cache_path, params, variant, row, results)


def measure_cnnreg(args, cache_path, params, variant, row, results):
    """cnnreg's epoch time for one variant: into the main row (N=1, N=best) or a sweep row."""
    steps, xla, mixed = variant
    timing = cnnreg_path(cache_path, {**params, "jit_compile": xla, "mixed_precision": mixed}, steps, args.threads)
    seconds = timing["epoch"]
    progress(f"{row['config']} {row['size']}: cnnreg N={steps} xla={xla} mixed={mixed} {seconds:.3f} s/epoch")
    if variant == (args.steps, False, False):
        row.update({f"cnnreg N={steps}": seconds, **{k: timing[k] for k in COSTS}})
    elif variant == (1, False, False):
        row[f"cnnreg N={steps}"] = seconds
    else:
        names = {"config": row["config"], "size": row["size"], "N": steps, "jit_compile": xla, "mixed_precision": mixed}
        results["sweep"].append({**names, "lab": row["lab"], "tf.data": row["tf.data"], "cnnreg": seconds})


# --- pack against separate jobs -------------------------------------------------------------


def spawn(code, *args):
    """Seconds from before starting ``python -c code spawn-time *args`` to its exit."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(cnnreg.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", code, str(started), *map(str, args)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"training process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.time() - started


def startup_sum(run_dirs):
    return sum(json.loads((Path(d) / "metrics.json").read_text())["startup_seconds"] for d in run_dirs)


def measure_pack(args, folder, results):
    size = args.pack_size
    cache = folder / f"pack-{size}.npz"
    random_cache(cache, args.n_train, args.n_val, size)
    params = [
        {**run_params("alexnet-base8", size, args), "epochs": args.pack_epochs, "seed": s}
        for s in range(args.pack_runs)
    ]
    dirs = [folder / "separate" / f"run{p['seed']}" for p in params]
    wall = sum(
        spawn(SEPARATE_JOB, cache, d, json.dumps(p), args.threads, args.steps)
        for d, p in zip(dirs, params, strict=True)
    )
    separate = {"training": f"{len(params)} jobs, one after another", "processes": len(params), "lanes": 1}
    results["pack"].append({**separate, "wall": wall, "startup": startup_sum(dirs)})
    progress(f"pack: {len(params)} separate jobs {wall:.1f} s")
    for concurrent in args.concurrent:
        pack = folder / f"pack-c{concurrent}"
        members = [
            {"run": f"bench-{p['seed']}", "params": p, "cache": str(cache), "run_dir": str(pack / f"run{p['seed']}")}
            for p in params
        ]
        wall = spawn(PACK_JOB, json.dumps(members), pack / "manifest.json", args.threads, concurrent, args.steps)
        row = {"training": f"1 pack, concurrent {concurrent}", "processes": 1, "lanes": min(concurrent, len(params))}
        results["pack"].append({**row, "wall": wall, "startup": startup_sum(m["run_dir"] for m in members)})
        progress(f"pack: concurrent {concurrent} {wall:.1f} s")


# --- tables ---------------------------------------------------------------------------------


def epoch_table(rows, best):
    table = pd.DataFrame(rows).reindex(
        columns=["config", "size", "base", "train/val", "lab", "tf.data", "cnnreg N=1", f"cnnreg N={best}", *COSTS]
    )
    table["lab/cnnreg"] = table["lab"] / table[f"cnnreg N={best}"]
    table["tf.data/cnnreg"] = table["tf.data"] / table[f"cnnreg N={best}"]
    return table


def sweep_table(rows):
    table = pd.DataFrame(rows)
    table["lab/cnnreg"] = table["lab"] / table["cnnreg"]
    table["tf.data/cnnreg"] = table["tf.data"] / table["cnnreg"]
    return table


def pack_table(rows):
    table = pd.DataFrame(rows)
    table["startup share"] = table["startup"] / (table["wall"] * table["lanes"])
    table["separate/this"] = table["wall"].iloc[0] / table["wall"]
    return table.drop(columns="lanes")


def print_tables(results, args, stopped):
    print(
        f"\n{device_name()}, {args.threads} threads, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"batch {args.batch}, {args.epochs} epochs, best N={args.steps}; load average {os.getloadavg()[0]:.1f}"
        + ("\nPARTIAL: stopped by SIGTERM" if stopped else "")
    )
    numbers = {"float_format": lambda x: f"{x:.3f}", "index": False}
    if results["main"]:
        print(
            "\nSeconds per epoch (median after the first), and cnnreg's first epoch, checkpoint and weights"
            " copy at N=best; ratios > 1: cnnreg N=best faster"
        )
        print(epoch_table(results["main"], args.steps).to_string(**numbers))
    if results["sweep"]:
        print("\ncnnreg variants: seconds per epoch")
        print(sweep_table(results["sweep"]).to_string(**numbers))
    if results["pack"]:
        print(
            f"\n{args.pack_runs} runs of AlexNet base 8 at {args.pack_size}x{args.pack_size}, {args.pack_epochs} epochs"
            f", N={args.steps}: wall and start-up seconds (startup share: of wall x runs at once)"
        )
        print(pack_table(results["pack"]).to_string(**numbers))


def integers(text):
    return [int(value) for value in text.split(",") if value]


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        type=lambda t: [c for c in t.split(",") if c],
        default=list(CONFIGS),
        help=f"comma-separated, of {', '.join(CONFIGS)} ('' for none)",
    )
    parser.add_argument(
        "--sizes", type=integers, default=[LAB_SIZE, 32], help="image sides (below 128: the demo's base)"
    )
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--full-n", action="store_true", help="--n-train and --n-val at 128 on CPU too")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="batch size (the lab's: 8)")
    parser.add_argument("--steps", type=int, default=32, help="the best steps_per_execution N")
    parser.add_argument("--steps-sweep", type=integers, default=[], help="more N, e.g. 1,8,32,128")
    parser.add_argument(
        "--xla", action="store_const", const=[False, True], default=[False], help="jit_compile off and on"
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_const",
        const=[False, True],
        default=[False],
        help="mixed_precision off and on",
    )
    parser.add_argument("--pack-runs", type=int, default=4, help="0: no pack comparison")
    parser.add_argument("--pack-size", type=int, default=32)
    parser.add_argument("--pack-epochs", type=int, default=2)
    parser.add_argument("--concurrent", type=integers, default=[1, 4], help="pack concurrency rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "gpu"], help="cpu: hide GPUs; gpu: stop unless one is visible")
    args = parser.parse_args()
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    return args


def main():
    args = arguments()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow looks for devices; children inherit it
    configure_tensorflow(args.threads)
    if args.device == "gpu" and not tf.config.list_physical_devices("GPU"):
        sys.exit("--device gpu: TensorFlow sees no GPU")
    signal.signal(signal.SIGTERM, stop)
    results, stopped = {"main": [], "sweep": [], "pack": []}, False
    try:
        with tempfile.TemporaryDirectory(prefix="bench-training-") as folder:
            measure_epochs(args, Path(folder), results)
            if args.pack_runs:
                measure_pack(args, Path(folder), results)
    except (Stopped, KeyboardInterrupt):
        stopped = True
    print_tables(results, args, stopped)


if __name__ == "__main__":
    main()
