"""Training a pack of runs in one process (see `cnnreg.packing` for how packs are formed).

TensorFlow starts once for the whole pack; its runs train one after another, or ``concurrent``
at a time in threads (on a GPU, where one small model leaves it mostly idle). Each run keeps its
own folder, checkpoint, fingerprint and outputs, exactly as if it had been trained alone
(`cnnreg.train.train_run`), so its history is the same either way.

A run that fails does not stop its pack-mates: the others are trained, their outputs written,
and the pack then fails naming the runs that did (each keeps its checkpoint, so the next attempt
resumes it). The runs a pack has finished are recorded in its progress file as they finish; the
next attempt of the same pack reuses them if their fingerprint still matches, instead of
training them again. A run is also reused when another pack trained it from the same inputs (the
packs were formed differently since). Any other run is trained afresh, as Snakemake expects of a
job it starts again. Once every run is done, the pack's manifest lists them with their
fingerprints; downstream rules depend on it.
"""

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cnnreg import paths
from cnnreg.atomic import write_text
from cnnreg.stopping import TrainingStopped, stop_requested
from cnnreg.train import configure_tensorflow, current_fingerprint, train_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One run of a pack and the files it trains on."""

    run: str
    params: dict
    cache: str
    run_dir: str
    features: str | None = None
    weights: str | None = None


class PackError(RuntimeError):
    """Some runs of a pack failed; the message names them."""


def train_pack(pack, members, manifest, threads=1, concurrent=1, execution=None, started=None):
    """Train every run of `pack` that is not already done, then write its `manifest`.

    Parameters
    ----------
    pack : str
        The pack id.
    members : list of Member
    manifest : path-like
        The pack's manifest (JSON: run -> fingerprint), written last.
    threads : int
        CPU threads for TensorFlow (shared by concurrent runs).
    concurrent : int
        How many runs train at once.
    execution : cnnreg.execution.Execution, optional
        Steps per execution and checkpoint interval.
    started : float, optional
        ``time.time()`` when the job started.

    Raises
    ------
    PackError
        After the other runs finished, if any run failed.
    TrainingStopped
        If SIGTERM asked the pack to stop (each run in progress checkpointed first).
    """
    configure_tensorflow(threads)
    progress = Progress(Path(manifest).with_suffix(".progress.json"))
    done = {member.run: fingerprint for member in members if (fingerprint := reusable(member, pack, progress))}
    if done:
        log.info("reusing %d finished run(s) of pack %s: %s", len(done), pack, ", ".join(sorted(done)))
    todo = [member for member in members if member.run not in done]
    first = {member.run for member in todo[: max(1, concurrent)]}

    def train(member):
        threading.current_thread().name = member.run
        metrics = train_run(
            member.run, member.params, member.cache, member.run_dir, threads=threads,
            started=started if member.run in first else time.time(),
            features_path=member.features, weights_path=member.weights, execution=execution, pack=pack,
        )  # fmt: skip
        progress.add(member.run, metrics["fingerprint"])
        return metrics["fingerprint"]

    failed = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrent)) as pool:
        futures = {member.run: pool.submit(_unless_stopped, train, member) for member in todo}
        for run, future in futures.items():
            try:
                done[run] = future.result()
            except TrainingStopped:
                failed[run] = "stopped"
            except Exception as error:  # a failing run must not lose its pack-mates' work
                log.exception("run %s of pack %s failed", run, pack)
                failed[run] = f"{type(error).__name__}: {error}"
    if any(reason == "stopped" for reason in failed.values()):
        raise TrainingStopped()
    if failed:
        message = f"{len(failed)} of the {len(members)} runs of pack {pack} failed (the others are done): "
        message += "; ".join(f"{run} ({reason})" for run, reason in failed.items())
        log.error(message)
        raise PackError(message)
    write_text(manifest, json.dumps({"pack": pack, "runs": {m.run: done[m.run] for m in members}}, indent=2))
    progress.clear()


def _unless_stopped(train, member):
    """Train `member`, unless SIGTERM already asked the pack to stop."""
    if stop_requested():
        raise TrainingStopped()
    return train(member)


def reusable(member, pack, progress):
    """The fingerprint of `member`'s finished outputs if the pack may reuse them, else None.

    They may be reused if they are complete, were made from the same inputs as the run would be
    trained on now, and were made either by an earlier attempt of this pack (its progress file
    lists them) or by another pack.
    """
    metrics = finished_metrics(member.run_dir)
    if metrics is None or (metrics.get("pack") == pack and member.run not in progress.runs()):
        return None
    fingerprint = current_fingerprint(member.params, member.cache, member.features, member.weights)
    return fingerprint if metrics.get("fingerprint") == fingerprint else None


def finished_metrics(run_dir):
    """A run's metrics.json if all of its outputs exist (metrics.json is written last), else None."""
    run_dir = Path(run_dir)
    if not all((run_dir / name).is_file() for name in paths.RUN_OUTPUTS):
        return None
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except ValueError:
        return None


class Progress:
    """The runs an unfinished pack has trained so far (run -> fingerprint), kept across attempts."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def runs(self):
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def add(self, run, fingerprint):
        with self._lock:
            write_text(self.path, json.dumps({**self.runs(), run: fingerprint}, indent=2))

    def clear(self):
        self.path.unlink(missing_ok=True)
