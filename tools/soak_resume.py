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
    "dropout": 0.4, "spatial_dropout": 0.1, "lr": 1e-3, "optimizer": "adam", "batch_size": 4, "epochs": 30,
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
    duration = time.monotonic() - started
    epoch = pd.read_csv(folder / "reference" / "history.csv")["seconds"].median()
    startup = duration - PARAMS["epochs"] * epoch
    print(f"uninterrupted run: {duration:.1f} s ({startup:.1f} s start-up, {epoch:.2f} s per epoch)")

    killed = folder / "killed"
    for kill in range(1, args.kills + 1):
        # From mid start-up to two epochs in: kills land in start-up, in epochs and in checkpoint writes.
        process, delay = train(cache, killed), rng.uniform(startup / 2, startup + 2 * epoch)
        time.sleep(delay)
        finished = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        history = killed / "resume" / "history.csv"
        done = len(pd.read_csv(history)) if history.exists() else 0
        print(f"kill {kill:2d} after {delay:5.2f} s: {'it had finished' if finished else f'{done} epochs kept'}")
        if finished:
            break
    assert train(cache, killed).wait() == 0
    same = pd.read_csv(killed / "history.csv")[COMPARED].equals(
        pd.read_csv(folder / "reference" / "history.csv")[COMPARED]
    )
    print(f"{kill} kills; history identical to the uninterrupted run: {'yes' if same else 'NO'} ({folder})")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
