"""The soak: the fleet at a steady rate through the whole loop (`drills.pipeline.Pipeline`) for
minutes, with the end-to-end latencies, every consumer's lag and every service's memory over time.

Measured:
- fire -> sample in the label queue: from the firing frame's capture time to the label store's
  `labels.samples.v1` event for the upload (its Kafka timestamp; the label store publishes it from
  its outbox after the sample is committed, within half a second: an upper bound of the moment
  the sample is in the queue). Per trigger kind: a fire on the car (the upload follows at once) and
  a fire on the fleet side (the frame travels to the trigger-evaluator, the decision back to the
  car as an upload request, then the upload). Target: p99 < 2 s.
- telemetry produce -> fleet-side decision: the Kafka timestamp of the telemetry batch holding the
  firing frame to that of the decision on `triggers.fired.v1`.
- lag of every consumer group of the run, and the RSS of every service, every `sample_every_s`.
- errors: car-side errors by status, uploads given up, dead letters written during the run.

Labellers work the queue in the background, so labels and the trainer's label consumer are part of
the load. The RSS bound: a service's RSS in the last fifth of the run may exceed its median in the
second fifth (after warm-up) by at most `RSS_BOUND` (x1.25); more is reported as growth.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from longtail import topics

from drills.fleet import TopicWatch, group_lag
from drills.pipeline import Pipeline

RSS_BOUND = 1.25


@dataclass
class SoakSize:
    minutes: float = 5.0
    cars: int = 20
    fps: float = 5.0
    seed: int = 0
    sample_every_s: float = 2.0


@dataclass
class SoakPoint:
    t: float  # seconds from the first frame
    rss_mb: dict[str, float]
    lag: dict[str, int]  # consumer group (without the run suffix) -> records not committed


@dataclass
class SoakReport:
    run: str
    size: SoakSize
    frames: int = 0
    frames_acked: int = 0
    uploads: int = 0
    upload_errors: int = 0
    car_errors: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    labels: int = 0
    sim_behind_s: float = 0.0  # the most the simulated fleet fell behind the wall clock (its frame times are the schedule's)
    fire_to_sample_s: dict[str, dict[str, float]] = field(default_factory=dict)  # trigger kind -> n, p50, p99, max
    # ... in two parts: to the gateway's announcement (car + gateway: S3, Kafka), then to the sample (label store)
    fire_to_announced_s: dict[str, float] = field(default_factory=dict)
    announced_to_sample_s: dict[str, float] = field(default_factory=dict)
    produce_to_decision_s: dict[str, float] = field(default_factory=dict)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> warm (median of the 2nd fifth), end (max of the last fifth), peak, ratio
    lag: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> peak, end
    points: list[SoakPoint] = field(default_factory=list)
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def rss_grew(self) -> list[str]:
        return [s for s, r in self.rss.items() if r["ratio"] > RSS_BOUND]


def quantiles(values: list[float]) -> dict[str, float]:
    """n (as a float, like the rest), p50, p99 and max."""
    if not values:
        return {"n": 0.0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(values)
    return {"n": float(len(values)), "p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}


def soak(size: SoakSize | None = None, say=print) -> SoakReport:
    size = size or SoakSize()
    started = time.monotonic()
    with Pipeline(size.seed, say) as loop:
        report = SoakReport(loop.run, size)
        groups = loop.consumer_groups()
        dead = TopicWatch(loop.bootstrap, topics.DEAD_LETTERS, lambda v: True)
        stop = threading.Event()
        first_frame = [0.0]

        def sample() -> None:
            while not stop.wait(size.sample_every_s):
                if not first_frame[0]:
                    continue
                rss = {name: round(p.rss_bytes() / 2**20, 1) for name, p in loop.stack.processes.items() if p.proc is not None and p.proc.poll() is None}
                lag = {label: group_lag(loop.bootstrap, group, topic) for label, (group, topic) in groups.items()}
                report.points.append(SoakPoint(round(time.monotonic() - first_frame[0], 1), rss, lag))

        def label() -> None:
            while not stop.wait(2.0):
                report.labels += loop.label()

        threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=label, daemon=True)]
        for thread in threads:
            thread.start()
        last_shown = [0.0]

        def progress(sim_report, fraction: float) -> None:
            if not first_frame[0]:
                first_frame[0] = time.monotonic()
            report.sim_behind_s = round(max(report.sim_behind_s, time.monotonic() - first_frame[0] - fraction * size.minutes * 60), 2)
            if time.monotonic() - last_shown[0] > 30 or fraction >= 1:
                last_shown[0] = time.monotonic()
                say(f"soak: {fraction:4.0%} {sim_report.frames:,} frames, {sim_report.uploads} uploads, {report.labels} labels")

        try:
            sim_report = loop.drive(size.cars, size.minutes * 60, size.fps, progress, request_grace_s=5.0)
            loop.wait_for_samples(loop.uploaded(sim_report), patience=60)
            time.sleep(3.0)  # the last events on their way to the watches
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            dead.stop()
        report.labels += loop.label()  # what the last uploads left in the queue
        report.frames, report.frames_acked = sim_report.frames, sim_report.frames_acked
        report.uploads, report.upload_errors, report.car_errors = len(loop.uploaded(sim_report)), sim_report.upload_errors, dict(sim_report.errors)
        report.dead_letters = len(dead.records)
        _latencies(report, loop)
    _summarise(report)
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def _latencies(report: SoakReport, loop: Pipeline) -> None:
    edge, fleet = loop.trigger_ids
    by_kind: dict[str, list[float]] = {"on the car": [], "on the fleet side": []}
    w = loop.watches["samples"]
    seen = set()
    for event, ts in zip(list(w.records), list(w.timestamps_ms), strict=False):
        sample = event.sample
        if sample.sample_id in seen:
            continue
        seen.add(sample.sample_id)
        kind = "on the car" if sample.provenance.trigger_id == edge else "on the fleet side" if sample.provenance.trigger_id == fleet else None
        if kind is not None:
            by_kind[kind].append(ts / 1000 - sample.provenance.captured_at.ToNanoseconds() / 1e9)
    report.fire_to_sample_s = {kind: quantiles(v) for kind, v in by_kind.items()}
    announced: dict[str, int] = {}
    s = loop.watches["snapshots"]
    for event, ts in zip(list(s.records), list(s.timestamps_ms), strict=False):
        if event.trigger_id == edge:
            announced.setdefault(event.snapshot_id, ts)
    to_announced, to_sample = [], []
    for event, ts in zip(list(w.records), list(w.timestamps_ms), strict=False):
        sample = event.sample
        if sample.provenance.trigger_id == edge and sample.sample_id in announced:
            to_announced.append(announced[sample.sample_id] / 1000 - sample.provenance.captured_at.ToNanoseconds() / 1e9)
            to_sample.append((ts - announced[sample.sample_id]) / 1000)
    report.fire_to_announced_s, report.announced_to_sample_s = quantiles(to_announced), quantiles(to_sample)
    produced: dict[str, int] = {}
    t = loop.watches["telemetry"]
    for batch, ts in zip(list(t.records), list(t.timestamps_ms), strict=False):
        for frame in batch.frames:
            produced.setdefault(frame.frame_id, ts)
    f = loop.watches["fired"]
    decided: dict[str, float] = {}
    for fire, ts in zip(list(f.records), list(f.timestamps_ms), strict=False):
        if fire.trigger_id == fleet and fire.frame_id in produced:
            decided.setdefault(fire.fire_id, (ts - produced[fire.frame_id]) / 1000)
    report.produce_to_decision_s = quantiles(list(decided.values()))


def _summarise(report: SoakReport) -> None:
    points = report.points
    if not points:
        return
    n = len(points)
    warm, last = points[n // 5 : max(n // 5 + 1, 2 * n // 5)], points[-max(1, n // 5) :]
    for service in sorted({s for p in points for s in p.rss_mb}):
        series = [p.rss_mb[service] for p in points if service in p.rss_mb]
        warm_mb = float(np.median([p.rss_mb[service] for p in warm if service in p.rss_mb] or series[:1]))
        end_mb = max([p.rss_mb[service] for p in last if service in p.rss_mb] or series[-1:])
        report.rss[service] = {"warm_mb": round(warm_mb, 1), "end_mb": round(end_mb, 1), "peak_mb": round(max(series), 1), "ratio": round(end_mb / warm_mb, 3) if warm_mb else 0.0}
    for group in sorted({g for p in points for g in p.lag}):
        lags = [p.lag[group] for p in points if group in p.lag]
        report.lag[group] = {"peak": max(lags), "end": lags[-1]}


def plot(report: SoakReport, path: Path) -> Path:
    """Lag and RSS over time, one line per consumer group and per service."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [p.t for p in report.points]
    fig, (lag, rss) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for group in report.lag:
        lag.plot(t, [p.lag.get(group, np.nan) for p in report.points], label=group)
    lag.set_ylabel("consumer lag (records)")
    lag.legend(loc="upper right", fontsize="small")
    for service in report.rss:
        rss.plot(t, [p.rss_mb.get(service, np.nan) for p in report.points], label=service)
    rss.set_ylabel("RSS (MB)")
    rss.set_xlabel("seconds from the first frame")
    rss.legend(loc="upper right", fontsize="small")
    f2s = report.fire_to_sample_s.get("on the car", {})
    fig.suptitle(f"soak: {report.size.cars} cars x {report.size.fps:g} fps for {report.size.minutes:g} min; fire -> sample p99 {f2s.get('p99', float('nan')):.2f} s (on the car)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
