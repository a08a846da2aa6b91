"""`longtail sim --cars N --duration S` (or `python -m fleet_sim`): a simulated fleet on the real gateway.

Environment: GATEWAY_ADDR (host:port of a fleet-gateway), FLEET_TOKEN_SECRET (signs the cars'
tokens), S3_* (optional: where ground truth for uploaded snapshots is kept for simulated labellers).
The cars connect with mutual TLS, each with its own certificate from the fleet CA in --tls-dir
(default $LONGTAIL_PKI_DIR; `longtail fleet ca init` makes one); --plaintext only
for a gateway started with GRPC_PLAINTEXT=true.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from longtail import config
from longtail.auth import FleetAuthSettings
from longtail.storage import ObjectStore

if TYPE_CHECKING:  # torch loads with the fleet, not with the operator CLI that mounts `sim`
    from fleet_sim.fleet import SimConfig, SimReport, SimulatedFleet


def build_fleet(sim: SimConfig, gateway_address: str | None, secret: str | None, store: ObjectStore | None, say=print) -> SimulatedFleet:
    import torch

    from longtail.synthetic.world import World, WorldConfig

    from fleet_sim.bootstrap import train_bootstrap_model
    from fleet_sim.fleet import SimulatedFleet

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    world = World(WorldConfig(), seed=sim.seed)
    started = time.perf_counter()
    model = train_bootstrap_model(seed=sim.seed)
    say(f"shadow model ready in {time.perf_counter() - started:.1f}s (bootstrap, trained on common cases only)")
    model.eval()
    fleet = SimulatedFleet(sim, world, model, store=store, gateway_address=gateway_address, token_secret=secret)
    from longtail.model import device

    say(f"on-car inference of beamed-down models on {device.describe(fleet.shelf.device)} (LONGTAIL_DEVICE)")
    return fleet


def run(cars: int, duration: float, seed: int = 0, realtime: bool = False, console: Console | None = None, tls_dir: str = "", plaintext: bool = False) -> SimReport:
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
    from fleet_sim.fleet import SimConfig

    if not plaintext:
        tls_dir = tls_dir or os.environ.get("LONGTAIL_PKI_DIR", "")
        if not (tls_dir and (Path(tls_dir) / "ca-key.pem").exists()):
            raise config.ConfigError(
                f"no fleet CA in {tls_dir or '(no directory)'}: the cars' certificates come from it. Pass --tls-dir or set LONGTAIL_PKI_DIR (`longtail fleet ca init` makes one), or --plaintext for a gateway started with GRPC_PLAINTEXT=true"
            )
    sim = SimConfig(cars=cars, duration_s=duration, seed=seed, realtime=realtime, tls_dir="" if plaintext else tls_dir, plaintext=plaintext)
    fleet = build_fleet(sim, address, secret, store, say=lambda m: console.print(f"[cyan]sim[/] {m}"))
    with Progress(TextColumn("[bold]simulating[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("sim", total=1.0, status="")

        def on_progress(report: SimReport, fraction: float) -> None:
            fires = sum(report.fires.values())
            progress.update(task, completed=fraction, status=f"{report.frames:,} frames, {fires} fires, {report.uploads} uploads")

        report = asyncio.run(fleet.run(on_progress))
    return report


def sim(
    cars: int = typer.Option(10, help="How many simulated cars (real gRPC clients)."),
    duration: float = typer.Option(30.0, help="Simulated seconds to drive."),
    seed: int = typer.Option(0, help="World and model seed."),
    realtime: bool = typer.Option(False, help="Pace the simulated clock to the wall clock."),
    tls_dir: str = typer.Option("", help="The fleet CA's directory; each car gets its certificate there (default $LONGTAIL_PKI_DIR)."),
    plaintext: bool = typer.Option(False, help="Connect without TLS (only to a gateway started with GRPC_PLAINTEXT=true)."),
) -> None:
    """Drive a simulated fleet through a running gateway (GATEWAY_ADDR, FLEET_TOKEN_SECRET, S3_*)."""
    if cars < 1 or duration <= 0:
        raise typer.BadParameter("--cars must be >= 1 and --duration > 0")
    report = run(cars, duration, seed, realtime, tls_dir=tls_dir, plaintext=plaintext)
    out = Console()
    table = Table("frames", "acked", "fires", "uploads", "already stored", "upload errors", "dropped batches", "wall s", title="simulated fleet")
    table.add_row(f"{report.frames:,}", f"{report.frames_acked:,}", str(sum(report.fires.values())), str(report.uploads), str(report.uploads_existing), str(report.upload_errors), str(report.batches_dropped), f"{report.wall_seconds:.1f}")
    out.print(table)
    for trigger_id, fires in sorted(report.fires.items()):
        out.print(f"  {trigger_id}: {fires} fires")
    for model, frames in sorted(report.models.items()):
        out.print(f"  production model {model}: {frames:,} frames")
    if report.shadow_frames:
        out.print(f"  shadow mode: {report.shadow_frames:,} frames compared with the candidate, {report.shadow_disagreements:,} disagreement reports")


def main() -> None:
    try:
        typer.run(sim)
    except config.ConfigError as exc:
        Console(stderr=True).print(f"[bold red]configuration error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
