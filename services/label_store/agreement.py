"""When do two labels of the same sample and task agree? Used to record disagreement between
labellers and to resolve it by strict majority.

- classification: same class and same attributes;
- detection: the objects pair up one to one (same class, box IoU >= 0.5) with the same attributes;
- landmark: every keypoint has the same visibility and, when visible, lies within 0.05 (image
  fraction) on both axes.
"""

from __future__ import annotations

from collections.abc import Sequence

from longtail.common.v1 import common_pb2 as C

MIN_IOU = 0.5
KEYPOINT_TOLERANCE = 0.05


def iou(a: C.BoundingBox, b: C.BoundingBox) -> float:
    w = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
    h = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a.x_max - a.x_min) * (a.y_max - a.y_min) + (b.x_max - b.x_min) * (b.y_max - b.y_min) - inter
    return inter / union if union > 0 else 0.0


def agree(a: C.TaskOutput, b: C.TaskOutput) -> bool:
    kind = a.WhichOneof("value")
    if kind != b.WhichOneof("value"):
        return False
    if kind == "classification":
        return a.classification.cls == b.classification.cls and dict(a.classification.attributes) == dict(b.classification.attributes)
    if kind == "detection":
        left, right = list(a.detection.detections), list(b.detection.detections)
        if len(left) != len(right):
            return False
        unmatched = list(range(len(right)))
        for d in left:  # greedy best-IoU matching is enough for the small object counts per frame
            best, best_iou = None, MIN_IOU
            for j in unmatched:
                e = right[j]
                if e.cls == d.cls and dict(e.attributes) == dict(d.attributes):
                    overlap = iou(d.box, e.box)
                    if overlap >= best_iou:
                        best, best_iou = j, overlap
            if best is None:
                return False
            unmatched.remove(best)
        return True
    if kind == "landmark":
        ka = {k.name: k for k in a.landmark.keypoints}
        kb = {k.name: k for k in b.landmark.keypoints}
        if ka.keys() != kb.keys():
            return False
        for name, p in ka.items():
            q = kb[name]
            if p.visible != q.visible:
                return False
            if p.visible and (abs(p.x - q.x) > KEYPOINT_TOLERANCE or abs(p.y - q.y) > KEYPOINT_TOLERANCE):
                return False
        return True
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def majority(outputs: Sequence[C.TaskOutput]) -> tuple[int | None, bool]:
    """(index of a label the strict majority agrees with or None, whether any two disagree)."""
    groups: list[list[int]] = []
    for i, out in enumerate(outputs):
        for group in groups:
            if agree(outputs[group[0]], out):
                group.append(i)
                break
        else:
            groups.append([i])
    disagreement = len(groups) > 1
    largest = max(groups, key=len) if groups else []
    if largest and 2 * len(largest) > len(outputs):
        return largest[0], disagreement
    return None, disagreement
