"""The workflow through `snakemake --profile profiles/slurm` on a real one-node SLURM cluster.

The cluster (slurmctld, slurmd, slurmdbd with MariaDB, munged; one GPU as a generic resource) is
started by `cluster.SlurmCluster` and every daemon is stopped by PID afterwards. The shipped profile
is used as it is; only the config is tiny (and asks for one CPU per training job). The cluster has
one partition, its default, so no partition is named.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cluster import SlurmCluster, can_run_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import REPO, SNAKEMAKE, TINY_DEFAULTS, make_data, write_config  # noqa: E402

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if reason := can_run_cluster():
        pytest.skip(f"cannot run SLURM daemons here: {reason}")
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


def profile_run(cluster, project, *args, timeout=900, background=False):
    command = [
        str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(project),
        "--profile", str(PROFILE), *args,
    ]  # fmt: skip
    if background:
        return subprocess.Popen(command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # `timeout -k`: Snakemake waits for its jobs on SIGTERM; a hung run must still end.
    result = subprocess.run(
        ["timeout", "-k", "30", str(timeout), *command], env=cluster.env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def tiny_config(project, epochs=2, seeds=(0, 1, 2, 3), pack=None, **defaults):
    write_config(
        project,
        {
            "datasets": make_data(project / "data"),
            "defaults": {**TINY_DEFAULTS, "epochs": epochs, **defaults},
            "threads": 1,
            "pack": pack or {"runs": 1},
            "max_runtime": 45,
            "checkpoint_seconds": 0,
            "studies": {
                "bn": {"grid": {"batch_norm": [False, True]}, "datasets": ["skin"], "seeds": list(seeds)},
            },
        },
    )


def train_jobs(cluster):
    """sacct rows of the packed training jobs (allocations only, not steps)."""
    rows = cluster.sacct(allocations_only=True)
    return [row for row in rows if "train" in row["Comment"]]


def running_train_jobs(cluster):
    """Ids of running training jobs, from squeue (sacct has no comment before a job ends)."""
    queue = cluster.run(["squeue", "--noheader", "--states=RUNNING", "--format=%i %k"]).stdout
    return [line.split()[0] for line in queue.splitlines() if "train" in line]


def test_packed_gpu_jobs_through_the_profile(cluster, tmp_path):
    tiny_config(tmp_path, pack={"runs": 4})
    profile_run(cluster, tmp_path)
    profile_run(cluster, tmp_path, "--report", "results/report.html")

    packs = train_jobs(cluster)
    assert len(packs) == 2  # 8 runs, 4 per pack
    for pack in packs:
        rows = cluster.wait_sacct(pack["JobID"])
        (limit,) = cluster.sacct(pack["JobID"], fields="JobID,TimelimitRaw", allocations_only=True)
        job, steps = rows[0], [r for r in rows[1:] if r["JobID"].split(".")[-1].isdigit()]
        assert job["State"] == "COMPLETED"
        assert "gres/gpu=1" in job["ReqTRES"] and "gres/gpu=1" in job["AllocTRES"]
        # one process for the pack; its 4 short runs need 10 minutes' allowance + a little each,
        # within the config's max_runtime of 45
        assert len(steps) == 1 and steps[0]["State"] == "COMPLETED"
        assert limit["TimelimitRaw"] == "11", limit

    runs = pd.read_csv(tmp_path / "results" / "runs.tsv", sep="\t")
    assert len(runs) == 8
    for run in runs["run"]:
        history = pd.read_csv(tmp_path / "results" / "runs" / run / "history.csv")
        assert history["epoch"].tolist() == [1, 2]
        assert (tmp_path / "results" / "runs" / run / "metrics.json").exists()
    assert (tmp_path / "results" / "studies" / "bn" / "curves.png").exists()
    assert (tmp_path / "results" / "report.html").stat().st_size > 100_000


def _wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(runner):
    """Stop Snakemake as a user would: Ctrl-C, then kill it if it is still waiting a minute later.

    The plugin's sacct status check does not recognise "CANCELLED by <uid>" and may wait for the
    cancelled job for ever.
    """
    runner.send_signal(signal.SIGINT)
    try:
        runner.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.communicate(timeout=30)


def test_scancelled_training_job_resumes_without_lost_or_duplicated_epochs(cluster, tmp_path):
    epochs = 10
    tiny_config(tmp_path, epochs=epochs, seeds=[0], batch_size=2, image_size=[48, 48])
    runner = profile_run(cluster, tmp_path, background=True)
    try:
        histories = tmp_path / "results" / "runs"
        history = _wait_for("a training run", lambda: next(histories.glob("*/resume/history.csv"), None), 600)
        _wait_for("two finished epochs", lambda: len(pd.read_csv(history)) >= 2, 600)
        (job,) = running_train_jobs(cluster)
        cluster.run(["scancel", job])
        _wait_for("the job to end", lambda: cluster.wait_sacct(job)[0]["State"].startswith("CANCELLED"), 60)
    finally:
        stop(runner)
    kept = pd.read_csv(history)
    assert 2 <= len(kept) < epochs

    profile_run(cluster, tmp_path, "--unlock")
    profile_run(cluster, tmp_path)

    run_dir = history.parent.parent
    final = pd.read_csv(run_dir / "history.csv")
    assert final["epoch"].tolist() == list(range(1, epochs + 1))
    pd.testing.assert_frame_equal(final.iloc[: len(kept)], kept)
    assert f"after epoch {len(kept)} of {epochs}" in (tmp_path / "logs" / "train" / f"{run_dir.name}.log").read_text()
