"""Valid expressions and their values on a hand-built frame; invalid ones with exact positions."""

from __future__ import annotations

import pytest
from triggerlang_frames import standard_frame

from longtail.triggerlang import (
    MAX_SOURCE_BYTES,
    TriggerSyntaxError,
    compile_trigger,
    validate,
)

# (expression, value on standard_frame())
VALID = [
    # class / attribute / confidence filters
    ("any(stop_sign)", True),
    ('any("stop_sign")', True),
    ("any(yield_sign)", False),
    ("any(d.cls == stop_sign and d.attr.occluded and 0.3 < d.conf < 0.6)", True),
    ("any(d.cls == stop_sign and 0.5 < d.conf)", False),
    ("any(stop_sign, min_conf=0.5)", False),
    ("any(traffic_light, min_conf=0.5)", True),
    ("any(d.cls == traffic_light and d.attr.occluded)", False),  # "no" is false
    ("any(d.attr.occlusion == foliage)", True),
    ('any(d.attr.occlusion == "snow")', False),
    ("any(d.attr.occlusion != foliage and d.cls == stop_sign)", False),
    ("any(d.attr.no_such_key)", False),
    ('any(d.attr.no_such_key == "")', True),
    ("any(d.attr.occluded == true)", True),
    ("any(d.attr_score.occluded > 0.85)", True),
    ("any(d.class_score.yield_sign > 0.39 and d.class_score.yield_sign < 0.41)", True),
    ("any(d.class_score.unknown_class == 0)", True),
    ("any(d.track == 7 and d.cls == stop_sign)", True),
    ("any(d.track_id == 8)", True),
    ("any(d.confidence > 0.9)", True),
    ("any(d.cls in [stop_sign, yield_sign])", True),
    ("any(d.cls in [bus, 'yield_sign'])", False),
    ("any(d.conf in [0.5])", True),
    ("any(d.width > 0.09 and d.width < 0.11 and d.height > 0.19 and d.height < 0.21)", True),
    ("any(d.area > 0.019 and d.area < 0.021 and d.cx > 0.14 and d.cx < 0.16 and d.cy > 0.19 and d.cy < 0.21)", True),
    ("any(d.has_range and d.range < 20)", True),
    ("any(d.cls == car and d.has_range)", False),
    ("any(d.has_bearing and d.bearing < 0)", True),
    ("any(d.cls == car and not d.has_bearing)", True),
    ("all(d.conf > 0.4)", True),
    ("all(d.conf > 0.5)", False),
    ("all(stop_sign)", False),
    # counts
    ("count() == 3", True),
    ("count(stop_sign) >= 2", False),
    ("count(stop_sign) == 1", True),
    ("count(d.conf >= 0.5) == 2", True),
    ("count(min_conf=0.5) == 2", True),
    ("count(d.has_range) == 2", True),
    ("count(stop_sign) + count(car) * 2 == 3", True),
    # confidence and range reductions
    ("max_conf(car) > 0.9", True),
    ("max_conf(bus) == 0", True),
    ("max_conf() > 0.9", True),
    ("nearest(stop_sign) < 20", True),
    ("nearest() > 17 and nearest() < 19", True),
    ("nearest(car) < 1000", False),  # no range: unknown, every comparison is false
    ("nearest(car) > 1000", False),
    ("nearest(car) != 5", False),
    ("not (nearest(car) < 1000)", True),
    ("nearest(traffic_light, min_conf=0.5) > 41", True),
    # uncertainty
    ("entropy(traffic_light) > 0.69 and entropy(traffic_light) < 0.7", True),  # ln 2
    ("entropy(traffic_light, normalized=true) > 0.99", True),
    ("entropy(bus) == 0", True),
    ("entropy() > 0.69", True),
    ("entropy(car) > 0.19 and entropy(car) < 0.2", True),  # binary fallback from confidence 0.95
    ("any(d.cls == car and d.entropy > 0.19 and d.entropy < 0.2)", True),
    ("margin(traffic_light) < 0.01", True),
    ("margin(stop_sign) > 0.04 and margin(stop_sign) < 0.06", True),  # 0.45 - 0.40
    ("margin(bus) == 1", True),
    ("margin(car) > 0.89 and margin(car) < 0.91", True),  # |0.95 - 0.05|
    ("any(d.margin < 0.01)", True),
    # custom detectors
    ('score("occluded_stop_sign@3") > 0.7', True),
    ('score("occluded_stop_sign@3") > 0.9', False),
    ('score("occluded_stop_sign@4") == 0', True),
    ('score("other") == 0', True),
    ('has_score("occluded_stop_sign@3")', True),
    ('has_score("other@1")', False),
    ('not has_score("other@1") or score("other@1") > 0.5', True),
    # ego
    ("ego.speed > 10", True),
    ("ego.speed > 10 and ego.x == 100 and ego.y == 50 and ego.heading == 0.5", True),
    ("ego.speed * 3.6 > 48", True),
    # numbers, booleans, helpers
    ("true", True),
    ("false", False),
    ("not false", True),
    ("1 + 2 * 3 == 7", True),
    ("(1 + 2) * 3 == 9", True),
    ("10 - 4 - 3 == 3", True),
    ("2 * -3 == -6", True),
    ("- -1 == 1", True),
    ("7 / 2 == 3.5", True),
    ("1 / 0 > 0", False),  # division by zero is unknown
    ("1 / 0 < 0", False),
    ("abs(-2) == 2", True),
    ("min(1, 2) == 1 and max(1, 2) == 2", True),
    ("min(1, nearest(car)) < 5", False),  # unknown if either is unknown
    ('max(score("occluded_stop_sign@3"), 0.9) == 0.9', True),
    ("any(abs(d.bearing) < 0.15 and d.cls == stop_sign)", True),
    ("1 < 2 < 3", True),
    ("1 < 3 < 2", False),
    ("2 == 2 != 3", True),
    ("1e2 == 100 and .5 == 0.5 and 2.5e-1 == 0.25", True),
    ("true == (1 < 2)", True),
    ("stop_sign == stop_sign", True),
    ("stop_sign != 'yield'", True),
    ("false or true and false", False),
    ("(false or true) and true", True),
    ("not any(bus) and any(car)", True),
    # frame-level values inside a detection condition (memoized per frame)
    ("any(d.cls == stop_sign and count(car) == 1)", True),
    ("any(d.cls == stop_sign and ego.speed > 13)", True),
    ("any(d.cls == stop_sign and any(d.cls == car))", True),  # inner d is the inner detection
    ("count(d.conf > max_conf(stop_sign)) == 2", True),
    # temporal built-ins on a single first frame
    ("not flicker(stop_sign)", True),
    ("first_seen(stop_sign).count == 0", True),  # the first frame of a state only seeds memory
    ("not track_flicker()", True),
    ("sustained(any(stop_sign), frames=1)", True),
    ("sustained(any(stop_sign), frames=2)", False),
    ("within(any(stop_sign), frames=1)", True),
    ("not map_disagreement(stop_sign)", True),  # no map context
    # multi-line with comments
    ("# occluded stop signs\nany(d.cls == stop_sign  # the class\n    and d.attr.occluded)\n", True),
    ("any(stop_sign)\r\n  and ego.speed > 1\r\n", True),
]


@pytest.mark.parametrize("source,expected", VALID)
def test_valid_expressions_evaluate_as_expected(source, expected):
    trigger = compile_trigger(source)
    state = trigger.new_state()
    assert trigger.step(state, standard_frame()) is expected


@pytest.mark.parametrize("source,_", VALID)
def test_normalized_form_is_valid_stable_and_equivalent(source, _):
    trigger = compile_trigger(source)
    again = compile_trigger(trigger.normalized)
    assert again.normalized == trigger.normalized
    assert again.step(again.new_state(), standard_frame()) == trigger.step(trigger.new_state(), standard_frame())


@pytest.mark.parametrize(
    "source,normalized",
    [
        ("any( d.confidence>0.5 )", "any(d.conf > 0.5)"),
        ("flicker(stop_sign,window=10,min_toggles=3)", "flicker(stop_sign, window=10, min_toggles=3)"),
        ("(a in [b]) == true", "(a in [b]) == true"),
        ("not (1 < 2)", "not 1 < 2"),
        ("(true or false) and true", "(true or false) and true"),
        ("1 - (2 - 3) == 2", "1 - (2 - 3) == 2"),
        ("-(1 + 2) < 0", "-(1 + 2) < 0"),
        ("count(selector=stop_sign) > 0", "count(stop_sign) > 0"),
        ("first_seen(stop_sign).range_m < 20", "first_seen(stop_sign).distance < 20"),
        ("score('x@1') > 0", 'score("x@1") > 0'),
        ("any(d.attributes.occluded)", "any(d.attr.occluded)"),
    ],
)
def test_normalization(source, normalized):
    assert compile_trigger(source).normalized == normalized


def test_required_detectors_and_calls():
    trigger = compile_trigger('score("occluded_stop_sign@3") > 0.7 or has_score(gate_sign) and flicker(stop_sign)')
    assert trigger.required_detectors == frozenset({"occluded_stop_sign@3", "gate_sign"})
    assert "flicker(stop_sign, window=10, min_toggles=3, min_conf=0)" in trigger.calls
    assert compile_trigger("ego.speed > 1").required_detectors == frozenset()


def test_constant_triggers_are_recognized():
    assert compile_trigger("1 < 2").constant is True
    assert compile_trigger("false and any(x)").constant is False
    assert compile_trigger("any(x)").constant is None


def test_unknown_class_names_are_allowed():
    validate("any(some_class_no_task_declares_yet)")
    validate('count("class with spaces") > 0')


# (expression, line, column, fragment of the message)
INVALID = [
    ("", 1, 1, "empty expression"),
    ("   \n  # only a comment\n", 1, 1, "empty expression"),
    ("any(stop_sign", 1, 14, "unexpected end of expression; expected"),
    ("ego.speed >", 1, 12, "unexpected end of expression"),
    ("ego.speed > > 3", 1, 13, "unexpected '>'"),
    ("ego.speed = 3", 1, 11, "use '=='"),
    ("any(a) && any(b)", 1, 8, "use 'and', 'or', 'not'"),
    ("any(a) | any(b)", 1, 8, "use 'and'"),
    ("any($)", 1, 5, "unexpected character '$'"),
    ('score("abc) > 1', 1, 7, "unterminated string"),
    ("any(a,,b)", 1, 7, "unexpected ','"),
    ("android andx", 1, 9, "unexpected 'andx'"),
    ("any(a) and", 1, 11, "unexpected end of expression"),
    ("and any(a)", 1, 1, "unexpected keyword 'and'"),
    ("1e999 > 1", 1, 1, "number out of range"),
    # semantic errors
    ("entropi(traffic_light) > 0.8", 1, 1, "unknown function 'entropi'; did you mean 'entropy'?"),
    ("frobnicate()", 1, 1, "unknown function 'frobnicate'"),
    ("flicker(stop_sign, windo=10)", 1, 20, "unknown keyword argument 'windo' for flicker(); did you mean 'window'?"),
    ("flicker(stop_sign, window=10, window=3)", 1, 31, "given twice"),
    ("flicker(stop_sign, 10)", 1, 20, "flicker() takes 1 positional argument"),
    ("flicker()", 1, 9, "missing its argument 'selector'"),
    ("min(1) > 0", 1, 6, "missing its argument 'b'"),
    ("any(x, min_conf=0.5, y) ", 1, 22, "a positional argument cannot follow a keyword argument"),
    ("any(stop_sign, selector=car)", 1, 16, "got 'selector' twice"),
    ("count(stop_sign) > true", 1, 18, "cannot compare a number with a boolean"),
    ("any(stop_sign) == 1", 1, 16, "cannot compare a boolean with a number"),
    ("count(stop_sign) == stop_sign", 1, 18, "cannot compare a number with a string"),
    ("any(d.cls > stop_sign)", 1, 11, "strings can only be compared with '==' or '!='"),
    ("any(stop_sign) < any(car)", 1, 16, "booleans can only be compared"),
    ("any(d.colour == red)", 1, 7, "unknown field 'd.colour'"),
    ("any(d.confidance > 0.5)", 1, 7, "did you mean 'confidence'?"),
    ("any(d.attr)", 1, 7, "'d.attr' needs a key"),
    ("any(d.attr.occluded.x)", 1, 21, "has no field 'x'"),
    ("any(d.cls.upper)", 1, 11, "a string has no field 'upper'"),
    ("ego.spd > 3", 1, 5, "unknown field 'ego.spd'; did you mean 'speed'?"),
    ("ego > 3", 1, 1, "'ego' is the ego pose"),
    ("first_seen(stop_sign) < 20", 1, 23, "cannot compare a first_seen(...) result"),
    ("first_seen(stop_sign).dist < 20", 1, 23, "did you mean 'distance'?"),
    ("first_seen(stop_sign)", 1, 1, "a trigger must be a condition"),
    ("count(stop_sign).x > 1", 1, 18, "a number has no field 'x'"),
    ("d.conf > 0.5", 1, 1, "'d' (the current detection) only exists inside any()"),
    ("any(d)", 1, 5, "'d' is the current detection"),
    ("any(stop_sign) and sustained(d.conf > 0.5)", 1, 30, "'d' (the current detection) only exists"),
    ("count(stop_sign)", 1, 1, "a trigger must be a condition (true or false), got a number"),
    ("stop_sign", 1, 1, "got the class name 'stop_sign' (did you mean any(stop_sign)?)"),
    ("stop_sign and ego.speed > 3", 1, 1, "'and' needs a condition, got the class name 'stop_sign'"),
    ("ego.speed > 3 or 5", 1, 18, "'or' needs a condition, got a number"),
    ("not ego.speed", 1, 5, "'not' needs a condition, got a number"),
    ("-any(a)", 1, 2, "'-' needs a number"),
    ("any(a) + 1 > 0", 1, 1, "'+' needs numbers, got a boolean"),
    ("1 + 'a' > 0", 1, 5, "'+' needs numbers, got a string"),
    ("any(count(a))", 1, 5, "any() needs a class name or a condition on d, got a number"),
    ("all(d.cls)", 1, 5, "all() needs a class name or a condition on d, got a string"),
    ("sustained(count(a), frames=3)", 1, 11, "sustained() needs a condition, got a number"),
    ("track_flicker(d.conf > 1)", 1, 15, "needs a class name here"),
    ("score(1) > 0", 1, 7, "needs a detector key"),
    ('score("") > 0', 1, 7, "invalid detector key"),
    ('score("a b@3") > 0', 1, 7, "invalid detector key"),
    ('score("a@v3") > 0', 1, 7, "invalid detector key"),
    ("[a, b]", 1, 1, "a list is only allowed after 'in'"),
    ("any(d.cls in stop_sign)", 1, 14, "'in' needs a list on its right"),
    ("any(d.cls in [stop_sign, 1])", 1, 26, "list items must be constant class names or strings"),
    ("any(d.conf in [d.conf])", 1, 16, "list items must be constant numbers"),
    ("any(d.cls in [a] == true)", 1, 11, "'in' cannot be chained"),
    ("any(stop_sign) in [true]", 1, 16, "'in' tests a number or a string"),
    ("entropy(a, normalized=1) > 0", 1, 23, "must be a constant true or false"),
    ("map_disagreement(stop_sign, kind=sideways)", 1, 34, "must be one of: any, missing, extra"),
    # resource limits and argument bounds
    ("flicker(stop_sign, window=1001)", 1, 27, "'window' of flicker() must be between 2 and 1000, got 1001"),
    ("flicker(stop_sign, window=0)", 1, 27, "must be between 2 and 1000"),
    ("flicker(stop_sign, window=2.5)", 1, 27, "must be a whole number"),
    ("flicker(stop_sign, window=ego.speed)", 1, 27, "must be a constant number"),
    ("flicker(stop_sign, window=5, min_toggles=5)", 1, 42, "can never happen in window=5"),
    ("track_flicker(window=3, min_changes=3)", 1, 37, "can never happen"),
    ("sustained(any(a), frames=1001)", 1, 26, "between 1 and 1000"),
    ("any(a, min_conf=1.5)", 1, 17, "between 0 and 1"),
    # multi-line: positions are per line
    ("any(stop_sign)\n  and entropi(traffic_light) > 0.8", 2, 7, "unknown function 'entropi'"),
    ("any(stop_sign)\nand\n  flicker(stop_sign, windw=10)", 3, 22, "unknown keyword argument 'windw'"),
    ("any(d.cls == stop_sign\n    and d.colr == red)", 2, 11, "unknown field 'd.colr'"),
    ("any(stop_sign) and\n  (ego.speed >\n  )", 3, 3, "unexpected ')'"),
    ("any(stop_sign) and\n\n", 1, 19, "unexpected end of expression"),
    ("\tany(a) and\n\tcount(b) > true", 2, 11, "cannot compare a number with a boolean"),
    ("any(a)\r\nand count(b) > true\r\n", 2, 14, "cannot compare"),
    ("# comment\n ego.speed > 'fast'", 2, 12, "cannot compare a number with a string"),
]


@pytest.mark.parametrize("source,line,column,message", INVALID)
def test_invalid_expressions_report_exact_positions(source, line, column, message):
    with pytest.raises(TriggerSyntaxError) as info:
        validate(source)
    error = info.value
    assert message in error.message, error.message
    assert (error.line, error.column) == (line, column), str(error)
    assert error.source == source
    assert isinstance(error, ValueError)
    # The formatted error: header, the offending line, a caret under the column.
    header, text_line, caret = str(error).split("\n")
    assert header == f"line {line}, column {column}: {error.message}"
    assert text_line == source.split("\n")[line - 1].rstrip("\r")
    assert caret.strip(" \t") == "^" and len(caret) == column


def test_compile_trigger_raises_the_same_error():
    with pytest.raises(TriggerSyntaxError, match="unknown function"):
        compile_trigger("nope(1)")


def test_caret_keeps_tabs_so_it_lines_up():
    with pytest.raises(TriggerSyntaxError) as info:
        validate("\t\tnope()")
    assert str(info.value).split("\n")[2] == "\t\t^"


def test_str_format_matches_the_contract():
    with pytest.raises(TriggerSyntaxError) as info:
        validate("entropy(traffic_light) > 0.8 and\n  flicker(stop_sign, windo=10)")
    assert str(info.value) == ("line 2, column 22: unknown keyword argument 'windo' for flicker(); did you mean 'window'? (keywords: window, min_toggles, min_conf)\n  flicker(stop_sign, windo=10)\n                     ^")


def test_error_is_picklable():
    import pickle

    with pytest.raises(TriggerSyntaxError) as info:
        validate("nope()")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.line, copy.column, copy.message, str(copy)) == (info.value.line, info.value.column, info.value.message, str(info.value))


# --- resource limits ---------------------------------------------------------------------------


def test_expression_length_is_bounded():
    ok = "any(a) or " * 400 + "true"
    assert len(ok) <= MAX_SOURCE_BYTES
    validate(ok)
    too_long = "any(a) or " * 410 + "true"
    assert len(too_long) > MAX_SOURCE_BYTES
    with pytest.raises(TriggerSyntaxError, match="expression too long") as info:
        validate(too_long)
    assert (info.value.line, info.value.column) == (1, MAX_SOURCE_BYTES + 1)


def test_length_counts_utf8_bytes():
    source = 'any("' + "é" * 2100 + '")'
    with pytest.raises(TriggerSyntaxError, match="too long") as info:
        validate(source)
    assert info.value.column <= len(source)


def test_nesting_depth_is_bounded():
    validate("not " * 20 + "true")
    with pytest.raises(TriggerSyntaxError, match="nested too deeply"):
        validate("not " * 40 + "true")
    with pytest.raises(TriggerSyntaxError, match="nested too deeply"):
        validate("-" * 2000 + "1 > 0")
    with pytest.raises(TriggerSyntaxError, match="nested too deeply"):
        validate("abs(" * 40 + "1" + ")" * 40 + " > 0")
    # Parentheses alone do not nest the tree and are harmless.
    validate("(" * 500 + "true" + ")" * 500)


def test_state_and_temporal_built_ins_are_bounded():
    with pytest.raises(TriggerSyntaxError, match="too many temporal built-ins") as info:
        validate(" or ".join(f"flicker(c{i})" for i in range(17)))
    assert info.value.column > 1
    with pytest.raises(TriggerSyntaxError, match="values per car"):
        validate(" or ".join("track_flicker(window=1000, min_changes=200)" for _ in range(2)))
    with pytest.raises(TriggerSyntaxError, match="values per car"):
        validate("track_flicker(window=1000, min_changes=500)")
    trigger = compile_trigger("flicker(stop_sign, window=1000, min_toggles=999) and first_seen(x).distance < 5")
    assert 999 < trigger.state_items <= 16384


# --- documentation --------------------------------------------------------------------------------


def test_docs_cover_every_built_in_and_field_with_a_valid_example():
    from pathlib import Path

    from longtail.triggerlang.catalogue import BUILTINS, DET_FIELDS, EGO_FIELDS, FIRST_FIELDS

    docs = (Path(__file__).resolve().parents[3] / "docs" / "triggers.md").read_text()
    for name, spec in BUILTINS.items():
        assert f"**`{name}(" in docs, f"built-in {name} is not documented"
        validate(spec.example)
    for name in DET_FIELDS:
        assert f"`d.{name}" in docs, name
    for name in EGO_FIELDS:
        assert f"ego.{name}" in docs, name
    for name in FIRST_FIELDS:
        assert f"`.{name}`" in docs, name
    # Every indented example line of the built-in reference is a valid trigger.
    section = docs.split("## Built-ins", 1)[1].split("## Firing", 1)[0]
    examples = [line.strip() for line in section.splitlines() if line.startswith("    ") and not line.strip().startswith("|")]
    assert len(examples) >= 18
    for example in examples:
        validate(example)
