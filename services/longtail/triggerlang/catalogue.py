"""What the trigger language offers, declared once: the built-ins (parameters, types, docs and
what each needs), the fields of `d`, `ego` and `first_seen(...)`, the resource limits, and the
per-detection helpers both evaluation backends share.

The compiler binds and type-checks calls from `BUILTINS`, the column backend (`vector.py`) reads
the same fields and helpers, suite predicates (`predicates.py`) accept the built-ins flagged
`frame_only`, and `longtail triggers explain` prints their summaries. docs/triggers.md documents
every entry (tests/unit/triggerlang/test_triggerlang_catalogue.py keeps them in step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from longtail.common.v1.common_pb2 import Detection

NAN = float("nan")
INF = float("inf")

# Resource limits (see docs/triggers.md, "Limits").
MAX_WINDOW = 1000  # frames, for every window/frames argument
MAX_TRACKS = 64  # tracks remembered per track-based built-in (least recently seen evicted)
MAX_TEMPORAL = 16  # temporal built-ins per expression
MAX_STATE_ITEMS = 16384  # upper bound of values kept per car, all temporal built-ins together

# Types of expressions
BOOL, NUM, STR, ATTR, DET, EGO, FIRST, LIST = "bool", "num", "str", "attr", "det", "ego", "first_seen", "list"

TYPE_TEXT = {
    BOOL: "a boolean",
    NUM: "a number",
    STR: "a string",
    ATTR: "an attribute value",
    DET: "the detection 'd'",
    EGO: "'ego'",
    FIRST: "a first_seen(...) result",
    LIST: "a list",
}

# ---------------------------------------------------------------------------------------------
# Per-detection helpers (the same code on both backends, so their results agree exactly)
# ---------------------------------------------------------------------------------------------

FALSY_ATTRIBUTE_VALUES = frozenset({"", "false", "0", "no", "none", "off"})


def truthy(value: str) -> bool:
    """An attribute value used as a condition."""
    return bool(value) and value.lower() not in FALSY_ATTRIBUTE_VALUES


def probabilities(d: Detection) -> list[float]:
    """Detection.class_scores normalized to sum 1, or the binary (conf, 1-conf) fallback."""
    values = [v for v in d.class_scores.values() if v > 0.0]
    total = sum(values)
    if values and 0.0 < total < INF:
        return [v / total for v in values]
    c = d.confidence
    if not 0.0 <= c <= 1.0:  # NaN or out of range: nothing sensible to score
        return [1.0]
    return [c, 1.0 - c]


def det_entropy(d: Detection) -> float:
    """Shannon entropy in nats (as in common.v1.Uncertainty)."""
    h = 0.0
    for p in probabilities(d):
        if p > 0.0:
            h -= p * math.log(p)
    return h


def det_entropy_normalized(d: Detection) -> float:
    """Entropy divided by log(number of classes), in [0, 1]."""
    ps = probabilities(d)
    n = len(ps)
    if n < 2:
        return 0.0
    h = 0.0
    for p in ps:
        if p > 0.0:
            h -= p * math.log(p)
    return min(1.0, h / math.log(n))


def det_margin(d: Detection) -> float:
    """Top-1 minus top-2 probability, in [0, 1]."""
    ps = probabilities(d)
    if len(ps) == 1:
        return ps[0]
    top1 = top2 = 0.0
    for p in ps:
        if p > top1:
            top1, top2 = p, top1
        elif p > top2:
            top2 = p
    return top1 - top2


def det_range(d: Detection) -> float:
    return d.range_m if d.HasField("range_m") else NAN


def det_bearing(d: Detection) -> float:
    return d.bearing_rad if d.HasField("bearing_rad") else NAN


# ---------------------------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------------------------


class DetField(NamedTuple):
    type: str
    get: Callable[[Any], Any] | None  # None: a keyed map, d.<field>.<key>
    doc: str


DET_FIELDS: dict[str, DetField] = {
    "cls": DetField(STR, lambda d: d.cls, "class name"),
    "conf": DetField(NUM, lambda d: d.confidence, "confidence of cls, [0,1]"),
    "track": DetField(NUM, lambda d: float(d.track_id), "tracker id, 0 = untracked"),
    "range": DetField(NUM, det_range, "range_m in meters; unknown (NaN) when unset"),
    "has_range": DetField(BOOL, lambda d: d.HasField("range_m"), "range_m is set"),
    "bearing": DetField(NUM, det_bearing, "bearing_rad, left positive; unknown when unset"),
    "has_bearing": DetField(BOOL, lambda d: d.HasField("bearing_rad"), "bearing_rad is set"),
    "entropy": DetField(NUM, det_entropy, "entropy of class_scores, nats"),
    "margin": DetField(NUM, det_margin, "top1 - top2 of class_scores"),
    "width": DetField(NUM, lambda d: d.box.x_max - d.box.x_min, "box width, image fraction"),
    "height": DetField(NUM, lambda d: d.box.y_max - d.box.y_min, "box height, image fraction"),
    "area": DetField(NUM, lambda d: (d.box.x_max - d.box.x_min) * (d.box.y_max - d.box.y_min), "box area, image fraction"),
    "cx": DetField(NUM, lambda d: (d.box.x_min + d.box.x_max) * 0.5, "box center x, [0,1] from the left"),
    "cy": DetField(NUM, lambda d: (d.box.y_min + d.box.y_max) * 0.5, "box center y, [0,1] from the top"),
    "attr": DetField(ATTR, None, 'd.attr.<key>: attributes[key], "" when absent'),
    "attr_score": DetField(NUM, None, "d.attr_score.<key>: attribute_scores[key], 0 when absent"),
    "class_score": DetField(NUM, None, "d.class_score.<cls>: class_scores[cls], 0 when absent"),
}
DET_ALIASES = {"confidence": "conf", "track_id": "track", "range_m": "range", "bearing_rad": "bearing", "class": "cls", "attributes": "attr", "attribute_scores": "attr_score", "class_scores": "class_score"}

# What max_conf/nearest/entropy/margin reduce over the matching detections (names as in DET_FIELDS,
# plus entropy_normalized); the column backend computes the same names per detection.
REDUCED_FIELDS: dict[str, Callable[[Any], float]] = {
    "conf": lambda d: d.confidence,
    "range": det_range,
    "entropy": det_entropy,
    "entropy_normalized": det_entropy_normalized,
    "margin": det_margin,
}

# ego.<field> (the name is also the attribute of Frame.ego): accessor, doc
EGO_FIELDS: dict[str, tuple[Callable[[Any], float], str]] = {
    "speed": (lambda p: p.speed, "m/s"),
    "x": (lambda p: p.x, "meters, world frame"),
    "y": (lambda p: p.y, "meters, world frame"),
    "heading": (lambda p: p.heading, "radians, CCW from +x"),
}

# first_seen(...).<field>: attribute of its state slot, doc
FIRST_FIELDS: dict[str, tuple[str, str]] = {
    "distance": ("distance", "smallest range_m of the new objects; unknown (NaN) when none or no range"),
    "conf": ("conf", "highest confidence of the new objects, 0 when none"),
    "bearing": ("bearing", "bearing of the nearest new object; unknown when none"),
    "count": ("count", "number of new objects"),
}
FIRST_ALIASES = {"range": "distance", "range_m": "distance"}

# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------

REQUIRED = object()  # Param.default of an argument that must be given

ParamKind = Literal["selector", "class", "cond", "num", "int", "flag", "choice", "detector", "value"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind
    default: Any = REQUIRED
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[Param, ...]
    positional: int
    returns: str
    summary: str
    example: str
    temporal: bool = False  # remembers past frames of the car (a slot in the per-car state)
    needs_map: bool = False  # reads EvalContext.map_features
    needs_detectors: bool = False  # reads Frame.trigger_scores (custom detectors)
    columnar: bool = True  # the column backend evaluates it; otherwise its triggers run frame by frame

    @property
    def frame_only(self) -> bool:
        """Decided by the frame's detections alone, so it also judges one prediction (suite predicates)."""
        return not (self.temporal or self.needs_map or self.needs_detectors)


_SEL = "class name or condition on d"
_MIN_CONF = Param("min_conf", "num", 0.0, 0.0, 1.0, doc="only detections with confidence >= min_conf count")
_DETECTOR = Param("detector", "detector", doc='"name@version", key of Frame.trigger_scores')


def _window(default: int) -> Param:
    return Param("window", "int", default, 2, MAX_WINDOW, doc="frames, including the current one")


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin("any", (Param("selector", "selector", doc=_SEL), _MIN_CONF), 1, BOOL, "true when at least one detection matches", "any(d.cls == stop_sign and d.attr.occluded and 0.3 < d.conf < 0.6)"),
        Builtin("all", (Param("selector", "selector", doc=_SEL),), 1, BOOL, "true when every detection matches (also when there is none)", "all(d.conf > 0.9)"),
        Builtin("count", (Param("selector", "selector", None, doc=_SEL), _MIN_CONF), 1, NUM, "number of matching detections (all detections without a selector)", "count(stop_sign, min_conf=0.5) >= 2"),
        Builtin("max_conf", (Param("selector", "selector", None, doc=_SEL),), 1, NUM, "highest confidence among matching detections, 0 when none", "max_conf(traffic_light) < 0.4"),
        Builtin("nearest", (Param("selector", "selector", None, doc=_SEL), _MIN_CONF), 1, NUM, "smallest range_m (meters) among matching detections that have one; unknown (NaN) when none", "nearest(stop_sign) < 15 and ego.speed > 12"),
        Builtin(
            "entropy",
            (Param("selector", "selector", None, doc=_SEL), Param("normalized", "flag", False, doc="divide by log(number of classes): [0, 1]"), _MIN_CONF),
            1,
            NUM,
            "highest class-distribution entropy (nats) among matching detections, 0 when none",
            "entropy(traffic_light) > 0.8",
        ),
        Builtin("margin", (Param("selector", "selector", None, doc=_SEL), _MIN_CONF), 1, NUM, "lowest top1 - top2 class probability among matching detections, 1 when none", "margin(traffic_light) < 0.1"),
        Builtin("score", (_DETECTOR,), 1, NUM, "custom detector score from Frame.trigger_scores; 0.0 when the frame has no such score", 'score("occluded_stop_sign@3") > 0.7', needs_detectors=True),
        Builtin("has_score", (_DETECTOR,), 1, BOOL, "true when the frame carries a score for that detector", 'has_score("occluded_stop_sign@3") and score("occluded_stop_sign@3") < 0.1', needs_detectors=True),
        Builtin(
            "flicker",
            (Param("selector", "selector", doc=_SEL), _window(10), Param("min_toggles", "int", 3, 1, MAX_WINDOW - 1, doc="appear/disappear transitions inside the window"), _MIN_CONF),
            1,
            BOOL,
            "presence of the class toggled at least min_toggles times within the last window frames",
            "flicker(stop_sign, window=10, min_toggles=3)",
            temporal=True,
        ),
        Builtin(
            "track_flicker",
            (Param("cls", "class", None, doc="only changes from or to this class count"), _window(10), Param("min_changes", "int", 2, 1, MAX_WINDOW - 1, doc="class changes of one track inside the window")),
            1,
            BOOL,
            "one tracked object (track_id != 0) changed class at least min_changes times within the last window frames",
            "track_flicker(stop_sign, window=20, min_changes=2)",
            temporal=True,
            columnar=False,
        ),
        Builtin(
            "first_seen",
            (Param("selector", "selector", None, doc=_SEL), Param("window", "int", 100, 1, MAX_WINDOW, doc="a track unseen for this many frames counts as new again"), _MIN_CONF),
            1,
            FIRST,
            "objects appearing on this frame for the first time; fields .distance .conf .bearing .count",
            "first_seen(stop_sign).distance < 20",
            temporal=True,
            columnar=False,
        ),
        Builtin(
            "map_disagreement",
            (
                Param("cls", "class", None, doc="class compared; all classes when omitted"),
                Param("kind", "choice", "any", choices=("any", "missing", "extra"), doc="missing = map without vision, extra = vision without map"),
                Param("min_conf", "num", 0.5, 0.0, 1.0, doc="a detection counts from this confidence"),
                Param("bearing_tol", "num", 0.15, 0.0, math.pi, doc="radians"),
                Param("range_tol", "num", 5.0, 0.0, 10000.0, doc="meters (or 20% of the map range if larger)"),
            ),
            1,
            BOOL,
            "the map expects the class in view and vision does not see it, or vision confidently sees one the map does not have",
            "map_disagreement(stop_sign, kind=missing)",
            needs_map=True,
            columnar=False,
        ),
        Builtin(
            "sustained",
            (Param("cond", "cond", doc="a condition on the frame"), Param("frames", "int", 3, 1, MAX_WINDOW, doc="consecutive frames")),
            1,
            BOOL,
            "cond has been true on each of the last `frames` frames",
            "sustained(count(stop_sign) == 0 and ego.speed > 5, frames=5)",
            temporal=True,
        ),
        Builtin(
            "within",
            (Param("cond", "cond", doc="a condition on the frame"), Param("frames", "int", 10, 1, MAX_WINDOW, doc="frames, including the current one")),
            1,
            BOOL,
            "cond was true on at least one of the last `frames` frames",
            "within(any(stop_sign, min_conf=0.8), frames=10) and count(stop_sign) == 0",
            temporal=True,
        ),
        Builtin("abs", (Param("x", "value"),), 1, NUM, "absolute value", "any(abs(d.bearing) < 0.1 and d.cls == stop_sign)"),
        Builtin("min", (Param("a", "value"), Param("b", "value")), 2, NUM, "smaller of two numbers (unknown if either is)", 'min(score("a@1"), score("b@2")) > 0.5'),
        Builtin("max", (Param("a", "value"), Param("b", "value")), 2, NUM, "larger of two numbers (unknown if either is)", "max(entropy(stop_sign), entropy(traffic_light)) > 0.6"),
    ]
}

# Alternative spellings of built-ins (compiled, explained and normalized as the built-in they name).
BUILTIN_ALIASES: dict[str, str] = {"map_disagrees": "map_disagreement"}

# The temporal built-ins the column backend scans; their trees are (name, input, slot index, params...).
VEC_TEMPORAL = frozenset(b.name for b in BUILTINS.values() if b.temporal and b.columnar)


__all__ = [
    "ATTR",
    "BOOL",
    "BUILTINS",
    "BUILTIN_ALIASES",
    "DET",
    "DET_ALIASES",
    "DET_FIELDS",
    "EGO",
    "EGO_FIELDS",
    "FALSY_ATTRIBUTE_VALUES",
    "FIRST",
    "FIRST_ALIASES",
    "FIRST_FIELDS",
    "INF",
    "LIST",
    "MAX_STATE_ITEMS",
    "MAX_TEMPORAL",
    "MAX_TRACKS",
    "MAX_WINDOW",
    "NAN",
    "NUM",
    "REDUCED_FIELDS",
    "REQUIRED",
    "STR",
    "TYPE_TEXT",
    "VEC_TEMPORAL",
    "Builtin",
    "DetField",
    "Param",
    "ParamKind",
    "det_bearing",
    "det_entropy",
    "det_entropy_normalized",
    "det_margin",
    "det_range",
    "probabilities",
    "truthy",
]
