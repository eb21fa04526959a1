"""Intervals around a mean over a few runs, and around a mean paired difference.

The studies train 2 to 5 seeds (times folds) per variant, which is too few for the usual
normal-theory 95 % interval to mean anything: with 2 values a t-interval uses t = 12.7 and gives
accuracies of -1.5 to 2.8. The rule, for ``n`` values (NaNs dropped):

* ``n = 0``: everything NaN.
* ``n < 3``: the values' *range* (low = min, high = max); no interval is claimed.
* ``n >= 3``: a 95 % interval. Bounded or skewed values (accuracies, AUC, rates, gaps, epochs) get
  a percentile bootstrap of the mean, resampled with a fixed seed so a report is reproducible; it
  never leaves the values' own span. Unbounded values (losses, seconds) get a t-interval.
  Paired differences get a t-interval on the per-pair differences: a difference is centred and
  its sign is what matters.

Every interval is clipped into the quantity's bounds (accuracy [0, 1], gap [-1, 1], epoch
[1, epochs], loss and seconds [0, inf), a difference [-(hi - lo), hi - lo]); identical values
give an interval of zero width.

A percentile bootstrap never reaches beyond the smallest and largest value, and at small n it is
narrow: at n = 3 it *is* the values' range (three copies of the smallest value are drawn with
probability 1/27, more than 2.5 %), and it under-states how far new seeds may land. Read it as a
description of the runs at hand, not as a guarantee; the method is named beside every interval
(``Interval.method``) so a reader knows which was used.
"""

import functools
from typing import NamedTuple

import numpy as np
from scipy import stats

#: Two-sided coverage of the intervals.
LEVEL = 0.95
#: Fewest values that get an interval; fewer get their range.
MIN_INTERVAL = 3
#: Bootstrap resamples, and the seed that makes them the same on every run.
RESAMPLES = 9999
SEED = 0
#: How the mean's interval is made for n >= `MIN_INTERVAL`.
KINDS = ("bootstrap", "t")
UNBOUNDED = (-np.inf, np.inf)


class Interval(NamedTuple):
    """A mean with the interval around it: ``low <= mean <= high``, all inside the bounds."""

    mean: float
    low: float
    high: float
    #: "range", "bootstrap 95 %", "t 95 %", or "no values".
    method: str
    n: int


def summary_interval(values, bounds=UNBOUNDED, kind="bootstrap"):
    """Mean of ``values`` and the interval around it (see the module's rule).

    Parameters
    ----------
    values : array-like of float
        One value per run; NaNs are dropped.
    bounds : (float, float)
        The range the quantity can take, e.g. ``(0, 1)`` for an accuracy.
    kind : {"bootstrap", "t"}
        Percentile bootstrap of the mean (bounded or skewed values) or t-interval (unbounded).

    Returns
    -------
    Interval
    """
    if kind not in KINDS:
        raise ValueError(f"interval kind must be one of {KINDS}, not {kind!r}")
    values = _without_nans(values)
    if len(values) < MIN_INTERVAL:
        return _range(values, bounds)
    if kind == "bootstrap":
        return _clipped(values, _bootstrap(values), f"bootstrap {LEVEL * 100:.0f} %", bounds)
    return _clipped(values, _t_interval(values), f"t {LEVEL * 100:.0f} %", bounds)


def paired_interval(differences, span):
    """Mean per-pair difference with a t-interval (n >= 3) or the differences' range (n < 3).

    Parameters
    ----------
    differences : array-like of float
        One difference per pair (the same seed, fold and other parameters); NaNs are dropped.
    span : float
        ``hi - lo`` of the quantity's bounds: a difference lies in ``[-span, span]``.

    Returns
    -------
    Interval
    """
    return summary_interval(differences, (-span, span), kind="t")


def _without_nans(values):
    values = np.asarray(values, dtype=float).ravel()
    return values[~np.isnan(values)]


def _range(values, bounds):
    if len(values) == 0:
        return Interval(np.nan, np.nan, np.nan, "no values", 0)
    return _clipped(values, (values.min(), values.max()), "range", bounds)


def _bootstrap(values):
    """2.5th and 97.5th percentiles of the means of `RESAMPLES` seeded resamples."""
    means = values[_resamples(len(values))].mean(axis=1)
    tail = 100 * (1 - LEVEL) / 2
    return tuple(np.percentile(means, [tail, 100 - tail]))


@functools.cache
def _resamples(n):
    """The `SEED`-ed resample indices for n values (the same for every quantity of n values)."""
    indices = np.random.default_rng(SEED).integers(0, n, size=(RESAMPLES, n))
    indices.flags.writeable = False
    return indices


def _t_interval(values):
    mean = values.mean()
    half = stats.t.ppf(1 - (1 - LEVEL) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean - half, mean + half


def _clipped(values, limits, method, bounds):
    """An `Interval` clipped into ``bounds``, with the mean inside it (rounding included)."""
    lo, hi = bounds
    mean = float(np.clip(values.mean(), lo, hi))
    if values.min() == values.max():
        low = high = mean
    else:
        low, high = (float(np.clip(limit, lo, hi)) for limit in limits)
    return Interval(mean, min(low, mean), max(high, mean), method, len(values))
