"""hil.bench.stats: summaries, ratios and the least-squares fit on synthetic data."""

from __future__ import annotations

import random

import pytest

from hil.bench.stats import linear_fit, ratio, summarize
from hil.core.errors import HilError


def test_summary_median_and_spread_odd_and_even() -> None:
    s = summarize([5.0, 1.0, 3.0])
    assert (s.n, s.median, s.min, s.max) == (3, 3.0, 1.0, 5.0)
    assert (s.q1, s.q3, s.iqr) == (2.0, 4.0, 2.0)
    e = summarize([4, 1, 3, 2])
    assert e.median == 2.5
    assert e.q1 == pytest.approx(1.75) and e.q3 == pytest.approx(3.25)


def test_summary_of_one_sample_has_no_spread() -> None:
    s = summarize([7.5])
    assert (s.median, s.min, s.max, s.iqr) == (7.5, 7.5, 7.5, 0.0)


def test_summary_refuses_nothing_and_nan() -> None:
    with pytest.raises(HilError, match="no samples"):
        summarize([])
    with pytest.raises(HilError, match="NaN"):
        summarize([1.0, float("nan")])


def test_ratio_of_medians_with_extreme_range() -> None:
    tracked = summarize([350.0, 360.0, 340.0])
    base = summarize([10.0, 9.0, 11.0])
    r = ratio(tracked, base)
    assert r.median == pytest.approx(35.0)
    assert r.low == pytest.approx(340 / 11)
    assert r.high == pytest.approx(360 / 9)
    assert r.low < r.median < r.high


def test_ratio_refuses_non_positive_baseline() -> None:
    with pytest.raises(HilError, match="baseline"):
        ratio(summarize([1.0]), summarize([0.0, 2.0]))


def test_fit_recovers_known_overhead_and_bandwidth() -> None:
    """The seed's 160 ms + 1.3 GiB/s, sampled with 2 % noise, comes back out."""
    rng = random.Random(4)
    fixed_us, us_per_byte = 160_000.0, 1e6 / (1.3 * 2**30)
    xs = [float(m << 20) for m in (1, 16, 64, 256, 512, 1024)]
    ys = [(fixed_us + us_per_byte * x) * rng.uniform(0.98, 1.02) for x in xs]
    fit = linear_fit(xs, ys)
    assert fit.intercept == pytest.approx(fixed_us, rel=0.05)
    assert 1e6 / fit.slope / 2**30 == pytest.approx(1.3, rel=0.03)
    assert fit.r2 > 0.99 and fit.n == 6
    assert fit.predict(0) == pytest.approx(fit.intercept)


def test_fit_exact_line_and_degenerate_inputs() -> None:
    fit = linear_fit([1, 2, 3], [5, 7, 9])
    assert (fit.intercept, fit.slope, fit.r2) == (pytest.approx(3), pytest.approx(2), 1.0)
    with pytest.raises(HilError, match="two distinct"):
        linear_fit([4, 4, 4], [1, 2, 3])
    with pytest.raises(HilError, match="as many"):
        linear_fit([1, 2], [1])


def test_relative_fit_recovers_the_line_and_keeps_small_sizes_honest() -> None:
    """Relative weights give the same line on clean data, and a super-linear tail at the
    largest sizes (as TCG shows above ~100 MiB) no longer pushes the fixed part negative."""
    xs = [1.0, 16.0, 64.0, 256.0, 448.0]
    clean = [10.0 + 2.0 * x for x in xs]
    fit = linear_fit(xs, clean, relative=True)
    assert (fit.intercept, fit.slope) == (pytest.approx(10.0), pytest.approx(2.0))
    measured = [26.9, 195.0, 799.0, 4599.0, 8464.0]  # ms, the twin's persist times
    assert linear_fit(xs, measured).intercept < 0  # what an unweighted fit says
    rel = linear_fit(xs, measured, relative=True)
    assert 0.0 <= rel.intercept < 26.9 and rel.slope > 0
    assert rel.predict(1.0) == pytest.approx(26.9, rel=0.5)


def test_relative_fit_never_reports_a_negative_fixed_overhead() -> None:
    fit = linear_fit([1.0, 2.0, 4.0], [1.0, 3.0, 7.0], relative=True)  # best line: -1 + 2x
    assert fit.intercept == 0.0 and fit.slope > 0
    with pytest.raises(HilError, match="positive"):
        linear_fit([1.0, 2.0], [0.0, 1.0], relative=True)
