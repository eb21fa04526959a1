"""A run's checkpoint: the model after its last checkpointed epoch, the model of its best epoch
so far, the history so far, and the fingerprint of what they were made from.

Layout of ``<run dir>/resume/``: ``fingerprint.json``, ``history.csv`` (one row per checkpointed
epoch), ``state-epoch{k}.keras`` (model and optimizer after epoch k) and ``best-epoch{b}.keras``
(the model after epoch b, the first epoch of maximal validation accuracy among the first k, as
`cnnreg.history.history_values` defines it). A run checkpoints every ``checkpoint_seconds``, not
every epoch (`cnnreg.train`), so epoch b may be newer than the previous checkpoint yet older
than k: its weights were then kept in memory, and are written with checkpoint k.

Invariants, whenever the process dies: the history names as many epochs as a state file, and the
best model file its rows name exists. Every file is written durably (`cnnreg.atomic`); the state
and best model of epoch k are written before the history that names them, and earlier ones are
removed only after all three. A run resumes from this history, never from the run folder's
history.csv, which may hold epochs newer than the checkpoint.
The folder is removed once the run's outputs are written: a run that Snakemake starts again
after it finished (forced, or because an input changed) trains afresh.
"""

import json
import logging
import re
import shutil
from pathlib import Path

import keras
import pandas as pd

from cnnreg.atomic import remove_durably, write_atomic, write_text
from cnnreg.fingerprint import differences
from cnnreg.history import HISTORY_COLUMNS, history_values, write_history

_STATE = re.compile(r"state-epoch(\d+)\.keras")
_BEST = re.compile(r"best-epoch(\d+)\.keras")
log = logging.getLogger(__name__)


class ResumeState:
    """The checkpoint folder of one run, valid only for one fingerprint."""

    def __init__(self, folder, fingerprint):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.history_path = self.folder / "history.csv"
        self.fingerprint_path = self.folder / "fingerprint.json"

    def state_path(self, epoch):
        return self.folder / f"state-epoch{epoch}.keras"

    def best_path(self, rows):
        """The best model's file for the history `rows` (one or more finished epochs)."""
        return self.folder / f"best-epoch{best_epoch(rows)}.keras"

    def load(self):
        """(model, history rows) of the last usable checkpoint, or (None, []) to start afresh.

        A checkpoint made from other parameters, data, weights or code is discarded, and the log
        says which of them changed.
        """
        if not self.folder.exists():
            return None, []
        changed = differences(self._recorded_fingerprint(), self.fingerprint)
        if changed:
            log.info(
                "discarding the checkpoint in %s: its %s changed; training afresh", self.folder, " and ".join(changed)
            )
            return self._start_afresh()
        rows = pd.read_csv(self.history_path).to_dict("records") if self.history_path.exists() else []
        for epoch in sorted((e for e in self._epochs(_STATE) if e <= len(rows)), reverse=True):
            if not self.best_path(rows[:epoch]).is_file():
                log.warning("epoch %d of %s lacks its best model; trying an earlier one", epoch, self.folder)
                continue
            try:
                return keras.models.load_model(self.state_path(epoch)), rows[:epoch]
            except Exception as error:  # a damaged file: fall back to an earlier state
                log.warning("checkpoint %s is unreadable (%s); trying an earlier one", self.state_path(epoch), error)
        log.info("no usable checkpoint in %s; training afresh", self.folder)
        return self._start_afresh()

    def save(self, model, rows, best_weights=None):
        """Checkpoint after epoch ``len(rows)``, with the best model of `rows`; earlier states
        and best models are removed once it is durable.

        The best model is `model` when the last epoch is the best; else `best_weights`
        (``model.get_weights()`` after the best epoch) when given, or the file an earlier
        checkpoint wrote for it.
        """
        if not self.fingerprint_path.exists():
            write_text(self.fingerprint_path, json.dumps(self.fingerprint, indent=2))
        epoch, best = len(rows), best_epoch(rows)
        write_atomic(self.state_path(epoch), model.save)
        if best == epoch:
            write_atomic(self.best_path(rows), model.save)
        elif best_weights is not None:
            write_atomic(self.best_path(rows), lambda tmp: save_with_weights(model, best_weights, tmp))
        write_history(rows, self.history_path)
        for older in self._epochs(_STATE):
            if older < epoch:
                remove_durably(self.state_path(older))
        for older in self._epochs(_BEST):
            if older < best:
                remove_durably(self.folder / f"best-epoch{older}.keras")

    def clear(self):
        """Remove the checkpoint (the run's outputs are complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _start_afresh(self):
        self.clear()
        return None, []

    def _recorded_fingerprint(self):
        try:
            return json.loads(self.fingerprint_path.read_text())
        except (OSError, ValueError):
            return None

    def _epochs(self, pattern):
        """The epochs of the files in the folder whose names match `pattern`, sorted."""
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := pattern.fullmatch(p.name)))


def save_with_weights(model, weights, path):
    """Save `model` as it was with `weights` (``get_weights()`` of an earlier epoch), then give
    it back its own."""
    own = model.get_weights()
    model.set_weights(weights)
    try:
        model.save(path)
    finally:
        model.set_weights(own)


def best_epoch(rows):
    """The best epoch (1-based) of history rows, as `cnnreg.history.history_values` defines it."""
    return history_values(pd.DataFrame(rows, columns=HISTORY_COLUMNS))["best_epoch"]
