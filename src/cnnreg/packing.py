"""Which runs share a training job (a "pack"), and how long each job may take.

A pack is one job and one process: its runs are trained one after another, or ``concurrent`` at
a time (on a GPU, `cnnreg.packs`), paying TensorFlow's start-up once. Runs are packed only with
runs of the same dataset, image size and channels (they read the same cache), in the order of
their ids, until the pack holds ``runs`` runs or one more would make its estimated time exceed
``minutes`` or ``max_runtime``. A run whose estimate alone exceeds them gets a pack of its own.

A job's time limit is what its contents need: the sum of its runs' estimates when they train one
after another, the longest lane's sum when they train concurrently, plus a fixed allowance for
start-up and the final outputs; it grows with each attempt (a job that reaches its limit is
resubmitted and resumes from its checkpoint) and never exceeds ``max_runtime``.
"""

import heapq
import math

from cnnreg.registry import FINE_TUNE_EPOCH, lookup

#: Minutes every job is allowed beyond its runs' estimated training: start-up, data loading,
#: predictions and the final model files.
JOB_ALLOWANCE_MINUTES = 10
#: Default packing: one run per job, one at a time, and SLURM's common 24 h partition cap.
DEFAULTS = {"runs": 1, "minutes": None, "concurrent": 1}
DEFAULT_MAX_RUNTIME = 24 * 60


def run_minutes(params):
    """Estimated training minutes of a run, from its registry entry's cost per epoch."""
    seconds = params["epochs"] * lookup(params["model"]).epoch_cost(params)
    seconds += params.get("fine_tune", 0) * FINE_TUNE_EPOCH.epoch_cost(params)
    return seconds / 60


def pack_id(runs):
    """A pack's id: its single run's id, or its first run's id and how many more it holds."""
    return runs[0] if len(runs) == 1 else f"{runs[0]}+{len(runs) - 1}"


def job_minutes(minutes, concurrent):
    """Estimated minutes of a job training runs of the given estimated `minutes`.

    With ``concurrent`` lanes each run goes, in order, to the lane that frees first; the job
    takes as long as its longest lane (the sum, for one lane), plus `JOB_ALLOWANCE_MINUTES`.
    """
    lanes = [0.0] * max(1, min(concurrent, len(minutes) or 1))
    for estimate in minutes:
        heapq.heapreplace(lanes, lanes[0] + estimate)
    return JOB_ALLOWANCE_MINUTES + max(lanes)


def time_limit(minutes, attempt, max_runtime=DEFAULT_MAX_RUNTIME):
    """A job's SLURM time limit in whole minutes at `attempt` (1, 2, ...): `attempt` times its
    estimate, capped at `max_runtime`."""
    return min(int(max_runtime), math.ceil(attempt * minutes))


def form_packs(runs, estimate, group, settings=None, max_runtime=DEFAULT_MAX_RUNTIME):
    """Split runs into packs.

    Parameters
    ----------
    runs : iterable of str
        Run ids.
    estimate : callable
        Run id -> its estimated training minutes.
    group : callable
        Run id -> a key; only runs with equal keys share a pack.
    settings : dict, optional
        ``runs`` (most runs per pack), ``minutes`` (most estimated minutes per job, or None)
        and ``concurrent`` (runs training at once), each defaulting to `DEFAULTS`.
    max_runtime : float
        No pack is formed whose estimated job time exceeds it (minutes), unless it is one run.

    Returns
    -------
    dict
        Pack id -> tuple of its run ids, in run id order.
    """
    settings = {**DEFAULTS, **(settings or {})}
    budget = min(max_runtime, settings["minutes"] or max_runtime)
    groups = {}
    for run in sorted(runs):
        groups.setdefault(group(run), []).append(run)
    packs = {}
    for members in groups.values():
        for pack in _fill(members, estimate, settings["runs"], settings["concurrent"], budget):
            packs[pack_id(pack)] = tuple(pack)
    return packs


def _fill(members, estimate, most, concurrent, budget):
    """Consecutive packs of `members`, each of at most `most` runs and within `budget` minutes."""
    pack = []
    for run in members:
        candidate = [*pack, run]
        if pack and (len(candidate) > most or job_minutes([estimate(r) for r in candidate], concurrent) > budget):
            yield pack
            candidate = [run]
        pack = candidate
    if pack:
        yield pack
