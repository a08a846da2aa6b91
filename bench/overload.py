"""Overload (issue #19): the drill of drills.overload at a larger size — `--overload-cars` cars at
2 batches of 10 frames per second, then ten times that for `--overload-burst` seconds, then the
nominal rate again, through one gateway with a per-car limit of half the burst. The baseline is
the same run's nominal phase before the burst: RSS and the fleet worker's lag at the peak and at
the end against it, the time the lag takes to come back after the burst, and what the topics
hold against what the cars got acknowledged. Writes the lag/RSS plot next to the JSON
(`out/bench/overload.png`).

Targets: 0 acknowledged frames lost, 0 fires lost; the gateway's RSS bounded (no growth with the
backlog: the backlog waits on the cars); the lag back to its level within the cool-down.
"""

from __future__ import annotations

import os
from pathlib import Path

from drills.overload import overload, plot


def run(args, console) -> dict:
    say = lambda m: console.print(f"[magenta]overload[/] {m}")  # noqa: E731
    report = overload({"KAFKA_BOOTSTRAP_SERVERS": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}, cars=args.overload_cars, burst=args.overload_burst, cool=max(30.0, 2 * args.overload_burst), say=say)
    png = plot(report, Path(args.out) / "overload.png")
    c = report.counts

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}x" if a else "-"

    g, e = report.gateway_rss_mb, report.evaluator_rss_mb
    rows = [
        ["gateway RSS (MB)", g[0], g[1], g[2], ratio(g[0], g[1])],
        ["trigger-evaluator RSS (MB)", e[0], e[1], e[2], ratio(e[0], e[1])],
        ["fleet worker lag (records)", report.lag_before, report.lag_peak, report.samples[-1].worker_lag if report.samples else "-", ratio(report.lag_before, report.lag_peak)],
    ]
    lost = c.acked_frames_lost + c.fires_lost + c.fires_conflicting
    return {
        "title": f"overload: {report.cars} cars, {report.nominal:g} -> {report.nominal * report.factor:g} batches/s per car for {report.burst_s:g} s, gateway limit {report.gateway_limit:g}/s per car",
        "columns": ["", "before the burst", "peak", "at the end", "peak vs before"],
        "rows": rows,
        "verdict": [
            f"frames acknowledged {c.frames_acked:,} of {c.frames_submitted:,}, lost {c.acked_frames_lost}; fires {c.fires_found:,} of {c.fires_expected:,}, lost {c.fires_lost}, decided two ways {c.fires_conflicting}",
            f"cars held back {report.throttled_s:,.0f} car-seconds in all; their unacknowledged backlog peaked at {report.car_backlog_peak:,} frames",
            f"{'OK' if lost == 0 and report.drain_s is not None else 'FAILED'}: lag back to its level {report.drain_s} s after the burst; plot: {png}",
        ],
        "report": {k: v for k, v in report.as_dict().items() if k != "samples"},
    }
