"""Labellers: the simulated labeller (reads the simulator's ground truth, errs at a given rate)
and helpers the human CLI uses (the firing frame of a snapshot, a terminal rendering).

Ground truth is `groundtruth/<snapshot_id>.json` in the object store, written by the simulator
(fleet_sim.fleet): {"snapshot_id", "vehicle_id", "firing_frame_id", "frames": [{"frame_id",
"objects": [{"cls", "box", "attributes", ...}]}]}. Only simulated labellers read it.
"""

from __future__ import annotations

import io
import random
import tarfile

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L

GROUND_TRUTH = "groundtruth/"


def firing_objects(truth: dict) -> list[dict]:
    """The ground-truth objects of the frame that fired (the last frame if it is not named)."""
    frames = truth.get("frames") or []
    for frame in frames:
        if frame.get("frame_id") == truth.get("firing_frame_id"):
            return list(frame.get("objects") or [])
    return list(frames[-1].get("objects") or []) if frames else []


def _other(values: list[str], current: str, rng: random.Random) -> str:
    choices = [v for v in values if v != current]
    return rng.choice(choices) if choices else current


def annotate(task: L.Task, truth: dict, error_rate: float, rng: random.Random) -> C.TaskOutput | None:
    """The label a careful-but-fallible labeller gives: ground truth, each object wrong with
    probability `error_rate` (missed, or one attribute flipped). None if the task's prototype
    cannot be derived from ground truth (landmark)."""
    attrs = {a.name: list(a.values) for a in task.attributes}
    objects = [o for o in firing_objects(truth) if o.get("cls") in set(task.classes)]

    def attributes_of(o: dict) -> dict[str, str]:
        out = {}
        for name, values in attrs.items():
            value = str(o.get("attributes", {}).get(name, ""))
            out[name] = value if value in values or not values else values[0]
        return out

    if task.prototype == C.TASK_PROTOTYPE_DETECTION:
        out = C.TaskOutput(detection=C.DetectionOutput())
        for o in objects:
            a = attributes_of(o)
            if rng.random() < error_rate:
                if rng.random() < 0.5 or not attrs:
                    continue  # missed the object
                key = rng.choice(sorted(attrs))
                a[key] = _other(attrs[key], a[key], rng)
            x0, y0, x1, y1 = (min(max(float(v), 0.0), 1.0) for v in o["box"])
            d = out.detection.detections.add(cls=o["cls"], confidence=1.0, box=C.BoundingBox(x_min=x0, y_min=y0, x_max=max(x0, x1), y_max=max(y0, y1)))
            d.attributes.update(a)
        return out
    if task.prototype == C.TASK_PROTOTYPE_CLASSIFICATION:
        # The class of the largest object of the task's classes; else a "none"/"background" class.
        def area(o):
            b = o["box"]
            return (b[2] - b[0]) * (b[3] - b[1])

        if objects:
            o = max(objects, key=area)
            cls, a = o["cls"], attributes_of(o)
        else:
            fallback = [c for c in task.classes if c in ("none", "background", "other")]
            cls, a = (fallback or list(task.classes))[0], {n: (v[0] if v else "") for n, v in attrs.items()}
        if rng.random() < error_rate:
            cls = _other(list(task.classes), cls, rng)
        return C.TaskOutput(classification=C.ClassificationOutput(cls=cls, attributes=a))
    return None


def firing_image(data: bytes, content_type: str, frame_id: str = "", clip_frame_ids: list[str] | None = None) -> bytes:
    """PNG bytes of the frame that fired: the image itself, or its member of a clip (tar)."""
    if content_type != "application/x-tar":
        return data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: int(m.name.split(".")[0]) if m.name.split(".")[0].isdigit() else 0)
        index = len(members) // 2
        if clip_frame_ids and frame_id in clip_frame_ids:
            index = clip_frame_ids.index(frame_id)
        file = tar.extractfile(members[min(index, len(members) - 1)])
        assert file is not None  # a regular file (isfile above)
        return file.read()


def render_terminal(png: bytes, width: int = 64):
    """A rich Text drawing the image with upper half blocks (two pixel rows per character)."""
    from PIL import Image
    from rich.text import Text

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width != width:
        image = image.resize((width, max(2, round(image.height * width / image.width))), Image.Resampling.NEAREST)
    px = image.load()
    assert px is not None
    text = Text()
    for y in range(0, image.height - 1, 2):
        for x in range(image.width):
            top, bottom = px[x, y], px[x, y + 1]
            assert isinstance(top, tuple) and isinstance(bottom, tuple)  # RGB: (r, g, b)
            text.append("▀", style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})")
        text.append("\n")
    return text
