"""Helpers shared by the label-store unit tests."""

import hashlib

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sid(i) -> str:
    return hashlib.sha256(f"sample-{i}".encode()).hexdigest()


def stop_sign(occlusion="none", box=(0.1, 0.1, 0.3, 0.3), modifier="none", conf=1.0) -> C.TaskOutput:
    out = C.TaskOutput(detection=C.DetectionOutput())
    d = out.detection.detections.add(cls="stop_sign", confidence=conf, box=C.BoundingBox(x_min=box[0], y_min=box[1], x_max=box[2], y_max=box[3]))
    d.attributes.update({"occlusion": occlusion, "mount": "pole", "modifier": modifier, "temporary": "false"})
    return out


def register(store, n, start=0, priority=0.0):
    return store.samples.register([L.Sample(sample_id=sid(i), object_key=f"snapshots/{i}", priority=priority) for i in range(start, start + n)])
