"""Interval maths: Wilson score intervals, the Katz ratio interval, mean and spread."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from longtail.stats import mean_spread, rate, ratio_interval, wilson


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        (55, 100, 0.4524, 0.6438),  # reference values (Newcombe 1998 method 3; statsmodels proportion_confint(method="wilson"))
        (0, 20, 0.0, 0.1611),
        (20, 20, 0.8389, 1.0),
        (1, 13, 0.0137, 0.3331),
    ],
)
def test_wilson_matches_reference_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_contains_the_estimate_stays_in_unit_interval_and_narrows_with_n():
    for n in (1, 5, 30, 100, 1000):
        for k in range(0, n + 1, max(1, n // 7)):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert (wilson(50, 100)[1] - wilson(50, 100)[0]) > (wilson(500, 1000)[1] - wilson(500, 1000)[0])


def test_wilson_is_the_score_test_inversion():
    """At the interval's ends the score statistic equals the 95% normal quantile."""
    k, n = 37, 90
    z = NormalDist().inv_cdf(0.975)
    for p in wilson(k, n):
        assert abs(k / n - p) / math.sqrt(p * (1 - p) / n) == pytest.approx(z, rel=1e-9)


def test_wilson_refuses_impossible_counts_and_is_undefined_without_cases():
    with pytest.raises(ValueError):
        wilson(3, 2)
    with pytest.raises(ValueError):
        wilson(-1, 2)
    assert all(math.isnan(x) for x in wilson(0, 0))
    r = rate(3, 4)
    assert r.value == 0.75 and r.to_dict()["ci95"] == [r.low, r.high]


def test_ratio_interval_contains_the_ratio_and_is_symmetric_on_the_log_scale():
    ratio, low, high = ratio_interval(12, 40, 10, 1000)
    assert ratio == pytest.approx(30.0)
    assert low < ratio < high
    assert math.log(ratio) - math.log(low) == pytest.approx(math.log(high) - math.log(ratio))
    # the reference rate is zero: no finite ratio
    assert math.isinf(ratio_interval(3, 10, 0, 100)[0])
    assert all(math.isnan(x) for x in ratio_interval(0, 10, 0, 100))
    # zero in the numerator: a finite upper bound (continuity correction), ratio 0
    r0, lo0, hi0 = ratio_interval(0, 30, 5, 1000)
    assert r0 == 0.0 and 0.0 < lo0 < hi0 < math.inf


def test_mean_spread():
    s = mean_spread([1.0, 2.0, 3.0, float("nan")])
    assert s == {"n": 3, "mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}
    assert mean_spread([5.0])["sd"] == 0.0
    assert math.isnan(mean_spread([])["mean"])


def test_censored_median_counts_misses_as_larger_than_any_reached_value():
    from longtail.stats import censored_median

    assert censored_median([220, 380, 220]) == "220"
    assert censored_median([None, 220, 140]) == "220"
    assert censored_median([None, None, 700]) == "> cap"
    assert censored_median([100, 300]) == "200"
    assert censored_median([100, None]) == "> cap"
    assert censored_median([]) == "—"
