"""Benchmark runner: `python -m bench [name ...] [--frames N]` prints one table per benchmark.

Needs the local infrastructure (`longtail infra up`); it starts what is missing itself, unless
every benchmark asked for says it needs none (`NEEDS_INFRA = False`: trainer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import brokers, faults, fleet_side, gateway, inference, kafka_throughput, label_store, overload, simulator, soak
from bench import trainer as trainer_bench

BENCHMARKS = {
    "kafka": kafka_throughput,
    "gateway": gateway,
    "fleet-side": fleet_side,
    "inference": inference,
    "label-store": label_store,
    "trainer": trainer_bench,
    "simulator": simulator,
    "brokers": brokers,
    "overload": overload,
    "faults": faults,
    "soak": soak,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help=f"which to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--frames", type=int, default=1_000_000, help="telemetry frames per path (kafka)")
    parser.add_argument("--gateway-frames", type=int, default=400_000, help="frames for the gateway ingest benchmark")
    parser.add_argument("--fleet-frames", type=int, default=200_000, help="frames for the fleet-side evaluation benchmark")
    parser.add_argument("--cars", type=int, default=None, help="cars: connected for the beam-down benchmark (gateway, default 10,000), driving in the soak (soak, default 20)")
    parser.add_argument("--sim-frames", type=int, default=8000, help="frames per fleet size (simulator)")
    parser.add_argument("--label-samples", type=int, default=3000, help="samples labelled per database (label-store)")
    parser.add_argument("--drill-cars", type=int, default=20, help="cars in the broker-fault drill (brokers)")
    parser.add_argument("--drill-seconds", type=float, default=120.0, help="length of each drill run (brokers)")
    parser.add_argument("--drill-rate", type=float, default=5.0, help="batches of 10 frames per car per second (brokers)")
    parser.add_argument("--drill-stop-for", type=float, default=30.0, help="how long the drill keeps a broker stopped (brokers)")
    parser.add_argument("--overload-cars", type=int, default=50, help="cars in the overload drill (overload)")
    parser.add_argument("--overload-burst", type=float, default=30.0, help="seconds at ten times the nominal rate (overload)")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the soak (soak)")
    parser.add_argument("--matrix-cars", type=int, default=4, help="cars in each fault-matrix run (faults)")
    parser.add_argument("--matrix-seconds", type=float, default=30.0, help="seconds the fleet drives in each fault-matrix run (faults)")
    parser.add_argument("--out", default="out/bench", help="where to write JSON results")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    from longtail_dev.infra import Launcher

    console = Console()
    if any(getattr(BENCHMARKS[n], "NEEDS_INFRA", True) for n in args.names):  # a module sets NEEDS_INFRA = False when it needs none
        os.environ.update(Launcher(say=lambda m: console.print(f"[cyan]infra[/] {m}")).up(["kafka", "s3"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        result = BENCHMARKS[name].run(args, console)
        for part in [result, *result.get("more_tables", [])]:
            table = Table(*part["columns"], title=part["title"])
            for row in part["rows"]:
                table.add_row(*[str(c) for c in row])
            console.print(table)
        for line in result.get("verdict", []):
            console.print(line)
        (out / f"{name}.json").write_text(json.dumps({**result, "at": time.time()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
