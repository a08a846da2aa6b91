"""Frame builders for the trigger-language tests (plain protobuf, no infrastructure).

A plain module, not a conftest.py, so `from triggerlang_frames import ...` is unambiguous."""

from __future__ import annotations

from longtail.fleet.v1 import fleet_pb2

VEHICLE = "car-7"


def det(
    cls: str,
    conf: float = 0.9,
    track: int = 0,
    range_m: float | None = None,
    bearing: float | None = None,
    attrs: dict | None = None,
    attr_scores: dict | None = None,
    class_scores: dict | None = None,
    box: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.3),
) -> dict:
    return dict(cls=cls, conf=conf, track=track, range_m=range_m, bearing=bearing, attrs=attrs or {}, attr_scores=attr_scores or {}, class_scores=class_scores or {}, box=box)


def make_frame(seq: int, dets=(), *, t: float | None = None, speed: float = 10.0, scores: dict | None = None, vehicle: str = VEHICLE, x: float = 0.0, y: float = 0.0, heading: float = 0.0) -> fleet_pb2.Frame:
    """Frame `seq` of `vehicle`, captured at t seconds (default: 10 fps from seq)."""
    frame = fleet_pb2.Frame(frame_id=f"{vehicle}:{seq}", vehicle_id=vehicle, sequence=seq)
    t = seq / 10.0 if t is None else t
    frame.captured_at.seconds = int(t)
    frame.captured_at.nanos = int(round((t - int(t)) * 1e9))
    frame.ego.speed, frame.ego.x, frame.ego.y, frame.ego.heading = speed, x, y, heading
    for spec in dets:
        if isinstance(spec, str):
            spec = det(spec)
        d = frame.detections.add(cls=spec["cls"], confidence=spec["conf"], track_id=spec["track"])
        d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max = spec["box"]
        if spec["range_m"] is not None:
            d.range_m = spec["range_m"]
        if spec["bearing"] is not None:
            d.bearing_rad = spec["bearing"]
        d.attributes.update(spec["attrs"])
        d.attribute_scores.update(spec["attr_scores"])
        d.class_scores.update(spec["class_scores"])
    frame.trigger_scores.update(scores or {})
    return frame


def standard_frame(seq: int = 1) -> fleet_pb2.Frame:
    """The frame of the table-driven tests."""
    return make_frame(
        seq,
        [
            det(
                "stop_sign",
                0.45,
                track=7,
                range_m=18.0,
                bearing=0.1,
                attrs={"occluded": "true", "occlusion": "foliage"},
                attr_scores={"occluded": 0.9},
                class_scores={"stop_sign": 0.45, "yield_sign": 0.40, "other": 0.15},
                box=(0.1, 0.1, 0.2, 0.3),
            ),
            det("traffic_light", 0.5, track=8, range_m=42.0, bearing=-0.2, attrs={"occluded": "no"}, class_scores={"traffic_light": 0.5, "street_lamp": 0.5}),
            det("car", 0.95),
        ],
        speed=13.4,
        x=100.0,
        y=50.0,
        heading=0.5,
        scores={"occluded_stop_sign@3": 0.82},
    )
