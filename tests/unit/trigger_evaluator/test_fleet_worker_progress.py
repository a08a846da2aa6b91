"""Liveness from progress: the fleet worker turns NOT_SERVING only when records wait and its
committed offsets stop moving, and SERVING again once they move."""

from __future__ import annotations

import asyncio

from trigger_evaluator import fleet_worker


def run_watch(monkeypatch, readings: list[tuple[int, int]], stall_s: float = 0.2, seconds: float = 1.2) -> list[bool]:
    calls = iter(readings)
    last = readings[-1]
    monkeypatch.setattr(fleet_worker, "group_progress", lambda *a: next(calls, last))
    changes: list[bool] = []

    async def set_serving(serving: bool) -> None:
        changes.append(serving)

    async def main() -> None:
        task = asyncio.create_task(fleet_worker.watch_progress("unused:9092", set_serving, stall_s))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(main())
    return changes


def test_stalled_with_lag_is_not_serving(monkeypatch):
    assert run_watch(monkeypatch, [(5, 100)]) == [False]


def test_idle_without_lag_stays_serving(monkeypatch):
    assert run_watch(monkeypatch, [(0, 100)]) == []


def test_progress_restores_serving(monkeypatch):
    stalled = [(5, 100)] * 12  # 12 x 0.05 s: past the 0.2 s stall timeout
    moving = [(5 - i % 5, 101 + i) for i in range(40)]
    assert run_watch(monkeypatch, stalled + moving, seconds=2.5) == [False, True]
