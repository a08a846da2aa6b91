"""Interval statistics for pass rates and yields: every rate the project reports comes with its
number of cases and a 95% interval.

- `wilson(k, n)`: the Wilson score interval of a proportion k/n. Unlike the normal ("Wald")
  interval it stays inside [0, 1] and is not degenerate at 0/n or n/n, which is where suite pass
  rates live (Brown, Cai & DasGupta 2001 recommend it for small n).
- `ratio_interval(k1, n1, k2, n2)`: the Katz log interval of a ratio of two proportions
  (k1/n1) / (k2/n2), e.g. a trigger's yield against the base rate. With a zero count it adds 0.5
  to every cell (the usual continuity correction) so the interval stays finite.
- `mean_spread(values)`: mean, sample standard deviation, min and max over repeated runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    """k of n, with its Wilson interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def to_dict(self) -> dict:
        return {"k": self.k, "n": self.n, "rate": self.value, "ci95": [self.low, self.high]}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials; (nan, nan) for n == 0."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exact at the edges (rounding would otherwise leave 1e-17 off 0 or 1)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def rate(k: int, n: int) -> Rate:
    low, high = wilson(k, n)
    return Rate(int(k), int(n), low, high)


def ratio_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(ratio, low, high) of (k1/n1) / (k2/n2) with the Katz log interval; nans when a
    denominator is empty or the reference rate is 0 (the ratio is then undefined)."""
    if n1 <= 0 or n2 <= 0 or k2 == 0 and k1 == 0:
        return float("nan"), float("nan"), float("nan")
    if k2 == 0:
        return float("inf"), float("nan"), float("inf")
    ratio = (k1 / n1) / (k2 / n2)
    a, b = (k1, k2) if k1 > 0 else (k1 + 0.5, k2 + 0.5)
    m1, m2 = (n1, n2) if k1 > 0 else (n1 + 0.5, n2 + 0.5)
    se = math.sqrt(max(0.0, 1 / a - 1 / m1 + 1 / b - 1 / m2))
    centre = math.log((a / m1) / (b / m2))
    return ratio, math.exp(centre - z * se), math.exp(centre + z * se)


def mean_spread(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max; nans are left out."""
    xs = [float(v) for v in values if v == v]
    if not xs:
        return {"n": 0, "mean": float("nan"), "sd": float("nan"), "min": float("nan"), "max": float("nan")}
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"n": len(xs), "mean": mean, "sd": sd, "min": min(xs), "max": max(xs)}


def censored_median(values: Sequence[int | None], missed: str = "> cap") -> str:
    """Median of counts where None means "did not reach it within the cap" (right-censored, larger
    than any reached value): the median is then `missed` once half or more of the values are None."""
    if not values:
        return "—"
    ordered = sorted(values, key=lambda v: (v is None, v or 0))
    n = len(ordered)
    lower, upper = ordered[(n - 1) // 2], ordered[n // 2]
    if upper is None:
        return missed
    assert lower is not None  # None sorts last: lower is no later than upper
    return f"{(lower + upper) / 2:g}"
