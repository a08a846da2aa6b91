"""The drills' arithmetic on made-up runs: the soak's latency quantiles and memory/lag summary,
the fault matrix's side-by-side comparison."""

from __future__ import annotations

import math

from drills.matrix import LoopCounts, MatrixReport, MatrixSize, compare
from drills.soak import RSS_BOUND, SoakPoint, SoakReport, SoakSize, _summarise, quantiles


def test_quantiles_of_latencies_and_of_nothing():
    q = quantiles([float(i) for i in range(1, 101)])
    assert q["n"] == 100 and q["p50"] == 50.5 and q["p99"] == 99.01 and q["max"] == 100.0
    empty = quantiles([])
    assert empty["n"] == 0 and math.isnan(empty["p99"])


def test_memory_is_compared_with_the_warm_phase_and_growth_is_named():
    points = [SoakPoint(float(t), {"steady": 100.0 + (t % 2), "leaky": 100.0 + 10 * t}, {"label-store": 50 - t if t < 50 else 0}) for t in range(10)]
    report = SoakReport("r", SoakSize())
    report.points = points
    _summarise(report)
    assert report.rss["steady"]["warm_mb"] == 100.5 and report.rss["steady"]["ratio"] <= RSS_BOUND
    assert report.rss["leaky"]["warm_mb"] == 125.0 and report.rss["leaky"]["end_mb"] == 190.0
    assert report.rss_grew == ["leaky"]
    assert report.lag["label-store"] == {"peak": 50, "end": 41}


def test_the_matrix_comparison_lists_every_count_fires_by_trigger_kind_and_metrics():
    a = MatrixReport("a", MatrixSize(), False, counts=LoopCounts(frames_acked=10, fires={"drill-a-edge": 4, "drill-a-fleet": 1}, metrics={"val/loss": 0.5}))
    b = MatrixReport("b", MatrixSize(), True, counts=LoopCounts(frames_acked=10, fires={"drill-b-edge": 4, "drill-b-fleet": 2}, metrics={"val/loss": 0.5}))
    rows = {name: (x, y) for name, x, y in compare(a, b)}
    assert rows["frames_acked"] == (10, 10) and rows["val/loss"] == (0.5, 0.5)
    assert rows["fires (edge trigger)"] == (4, 4) and rows["fires (fleet trigger)"] == (1, 2)
    assert "fires" not in rows and "metrics" not in rows
