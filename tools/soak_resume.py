"""Kill-and-resume soak: SIGKILL one training run at random moments, then compare its history
with the same run trained without interruption.

    .venv/bin/python tools/soak_resume.py --kills 20

Each kill lands anywhere: in start-up, mid-epoch, or while a checkpoint is written. Not a test
(it takes minutes); prints one line per kill and the verdict last.
"""

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from cnnreg.data import prepare_cache
from cnnreg.synthetic import make_demo_datasets

PARAMS = {
    "model": "alexnet", "dataset": "skin", "base": 4, "dense": [16, 16], "head": "sigmoid", "batch_norm": True,
    "dropout": 0.4, "spatial_dropout": 0.1, "lr": 1e-3, "optimizer": "adam", "batch_size": 4, "epochs": 24,
    "image_size": [32, 32], "channels": 1, "augment": "lab", "seed": 0,
}  # fmt: skip
TRAIN = (
    "import json, sys\nfrom cnnreg.train import train_run\n"
    "train_run('soak', json.loads(sys.argv[3]), sys.argv[1], sys.argv[2])"
)
COMPARED = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]


def train(cache, run_dir):
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(cache), str(run_dir), json.dumps(PARAMS)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def epochs_done(history):
    return len(pd.read_csv(history)) if history.exists() else 0


def kill_somewhere(process, history, epoch, rng):
    """Wait for a random moment to kill: in start-up, or a random fraction of an epoch after the
    next checkpoint (so mid-epoch, or while the following checkpoint is written)."""
    if rng.random() < 0.25:
        delay = rng.uniform(0.5, 3.0)
        time.sleep(delay)
        return f"{delay:.2f} s after start"
    target = epochs_done(history) + 1
    while epochs_done(history) < target and process.poll() is None:
        time.sleep(0.01)
    fraction = rng.random()
    time.sleep(fraction * epoch)
    return f"{fraction:.2f} of an epoch after checkpoint {target}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="cnnreg-soak-"))
    make_demo_datasets(folder / "data", n_train=30, n_val=10, size=40, seed=1)
    cache = folder / "skin.npz"
    prepare_cache(folder / "data" / "Skin", cache, image_size=(32, 32), channels=1)

    started = time.monotonic()
    assert train(cache, folder / "reference").wait() == 0
    epoch = pd.read_csv(folder / "reference" / "history.csv")["seconds"].median()
    print(f"uninterrupted run: {time.monotonic() - started:.1f} s ({epoch:.2f} s per epoch)")

    killed = folder / "killed"
    history = killed / "resume" / "history.csv"
    for kill in range(1, args.kills + 1):
        process = train(cache, killed)
        where = kill_somewhere(process, history, epoch, rng)
        process.send_signal(signal.SIGKILL)
        process.wait()
        print(f"kill {kill:2d} {where}: {epochs_done(history)} epochs kept")
    assert train(cache, killed).wait() == 0
    same = pd.read_csv(killed / "history.csv")[COMPARED].equals(
        pd.read_csv(folder / "reference" / "history.csv")[COMPARED]
    )
    print(f"{kill} kills; history identical to the uninterrupted run: {'yes' if same else 'NO'} ({folder})")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
