"""Benchmark the dry run: cnnreg's workflow against a trivial Snakefile with as many jobs.

In a temporary folder it writes a trivial Snakefile of RUNS jobs (one `touch` rule, and `all`
over its outputs) and a cnnreg project whose config expands to RUNS training runs (four
studies, each a grid of learning rate x dropout on the two demo datasets, repeated over seeds),
with a few tiny generated images per class. The cnnreg project is planned twice: one run per
training job, and packed as the lab config packs (`pack: {runs: 4}`: a quarter of the training
jobs). It then times what a user runs, ``snakemake -n`` (stdout and stderr to a file in the
temporary folder, checked for the expected job count), for each, alternating, REPEATS times, and
prints last the median wall and CPU seconds of each and their ratios to the trivial Snakefile
(CPU time is the steadier one on a shared machine).

    .venv/bin/python tools/bench_dryrun.py [--runs 10000] [--repeats 3]
"""

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cnnreg.synthetic import make_demo_datasets

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
STUDIES = 4
LRS = [1.0e-5, 3.0e-5, 1.0e-4, 3.0e-4, 1.0e-3]
DROPOUTS = [0.0, 0.1, 0.2, 0.3, 0.4]
DATASETS = ["skin", "bone"]
#: Runs per training job in the lab config (`pack.runs`).
LAB_PACK = 4
#: Unique runs per seed: every study trains its own (its epochs differ).
RUNS_PER_SEED = STUDIES * len(LRS) * len(DROPOUTS) * len(DATASETS)
TRIVIAL = """\
rule all:
    input:
        expand("out/{{i}}.txt", i=range({runs})),


rule touch:
    output:
        "out/{{i}}.txt",
    shell:
        "touch {{output}}"
"""


def write_trivial(folder, runs):
    folder.mkdir()
    (folder / "Snakefile").write_text(TRIVIAL.format(runs=runs))
    return folder


def write_cnnreg(folder, runs, pack_runs):
    """A project folder: config/config.yaml with `runs` runs, `pack_runs` to a training job, and
    the demo datasets, tiny."""
    make_demo_datasets(folder / "data", n_train=2, n_val=2, size=32, seed=0)
    seeds = list(range(runs // RUNS_PER_SEED))
    lab_defaults = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["defaults"]
    config = {
        "datasets": {
            "skin": {"path": "data/Skin", "classes": ["Mel", "Nevi"]},
            "bone": {"path": "data/Bone", "classes": ["AFF", "NFF"]},
        },
        "defaults": {**lab_defaults, "image_size": [32, 32]},
        "pack": {"runs": pack_runs},
        "studies": {
            f"study{k}": {
                "set": {"epochs": 2 + k},
                "grid": {"lr": LRS, "dropout": DROPOUTS},
                "datasets": DATASETS,
                "seeds": seeds,
            }
            for k in range(STUDIES)
        },
    }
    (folder / "config").mkdir()
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def dry_run(folder, *args, expect):
    """Wall and CPU seconds of ``snakemake -n`` in `folder`; checks that it plans `expect` = (rule, count).

    CPU seconds (user + system) are less disturbed than wall time on a machine others use.
    """
    log = folder / "dryrun.log"
    command = [str(SNAKEMAKE), "-n", "--directory", str(folder), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    text = log.read_text()
    rule, count = expect
    planned = re.search(rf"^{rule}\s+(\d+)$", text, re.MULTILINE)
    if result.returncode != 0 or not planned or int(planned.group(1)) != count:
        raise SystemExit(f"{' '.join(command)} did not plan {count} {rule} jobs:\n{text[-3000:]}")
    return {"wall": wall, "cpu": cpu}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000, help=f"runs, a multiple of {RUNS_PER_SEED}")
    parser.add_argument("--repeats", type=int, default=3, help="dry runs of each, alternating")
    args = parser.parse_args(argv)
    if args.runs <= 0 or args.runs % RUNS_PER_SEED:  # then each dataset's runs fill whole packs
        parser.error(f"--runs must be a positive multiple of {RUNS_PER_SEED}")
    with tempfile.TemporaryDirectory(prefix="bench_dryrun.") as tmp:
        trivial = write_trivial(Path(tmp) / "trivial", args.runs)
        packings = {f"cnnreg, {n} run(s)/job": n for n in (1, LAB_PACK)}
        projects = {name: write_cnnreg(Path(tmp) / f"cnnreg{n}", args.runs, n) for name, n in packings.items()}
        times = {"trivial": [], **{name: [] for name in projects}}
        for repeat in range(args.repeats):
            times["trivial"].append(
                dry_run(trivial, "--snakefile", str(trivial / "Snakefile"), expect=("touch", args.runs))
            )
            for name, project in projects.items():
                expect = ("train", args.runs // packings[name])
                times[name].append(dry_run(project, "--snakefile", str(REPO / "workflow" / "Snakefile"), expect=expect))
            print(
                f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]['wall']:.2f} s" for k, v in times.items()), flush=True
            )
    print_table(times, args.runs, args.repeats)


def print_table(times, runs, repeats):
    """Median wall and CPU seconds of each workflow, and each over the trivial one's."""
    medians = {
        name: {kind: statistics.median(t[kind] for t in seconds) for kind in ("wall", "cpu")}
        for name, seconds in times.items()
    }
    print(f"\nsnakemake -n of {runs} runs (trivial: {runs} jobs), median of {repeats} (output to a file)")
    print(f"{'workflow':<24} {'wall s':>8} {'cpu s':>8} {'wall/trivial':>13} {'cpu/trivial':>12}")
    for name, median in medians.items():
        ratios = [median[kind] / medians["trivial"][kind] for kind in ("wall", "cpu")]
        print(f"{name:<24} {median['wall']:>8.2f} {median['cpu']:>8.2f} {ratios[0]:>13.2f} {ratios[1]:>12.2f}")


if __name__ == "__main__":
    main()
