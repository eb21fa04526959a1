"""How a run is executed, as opposed to what it computes."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Execution:
    """Execution settings of a training run that do not change its results.

    A run's history, models and predictions are the same whatever these are, so they are in
    neither its id nor its fingerprint, and a run resumed under other settings continues
    exactly. ``steps_per_execution`` is how many training batches Keras runs per call into
    TensorFlow (fewer Python round trips per epoch; an epoch's last call runs what is left of
    it). ``checkpoint_seconds`` is how long a run trains at least between two checkpoints
    (`cnnreg.resume`); a checkpoint is also written after the last epoch of each fit stage and
    when a stop is requested (`cnnreg.stopping`), and 0 writes one after every epoch.
    """

    steps_per_execution: int = 64
    checkpoint_seconds: float = 30.0

    def __post_init__(self):
        if not (isinstance(self.steps_per_execution, int) and self.steps_per_execution >= 1):
            raise ValueError(f"steps_per_execution must be an int >= 1, got {self.steps_per_execution!r}")
        if not self.checkpoint_seconds >= 0:
            raise ValueError(f"checkpoint_seconds must be >= 0, got {self.checkpoint_seconds!r}")
