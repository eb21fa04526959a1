"""Every epoch's randomness as a pure function of (run seed, epoch).

A run killed after epoch k and resumed must draw exactly what the uninterrupted run drew in
epoch k + 1: the same shuffle order, augmentation transforms and dropout masks. Nothing may
therefore carry over in a generator's state from one epoch to the next. Each stream is keyed by
``(seed, epoch, stream)`` through `numpy.random.SeedSequence`, so two runs with different seeds
never share a stream (unlike ``seed + epoch``, which replays the next replicate's draws). Runs of
different variants with the same seed share the data order on purpose: their paired comparison
then differs only in what the variants change.
"""

import numpy as np

#: One independent stream per purpose.
SHUFFLE, AUGMENT, MODEL = range(3)
_SEED_STATE = "seed_generator_state"


def stream_seed(seed, epoch, stream, index=0):
    """A 31-bit seed drawn from ``(seed, epoch, stream, index)``."""
    return int(np.random.SeedSequence([seed, epoch, stream, index]).generate_state(1)[0] >> 1)


def epoch_order(seed, epoch, n):
    """The order in which epoch `epoch` (0-based) visits `n` training examples."""
    return np.random.default_rng(stream_seed(seed, epoch, SHUFFLE)).permutation(n)


def seed_states(model):
    """The state variables of the Keras seed generators in `model` (dropout, augmentation), in
    a fixed order."""
    return [v for v in model.variables if v.path.endswith(_SEED_STATE)]


def reseed_for_epoch(model, seed, epoch):
    """Set every seed generator in `model` to its state for the start of `epoch` (0-based)."""
    for index, state in enumerate(seed_states(model)):
        state.assign(np.array([stream_seed(seed, epoch, MODEL, index), 0], dtype=state.dtype))
