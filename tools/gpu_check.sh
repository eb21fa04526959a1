#!/usr/bin/env bash
# GPU check of cnnreg's training speed, for a machine with an NVIDIA GPU and internet access:
# a fresh venv with the project and its `gpu` extra, then tools/bench_training.py on the GPU at
# 128x128 (the lab's size): steps_per_execution 1 against 8, 32 and 128, XLA and mixed precision
# on and off, and a pack of 4 runs trained one at a time and 4 at once against 4 separate jobs.
# About 7 minutes on one H100-class GPU, at most 8: every step has a time limit, and a benchmark
# stopped by it still prints the rows it measured. All tables are printed again at the end.
#
#     tools/gpu_check.sh                 # from anywhere; the venv goes to a new temporary folder
#     DRY_RUN=1 PYTHON=.venv/bin/python tools/gpu_check.sh
#                                        # no install, no GPU: the same steps on CPU at tiny sizes
set -euo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=${DRY_RUN:-0}
OUT=$(mktemp -d)

# Runs one step under a time limit (SIGTERM, then SIGKILL 10 s later); a failing step is reported
# and the next one runs, so the script always gets to print what it has.
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (time limit ${limit} s)" >&2
    timeout -k 10 "$limit" "$@" >"$OUT/$name.txt" || echo "== $name stopped with exit status $?" >&2
}

if [[ $DRY_RUN == 1 ]]; then
    PYTHON=${PYTHON:-python3}
    DEVICE=(--device cpu)
    # Tiny sizes (later options win over the ones below): a check of the flags, not of speed.
    SIZES=(--sizes 32 --pack-size 32 --n-train 32 --n-val 8 --epochs 2)
    export PYTHONPATH=$PWD/src
else
    # A fresh venv: only the project and its gpu extra (TensorFlow with its CUDA libraries).
    python3 -m venv "$OUT/venv"
    PYTHON=$OUT/venv/bin/python
    echo "== install (time limit 200 s)" >&2
    timeout 200 "$OUT/venv/bin/pip" install --quiet -e '.[gpu]'
    # Which GPU, its driver and memory, and that nothing else is using it.
    timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu --format=csv
    DEVICE=(--device gpu)
    SIZES=()
fi

# Epoch times at 128x128, 1000 training images: the lab's path, tf.data and cnnreg at N = 1, 8, 32
# and 128 steps per execution, and at N = 32 with XLA and mixed precision on and off.
step epochs 150 "$PYTHON" tools/bench_training.py "${DEVICE[@]}" --configs alexnet-base8,vgg16-base32 \
    --sizes 128 --epochs 3 --steps 32 --steps-sweep 1,8,32,128 --xla --mixed-precision --pack-runs 0 "${SIZES[@]}"

# Start-up and wall time: 4 AlexNet runs at 128x128 as 4 separate jobs, and as one pack training
# them one at a time and all 4 at once (one small model leaves a GPU mostly idle).
step pack 130 "$PYTHON" tools/bench_training.py "${DEVICE[@]}" --configs '' --pack-runs 4 --pack-size 128 \
    --pack-epochs 2 --n-train 500 --n-val 100 --steps 32 --concurrent 1,4 "${SIZES[@]}"

# The tables of both steps, together.
cat "$OUT/epochs.txt" "$OUT/pack.txt"
