"""Submit the Snakemake controller itself as a SLURM job, so that nobody has to stay logged in.

    python -m cnnreg.submit [--time 3-00:00:00] -- --workflow-profile profiles/slurm [SNAKEMAKE ARGS]

The job runs ``snakemake ARGS`` (which submits the workflow's jobs as usual, from inside the
job: the SLURM plugin clears the job's SLURM_* variables for that) and then
``snakemake ARGS --report results/report.html``. Its log is ``logs/controller/<jobid>.log``.
sbatch reads a site's settings for the controller job itself from its environment
(``SBATCH_ACCOUNT``, ``SBATCH_PARTITION``, ``SBATCH_QOS``). A controller that reaches its time
limit cancels its jobs as it stops; submitting again resumes every run from its checkpoint.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

LOG_FOLDER = Path("logs/controller")
REPORT = "results/report.html"


def controller_script(snakemake_args, python=sys.executable):
    """The shell commands the controller job runs: the workflow, then its report."""
    snakemake = shlex.join([python, "-m", "snakemake", *snakemake_args])
    return f"{snakemake} && {snakemake} --report {REPORT}"


def sbatch_command(snakemake_args, time, memory_mb):
    """The sbatch command line that submits the controller job."""
    return [
        "sbatch", "--parsable", "--job-name=cnnreg-controller", f"--time={time}",
        "--cpus-per-task=1", f"--mem={memory_mb}", f"--output={LOG_FOLDER}/%j.log",
        f"--wrap={controller_script(snakemake_args)}",
    ]  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", default="3-00:00:00", help="the controller job's time limit (sbatch --time)")
    parser.add_argument("--mem-mb", type=int, default=4000, help="the controller job's memory")
    parser.add_argument("snakemake_args", nargs="*", help="arguments for snakemake, after --")
    args = parser.parse_args(argv)
    LOG_FOLDER.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(sbatch_command(args.snakemake_args, args.time, args.mem_mb), capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
    job = result.stdout.strip().split(";")[0]
    print(f"Submitted the controller as SLURM job {job}; its log: {LOG_FOLDER / job}.log; the report: {REPORT}")
    return job


if __name__ == "__main__":
    main()
