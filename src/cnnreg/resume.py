"""A run's checkpoint: the model after its last finished epoch, the history so far, and the
fingerprint of what they were made from.

Layout of ``<run dir>/resume/``: ``fingerprint.json``, ``history.csv`` (one row per finished
epoch) and ``state-epoch{k}.keras`` (model and optimizer after epoch k). Every file is written
durably (`cnnreg.atomic`); the state of epoch k is written before the history that names it, and
earlier states are removed only after both, so a crash at any point leaves a usable checkpoint.
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
from cnnreg.history import write_history

_STATE = re.compile(r"state-epoch(\d+)\.keras")
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
        for epoch in sorted((e for e in self._state_epochs() if e <= len(rows)), reverse=True):
            try:
                return keras.models.load_model(self.state_path(epoch)), rows[:epoch]
            except Exception as error:  # a damaged file: fall back to an earlier state
                log.warning("checkpoint %s is unreadable (%s); trying an earlier one", self.state_path(epoch), error)
        log.info("no usable checkpoint in %s; training afresh", self.folder)
        return self._start_afresh()

    def save(self, model, rows):
        """Checkpoint after epoch ``len(rows)``; earlier states are removed once it is durable."""
        if not self.fingerprint_path.exists():
            write_text(self.fingerprint_path, json.dumps(self.fingerprint, indent=2))
        epoch = len(rows)
        write_atomic(self.state_path(epoch), model.save)
        write_history(rows, self.history_path)
        for older in self._state_epochs():
            if older < epoch:
                remove_durably(self.state_path(older))

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

    def _state_epochs(self):
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _STATE.fullmatch(p.name)))
