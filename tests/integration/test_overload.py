"""Overload (issue #19): ten times the nominal per-car rate against one gateway whose per-car limit
sits between the two. The gateway holds the cars back, in order; nothing acknowledged is lost; the fleet
worker's lag comes back to its level before the burst; the gateway's memory stays bounded. Small
here; `python -m bench overload` runs it larger (docs/reliability.md)."""

from __future__ import annotations

from drills.overload import overload, plot


def test_a_tenfold_burst_is_pushed_back_loses_nothing_and_drains(kafka, s3, tmp_path):
    report = overload({"KAFKA_BOOTSTRAP_SERVERS": kafka}, cars=10, nominal=2.0, factor=10.0, warm=6.0, burst=10.0, cool=24.0, say=print)
    summary = {k: v for k, v in report.as_dict().items() if k != "samples"}
    print(summary)
    counts = report.counts
    assert counts.frames_acked == counts.frames_submitted > 0 and counts.acked_frames_lost == 0, summary
    assert counts.fires_expected > 0 and counts.fires_lost == 0 and counts.fires_conflicting == 0, summary
    assert report.throttled_s > 0 and report.car_backlog_peak > 0, "the burst exceeds the per-car limit: the gateway must have held the cars back"
    assert report.drain_s is not None, f"the fleet worker's lag never came back to {report.lag_before} after the burst"
    before, peak, _ = report.gateway_rss_mb
    assert 0 < before and peak < before + 200, f"the gateway's memory grew from {before} to {peak} MB during the burst"
    png = plot(report, tmp_path / "overload.png")
    assert png.stat().st_size > 10_000
