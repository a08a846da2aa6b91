"""A task's schema as a Label Studio config, and Label Studio's results as the label store's
annotations: what a labeller draws arrives with its class, box and every attribute, and what
cannot be read is refused with the reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from studio_bridge.labelling_config import UnsupportedTask, fingerprint, labelling_config
from studio_bridge.results import AnnotationError, annotation, prediction


def stop_sign() -> L.Task:
    task = L.Task(name="stop_sign", prototype=C.TASK_PROTOTYPE_DETECTION, classes=["stop_sign"])
    task.attributes.add(name="occlusion", values=["none", "foliage"])
    task.attributes.add(name="temporary", values=["false", "true"])
    return task


def box(region: str, x: float, y: float, w: float, h: float, cls: str = "stop_sign", **more) -> dict:
    return {"id": region, "from_name": "box", "to_name": "image", "type": "rectanglelabels", "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [cls], **more}}


def choice(region: str, name: str, value: str) -> dict:
    return {"id": region, "from_name": name, "to_name": "image", "type": "choices", "value": {"x": 1, "y": 1, "width": 1, "height": 1, "choices": [value]}}


def test_a_detection_config_has_the_classes_and_every_attribute_per_region():
    root = ET.fromstring(labelling_config(stop_sign()))
    rect = root.find("RectangleLabels")
    assert rect is not None and [label.get("value") for label in rect] == ["stop_sign"]
    choices = {c.get("name"): c for c in root.findall("Choices")}
    assert set(choices) == {"occlusion", "temporary"}
    assert all(c.get("perRegion") == "true" and c.get("required") == "true" for c in choices.values())
    assert [c.get("value") for c in choices["occlusion"]] == ["none", "foliage"]


def test_classification_and_landmark_configs():
    cls = L.Task(name="weather", prototype=C.TASK_PROTOTYPE_CLASSIFICATION, classes=["dry", "wet"])
    root = ET.fromstring(labelling_config(cls))
    assert [c.get("value") for c in root.find("Choices")] == ["dry", "wet"]
    lm = L.Task(name="pole", prototype=C.TASK_PROTOTYPE_LANDMARK, keypoint_names=["base", "top"])
    assert [k.get("value") for k in ET.fromstring(labelling_config(lm)).find("KeyPointLabels")] == ["base", "top"]


def test_a_task_the_bridge_cannot_show_is_refused_with_the_reason():
    with pytest.raises(UnsupportedTask, match="SEGMENTATION"):
        labelling_config(L.Task(name="road", prototype=C.TASK_PROTOTYPE_SEGMENTATION, classes=["road"]))
    clash = stop_sign()
    clash.attributes.add(name="box", values=["a"])
    with pytest.raises(UnsupportedTask, match="reserved"):
        labelling_config(clash)


def test_the_fingerprint_ignores_whitespace_only():
    config = labelling_config(stop_sign())
    assert fingerprint(config) == fingerprint(config.replace("\n", "\n   "))
    assert fingerprint(config) != fingerprint(config.replace("foliage", "snow"))


def test_boxes_and_their_attributes_become_detections():
    results = [box("a", 10, 20, 30, 40), choice("a", "occlusion", "foliage"), choice("a", "temporary", "true"), box("b", 50, 50, 50, 50.4), choice("b", "occlusion", "none"), choice("b", "temporary", "false")]
    out = annotation(stop_sign(), results)
    first, second = out.detection.detections
    assert first.cls == "stop_sign" and dict(first.attributes) == {"occlusion": "foliage", "temporary": "true"} and first.confidence == 1.0
    assert first.box.x_min == pytest.approx(0.1) and first.box.y_max == pytest.approx(0.6)
    assert second.box.y_max == 1.0  # rounding at the image's edge is clamped
    assert dict(second.attributes) == {"occlusion": "none", "temporary": "false"}


def test_no_box_is_the_answer_nothing_there():
    out = annotation(stop_sign(), [])
    assert out.WhichOneof("value") == "detection" and not out.detection.detections


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        ("not a list", "expected a list of regions"),
        ([box("a", 10, 10, 10, 10, rotation=30)], "rotated boxes are not supported"),
        ([box("a", 10, 150, 10, 10)], "outside the image"),
        ([box("a", "ten", 10, 10, 10)], "is not a number"),
        ([{**box("a", 1, 1, 1, 1), "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["stop_sign", "yield"]}}], "exactly one value"),
        ([{"id": "a", "from_name": "weather", "type": "choices", "value": {"choices": ["wet"]}}], "'weather' is not in task stop_sign's config"),
    ],
)
def test_what_cannot_be_a_label_is_refused_with_the_reason(results, reason):
    with pytest.raises(AnnotationError, match=reason):
        annotation(stop_sign(), results)


def test_a_pre_label_becomes_a_prediction_in_label_studio_units():
    pre = C.TaskPrediction(task="stop_sign", prototype=C.TASK_PROTOTYPE_DETECTION)
    d = pre.output.detection.detections.add(cls="stop_sign", confidence=0.4, box=C.BoundingBox(x_min=0.1, y_min=0.2, x_max=0.3, y_max=0.5))
    d.attributes["occlusion"] = "foliage"
    d.attributes["temporary"] = "maybe"  # not a value of the schema: left for the labeller
    shown = prediction(stop_sign(), pre, C.ModelRef(name="multitask", version=7))
    assert shown["model_version"] == "multitask:7" and shown["score"] == pytest.approx(0.4)
    rect, occlusion = shown["result"]
    assert rect["value"]["x"] == pytest.approx(10) and rect["value"]["height"] == pytest.approx(30) and rect["value"]["rectanglelabels"] == ["stop_sign"]
    assert occlusion["id"] == rect["id"] and occlusion["value"]["choices"] == ["foliage"]
    # and read back as an annotation, the prediction is the same box
    back = annotation(stop_sign(), [rect, occlusion, {**occlusion, "from_name": "temporary", "value": {**occlusion["value"], "choices": ["false"]}}])
    assert back.detection.detections[0].box.x_max == pytest.approx(0.3)
