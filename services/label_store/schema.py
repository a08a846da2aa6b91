"""Task declarations and label schemas.

A task is an instance of a prototype (classification with attributes, detection with boxes and
attributes, landmark with keypoints) — the same declarations as `longtail.tasks.TaskSpec`, so a
task declared here gets a head in the multitask network. Its label schema follows from the
declaration; `validate_annotation` checks a label against it and raises SchemaError naming the
exact field (`label.annotation.detection.detections[1].attributes.occlusion`), which the service
returns as INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import re

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.tasks import DEFAULT_TASKS, TaskSpec

NAME = re.compile(r"^[a-z0-9_]+$")
MAX_ANNOTATION_BYTES = 256 * 1024
MAX_OBJECTS = 500
MAX_LABELS_PER_SAMPLE = 9
PROTOTYPE_FIELD = {
    C.TASK_PROTOTYPE_CLASSIFICATION: "classification",
    C.TASK_PROTOTYPE_DETECTION: "detection",
    C.TASK_PROTOTYPE_LANDMARK: "landmark",
}


class SchemaError(ValueError):
    """Input that does not fit a schema; `field` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _prototype_name(value: int) -> str:
    known = {v.number: v.name for v in C.TaskPrototype.DESCRIPTOR.values}
    return known.get(value, f"prototype {value}")


def validate_task(task: L.Task) -> None:
    """A task declaration must make a well-formed head (same rules as tasks.TaskSpec)."""
    if not NAME.match(task.name):
        raise SchemaError("task.name", f"{task.name!r} must match [a-z0-9_]+")
    if task.prototype not in PROTOTYPE_FIELD:
        raise SchemaError("task.prototype", f"{_prototype_name(task.prototype)} is not supported; use CLASSIFICATION, DETECTION or LANDMARK")
    if task.labels_per_sample > MAX_LABELS_PER_SAMPLE:
        raise SchemaError("task.labels_per_sample", f"{task.labels_per_sample} > {MAX_LABELS_PER_SAMPLE}")
    names = set()
    for i, a in enumerate(task.attributes):
        if not NAME.match(a.name):
            raise SchemaError(f"task.attributes[{i}].name", f"{a.name!r} must match [a-z0-9_]+")
        if a.name in names:
            raise SchemaError(f"task.attributes[{i}].name", f"duplicate attribute {a.name!r}")
        names.add(a.name)
        if len(set(a.values)) != len(a.values):
            raise SchemaError(f"task.attributes[{i}].values", "duplicate values")
    try:
        TaskSpec.from_proto(task)
    except ValueError as exc:
        field = "task.keypoint_names" if task.prototype == C.TASK_PROTOTYPE_LANDMARK else "task.classes"
        raise SchemaError(field, str(exc)) from None


def task_from_spec(spec: TaskSpec, description: str = "", labels_per_sample: int = 1) -> L.Task:
    prototype = {v: k for k, v in PROTOTYPE_FIELD.items()}[spec.prototype]
    task = L.Task(name=spec.name, prototype=prototype, classes=spec.classes, keypoint_names=spec.keypoints, description=description, labels_per_sample=labels_per_sample)
    for name, values in spec.attributes.items():
        task.attributes.add(name=name, values=values)
    return task


def default_tasks() -> list[L.Task]:
    """The tasks of the shared model (stop_sign, traffic_light), seeded when the store starts empty."""
    return [task_from_spec(spec, f"{spec.name} ({spec.prototype})") for spec in DEFAULT_TASKS]


def _unit(value: float, field: str) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise SchemaError(field, f"{value} is not in [0, 1]")


def _attributes(task: L.Task, attributes, field: str) -> None:
    allowed = {a.name: set(a.values) for a in task.attributes}
    for key, value in attributes.items():
        if key not in allowed:
            raise SchemaError(f"{field}.{key}", f"unknown attribute; task {task.name} has {', '.join(sorted(allowed)) or 'none'}")
        if allowed[key] and value not in allowed[key]:
            raise SchemaError(f"{field}.{key}", f"{value!r} is not one of {', '.join(sorted(allowed[key]))}")


def validate_annotation(task: L.Task, output: C.TaskOutput, field: str = "label.annotation") -> None:
    """Raises SchemaError unless `output` is a complete, valid label for `task`."""
    size = output.ByteSize()
    if size > MAX_ANNOTATION_BYTES:
        raise SchemaError(field, f"{size} bytes exceeds the limit of {MAX_ANNOTATION_BYTES}")
    expected = PROTOTYPE_FIELD.get(task.prototype)
    kind = output.WhichOneof("value")
    if kind is None:
        raise SchemaError(field, f"empty; task {task.name} expects a {expected} output")
    if kind != expected:
        raise SchemaError(f"{field}.{kind}", f"task {task.name} is {expected}, not {kind}")
    classes = set(task.classes)
    if kind == "classification":
        c = output.classification
        if c.cls not in classes:
            raise SchemaError(f"{field}.classification.cls", f"{c.cls!r} is not one of {', '.join(task.classes)}")
        for cls, p in c.probabilities.items():
            if cls not in classes:
                raise SchemaError(f"{field}.classification.probabilities.{cls}", "not a class of the task")
            _unit(p, f"{field}.classification.probabilities.{cls}")
        _attributes(task, c.attributes, f"{field}.classification.attributes")
        _missing(task, c.attributes, f"{field}.classification.attributes")
    elif kind == "detection":
        dets = output.detection.detections
        if len(dets) > MAX_OBJECTS:
            raise SchemaError(f"{field}.detection.detections", f"{len(dets)} objects exceeds the limit of {MAX_OBJECTS}")
        for i, d in enumerate(dets):
            where = f"{field}.detection.detections[{i}]"
            if d.cls not in classes:
                raise SchemaError(f"{where}.cls", f"{d.cls!r} is not one of {', '.join(task.classes)}")
            if not d.HasField("box"):
                raise SchemaError(f"{where}.box", "missing")
            b = d.box
            for name in ("x_min", "y_min", "x_max", "y_max"):
                _unit(getattr(b, name), f"{where}.box.{name}")
            if b.x_min > b.x_max or b.y_min > b.y_max:
                raise SchemaError(f"{where}.box", "needs x_min <= x_max and y_min <= y_max")
            _unit(d.confidence, f"{where}.confidence")
            _attributes(task, d.attributes, f"{where}.attributes")
            _missing(task, d.attributes, f"{where}.attributes")
    else:
        kps = output.landmark.keypoints
        wanted = list(task.keypoint_names)
        names = [k.name for k in kps]
        for i, k in enumerate(kps):
            if k.name not in wanted:
                raise SchemaError(f"{field}.landmark.keypoints[{i}].name", f"{k.name!r} is not one of {', '.join(wanted)}")
            if k.visible:
                _unit(k.x, f"{field}.landmark.keypoints[{i}].x")
                _unit(k.y, f"{field}.landmark.keypoints[{i}].y")
        if sorted(names) != sorted(wanted):
            missing = sorted(set(wanted) - set(names))
            raise SchemaError(f"{field}.landmark.keypoints", f"needs each keypoint exactly once; missing {missing}" if missing else "duplicate keypoints")


def _missing(task: L.Task, attributes, field: str) -> None:
    """Every declared attribute must be filled in (a label is a complete answer)."""
    for a in task.attributes:
        if a.name not in attributes:
            raise SchemaError(f"{field}.{a.name}", "missing")
