"""Suite-case predicates: the longtail expression language (docs/triggers.md) evaluated over a
model's prediction for one task on one sample.

The trigger engine is reused on purpose: one parser, one type checker, one set of semantics for
"stop sign with occlusion=foliage and confidence >= 0.5" whether it selects frames on a car or
certifies a model. A prediction is presented to it as a single frame whose detections are:

- detection: the predicted objects, as they are;
- classification: one pseudo-detection with `cls`, `conf` = probability of `cls`, the
  attributes, attribute scores and the class distribution (so `entropy`/`margin` work), no box;
- landmark: one pseudo-detection per keypoint: `cls` = keypoint name, `conf` = its confidence,
  a zero-size box at (x, y) (so `d.cx`, `d.cy` are the position), attribute `visible`.

Only per-frame built-ins make sense for one prediction (`Builtin.frame_only` in the catalogue):
temporal ones (flicker, sustained, ...), map_disagreement and custom-detector scores are
rejected when the case is created.

    any(d.cls == stop_sign and d.attr.occlusion == foliage and d.conf >= 0.5
        and d.attr.modifier == except_right_turn)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import fleet_pb2
from longtail.triggerlang.catalogue import BUILTINS
from longtail.triggerlang.errors import TriggerSyntaxError
from longtail.triggerlang.parser import MAX_SOURCE_BYTES
from longtail.triggerlang.runtime import CompiledTrigger, compile_trigger

MAX_PREDICATE_BYTES = MAX_SOURCE_BYTES
FRAME_ONLY = frozenset(name for name, builtin in BUILTINS.items() if builtin.frame_only)


class PredicateError(ValueError):
    """A predicate that does not compile or uses a built-in that needs more than one frame."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str


@functools.lru_cache(maxsize=4096)
def compile_predicate(source: str) -> CompiledTrigger:
    if not source.strip():
        raise PredicateError("empty predicate")
    if len(source.encode()) > MAX_PREDICATE_BYTES:
        raise PredicateError(f"predicate longer than {MAX_PREDICATE_BYTES} bytes")
    try:
        compiled = compile_trigger(source)
    except TriggerSyntaxError as exc:
        raise PredicateError(exc.message, exc.line, exc.column) from None
    used = {call.split("(", 1)[0] for call in compiled.calls}
    bad = sorted(used - FRAME_ONLY)
    if bad or compiled.state_items:
        raise PredicateError(f"{', '.join(bad) or 'temporal built-ins'} cannot be used in a suite predicate: it judges one prediction, not a sequence of frames")
    return compiled


def as_frame(prediction: C.TaskPrediction) -> fleet_pb2.Frame:
    frame = fleet_pb2.Frame(frame_id="case", vehicle_id="case")
    kind = prediction.output.WhichOneof("value")
    if kind == "detection":
        frame.detections.extend(prediction.output.detection.detections)
    elif kind == "classification":
        c = prediction.output.classification
        d = frame.detections.add(cls=c.cls, confidence=c.probabilities.get(c.cls, 1.0 if not c.probabilities else 0.0))
        d.attributes.update(c.attributes)
        d.attribute_scores.update(c.attribute_scores)
        d.class_scores.update(c.probabilities)
    elif kind == "landmark":
        for k in prediction.output.landmark.keypoints:
            d = frame.detections.add(cls=k.name, confidence=k.confidence)
            d.box.x_min = d.box.x_max = k.x
            d.box.y_min = d.box.y_max = k.y
            d.attributes["visible"] = "true" if k.visible else "false"
    return frame


def describe(prediction: C.TaskPrediction | None) -> str:
    """What the model predicted, short enough for a failing case's detail."""
    if prediction is None:
        return "no prediction"
    parts = []
    for d in as_frame(prediction).detections[:5]:
        attrs = ",".join(f"{k}={v}" for k, v in sorted(d.attributes.items()))
        parts.append(f"{d.cls} conf={d.confidence:.2f}" + (f" [{attrs}]" if attrs else ""))
    more = len(as_frame(prediction).detections) - 5
    return "; ".join(parts) + (f"; +{more} more" if more > 0 else "") if parts else "nothing predicted"


def evaluate(source: str, prediction: C.TaskPrediction | None) -> Outcome:
    """Does `prediction` satisfy the predicate? A missing prediction fails the case."""
    compiled = compile_predicate(source)
    if prediction is None:
        return Outcome(False, "no prediction for this sample")
    value = compiled.step(compiled.new_state(), as_frame(prediction))
    if value:
        return Outcome(True, "")
    return Outcome(False, f"predicate false; predicted: {describe(prediction)}")


def label_matches(source: str, task: str, annotation: C.TaskOutput) -> bool:
    """Does a label satisfy the predicate? The label is presented as a prediction whose objects are
    certain (confidence 1), so "is this sample a positive of the task" reads like a suite case."""
    prediction = C.TaskPrediction(task=task)
    prediction.output.CopyFrom(annotation)
    if prediction.output.WhichOneof("value") == "detection":
        for d in prediction.output.detection.detections:
            d.confidence = d.confidence or 1.0
    elif prediction.output.WhichOneof("value") == "classification":
        c = prediction.output.classification
        if c.cls and not c.probabilities:
            c.probabilities[c.cls] = 1.0
    return evaluate(source, prediction).passed
