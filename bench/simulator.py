"""Simulated fleet throughput (frames/s) on this machine, offline (no gateway: the cars' own work):
every tick each car moves, renders its 64x64 camera, and the fleet runs one batched forward pass
of the production model per model version over all cars (fleet_sim.onboard), then evaluates the
cars' triggers. In one run:

- 1 car with the eager model: the baseline (no batching: one forward pass per frame);
- 10, 40 and 100 cars: what batching the forward pass buys as the fleet grows, with the model as
  the cars load a beamed-down version (TorchScript frozen, batch norm folded:
  `load_scripted(optimize=True)`), and 40 cars with the eager model for comparison;
- the renderer alone (one frame at a time), to show the share of the tick it takes.

The demo drives the default 40 cars through the gateway, whose sessions, the Kafka producers and
the other services share the same two cores, so its figures (in the demo's log and report) are
lower than these. No thresholds are asserted; the ratios are the result.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch


def _fleet_fps(model, cars: int, frames: int, world) -> float:
    from fleet_sim.fleet import SimConfig, SimulatedFleet

    fleet = SimulatedFleet(SimConfig(cars=cars, duration_s=frames / cars / 10.0, seed=1), world, model)
    report = asyncio.run(fleet.run())
    return report.frames / report.wall_seconds


def run(args, console) -> dict:
    from longtail import tasks as tasks_mod
    from longtail.model import torchscript
    from longtail.model.network import MultiTaskNet
    from longtail.synthetic.frames import random_road_pose
    from longtail.synthetic.render import render
    from longtail.synthetic.world import World, WorldConfig

    torch.set_num_threads(2)
    world = World(WorldConfig(), seed=0)
    eager = MultiTaskNet(tasks_mod.DEFAULT_TASKS).eval()
    onboard = torchscript.load_scripted(torchscript.to_bytes(eager), optimize=True)
    frames = args.sim_frames
    rng = np.random.default_rng(0)
    poses = [random_road_pose(world, rng) for _ in range(min(frames, 2000))]
    started = time.perf_counter()
    for pose in poses:
        render(world, pose)
    render_fps = len(poses) / (time.perf_counter() - started)
    rows, fps = [], {}
    for cars, name, model in ((1, "eager", eager), (40, "eager", eager), (10, "onboard", onboard), (40, "onboard", onboard), (100, "onboard", onboard)):
        n = frames if cars > 1 else max(200, frames // 10)  # one car is slow: fewer frames measure it
        console.print(f"[magenta]simulator[/] {cars} car(s), {name} model, {n:,} frames ...")
        fps[(cars, name)] = _fleet_fps(model, cars, n, world)
    base = fps[(1, "eager")]
    for (cars, name), v in fps.items():
        rows.append([cars, name, f"{v:,.0f}", f"{v / base:.1f}x", f"{v / render_fps:.0%}"])
    return {
        "title": f"simulated fleet, offline, {frames:,} frames per row (render + batched on-car inference + triggers)",
        "columns": ["cars", "model", "frames/s", "vs 1 car, eager", "vs the renderer alone"],
        "rows": rows,
        "verdict": [
            f"renderer alone: {render_fps:,.0f} frames/s; 40 cars (the demo's default) with the onboard model: {fps[(40, 'onboard')]:,.0f} frames/s "
            f"= {fps[(40, 'onboard')] / base:.1f}x one car, {fps[(40, 'onboard')] / fps[(40, 'eager')]:.2f}x the eager model"
        ],
        "frames_per_s": {f"{c}-{n}": v for (c, n), v in fps.items()},
        "render_frames_per_s": render_fps,
    }
