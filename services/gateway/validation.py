"""Frame validation: the first malformed or non-finite value, named by its field path."""

from __future__ import annotations

import math

from longtail.fleet.v1 import fleet_pb2

MAX_DETECTIONS = 256
MAX_NAME = 128


class InvalidFrame(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _finite(value: float, field: str) -> None:
    if not math.isfinite(value):
        raise InvalidFrame(field, f"{value} is not finite")


def _unit(value: float, field: str) -> None:
    _finite(value, field)
    if not 0.0 <= value <= 1.0:
        raise InvalidFrame(field, f"{value} is outside [0, 1]")


def _detections(dets, prefix: str) -> None:
    if len(dets) > MAX_DETECTIONS:
        raise InvalidFrame(prefix, f"{len(dets)} detections, at most {MAX_DETECTIONS}")
    for j, det in enumerate(dets):
        here = f"{prefix}[{j}]"
        if not det.cls or len(det.cls) > MAX_NAME:
            raise InvalidFrame(f"{here}.cls", "must be a non-empty class name")
        _unit(det.confidence, f"{here}.confidence")
        box = det.box
        for name in ("x_min", "y_min", "x_max", "y_max"):
            _unit(getattr(box, name), f"{here}.box.{name}")
        if box.x_min > box.x_max or box.y_min > box.y_max:
            raise InvalidFrame(f"{here}.box", "min exceeds max")
        for key, score in det.attribute_scores.items():
            _unit(score, f"{here}.attribute_scores[{key}]")
        for key, score in det.class_scores.items():
            _unit(score, f"{here}.class_scores[{key}]")
        if det.HasField("range_m"):
            _finite(det.range_m, f"{here}.range_m")
            if det.range_m < 0:
                raise InvalidFrame(f"{here}.range_m", "is negative")
        if det.HasField("bearing_rad"):
            _finite(det.bearing_rad, f"{here}.bearing_rad")


def validate_frame(frame: fleet_pb2.Frame, vehicle_id: str, prefix: str = "frame") -> None:
    """Raise InvalidFrame for the first bad field. Frames must belong to the session's vehicle
    and carry the deterministic id "<vehicle_id>:<sequence>" (dedup downstream relies on it)."""
    if frame.vehicle_id != vehicle_id:
        raise InvalidFrame(f"{prefix}.vehicle_id", f"{frame.vehicle_id!r} is not the session's vehicle {vehicle_id!r}")
    expected = f"{vehicle_id}:{frame.sequence}"
    if frame.frame_id != expected:
        raise InvalidFrame(f"{prefix}.frame_id", f"must be {expected!r} (vehicle_id:sequence), got {frame.frame_id!r}")
    if not frame.HasField("captured_at"):
        raise InvalidFrame(f"{prefix}.captured_at", "is missing")
    ego = frame.ego
    for name in ("x", "y", "heading", "speed"):
        _finite(getattr(ego, name), f"{prefix}.ego.{name}")
    if ego.speed < 0:
        raise InvalidFrame(f"{prefix}.ego.speed", "is negative")
    _detections(frame.detections, f"{prefix}.detections")
    _detections(frame.shadow_detections, f"{prefix}.shadow_detections")
    for key, score in frame.trigger_scores.items():
        _finite(score, f"{prefix}.trigger_scores[{key}]")


def validate_shadow_disagreement(d: fleet_pb2.ShadowDisagreement, vehicle_id: str, prefix: str = "shadow_disagreement") -> None:
    """A car's shadow-mode report: which two models, and well-formed differences. A report with no
    differences only counts agreeing frames (then frame_id may be empty)."""
    for name in ("production", "candidate"):
        ref = getattr(d, name)
        if not ref.name or len(ref.name) > MAX_NAME or ref.version <= 0:
            raise InvalidFrame(f"{prefix}.{name}", "must name a published model version (name and version > 0)")
    if d.differences:
        if not d.frame_id.startswith(f"{vehicle_id}:"):
            raise InvalidFrame(f"{prefix}.frame_id", f"must be one of the session vehicle's frames ({vehicle_id}:<sequence>)")
        if not d.task or len(d.task) > MAX_NAME:
            raise InvalidFrame(f"{prefix}.task", "must name the task the models disagree on")
    if len(d.differences) > MAX_DETECTIONS:
        raise InvalidFrame(f"{prefix}.differences", f"{len(d.differences)} differences, at most {MAX_DETECTIONS}")
    for j, diff in enumerate(d.differences):
        here = f"{prefix}.differences[{j}]"
        if diff.kind == fleet_pb2.SHADOW_DIFFERENCE_KIND_UNSPECIFIED:
            raise InvalidFrame(f"{here}.kind", "must be set")
        _unit(diff.iou, f"{here}.iou")
        _detections([x for x in (diff.production, diff.candidate) if x.ByteSize()], here)
