"""Label schemas: a label that does not fit its task is refused, naming the field."""

import pytest
from label_store_helpers import stop_sign

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.tasks import TaskSpec

from label_store.agreement import agree, majority
from label_store.schema import MAX_ANNOTATION_BYTES, SchemaError, default_tasks, validate_annotation, validate_task

STOP = {t.name: t for t in default_tasks()}["stop_sign"]
LIGHT_CLS = L.Task(name="light_state", prototype=C.TASK_PROTOTYPE_CLASSIFICATION, classes=["red", "yellow", "green"], attributes=[L.AttributeSpec(name="arrow", values=["none", "left"])])
POLE = L.Task(name="pole", prototype=C.TASK_PROTOTYPE_LANDMARK, keypoint_names=["base", "top"])


def field_of(task, output):
    with pytest.raises(SchemaError) as err:
        validate_annotation(task, output)
    return err.value.field


def test_default_tasks_match_the_shared_model():
    assert TaskSpec.from_proto(STOP).attributes["occlusion"] == ("none", "foliage")


def test_valid_labels_pass():
    validate_annotation(STOP, stop_sign("foliage"))
    validate_annotation(STOP, C.TaskOutput(detection=C.DetectionOutput()))  # "nothing there" is a label
    validate_annotation(LIGHT_CLS, C.TaskOutput(classification=C.ClassificationOutput(cls="red", attributes={"arrow": "none"})))
    out = C.TaskOutput(landmark=C.LandmarkOutput())
    out.landmark.keypoints.add(name="base", x=0.5, y=0.9, visible=True)
    out.landmark.keypoints.add(name="top", visible=False)
    validate_annotation(POLE, out)


def test_detection_errors_name_the_field():
    bad = stop_sign("leaves")
    assert field_of(STOP, bad) == "label.annotation.detection.detections[0].attributes.occlusion"
    bad = stop_sign()
    del bad.detection.detections[0].attributes["mount"]
    assert field_of(STOP, bad) == "label.annotation.detection.detections[0].attributes.mount"
    bad = stop_sign()
    bad.detection.detections[0].attributes["colour"] = "red"
    assert field_of(STOP, bad) == "label.annotation.detection.detections[0].attributes.colour"
    bad = stop_sign()
    bad.detection.detections.add().CopyFrom(bad.detection.detections[0])
    bad.detection.detections[1].cls = "traffic_light"
    assert field_of(STOP, bad) == "label.annotation.detection.detections[1].cls"
    assert field_of(STOP, stop_sign(box=(0.5, 0.1, 0.2, 0.3))) == "label.annotation.detection.detections[0].box"
    assert field_of(STOP, stop_sign(box=(0.1, 0.1, 1.5, 0.3))) == "label.annotation.detection.detections[0].box.x_max"
    assert field_of(STOP, stop_sign(box=(0.1, 0.1, float("nan"), 0.3))) == "label.annotation.detection.detections[0].box.x_max"


def test_prototype_mismatch_and_empty():
    assert field_of(STOP, C.TaskOutput(classification=C.ClassificationOutput(cls="stop_sign"))) == "label.annotation.classification"
    assert field_of(STOP, C.TaskOutput()) == "label.annotation"
    assert field_of(LIGHT_CLS, C.TaskOutput(classification=C.ClassificationOutput(cls="blue", attributes={"arrow": "none"}))) == "label.annotation.classification.cls"


def test_landmark_needs_every_keypoint_once():
    out = C.TaskOutput(landmark=C.LandmarkOutput())
    out.landmark.keypoints.add(name="base", x=0.5, y=0.9, visible=True)
    assert field_of(POLE, out) == "label.annotation.landmark.keypoints"
    out.landmark.keypoints.add(name="tip", visible=False)
    assert field_of(POLE, out) == "label.annotation.landmark.keypoints[1].name"


def test_oversize_annotation_is_refused():
    big = C.TaskOutput(classification=C.ClassificationOutput(cls="red", attributes={"arrow": "x" * (MAX_ANNOTATION_BYTES + 1)}))
    with pytest.raises(SchemaError, match="exceeds the limit"):
        validate_annotation(LIGHT_CLS, big)


@pytest.mark.parametrize(
    "task,field",
    [
        (L.Task(name="Stop Sign", prototype=C.TASK_PROTOTYPE_DETECTION, classes=["x"]), "task.name"),
        (L.Task(name="seg", prototype=C.TASK_PROTOTYPE_SEGMENTATION, classes=["x"]), "task.prototype"),
        (L.Task(name="det", prototype=C.TASK_PROTOTYPE_DETECTION), "task.classes"),
        (L.Task(name="cls", prototype=C.TASK_PROTOTYPE_CLASSIFICATION, classes=["only"]), "task.classes"),
        (L.Task(name="lm", prototype=C.TASK_PROTOTYPE_LANDMARK), "task.keypoint_names"),
        (L.Task(name="det", prototype=C.TASK_PROTOTYPE_DETECTION, classes=["x"], attributes=[L.AttributeSpec(name="a", values=["1", "1"])]), "task.attributes[0].values"),
    ],
)
def test_bad_task_declarations(task, field):
    with pytest.raises(SchemaError) as err:
        validate_task(task)
    assert err.value.field == field


def test_agreement_rules():
    assert agree(stop_sign(), stop_sign(box=(0.11, 0.1, 0.31, 0.3)))  # IoU well above 0.5
    assert not agree(stop_sign(), stop_sign(box=(0.25, 0.25, 0.45, 0.45)))  # boxes barely overlap
    assert not agree(stop_sign(), stop_sign("foliage"))  # attribute differs
    assert not agree(stop_sign(), C.TaskOutput(detection=C.DetectionOutput()))  # one missed it
    assert majority([stop_sign(), stop_sign("foliage"), stop_sign()]) == (0, True)
    assert majority([stop_sign(), stop_sign("foliage")]) == (None, True)
    assert majority([stop_sign(), stop_sign()]) == (0, False)
