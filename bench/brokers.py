"""Broker faults (issue #19): the drill of drills.brokers — simulated cars through a real
gateway into the three-node Kafka cluster, the trigger-evaluator's fleet-side worker deciding a
fleet trigger — once undisturbed and once with the faults (the telemetry partition's leader
killed with -9 and restarted, then another broker stopped for `--drill-stop-for` seconds), the
same cars, rate and length. Counted from the topics: acknowledged frames lost, frames stored
twice, fires lost or decided twice; timed: the longest stretch without an ack and without a
telemetry record arriving, each against the undisturbed run.

Target: 0 acknowledged frames lost, 0 fires lost, 0 fires decided two ways.
"""

from __future__ import annotations

from drills.brokers import BrokerFaults, broker_faults


def run(args, console) -> dict:
    seconds = max(args.drill_seconds, args.drill_stop_for + 40)
    faults = BrokerFaults(kill_leader_at=10, restart_after=5, stop_broker_at=seconds / 2, stop_for=args.drill_stop_for)
    say = lambda m: console.print(f"[magenta]brokers[/] {m}")  # noqa: E731
    reports = {}
    for label, injected in (("undisturbed", None), ("with faults", faults)):
        say(f"{label}: {args.drill_cars} cars for {seconds:.0f} s ...")
        reports[label] = broker_faults(cars=args.drill_cars, seconds=seconds, rate=args.drill_rate, faults=injected, say=say)
    base, hit = reports["undisturbed"], reports["with faults"]
    faulted = hit.counts

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.1f}x" if a > 0 else "-"

    fields = [
        ("frames acknowledged", "frames_acked"),
        ("acknowledged frames lost", "acked_frames_lost"),
        ("frames stored twice", "frames_stored_twice"),
        ("fires expected", "fires_expected"),
        ("fires lost", "fires_lost"),
        ("fires decided two ways", "fires_conflicting"),
        ("fire records repeated", "fire_records_repeated"),
        ("longest stretch without an ack (s)", "ack_stall_s"),
        ("longest gap on fleet.telemetry.v1 (s)", "telemetry_stall_s"),
        ("car sessions", "sessions"),
    ]
    rows = [[name, getattr(base.counts, key), getattr(hit.counts, key), ratio(getattr(base.counts, key), getattr(hit.counts, key)) if key.endswith("_s") else ""] for name, key in fields]
    lost = faulted.acked_frames_lost + faulted.fires_lost + faulted.fires_conflicting
    return {
        "title": f"broker faults: {args.drill_cars} cars x {args.drill_rate:g} batches/s x {seconds:.0f} s, 3 brokers (RF 3, min.insync.replicas 2)",
        "columns": ["", "undisturbed", "with faults", "vs undisturbed"],
        "rows": rows,
        "verdict": [
            *(f"fault: {f}" for f in hit.faults),
            f"{'OK' if lost == 0 else 'FAILED'}: {faulted.acked_frames_lost} acknowledged frames lost, {faulted.fires_lost} fires lost, {faulted.fires_conflicting} decided two ways (target 0); "
            f"acks stalled {faulted.ack_stall_s:.1f} s from t={faulted.ack_stall_at_s:.0f} s (undisturbed {base.counts.ack_stall_s:.1f} s)",
        ],
        "reports": {k: v.as_dict() for k, v in reports.items()},
    }
