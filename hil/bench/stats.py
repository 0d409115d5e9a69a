"""The numbers behind every benchmark: summaries of repeated runs, ratios, a linear fit.

Pure functions over plain floats so they are unit-tested with synthetic data; the
workload runners only collect samples. A single run on a shared, loaded machine says
little (the twin's reference numbers vary by ±30 %), hence median plus spread (min/max
and the interquartile range) everywhere, and ratios against a baseline measured in the
same run rather than against numbers from another day.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hil.core.errors import HilError


@dataclass(frozen=True)
class Summary:
    """Median and spread of repeated measurements of one quantity."""

    n: int
    median: float
    min: float
    max: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "iqr": self.iqr}


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), defined for one sample too."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def summarize(values: Sequence[float]) -> Summary:
    """Median, min/max and quartiles; raises on no samples (a benchmark that measured
    nothing must not report a number)."""
    vals = sorted(float(v) for v in values)
    if not vals:
        raise HilError("no samples to summarize", "the workload produced no measurement")
    if any(math.isnan(v) for v in vals):
        raise HilError("a sample is NaN", "check the workload's output parser")
    return Summary(len(vals), statistics.median(vals), vals[0], vals[-1],
                   _quantile(vals, 0.25), _quantile(vals, 0.75))


@dataclass(frozen=True)
class Ratio:
    """`value / baseline` of the medians, with the range the spreads allow.

    `low`/`high` combine the extremes (min over max and max over min), so a ratio whose
    range includes 1.0 is not a measured difference.
    """

    median: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def ratio(value: Summary, baseline: Summary) -> Ratio:
    """Ratio of `value` to `baseline` (e.g. tracked time / untracked time).

    Times and throughputs are positive: a baseline that is not is a parser bug.
    """
    if baseline.min <= 0:
        raise HilError(f"the baseline has a non-positive sample ({baseline.min}): no ratio",
                       "check the baseline workload's output")
    return Ratio(value.median / baseline.median, value.min / baseline.max,
                 value.max / baseline.min)


@dataclass(frozen=True)
class LinearFit:
    """``y = intercept + slope * x`` by least squares, with its coefficient of determination.

    For persist/restore times over bytes, `intercept` is the fixed overhead and
    ``1 / slope`` the bandwidth.
    """

    intercept: float
    slope: float
    r2: float
    n: int

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def linear_fit(xs: Sequence[float], ys: Sequence[float], *,
               relative: bool = False) -> LinearFit:
    """Least squares over points; needs two distinct x values.

    ``relative=True`` weights every point by ``1/y**2``, i.e. minimises relative rather
    than absolute errors. Persist sizes span three orders of magnitude: unweighted, the
    largest sizes alone set the line and a slightly super-linear tail drives the fixed
    overhead negative, which means nothing. A fixed overhead cannot be negative either:
    when the best line has one, the fit is redone through the origin (intercept 0).
    `r2` is the (weighted) coefficient of determination of the line returned.
    """
    if len(xs) != len(ys):
        raise HilError(f"fit needs as many x as y values ({len(xs)} vs {len(ys)})")
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        raise HilError("a linear fit needs at least two distinct sizes",
                       "measure persist times at two or more sizes")
    if relative and any(y <= 0 for y in ys):
        raise HilError("a relative fit needs positive times")
    ws = [1.0 / (y * y) for y in ys] if relative else [1.0] * n
    sw = sum(ws)
    mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
    my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
    sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    if relative and intercept < 0:
        intercept = 0.0
        slope = (sum(w * x * y for w, x, y in zip(ws, xs, ys, strict=True))
                 / sum(w * x * x for w, x in zip(ws, xs, strict=True)))
    ss_tot = sum(w * (y - my) ** 2 for w, y in zip(ws, ys, strict=True))
    ss_res = sum(w * (y - (intercept + slope * x)) ** 2
                 for w, x, y in zip(ws, xs, ys, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return LinearFit(intercept, slope, r2, n)
