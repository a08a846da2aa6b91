"""Shadow mode: where a candidate model disagrees with production on one image.

One definition for the cars (which report `ShadowDisagreement`s to the gateway) and for the
trainer's offline `CompareModels`, so fleet evidence and offline comparisons count the same
things: per task, detected by one and not the other (confidence >= 0.5), class changed,
attribute changed, or matched boxes with IoU < 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from longtail import predictions as predictions_mod
from longtail import tasks as tasks_mod
from longtail.fleet.v1 import fleet_pb2

DETECTED = 0.5  # confidence at which a detection counts as "seen"
MIN_IOU = 0.5

K = fleet_pb2


def shared_tasks(production: Iterable[tasks_mod.TaskSpec], candidate: Iterable[tasks_mod.TaskSpec]) -> list[tasks_mod.TaskSpec]:
    """The candidate's tasks that production has too (same name and prototype): the ones compared."""
    prototypes = {t.name: t.prototype for t in production}
    return [t for t in candidate if prototypes.get(t.name) == t.prototype]


def differences(tasks: Iterable[tasks_mod.TaskSpec], production: Mapping[str, Mapping[str, Any]], candidate: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, fleet_pb2.ShadowDifference]]:
    """(task, difference) for every task both models have (two `postprocess` outputs of one image)."""
    out = []
    for t in tasks:
        p, c = production.get(t.name), candidate.get(t.name)
        if p is None or c is None or t.prototype not in ("detection", "classification"):
            continue
        seen_p = t.prototype == "classification" or p["confidence"] >= DETECTED
        seen_c = t.prototype == "classification" or c["confidence"] >= DETECTED
        diff = fleet_pb2.ShadowDifference()
        if seen_p and not seen_c:
            diff.kind = K.SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE
        elif seen_c and not seen_p:
            diff.kind = K.SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE
        elif seen_p and seen_c:
            changed = sorted(k for k in {*p["attributes"], *c["attributes"]} if p["attributes"].get(k) != c["attributes"].get(k))
            if t.prototype == "detection":
                diff.iou = predictions_mod.box_iou(p["box"], c["box"])
            if p["cls"] != c["cls"]:
                diff.kind = K.SHADOW_DIFFERENCE_KIND_CLASS_CHANGED
            elif changed:
                diff.kind, diff.attribute = K.SHADOW_DIFFERENCE_KIND_ATTRIBUTE_CHANGED, changed[0]
            elif t.prototype == "detection" and diff.iou < MIN_IOU:
                diff.kind = K.SHADOW_DIFFERENCE_KIND_LOCALIZATION
        if diff.kind == K.SHADOW_DIFFERENCE_KIND_UNSPECIFIED:
            continue
        if seen_p:
            diff.production.CopyFrom(predictions_mod.detection(p))
        if seen_c:
            diff.candidate.CopyFrom(predictions_mod.detection(c))
        out.append((t.name, diff))
    return out


def kind_name(diff: fleet_pb2.ShadowDifference) -> str:
    return fleet_pb2.ShadowDifferenceKind.Name(diff.kind)


def difference_class(diff: fleet_pb2.ShadowDifference) -> str:
    """The class a difference is about: the candidate's, or production's when the candidate missed it."""
    return diff.candidate.cls if diff.HasField("candidate") else diff.production.cls
