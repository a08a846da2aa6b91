"""Backtests: run a trigger over recorded telemetry before activating it, with no side effects.

Sources: a time range of fleet.telemetry.v1 (Kafka timestamps, retention permitting), or an
archived segment in the object store: a sequence of [4-byte big-endian length][TelemetryBatchEvent].
Fires go through the same engine, firing mode, minimum interval and per-car rate limit as in
production, so the expected upload rate is what the budget will really see.
"""

from __future__ import annotations

import struct
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator

from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.triggerlang import CompiledTrigger, EvalContext, TriggerState
from longtail.triggers.v1 import triggers_pb2

DEFAULT_SAMPLE = 50


def write_segment(events: Iterable[fleet_events.TelemetryBatchEvent]) -> bytes:
    out = bytearray()
    for event in events:
        data = event.SerializeToString()
        out += struct.pack(">I", len(data)) + data
    return bytes(out)


def read_segment(data: bytes) -> Iterator[fleet_events.TelemetryBatchEvent]:
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError(f"segment truncated at byte {offset}")
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        if offset + size > len(data):
            raise ValueError(f"segment record at byte {offset - 4} claims {size} bytes, only {len(data) - offset} left")
        yield fleet_events.TelemetryBatchEvent.FromString(data[offset : offset + size])
        offset += size


def run_backtest(
    trigger: CompiledTrigger, spec: triggers_pb2.TriggerSpec, batches: Iterable[fleet_events.TelemetryBatchEvent], sample_limit: int = 0, max_frames: int = 0, map_context: Callable[[object], EvalContext] | None = None
) -> triggers_pb2.BacktestTriggerResponse:
    """`map_context(ego)` gives map_disagreement() the map as it is now (the fleet worker's view);
    without it that built-in never fires."""
    sample_limit = sample_limit or DEFAULT_SAMPLE
    states: dict[str, TriggerState] = {}
    first_seen: dict[str, float] = {}
    last_seen: dict[str, float] = {}
    uploads: dict[str, deque] = defaultdict(deque)
    response = triggers_pb2.BacktestTriggerResponse(upload_budget=spec.upload_budget)
    fired_vehicles: set[str] = set()
    frames = 0
    per_hour = spec.max_uploads_per_car_hour
    for batch in batches:
        # A car's frames may arrive in several batches and, after a resend, twice: order them.
        for frame in sorted(batch.frames, key=lambda f: f.sequence):
            if max_frames and frames >= max_frames:
                break
            frames += 1
            vehicle = frame.vehicle_id
            t = frame.captured_at.ToNanoseconds() / 1e9
            first_seen.setdefault(vehicle, t)
            last_seen[vehicle] = max(last_seen.get(vehicle, t), t)
            state = states.get(vehicle)
            if state is None:
                state = states[vehicle] = trigger.new_state()
            fire = trigger.evaluate(state, frame, map_context(frame.ego) if map_context is not None else None)
            if fire is None:
                continue
            recent = uploads[vehicle]
            while recent and recent[0] <= t - 3600:
                recent.popleft()
            if per_hour > 0 and len(recent) >= per_hour:
                continue  # the per-car rate limit would suppress this upload
            recent.append(t)
            response.fires += 1
            fired_vehicles.add(vehicle)
            if len(response.sample) < sample_limit:
                response.sample.add(frame_id=frame.frame_id, vehicle_id=vehicle, captured_at=frame.captured_at, score=1.0)
    response.frames_evaluated = frames
    response.distinct_vehicles = len(fired_vehicles)
    # A car's driving time: first to last frame, plus one frame interval (~0.1 s) so a single
    # frame is not zero hours.
    car_hours = sum(last_seen[v] - first_seen[v] + 0.1 for v in first_seen) / 3600.0
    response.car_hours = car_hours
    response.fires_per_car_hour = response.fires / car_hours if car_hours else 0.0
    if first_seen:
        span_days = max(max(last_seen.values()) - min(first_seen.values()), 1.0) / 86400.0
        response.expected_uploads_per_day = response.fires / span_days
    if response.expected_uploads_per_day > 0:
        response.days_to_exhaust_budget = spec.upload_budget / response.expected_uploads_per_day
    return response
