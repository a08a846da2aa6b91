"""The soak (issue #19) at a tiny size: the fleet through the whole loop for half a minute, with the
labellers working in the background. What `python -m bench soak` reports must be measured, not
empty: both latency paths, every service's memory, every consumer group's lag (back at the end),
no errors, and the plot. (Its targets are the bench's: at this size p99 is the maximum of a few
dozen uploads.)"""

from __future__ import annotations

import math

from drills.soak import SoakSize, plot, soak

SERVICES = {"gateway", "trigger-evaluator", "map-vision", "label-store", "inference", "trainer"}


def test_a_short_soak_measures_latency_lag_and_memory_of_the_whole_loop(kafka, s3, postgres, triton, tmp_path):
    report = soak(SoakSize(minutes=0.5, cars=3, sample_every_s=1.0), say=print)
    print({k: v for k, v in report.as_dict().items() if k != "points"})
    assert report.frames == report.frames_acked == 3 * 30 * 5
    assert report.uploads > 0 and report.upload_errors == 0 and not report.car_errors and report.dead_letters == 0
    assert report.labels == report.uploads, "the labellers kept up with the uploads"
    on_car = report.fire_to_sample_s["on the car"]
    assert on_car["n"] > 0 and sum(q["n"] for q in report.fire_to_sample_s.values()) == report.uploads, "every upload's latency measured"
    assert 0 < on_car["p50"] <= on_car["p99"] <= on_car["max"] < 60
    assert report.produce_to_decision_s["n"] > 0 and 0 < report.produce_to_decision_s["p99"] < 60
    assert set(report.rss) == SERVICES and all(r["warm_mb"] > 0 and r["end_mb"] > 0 for r in report.rss.values())
    assert len(report.points) >= 20 and set(report.lag) >= {"label-store", "inference", "map-vision", "trainer", "trigger-evaluator"}
    assert all(v["end"] <= v["peak"] for v in report.lag.values())
    assert report.lag["label-store"]["end"] == 0 and not math.isnan(on_car["p99"])
    png = plot(report, tmp_path / "soak.png")
    assert png.stat().st_size > 10_000
