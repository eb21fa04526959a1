"""Intervals over a few runs: the range below 3 values, a 95 % interval from 3, always in bounds."""

import numpy as np
import pytest

from cnnreg.intervals import paired_interval, summary_interval

#: Accuracies piled against 0 and against 1, and epochs piled against 1 and against 20.
NEAR_EDGES = [
    ([0.0, 0.02, 0.0, 0.01, 0.0, 0.05, 0.0, 0.0, 0.03, 0.0], (0.0, 1.0)),
    ([1.0, 0.98, 1.0, 0.99, 1.0, 0.95, 1.0, 1.0, 0.97, 1.0], (0.0, 1.0)),
    ([1, 1, 2, 1, 1, 6, 1, 1, 1, 1], (1.0, 20.0)),
    ([20, 20, 19, 20, 20, 3, 20, 20, 20, 20], (1.0, 20.0)),
]


@pytest.mark.parametrize("n", [1, 2, 3, 10])
@pytest.mark.parametrize("kind", ["bootstrap", "t"])
@pytest.mark.parametrize(("values", "bounds"), NEAR_EDGES)
def test_intervals_stay_in_bounds_and_around_the_mean(values, bounds, kind, n):
    interval = summary_interval(values[:n], bounds, kind)
    assert bounds[0] <= interval.low <= interval.mean <= interval.high <= bounds[1]
    assert interval.mean == pytest.approx(np.mean(values[:n])) and interval.n == n
    assert interval.method == ("range" if n < 3 else f"{kind} 95 %")


def test_fewer_than_three_values_give_their_range_and_nans_are_dropped():
    interval = summary_interval([0.6, np.nan, 0.7], (0, 1))
    assert (interval.low, interval.high, interval.method, interval.n) == (0.6, 0.7, "range", 2)
    assert interval.mean == pytest.approx(0.65)
    empty = summary_interval([np.nan], (0, 1))
    assert empty.n == 0 and np.isnan([empty.mean, empty.low, empty.high]).all()


def test_a_t_interval_near_1_is_clipped_where_the_bootstrap_needs_no_clipping():
    values = [1.0, 1.0, 0.7]  # t: 0.9 ± 4.303 * 0.173 / sqrt(3), above 1
    t = summary_interval(values, (0, 1), kind="t")
    assert t.high == 1.0 and t.low == pytest.approx(0.9 - 4.303 * np.std(values, ddof=1) / 3**0.5, rel=1e-3)
    bootstrap = summary_interval(values, (0, 1))
    assert (bootstrap.low, bootstrap.high) == pytest.approx((0.7, 1.0))  # at n = 3: the range


def test_the_bootstrap_is_seeded_and_narrower_than_the_range_for_ten_values():
    values = [0.80, 0.82, 0.85, 0.81, 0.90, 0.84, 0.83, 0.86, 0.79, 0.88]
    first, again = summary_interval(values, (0, 1)), summary_interval(values, (0, 1))
    assert first == again
    assert min(values) < first.low < first.mean < first.high < max(values)


def test_identical_values_give_a_zero_width_interval():
    for kind in ("bootstrap", "t"):
        interval = summary_interval([0.1] * 5, (0, 1), kind)
        assert interval.low == interval.mean == interval.high == pytest.approx(0.1)


def test_paired_differences_get_a_t_interval_within_the_span():
    interval = paired_interval([0.01, 0.03, 0.02], span=1.0)
    assert interval.method == "t 95 %" and interval.mean == pytest.approx(0.02)
    assert interval.high - interval.mean == pytest.approx(4.303 * 0.01 / 3**0.5, rel=1e-3)
    assert paired_interval([-0.9, 0.9, 0.95], span=1.0).low == -1.0
    assert paired_interval([0.2, -0.1], span=1.0)[1:4] == (-0.1, 0.2, "range")


def test_an_unknown_kind_says_what_was_expected():
    with pytest.raises(ValueError, match="one of \\('bootstrap', 't'\\)"):
        summary_interval([1, 2, 3], kind="normal")
