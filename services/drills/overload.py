"""Overload: ten times the nominal per-car rate from many cars against one gateway (issue #19).

The cars stream at the nominal rate (`warm` seconds), then at `factor` times it (`burst`), then
at the nominal rate again (`cool`), through one gateway whose per-car limit
(GATEWAY_MAX_BATCHES_PER_SECOND) sits between the two, as a production gateway's would: during the
burst the gateway holds each car back to the limit (it reads the car's next batch only when the
rate allows, and no more while 8 await Kafka: backpressure, in order) and the cars' unacknowledged
batches pile up on the cars. Measured: the gateway's and the evaluator's RSS before, at the peak and after;
the fleet worker's lag (both stages: telemetry and fire candidates) over time and how long it
takes after the burst to come back to its level before it; and, counted from the topics, nothing acknowledged lost.
`python -m bench overload` runs it larger and draws the PNG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drills.fleet import Counts, DrillLoop, Sample


@dataclass
class OverloadReport:
    cars: int
    nominal: float  # batches of 10 frames per car per second
    factor: float
    warm_s: float
    burst_s: float
    cool_s: float
    gateway_limit: float  # GATEWAY_MAX_BATCHES_PER_SECOND (per car)
    counts: Counts = field(default_factory=Counts)
    throttled_s: float = 0.0  # time the gateway held cars back (longtail_gateway_throttled_seconds_total)
    car_backlog_peak: int = 0  # the most frames submitted by the cars and not yet acknowledged
    gateway_rss_mb: tuple[float, float, float] = (0.0, 0.0, 0.0)  # before the burst, peak, at the end
    evaluator_rss_mb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lag_before: int = 0  # the fleet worker's highest lag at the nominal rate, before the burst
    lag_peak: int = 0
    drain_s: float | None = None  # from the burst's end until the lag is back to lag_before (None: never, within the run)
    samples: list[Sample] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def overload(
    kafka_env: dict[str, str],
    cars: int = 20,
    nominal: float = 2.0,
    factor: float = 10.0,
    warm: float = 10.0,
    burst: float = 20.0,
    cool: float = 40.0,
    limit: float | None = None,
    say: Callable[[str], None] = print,
) -> OverloadReport:
    """`limit`: the gateway's per-car batches/s (default half the burst rate)."""
    limit = limit if limit is not None else nominal * factor / 2  # half the burst: cars meet the limit
    report = OverloadReport(cars, nominal, factor, warm, burst, cool, limit)

    def rate(t: float) -> float:
        return nominal * factor if warm <= t < warm + burst else nominal

    say(f"overload: {cars} cars at {nominal:g} batches/s, {factor:g}x from t={warm:g} s for {burst:g} s, per-car limit {limit:g}/s")
    with DrillLoop(kafka_env, {"GATEWAY_MAX_BATCHES_PER_SECOND": str(limit)}, say=say) as loop:
        report.counts = loop.run(cars, warm + burst + cool, rate)
        report.throttled_s = round(loop.gateway.metric("longtail_gateway_throttled_seconds_total"), 1)
        samples = report.samples = list(loop.samples)
    report.car_backlog_peak = max((s.frames_submitted - s.frames_acked for s in samples), default=0)
    before = [s for s in samples if s.t < warm] or samples[:1]
    after_burst = [s for s in samples if s.t >= warm + burst]
    for key in ("gateway_rss_mb", "evaluator_rss_mb"):
        values = [getattr(s, key) for s in samples]
        setattr(report, key, (round(max(getattr(s, key) for s in before), 1), round(max(values), 1), round(values[-1], 1)) if values else (0.0, 0.0, 0.0))
    report.lag_before = max((s.worker_lag for s in before), default=0)
    report.lag_peak = max((s.worker_lag for s in samples), default=0)
    back = next((s for s in after_burst if s.worker_lag <= max(report.lag_before, cars)), None)
    report.drain_s = round(back.t - (warm + burst), 1) if back else None
    return report


def plot(report: OverloadReport, path: Path) -> Path:
    """Lag and RSS over time, the burst shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in report.samples]
    fig, (lag, rss) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for ax in (lag, rss):
        ax.axvspan(report.warm_s, report.warm_s + report.burst_s, color="tab:red", alpha=0.12, label=f"{report.factor:g}x burst")
    lag.plot(t, [s.worker_lag for s in report.samples], color="tab:blue", label="fleet worker lag, both stages")
    lag.set_ylabel("records not yet committed")
    lag.legend(loc="upper right")
    rss.plot(t, [s.gateway_rss_mb for s in report.samples], label="gateway RSS")
    rss.plot(t, [s.evaluator_rss_mb for s in report.samples], label="trigger-evaluator RSS")
    rss.set_ylabel("MB")
    rss.set_xlabel("seconds from the first frame")
    rss.legend(loc="upper right")
    fig.suptitle(f"{report.cars} cars, {report.nominal:g} -> {report.nominal * report.factor:g} batches/s per car (limit {report.gateway_limit:g}/s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
