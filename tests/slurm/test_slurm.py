"""The workflow through its SLURM profile on a real one-node SLURM cluster.

The cluster (slurmctld, slurmd, slurmdbd with MariaDB, munged; one GPU as a generic resource) is
started by `cluster.SlurmCluster` and every daemon is stopped by PID afterwards. It has two
partitions (`main`, the default, and `gpu`), two accounts (`testaccount`, the default, and
`siteaccount`) and a QOS `siteqos` besides `normal`. The shipped profile is used as it is, as the
workflow profile (beside a site profile of the test's own in one test); only the config is tiny
(and asks for one CPU per training job).
"""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cluster import SlurmCluster, can_run_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import REPO, SNAKEMAKE, TINY_DEFAULTS, make_data, write_config  # noqa: E402

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if reason := can_run_cluster():
        pytest.skip(f"cannot run SLURM daemons here: {reason}")
    site = {"other_partitions": ("gpu",), "other_accounts": ("siteaccount",), "other_qos": ("siteqos",)}
    with SlurmCluster(tmp_path_factory.mktemp("slurm"), **site) as running:
        yield running


def snakemake_args(project, *args):
    """Snakemake's arguments for `project` with the shipped profile as the workflow profile."""
    return [
        "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory", str(project),
        "--workflow-profile", str(PROFILE), *args,
    ]  # fmt: skip


def profile_run(cluster, project, *args, timeout=900, background=False):
    command = [str(SNAKEMAKE), *snakemake_args(project, *args)]
    if background:
        return subprocess.Popen(command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # `timeout -k`: Snakemake waits for its jobs on SIGTERM; a hung run must still end.
    result = subprocess.run(
        ["timeout", "-k", "30", str(timeout), *command], env=cluster.env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def tiny_config(project, epochs=2, seeds=(0, 1, 2, 3), pack=None, partitions=None, **defaults):
    write_config(
        project,
        {
            "datasets": make_data(project / "data"),
            "defaults": {**TINY_DEFAULTS, "epochs": epochs, **defaults},
            "threads": 1,
            "pack": pack or {"runs": 1},
            "max_runtime": 45,
            "checkpoint_seconds": 0,
            **({"partitions": partitions} if partitions else {}),
            "studies": {
                "bn": {"grid": {"batch_norm": [False, True]}, "datasets": ["skin"], "seeds": list(seeds)},
            },
        },
    )


def train_jobs(cluster):
    """sacct rows of the packed training jobs (allocations only, not steps)."""
    rows = cluster.sacct(allocations_only=True)
    return [row for row in rows if "train" in row["Comment"]]


def running_train_jobs(cluster, pack):
    """Ids of the running training jobs of `pack`, from squeue (sacct has no comment before a job
    ends); on 2 or more CPUs the test's packs train at once."""
    queue = cluster.run(["squeue", "--noheader", "--states=RUNNING", "--format=%i %k"]).stdout
    return [line.split()[0] for line in queue.splitlines() if "train" in line and pack in line]


def site_profile(folder):
    """A site's own global profile: its account and QOS for every job, and nothing of ours."""
    folder.mkdir()
    settings = {"executor": "slurm", "default-resources": ["slurm_account=siteaccount", "qos=siteqos"]}
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


def test_packed_gpu_jobs_through_a_site_profile(cluster, tmp_path):
    tiny_config(tmp_path, pack={"runs": 4}, partitions={"gpu": "gpu"})
    site = site_profile(tmp_path / "mysite")
    profile_run(cluster, tmp_path, "--profile", str(site))
    profile_run(cluster, tmp_path, "--report", "results/report.html")

    fields = "JobID,Comment,Partition,Account,QOS,TimelimitRaw,State"
    jobs = cluster.sacct(fields=fields, allocations_only=True)
    (prepare,) = [job for job in jobs if "prepare_data" in job["Comment"]]
    assert (prepare["Partition"], prepare["Account"], prepare["QOS"]) == ("main", "siteaccount", "siteqos")
    packs = [job for job in jobs if "train" in job["Comment"]]
    assert len(packs) == 2  # 8 runs, 4 per pack
    for pack in packs:
        # the site's account and QOS, the workflow's partition for GPU jobs; its 4 short runs need
        # 10 minutes' allowance + a little each, within the config's max_runtime of 45
        assert (pack["Partition"], pack["Account"], pack["QOS"]) == ("gpu", "siteaccount", "siteqos"), pack
        assert pack["TimelimitRaw"] == "11", pack
        rows = cluster.wait_sacct(pack["JobID"])
        job, steps = rows[0], [r for r in rows[1:] if r["JobID"].split(".")[-1].isdigit()]
        assert job["State"] == "COMPLETED"
        assert "gres/gpu=1" in job["ReqTRES"] and "gres/gpu=1" in job["AllocTRES"]
        assert len(steps) == 1 and steps[0]["State"] == "COMPLETED"  # one process for the pack

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


def test_a_scancelled_training_job_is_resubmitted_and_resumes(cluster, tmp_path):
    """No Ctrl-C: the controller notices the cancelled job, resubmits it, and the run resumes."""
    epochs = 10
    tiny_config(tmp_path, epochs=epochs, seeds=[0], batch_size=2, image_size=[48, 48])
    runner = profile_run(cluster, tmp_path, background=True)
    try:
        histories = tmp_path / "results" / "runs"
        history = _wait_for("a training run", lambda: next(histories.glob("*/resume/history.csv"), None), 600)
        _wait_for("two finished epochs", lambda: len(pd.read_csv(history)) >= 2, 600)
        (job,) = running_train_jobs(cluster, pack=history.parent.parent.name)  # one run per pack
        cluster.run(["scancel", job])
        _wait_for("the job to end", lambda: cluster.wait_sacct(job)[0]["State"].startswith("CANCELLED"), 60)
        kept = pd.read_csv(history)
        output, _ = runner.communicate(timeout=600)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=30)
    assert runner.returncode == 0, output
    assert 2 <= len(kept) < epochs

    cancelled, *later = [row for row in train_jobs(cluster) if int(row["JobID"]) >= int(job)]
    assert cancelled["State"].startswith("CANCELLED")
    resubmitted = [row["State"] for row in later if row["Comment"] == cancelled["Comment"]]
    assert resubmitted == ["COMPLETED"], later  # the same pack, once more
    run_dir = history.parent.parent
    final = pd.read_csv(run_dir / "history.csv")
    assert final["epoch"].tolist() == list(range(1, epochs + 1))
    pd.testing.assert_frame_equal(final.iloc[: len(kept)], kept)  # the epochs trained before the cancel
    # The job may finish the epoch it is in during SLURM's grace after SIGTERM (KillWait), after
    # `kept` was read: it resumes from its last checkpointed epoch, not before `kept`.
    log = (tmp_path / "logs" / "train" / f"{run_dir.name}.log").read_text()
    resumed_after = int(re.search(rf"after epoch (\d+) of {epochs}", log)[1])
    assert len(kept) <= resumed_after < epochs, log


def test_the_controller_runs_as_a_slurm_job(cluster, tmp_path):
    """`python -m cnnreg.submit`: the controller is a job; its log and the report land as the README says."""
    tiny_config(tmp_path, seeds=[0])
    submitted = subprocess.run(
        [sys.executable, "-m", "cnnreg.submit", "--time", "30", "--", *snakemake_args(tmp_path)],
        cwd=tmp_path, env=cluster.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    controller = submitted.stdout.split("SLURM job ")[1].split(";")[0]
    assert cluster.wait_job(controller, timeout=900) == "COMPLETED"

    log = (tmp_path / "logs" / "controller" / f"{controller}.log").read_text()
    assert "steps (100%) done" in log and "Report created" in log
    submitted_by_it = [row["State"] for row in train_jobs(cluster) if int(row["JobID"]) > int(controller)]
    assert submitted_by_it == ["COMPLETED", "COMPLETED"]  # its 2 runs, one job each
    for run in pd.read_csv(tmp_path / "results" / "runs.tsv", sep="\t")["run"]:
        assert len(pd.read_csv(tmp_path / "results" / "runs" / run / "history.csv")) == 2
    assert (tmp_path / "results" / "report.html").stat().st_size > 100_000


def test_the_lab_grid_plans_and_lints_without_data(cluster, tmp_path):
    """The lab's config with no data and no weights: the dry run shows its whole job graph (with
    a warning per missing input) and the time limits it would ask for; --lint passes."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    dry = profile_run(cluster, tmp_path, "-n", "--config", "imagenet_weights=nowhere/vgg16.h5")
    output = dry.stdout + dry.stderr
    assert "data/Skin does not exist" in output and "nowhere/vgg16.h5" in output
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout.split("Job stats:")[1], flags=re.MULTILINE))
    assert counts["prepare_data"] == "6" and counts["extract_features"] == "2" and counts["gradcam"] == "1"
    train_blocks = [block for block in dry.stdout.split("\n\n") if re.search(r"^rule train:", block, re.MULTILINE)]
    limits = [int(re.search(r"runtime=(\d+)", block)[1]) for block in train_blocks]
    assert len(limits) == int(counts["train"]) and all("gpu=1" in block for block in train_blocks)
    assert 0 < max(limits) <= 1440  # the lab config's max_runtime
    print(f"lab grid: {len(limits)} train jobs, time limits: largest {max(limits)}, total {sum(limits)} min")
    lint = profile_run(cluster, tmp_path, "--lint")
    assert "good condition" in lint.stdout + lint.stderr
