"""longtail.shadow: one definition of "the candidate disagrees with production" for cars and trainer."""

from __future__ import annotations

from longtail import shadow
from longtail.fleet.v1 import fleet_pb2 as F
from longtail.tasks import TaskSpec

STOP = TaskSpec("stop_sign", "detection", ("stop_sign",), attributes={"occlusion": ("none", "foliage")})
LIGHT = TaskSpec("light_state", "classification", ("red", "green"))


def det(conf, box=(0.1, 0.1, 0.3, 0.3), cls="stop_sign", occlusion="none"):
    return {
        "cls": cls,
        "confidence": conf,
        "presence": conf,
        "box": box,
        "attributes": {"occlusion": occlusion},
        "attribute_scores": {"occlusion": 0.9},
        "class_scores": {cls: conf, "background": 1 - conf},
        "bearing_rad": 0.1,
        "range_m": 12.0,
    }


def cls_out(cls):
    return {"cls": cls, "confidence": 0.8, "probabilities": {cls: 0.8}, "attributes": {}, "attribute_scores": {}}


def kinds(prod, cand, tasks=(STOP,)):
    return [(task, shadow.kind_name(d)) for task, d in shadow.differences(tasks, prod, cand)]


def test_agreeing_outputs_have_no_difference():
    assert kinds({"stop_sign": det(0.9)}, {"stop_sign": det(0.8)}) == []
    assert kinds({"stop_sign": det(0.2)}, {"stop_sign": det(0.4)}) == []  # neither detects


def test_each_kind_of_difference():
    assert kinds({"stop_sign": det(0.9)}, {"stop_sign": det(0.2)}) == [("stop_sign", "SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE")]
    assert kinds({"stop_sign": det(0.2)}, {"stop_sign": det(0.9)}) == [("stop_sign", "SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE")]
    assert kinds({"stop_sign": det(0.9)}, {"stop_sign": det(0.9, occlusion="foliage")}) == [("stop_sign", "SHADOW_DIFFERENCE_KIND_ATTRIBUTE_CHANGED")]
    assert kinds({"stop_sign": det(0.9)}, {"stop_sign": det(0.9, box=(0.6, 0.6, 0.9, 0.9))}) == [("stop_sign", "SHADOW_DIFFERENCE_KIND_LOCALIZATION")]
    assert kinds({"light_state": cls_out("red")}, {"light_state": cls_out("green")}, (LIGHT,)) == [("light_state", "SHADOW_DIFFERENCE_KIND_CLASS_CHANGED")]


def test_differences_carry_the_detections_and_iou():
    [(task, d)] = shadow.differences([STOP], {"stop_sign": det(0.9)}, {"stop_sign": det(0.9, occlusion="foliage")})
    assert d.attribute == "occlusion" and d.iou == 1.0
    assert d.production.attributes["occlusion"] == "none" and d.candidate.attributes["occlusion"] == "foliage"
    [(_, missed)] = shadow.differences([STOP], {"stop_sign": det(0.9)}, {"stop_sign": det(0.1)})
    assert missed.HasField("production") and not missed.HasField("candidate")
    assert shadow.difference_class(missed) == "stop_sign"


def test_tasks_only_one_model_has_are_skipped():
    assert kinds({"stop_sign": det(0.9)}, {}) == []
    assert isinstance(shadow.differences([STOP], {"stop_sign": det(0.9)}, {"stop_sign": det(0.1)})[0][1], F.ShadowDifference)
