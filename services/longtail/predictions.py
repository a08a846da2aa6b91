"""The network's post-processed outputs (`longtail.model.postprocess.postprocess`) as the contracts carry them:
`common.v1.Detection`s and `common.v1.TaskPrediction`s with their uncertainty. Torch-free: the
inference service, the trainer, shadow mode and the simulated cars share these rules.

Uncertainty (what the label store ranks its queues by):
- classification: entropy (nats) and margin (top-1 minus top-2) of the class distribution;
- detection: the same over the task's class scores including "background" (1 - presence), so a
  stop sign the model is unsure exists (presence 0.5) is as uncertain as it gets;
- landmark: the largest binary entropy and the smallest margin |2p - 1| of the keypoints'
  visibility probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from longtail.common.v1 import common_pb2
from longtail.tasks import TaskSpec

MIN_DETECTION_CONFIDENCE = 0.25  # as on the cars: low-confidence instances stay visible to labellers
PROTOTYPES = {
    "classification": common_pb2.TASK_PROTOTYPE_CLASSIFICATION,
    "detection": common_pb2.TASK_PROTOTYPE_DETECTION,
    "landmark": common_pb2.TASK_PROTOTYPE_LANDMARK,
}


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def to_detections(outputs: Mapping[str, Mapping[str, Any]], min_confidence: float = 0.25) -> list[common_pb2.Detection]:
    """One image's `postprocess` output -> `Detection`s for its detection tasks whose confidence
    is at least `min_confidence` (at most one per detection task: the most salient instance).
    Low-confidence detections are kept on purpose (default 0.25) so that uncertainty triggers
    see them; treat confidence >= 0.5 as "detected"."""
    return [detection(out) for out in outputs.values() if "presence" in out and out["confidence"] >= min_confidence]


def detection(out: Mapping[str, Any]) -> common_pb2.Detection:
    """One task's `postprocess` output as a `Detection` (a classification output has no box)."""
    det = common_pb2.Detection(cls=out["cls"], confidence=float(out["confidence"]))
    if "box" in out:
        b = out["box"]
        det.box.CopyFrom(common_pb2.BoundingBox(x_min=b[0], y_min=b[1], x_max=b[2], y_max=b[3]))
    for k, v in out["attributes"].items():
        det.attributes[k] = v
        det.attribute_scores[k] = float(out["attribute_scores"][k])
    for c, p in (out.get("class_scores") or out.get("probabilities") or {}).items():
        det.class_scores[c] = float(p)
    if out.get("range_m") is not None:
        det.range_m = float(out["range_m"])
    if "bearing_rad" in out:
        det.bearing_rad = float(out["bearing_rad"])
    return det


def entropy_margin(probabilities: Iterable[float]) -> tuple[float, float]:
    """(Shannon entropy in nats, top-1 minus top-2) of a distribution."""
    p = np.clip(np.asarray(list(probabilities), dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        return 0.0, 1.0
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    top = np.sort(p)[::-1]
    margin = float(top[0] - (top[1] if top.size > 1 else 0.0))
    return max(entropy, 0.0), min(max(margin, 0.0), 1.0)


def _binary(p: float) -> tuple[float, float]:
    return entropy_margin((p, 1.0 - p))


def task_prediction(task: TaskSpec, out: Mapping[str, Any], min_confidence: float = MIN_DETECTION_CONFIDENCE) -> common_pb2.TaskPrediction:
    """One task's `longtail.model.postprocess.postprocess` output -> a TaskPrediction with uncertainty."""
    pred = common_pb2.TaskPrediction(task=task.name, prototype=PROTOTYPES[task.prototype])
    if task.prototype == "detection":
        pred.output.detection.detections.extend(to_detections({task.name: out}, min_confidence))
        entropy, margin = entropy_margin(out["class_scores"].values())
    elif task.prototype == "classification":
        c = pred.output.classification
        c.cls = out["cls"]
        for name, p in out["probabilities"].items():
            c.probabilities[name] = float(p)
        for k, v in out["attributes"].items():
            c.attributes[k] = v
            c.attribute_scores[k] = float(out["attribute_scores"][k])
        entropy, margin = entropy_margin(out["probabilities"].values())
    else:
        entropy, margin = 0.0, 1.0
        for name, x, y, p in out["keypoints"]:
            pred.output.landmark.keypoints.add(name=name, x=x, y=y, visible=p >= 0.5, confidence=max(p, 1.0 - p))
            e, m = _binary(p)
            entropy, margin = max(entropy, e), min(margin, m)
    if not (math.isfinite(entropy) and math.isfinite(margin)):
        raise ValueError(f"{task.name}: non-finite uncertainty")
    pred.uncertainty.entropy = entropy
    pred.uncertainty.margin = margin
    return pred


def predictions(tasks: Sequence[TaskSpec], outputs: Mapping[str, Mapping[str, Any]], only: Iterable[str] = ()) -> dict[str, common_pb2.TaskPrediction]:
    """One image's post-processed outputs -> {task: TaskPrediction} (all tasks, or `only`)."""
    wanted = set(only)
    return {t.name: task_prediction(t, outputs[t.name]) for t in tasks if not wanted or t.name in wanted}
