"""`longtail sim --cars N --duration S` (or `python -m fleet_sim`): a simulated fleet on the real gateway.

Environment: GATEWAY_ADDR (host:port of a fleet-gateway), FLEET_TOKEN_SECRET (signs the cars'
tokens), S3_* (optional: where ground truth for uploaded snapshots is kept for simulated labellers).
"""

from __future__ import annotations

import asyncio
import os
import time

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from longtail import config
from longtail.auth import FleetAuthSettings
from longtail.storage import ObjectStore

from fleet_sim.fleet import SimConfig, SimReport, SimulatedFleet


def build_fleet(sim: SimConfig, gateway_address: str | None, secret: str | None, store: ObjectStore | None, say=print) -> SimulatedFleet:
    from fleet_sim.bootstrap import train_bootstrap_model
    from longtail.synthetic.world import World, WorldConfig

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    world = World(WorldConfig(), seed=sim.seed)
    started = time.perf_counter()
    model = train_bootstrap_model(seed=sim.seed)
    say(f"shadow model ready in {time.perf_counter() - started:.1f}s (bootstrap, trained on common cases only)")
    model.eval()
    return SimulatedFleet(sim, world, model, store=store, gateway_address=gateway_address, token_secret=secret)


def run(cars: int, duration: float, seed: int = 0, realtime: bool = False, console: Console | None = None) -> SimReport:
    console = console or Console(stderr=True)
    address = os.environ.get("GATEWAY_ADDR")
    if not address:
        raise config.ConfigError("GATEWAY_ADDR is not set (host:port of a fleet-gateway, e.g. 127.0.0.1:50051)")
    secret = config.load(FleetAuthSettings).token_secret
    try:
        store = ObjectStore(config.load(config.S3Settings), service="fleet-sim")
    except config.ConfigError:
        store = None
        console.print("[yellow]S3_* not set: ground truth of uploads is not kept (simulated labellers need it)[/]")
    sim = SimConfig(cars=cars, duration_s=duration, seed=seed, realtime=realtime)
    fleet = build_fleet(sim, address, secret, store, say=lambda m: console.print(f"[cyan]sim[/] {m}"))
    with Progress(TextColumn("[bold]simulating[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("sim", total=1.0, status="")

        def on_progress(report: SimReport, fraction: float) -> None:
            fires = sum(report.fires.values())
            progress.update(task, completed=fraction, status=f"{report.frames:,} frames, {fires} fires, {report.uploads} uploads")

        report = asyncio.run(fleet.run(on_progress))
    return report


def main() -> None:
    import sys

    from longtail.cli import app

    app(["sim", *sys.argv[1:]])


if __name__ == "__main__":
    main()
