"""Synthetic fleet observations of a known world, for tests and benchmarks of map-vision.

Cars drive the simulator's roads (`seed.simulator_world`); on every frame a simple camera sees the
true features in its field of view and range whose face points at it, and reports each with a
detection probability, its (range, bearing) from the ego pose (the inverse of
`mapping.project`) plus Gaussian noise, a confidence and the true attributes. False positives
can be sprinkled in. Deterministic in the random generator given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2


@dataclass(frozen=True)
class TruthFeature:
    feature_id: str
    cls: str  # stop_sign | traffic_light
    x: float
    y: float
    facing: float  # heading the face points to
    attributes: dict[str, str] = field(default_factory=dict)
    permanent: bool = True  # would a map hold it (not handheld, not temporary)


@dataclass(frozen=True)
class Perception:
    max_range_m: float = 50.0
    min_range_m: float = 3.0
    half_fov_rad: float = 0.5236
    min_facing_cos: float = 0.25
    p_detect: float = 0.95  # within near_range_m
    p_detect_far: float = 0.5
    near_range_m: float = 35.0
    p_detect_occluded: float = 0.3  # factor for foliage-occluded signs
    range_noise_frac: float = 0.05  # sigma of range error: frac * r + quad * r^2 (monocular range from box height)
    range_noise_quad: float = 0.0
    bearing_noise_rad: float = 0.01
    conf: tuple[float, float] = (0.65, 0.95)
    false_positive_rate: float = 0.0  # per frame: a stop sign where there is none
    attribute_score: float = 0.9


def _arrays(truth: Sequence[TruthFeature]) -> tuple[np.ndarray, ...]:
    return (np.array([t.x for t in truth]), np.array([t.y for t in truth]), np.array([t.facing for t in truth]))


def perceive(truth: Sequence[TruthFeature], arrays, pose: common_pb2.Pose, rng: np.random.Generator, p: Perception) -> list[common_pb2.Detection]:
    xs, ys, fs = arrays
    dx, dy = xs - pose.x, ys - pose.y
    r = np.hypot(dx, dy)
    b = (np.arctan2(dy, dx) - pose.heading + math.pi) % (2 * math.pi) - math.pi
    facing_cos = -(np.cos(fs) * dx + np.sin(fs) * dy) / np.maximum(r, 1e-6)
    seen = (r >= p.min_range_m) & (r <= p.max_range_m) & (np.abs(b) <= p.half_fov_rad) & (facing_cos >= p.min_facing_cos)
    out = []
    for k in np.nonzero(seen)[0].tolist():
        t = truth[k]
        prob = p.p_detect if r[k] <= p.near_range_m else p.p_detect_far
        if t.attributes.get("occlusion") == "foliage":
            prob *= p.p_detect_occluded
        if rng.random() >= prob:
            continue
        d = common_pb2.Detection(cls=t.cls, confidence=float(rng.uniform(*p.conf)), track_id=k + 1)
        sigma = p.range_noise_frac * r[k] + p.range_noise_quad * r[k] ** 2
        d.range_m = float(max(0.5, r[k] + rng.normal(0.0, sigma)))
        d.bearing_rad = float(b[k] + rng.normal(0.0, p.bearing_noise_rad))
        for key, value in t.attributes.items():
            d.attributes[key] = value
            d.attribute_scores[key] = p.attribute_score
        d.class_scores[t.cls] = d.confidence
        out.append(d)
    if p.false_positive_rate and rng.random() < p.false_positive_rate:
        d = common_pb2.Detection(cls="stop_sign", confidence=float(rng.uniform(0.6, 0.8)))
        d.range_m = float(rng.uniform(8.0, 30.0))
        d.bearing_rad = float(rng.uniform(-p.half_fov_rad, p.half_fov_rad))
        out.append(d)
    return out


def drive_frames(
    vehicle_id: str, poses: Iterable[common_pb2.Pose], truth: Sequence[TruthFeature], rng: np.random.Generator, perception: Perception | None = None, *, t0: float = 1_700_000_000.0, dt: float = 0.1, first_seq: int = 1
) -> list[fleet_pb2.Frame]:
    """One frame per pose: captured at t0 + i * dt, sequence first_seq + i."""
    perception = perception or Perception()
    arrays = _arrays(truth)
    frames = []
    for i, pose in enumerate(poses):
        seq = first_seq + i
        frame = fleet_pb2.Frame(frame_id=f"{vehicle_id}:{seq}", vehicle_id=vehicle_id, sequence=seq)
        frame.captured_at.FromNanoseconds(int(round((t0 + i * dt) * 1e9)))
        frame.ego.CopyFrom(pose)
        frame.model.name, frame.model.version = "synthetic", 1
        frame.detections.extend(perceive(truth, arrays, pose, rng, perception))
        frames.append(frame)
    return frames


def batches(vehicle_id: str, frames: Sequence[fleet_pb2.Frame], size: int = 100) -> list[fleet_events.TelemetryBatchEvent]:
    """TelemetryBatchEvents of `size` frames, as fleet-gateway publishes them."""
    out = []
    for n, i in enumerate(range(0, len(frames), size)):
        batch = fleet_events.TelemetryBatchEvent(vehicle_id=vehicle_id, gateway_id="synthetic", batch_seq=n + 1, frames=frames[i : i + size])
        batch.received_at.GetCurrentTime()
        out.append(batch)
    return out


def shifted(truth: Sequence[TruthFeature], dx: float, dy: float, prefix: str = "") -> list[TruthFeature]:
    """The same world translated (and ids prefixed), e.g. to keep test runs apart on a shared broker."""
    return [TruthFeature(prefix + t.feature_id, t.cls, t.x + dx, t.y + dy, t.facing, dict(t.attributes), t.permanent) for t in truth]


def shift_pose(pose: common_pb2.Pose, dx: float, dy: float) -> common_pb2.Pose:
    return common_pb2.Pose(x=pose.x + dx, y=pose.y + dy, heading=pose.heading, speed=pose.speed)
