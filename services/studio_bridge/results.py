"""Label Studio's results <-> the label store's annotations (`common.v1.TaskOutput`).

Label Studio gives boxes and keypoints in percent of the image (x, y, width, height in 0..100);
the label store keeps normalized [0, 1] coordinates. A per-region choice carries its region's id.
`annotation` raises AnnotationError with the reason for anything it cannot read (the label store
checks the rest against the task's schema when the label is submitted).
"""

from __future__ import annotations

from typing import Any

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from studio_bridge.labelling_config import BOX, CLASS, IMAGE, KEYPOINT


class AnnotationError(ValueError):
    """An annotation that cannot become a label; the message says why."""


def _unit(value: Any, what: str) -> float:
    try:
        v = float(value) / 100.0
    except (TypeError, ValueError):
        raise AnnotationError(f"{what}: {value!r} is not a number") from None
    if not -0.01 <= v <= 1.01:  # Label Studio rounds at the image's edge
        raise AnnotationError(f"{what}: {value!r}% is outside the image")
    return min(max(v, 0.0), 1.0)


def _one(values: Any, what: str) -> str:
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
        raise AnnotationError(f"{what}: expected exactly one value, got {values!r}")
    return values[0]


def _attributes(task: L.Task, results: list[dict], region: str | None) -> dict[str, str]:
    names = {a.name for a in task.attributes}
    out: dict[str, str] = {}
    for r in results:
        name = r.get("from_name")
        if not isinstance(name, str) or name not in names or (region is not None and r.get("id") != region):
            continue
        value = r.get("value") or {}
        if r.get("type") == "choices":
            out[name] = _one(value.get("choices"), f"{name} of region {region}" if region else name)
        elif r.get("type") == "textarea":
            out[name] = _one(value.get("text"), f"{name} of region {region}" if region else name)
    return out


def annotation(task: L.Task, results: Any) -> C.TaskOutput:
    """The label store's annotation for `task` from an annotation's `result` list."""
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise AnnotationError(f"result: expected a list of regions, got {type(results).__name__}")
    known = {BOX, CLASS, KEYPOINT} | {a.name for a in task.attributes}
    for r in results:
        if r.get("from_name") not in known:
            raise AnnotationError(f"result: {r.get('from_name')!r} is not in task {task.name}'s config (regenerated since this annotation was made?)")
    output = C.TaskOutput()
    if task.prototype == C.TASK_PROTOTYPE_DETECTION:
        output.detection.SetInParent()  # no box is a valid answer: nothing there
        for r in results:
            if r.get("from_name") != BOX:
                continue
            region, value = r.get("id"), r.get("value") or {}
            if float(value.get("rotation") or 0.0) % 360:
                raise AnnotationError(f"box {region}: rotated boxes are not supported (rotation {value['rotation']})")
            x, y = _unit(value.get("x"), f"box {region} x"), _unit(value.get("y"), f"box {region} y")
            w, h = _unit(value.get("width"), f"box {region} width"), _unit(value.get("height"), f"box {region} height")
            d = output.detection.detections.add(cls=_one(value.get("rectanglelabels"), f"box {region} class"), confidence=1.0)
            d.box.CopyFrom(C.BoundingBox(x_min=x, y_min=y, x_max=min(x + w, 1.0), y_max=min(y + h, 1.0)))
            d.attributes.update(_attributes(task, results, region))
    elif task.prototype == C.TASK_PROTOTYPE_CLASSIFICATION:
        chosen = [r for r in results if r.get("from_name") == CLASS]
        if len(chosen) != 1:
            raise AnnotationError(f"{CLASS}: expected one class choice, got {len(chosen)}")
        output.classification.cls = _one((chosen[0].get("value") or {}).get("choices"), CLASS)
        output.classification.attributes.update(_attributes(task, results, None))
    elif task.prototype == C.TASK_PROTOTYPE_LANDMARK:
        output.landmark.SetInParent()
        for r in results:
            if r.get("from_name") == KEYPOINT:
                value = r.get("value") or {}
                name = _one(value.get("keypointlabels"), f"keypoint {r.get('id')}")
                output.landmark.keypoints.add(name=name, x=_unit(value.get("x"), f"keypoint {name} x"), y=_unit(value.get("y"), f"keypoint {name} y"), visible=True, confidence=1.0)
    else:
        raise AnnotationError(f"task {task.name}: its prototype has no Label Studio config")
    return output


def _region(region: str, kind: str, value: dict) -> dict:
    return {"id": region, "from_name": kind, "to_name": IMAGE, "type": "rectanglelabels" if kind == BOX else "choices", "value": value}


def prediction(task: L.Task, pre_label: C.TaskPrediction, model: C.ModelRef) -> dict | None:
    """A Label Studio prediction (pre-annotation) from the inference service's pre-label, so a
    labeller corrects boxes rather than drawing them; None when there is nothing to show."""
    kind = pre_label.output.WhichOneof("value")
    result: list[dict] = []
    scores: list[float] = []
    if kind == "detection" and task.prototype == C.TASK_PROTOTYPE_DETECTION:
        for i, d in enumerate(pre_label.output.detection.detections):
            if d.cls not in task.classes:
                continue
            region, b = f"p{i}", d.box
            geometry = {"x": b.x_min * 100, "y": b.y_min * 100, "width": (b.x_max - b.x_min) * 100, "height": (b.y_max - b.y_min) * 100, "rotation": 0}
            result.append({**_region(region, BOX, {**geometry, "rectanglelabels": [d.cls]}), "score": d.confidence})
            for a in task.attributes:
                if d.attributes.get(a.name) in a.values:
                    result.append(_region(region, a.name, {**geometry, "choices": [d.attributes[a.name]]}))
            scores.append(d.confidence)
    elif kind == "classification" and task.prototype == C.TASK_PROTOTYPE_CLASSIFICATION:
        c = pre_label.output.classification
        if c.cls in task.classes:
            result.append({"id": "p0", "from_name": CLASS, "to_name": IMAGE, "type": "choices", "value": {"choices": [c.cls]}})
            scores.append(c.probabilities.get(c.cls, 0.0))
    else:
        return None
    version = f"{model.name}:{model.version}" if model.name else "pre-label"
    return {"model_version": version, "score": sum(scores) / len(scores) if scores else 0.0, "result": result}
