"""Soak (issue #19): `--cars` cars (default 20) at 5 frames per second for `--minutes` minutes
through the whole loop (drills.soak: gateway, trigger-evaluator, map-vision, label store on
PostgreSQL, inference on Triton, labellers in the background, the trainer's label consumer). The
baseline is the same run's warm phase (its second fifth): each service's RSS at the end against
it, each consumer group's lag at the end against its peak. Prints fire -> sample and telemetry
produce -> fleet-side decision latencies and writes the plot (`out/bench/soak.png`).

Targets: fire -> sample in the label queue p99 < 2 s; no service's RSS above x1.25 its warm level;
every lag back near 0 at the end; no errors.
"""

from __future__ import annotations

from pathlib import Path

from drills.soak import RSS_BOUND, SoakSize, plot, soak

TARGET_P99_S = 2.0


def run(args, console) -> dict:
    say = lambda m: console.print(f"[magenta]soak[/] {m}")  # noqa: E731
    report = soak(SoakSize(minutes=args.minutes, cars=args.cars or 20), say=say)
    png = plot(report, Path(args.out) / "soak.png")
    rows = []
    for kind, q in report.fire_to_sample_s.items():
        rows.append([f"fire {kind} -> sample in the label queue (s)", int(q["n"]), q["p50"], q["p99"], q["max"]])
    for what, q in (("  of which: fire on the car -> upload announced (car, gateway)", report.fire_to_announced_s), ("  of which: announced -> sample in the queue (label store)", report.announced_to_sample_s)):
        rows.append([what, int(q.get("n", 0)), q.get("p50"), q.get("p99"), q.get("max")])
    q = report.produce_to_decision_s
    rows.append(["telemetry produced -> fleet-side decision (s)", int(q.get("n", 0)), q.get("p50"), q.get("p99"), q.get("max")])
    memory = [[service, r["warm_mb"], r["end_mb"], r["peak_mb"], f"{r['ratio']:.2f}x"] for service, r in report.rss.items()]
    lags = [[group, v["peak"], v["end"]] for group, v in report.lag.items()]
    car_p99 = report.fire_to_sample_s.get("on the car", {}).get("p99", float("inf"))
    errors = sum(report.car_errors.values()) + report.upload_errors + report.dead_letters
    ok = car_p99 < TARGET_P99_S and not report.rss_grew and errors == 0
    return {
        "title": f"soak: {report.size.cars} cars x {report.size.fps:g} fps for {report.size.minutes:g} min through the whole loop",
        "columns": ["latency", "n", "p50", "p99", "max"],
        "rows": rows,
        "more_tables": [
            {"title": f"RSS (MB): warm = median of the run's second fifth (the baseline), end = max of its last fifth; bound x{RSS_BOUND}", "columns": ["service", "warm", "end", "peak", "end vs warm"], "rows": memory},
            {"title": "consumer lag (records not committed)", "columns": ["group", "peak", "at the end"], "rows": lags},
        ],
        "verdict": [
            f"frames {report.frames:,} ({report.frames_acked:,} acknowledged), uploads {report.uploads:,} ({report.upload_errors} given up), labels {report.labels:,}",
            f"car errors {report.car_errors or 'none'}; dead letters {report.dead_letters}; the simulated fleet fell behind the wall clock by {report.sim_behind_s:.2f} s at most",
            f"{'OK' if ok else 'FAILED'}: fire on the car -> sample p99 {car_p99:.2f} s (target < {TARGET_P99_S:g} s); RSS grew beyond x{RSS_BOUND}: {', '.join(report.rss_grew) or 'none'}; plot: {png}",
        ],
        "report": {k: v for k, v in report.as_dict().items() if k != "points"},
    }
