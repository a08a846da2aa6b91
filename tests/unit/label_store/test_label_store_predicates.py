"""Suite predicates, table-driven: the trigger language over one prediction."""

import pytest

from longtail.common.v1 import common_pb2 as C
from longtail.triggerlang.predicates import PredicateError, as_frame, compile_predicate, evaluate


def detection(*objects) -> C.TaskPrediction:
    p = C.TaskPrediction(task="stop_sign", prototype=C.TASK_PROTOTYPE_DETECTION, output=C.TaskOutput(detection=C.DetectionOutput()))
    for cls, conf, attrs in objects:
        d = p.output.detection.detections.add(cls=cls, confidence=conf, box=C.BoundingBox(x_min=0.4, y_min=0.3, x_max=0.5, y_max=0.45))
        d.attributes.update(attrs)
    return p


OCCLUDED_RT = {"occlusion": "foliage", "modifier": "except_right_turn", "occluded": "true"}
PLAIN = {"occlusion": "none", "modifier": "none", "occluded": "false"}
THE_ISSUE = "any(d.cls == stop_sign and d.attr.occluded and d.conf >= 0.5 and d.attr.modifier == except_right_turn)"

CASES = [
    # (predicate, prediction, expected)
    (THE_ISSUE, detection(("stop_sign", 0.9, OCCLUDED_RT)), True),
    (THE_ISSUE, detection(("stop_sign", 0.5, OCCLUDED_RT)), True),  # >= is inclusive at the boundary
    (THE_ISSUE, detection(("stop_sign", 0.4999, OCCLUDED_RT)), False),  # just below
    (THE_ISSUE, detection(("stop_sign", 0.9, {**OCCLUDED_RT, "occluded": "false"})), False),
    (THE_ISSUE, detection(("stop_sign", 0.9, {**OCCLUDED_RT, "modifier": "none"})), False),
    (THE_ISSUE, detection(("stop_sign", 0.9, {"occluded": "true"})), False),  # attribute missing = ""
    (THE_ISSUE, detection(("red_round_sign", 0.9, OCCLUDED_RT)), False),  # wrong class
    (THE_ISSUE, detection(), False),  # nothing detected
    (THE_ISSUE, detection(("stop_sign", 0.9, PLAIN), ("stop_sign", 0.8, OCCLUDED_RT)), True),  # any of several
    ("not any(stop_sign)", detection(), True),  # "must not detect"
    ("not any(stop_sign)", detection(("stop_sign", 0.2, PLAIN)), False),
    ("not any(stop_sign, min_conf=0.5)", detection(("stop_sign", 0.2, PLAIN)), True),
    ("count(stop_sign, min_conf=0.5) == 2", detection(("stop_sign", 0.6, PLAIN), ("stop_sign", 0.7, PLAIN)), True),
    ("count(stop_sign, min_conf=0.5) == 2", detection(("stop_sign", 0.6, PLAIN), ("stop_sign", 0.4, PLAIN)), False),
    ("all(d.conf > 0.5)", detection(), True),  # vacuous truth
    ("any(d.attr.occlusion == foliage)", detection(("stop_sign", 0.9, OCCLUDED_RT)), True),
    ("any(d.attr.occlusion == 'foliage')", detection(("stop_sign", 0.9, PLAIN)), False),
    ("any(d.cls == stop_sign and d.cx > 0.4 and d.cy < 0.5)", detection(("stop_sign", 0.9, PLAIN)), True),  # box geometry
    ("any(d.range < 20)", detection(("stop_sign", 0.9, PLAIN)), False),  # unknown range: comparisons false
]


@pytest.mark.parametrize("predicate,prediction,expected", CASES)
def test_predicate_table(predicate, prediction, expected):
    assert evaluate(predicate, prediction).passed is expected


def test_classification_is_one_pseudo_detection():
    p = C.TaskPrediction(task="light", output=C.TaskOutput(classification=C.ClassificationOutput(cls="red", probabilities={"red": 0.55, "green": 0.45}, attributes={"arrow": "left"})))
    assert evaluate("any(d.cls == red and d.conf > 0.5 and d.attr.arrow == left)", p).passed
    assert not evaluate("any(d.cls == red and d.conf > 0.6)", p).passed
    assert evaluate("margin(red) < 0.2", p).passed  # class distribution feeds the uncertainty built-ins
    [d] = as_frame(p).detections
    assert d.class_scores["green"] == pytest.approx(0.45)


def test_landmark_keypoints_are_detections_at_their_position():
    p = C.TaskPrediction(task="pole", output=C.TaskOutput(landmark=C.LandmarkOutput()))
    p.output.landmark.keypoints.add(name="pole_base", x=0.3, y=0.8, visible=True, confidence=0.9)
    p.output.landmark.keypoints.add(name="pole_top", x=0.3, y=0.2, visible=False, confidence=0.9)
    assert evaluate("any(d.cls == pole_base and d.attr.visible and d.cy > 0.7)", p).passed
    assert not evaluate("any(d.cls == pole_top and d.attr.visible)", p).passed


def test_missing_prediction_fails_with_a_reason():
    outcome = evaluate("any(stop_sign)", None)
    assert not outcome.passed and "no prediction" in outcome.detail


def test_failing_detail_says_what_was_predicted():
    outcome = evaluate(THE_ISSUE, detection(("stop_sign", 0.42, PLAIN)))
    assert not outcome.passed
    assert "stop_sign conf=0.42" in outcome.detail and "occlusion=none" in outcome.detail


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ("any(d.cls == stop_sign and)", "line 1"),
        ("flicker(stop_sign, window=10, min_toggles=3)", "flicker"),
        ("map_disagreement(stop_sign, kind=missing)", "map_disagreement"),
        ('score("det@1") > 0.5', "score"),
        ("   ", "empty"),
        ("any(d.colour == red)", "colour"),
    ],
)
def test_bad_predicates_are_refused(bad, fragment):
    with pytest.raises(PredicateError) as err:
        compile_predicate(bad)
    text = f"line {err.value.line} {err.value}"
    assert fragment in text
