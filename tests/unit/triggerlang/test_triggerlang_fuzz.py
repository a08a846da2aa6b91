"""Property-based fuzzing: never a crash, always a position on error, and well-typed
expressions always compile, normalize stably and evaluate on any frame without raising."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triggerlang_frames import make_frame

from longtail.fleet.v1 import fleet_pb2
from longtail.triggerlang import EvalContext, FiringOptions, TriggerSyntaxError, compile_trigger, validate
from longtail.triggerlang.errors import source_lines

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CORPUS = [
    "flicker(stop_sign, window=10, min_toggles=3)",
    "any(d.cls == stop_sign and d.attr.occluded and 0.3 < d.conf < 0.6)",
    "entropy(traffic_light) > 0.8",
    "first_seen(stop_sign).distance < 20",
    'score("occluded_stop_sign@3") > 0.7',
    "count(stop_sign) >= 2 and ego.speed > 10",
    "map_disagreement(stop_sign, kind=missing) or not any(car)",
    "sustained(margin(traffic_light) < 0.1, frames=3)",
    "any(d.cls in [stop_sign, 'yield sign']) and within(any(bus), frames=5)",
    "track_flicker(stop_sign, window=20, min_changes=2)\n  # comment\n  or max_conf(x) < -1 + 2 * 3 / 4",
]

TOKENS = [
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "and",
    "or",
    "not",
    "in",
    "true",
    "false",
    "d",
    "ego",
    "d.conf",
    "d.attr.x",
    "any(",
    "count(",
    "flicker(",
    "first_seen(",
    "score(",
    '"',
    "'",
    "#",
    "\n",
    "\t",
    "\r",
    " ",
    "1e999",
    "0.5",
    ".5",
    "5.",
    "window=",
    "min_toggles=",
    "é",
    "\x00",
    "\u2028",
]


def check_error(source: str, error: TriggerSyntaxError) -> None:
    lines = source_lines(source)
    assert error.source == source
    assert 1 <= error.line <= len(lines), (source, error.line)
    assert 1 <= error.column <= len(lines[error.line - 1]) + 1, (source, error.line, error.column)
    assert error.message
    header, text, caret = str(error).split("\n")
    assert header == f"line {error.line}, column {error.column}: {error.message}"
    assert text == lines[error.line - 1]
    assert caret.endswith("^") and len(caret) == error.column


def check(source: str) -> None:
    try:
        validate(source)
    except TriggerSyntaxError as error:
        check_error(source, error)


@FUZZ
@given(st.text(max_size=200))
def test_random_text_never_crashes(source):
    check(source)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=2), max_size=40).map(" ".join))
def test_random_token_soup_never_crashes(source):
    check(source)


@st.composite
def mutations(draw):
    source = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        i = draw(st.integers(0, len(source)))
        j = draw(st.integers(i, min(len(source), i + 8)))
        piece = draw(st.sampled_from(TOKENS) | st.text(max_size=3))
        if op == "delete":
            source = source[:i] + source[j:]
        elif op == "insert":
            source = source[:i] + piece + source[i:]
        elif op == "replace":
            source = source[:i] + piece + source[j:]
        elif op == "duplicate":
            source = source[:j] + source[i:j] + source[j:]
        else:
            source = source[:i]
    return source


@FUZZ
@given(mutations())
def test_mutated_valid_expressions_never_crash(source):
    check(source)


def test_corpus_is_valid():
    for source in CORPUS:
        validate(source)


# --- well-typed generated expressions ------------------------------------------------------------

CLASSES = st.sampled_from(["stop_sign", "traffic_light", "car", '"yield sign"', "bus"])
NUM_LIT = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(repr) | st.integers(0, 100).map(str)
FRAME_NUM_ATOM = st.one_of(
    NUM_LIT,
    st.sampled_from(["ego.speed", "ego.x", "ego.heading", 'score("a@1")', "count()", "nearest()", "entropy()"]),
    CLASSES.map(lambda c: f"count({c})"),
    CLASSES.map(lambda c: f"max_conf({c})"),
    CLASSES.map(lambda c: f"nearest({c}, min_conf=0.2)"),
    CLASSES.map(lambda c: f"entropy({c}, normalized=true)"),
    CLASSES.map(lambda c: f"margin({c})"),
    CLASSES.map(lambda c: f"first_seen({c}, window=5).distance"),
    CLASSES.map(lambda c: f"first_seen({c}).count"),
)
DET_NUM_ATOM = FRAME_NUM_ATOM | st.sampled_from(["d.conf", "d.range", "d.bearing", "d.track", "d.entropy", "d.margin", "d.area", "d.cx", "d.attr_score.occluded", "d.class_score.stop_sign"])


def numbers(atom):
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda x: f"-{x}" if not x.startswith("-") else f"-({x})"),
            inner.map(lambda x: f"abs({x})"),
            st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        ),
        max_leaves=3,
    )


def comparisons(nums):
    return st.tuples(nums, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), nums).map(" ".join)


def combined(atom, max_leaves):
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda x: f"not ({x})"),
        ),
        max_leaves=max_leaves,
    )


DET_BOOL = combined(
    st.one_of(
        comparisons(numbers(DET_NUM_ATOM)),
        CLASSES.map(lambda c: f"d.cls == {c}"),
        st.sampled_from(["d.attr.occluded", "d.has_range", 'd.attr.occlusion == "foliage"', "d.cls in [car, bus]"]),
    ),
    3,
)
FRAME_BOOL = combined(
    st.one_of(
        st.sampled_from(["true", "false", 'has_score("a@1")', "track_flicker(window=5, min_changes=1)"]),
        comparisons(numbers(FRAME_NUM_ATOM)),
        DET_BOOL.map(lambda b: f"any({b})"),
        DET_BOOL.map(lambda b: f"all({b})"),
        st.tuples(DET_BOOL, CLASSES).map(lambda t: f"count({t[0]}) < count({t[1]})"),
        st.tuples(CLASSES, st.integers(2, 12)).map(lambda t: f"flicker({t[0]}, window={t[1]}, min_toggles={t[1] - 1})"),
        st.tuples(CLASSES, st.sampled_from(["any", "missing", "extra"])).map(lambda t: f"map_disagreement({t[0]}, kind={t[1]})"),
        CLASSES.map(lambda c: f"sustained(any({c}), frames=2)"),
        CLASSES.map(lambda c: f"within(count({c}) > 0, frames=3)"),
    ),
    5,
)

FLOAT32 = st.floats(width=32)
DETECTIONS = st.lists(
    st.fixed_dictionaries(
        {
            "cls": st.sampled_from(["stop_sign", "traffic_light", "car", "yield sign", "bus", ""]),
            "conf": FLOAT32,
            "track": st.integers(0, 4),
            "range_m": st.none() | FLOAT32,
            "bearing": st.none() | FLOAT32,
            "attrs": st.dictionaries(st.sampled_from(["occluded", "occlusion"]), st.sampled_from(["true", "no", "foliage", ""])),
            "attr_scores": st.dictionaries(st.sampled_from(["occluded"]), FLOAT32),
            "class_scores": st.dictionaries(st.sampled_from(["stop_sign", "car", "bus"]), FLOAT32),
            "box": st.tuples(FLOAT32, FLOAT32, FLOAT32, FLOAT32),
        }
    ),
    max_size=5,
)
FRAMES = st.lists(
    st.tuples(DETECTIONS, st.floats(allow_nan=True), st.dictionaries(st.sampled_from(["a@1", "b"]), FLOAT32)),
    min_size=1,
    max_size=4,
)
CONTEXTS = st.none() | st.lists(st.tuples(st.sampled_from(["stop_sign", "bus"]), st.floats(), st.floats()), max_size=3).map(lambda fs: EvalContext(map_features=fs))


def build_frames(specs) -> list[fleet_pb2.Frame]:
    frames = []
    for i, (dets, speed, scores) in enumerate(specs):
        frames.append(make_frame(i + 1, dets, speed=speed, scores=scores))
    return frames


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(FRAME_BOOL, FRAMES, CONTEXTS, st.sampled_from(["rising_edge", "every_frame"]))
def test_well_typed_expressions_compile_normalize_and_evaluate(source, frames, context, mode):
    trigger = compile_trigger(source, FiringOptions(mode=mode, min_interval_s=0.15), trigger_id="fuzz", version=1)
    again = compile_trigger(trigger.normalized)
    assert again.normalized == trigger.normalized
    state, state2 = trigger.new_state(), again.new_state()
    for frame in build_frames(frames):
        value = again.step(state2, frame, context)
        assert isinstance(value, bool)
        fire = trigger.evaluate(state, frame, context)
        assert fire is None or (fire.frame_id == frame.frame_id and len(fire.fire_id) == 64)
        assert (fire is not None) <= value
    assert state.frames == len(frames)
    assert not math.isnan(float(state.frames))
