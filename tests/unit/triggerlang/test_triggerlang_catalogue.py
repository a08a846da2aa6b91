"""The catalogue (`longtail.triggerlang.catalogue`) is the one declaration of the built-ins: the
compiler implements exactly it, its flags say what compiling really does, suite predicates
accept exactly its frame-only built-ins, the column backend computes its fields, and the docs
and `longtail triggers explain` show every entry. The checks are one function, so a test can
prove they fail on a catalogue that is out of step."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
from triggerlang_frames import det, make_frame, standard_frame
from typer.testing import CliRunner

from longtail.triggerlang import EvalContext, compile_trigger
from longtail.triggerlang.catalogue import (
    BOOL,
    BUILTIN_ALIASES,
    BUILTINS,
    DET_FIELDS,
    FIRST_ALIASES,
    MAX_STATE_ITEMS,
    MAX_TEMPORAL,
    MAX_TRACKS,
    MAX_WINDOW,
    REDUCED_FIELDS,
    Builtin,
)
from longtail.triggerlang.compiler import Compiler
from longtail.triggerlang.predicates import FRAME_ONLY, PredicateError, compile_predicate
from longtail.triggerlang.vector import CarFrames, _Batch

from longtail_cli.trigger_language import app

DOCS = (Path(__file__).resolve().parents[3] / "docs" / "triggers.md").read_text()


def _called(trigger) -> list[str]:
    return [call.split("(", 1)[0] for call in trigger.calls]


def _depends_on_the_map(trigger) -> bool:
    """Does the value change when the map expects a stop sign nobody sees?"""
    frame = make_frame(1, [det("car")])
    context = EvalContext(map_features=[("stop_sign", 20.0, 0.0)])
    return trigger.step(trigger.new_state(), frame, context) != trigger.step(trigger.new_state(), frame, None)


def catalogue_problems(builtins: dict[str, Builtin], frame_only: frozenset[str]) -> list[str]:
    """What is out of step between `builtins` (as declared) and the code that uses them."""
    problems = []
    implemented = {name.removeprefix("b_") for name in vars(Compiler) if name.startswith("b_")}
    for name in sorted(set(builtins) - implemented):
        problems.append(f"{name}: declared but the compiler has no b_{name}")
    for name in sorted(implemented - set(builtins)):
        problems.append(f"{name}: compiled but not declared")
    for alias, target in BUILTIN_ALIASES.items():
        if target not in builtins:
            problems.append(f"alias {alias}: names undeclared {target}")
    expected = {name for name, b in builtins.items() if not b.temporal and not b.needs_map and not b.needs_detectors}
    if set(frame_only) != expected:
        problems.append(f"suite predicates accept {sorted(frame_only)}, the catalogue's frame-only built-ins are {sorted(expected)}")
    for name, b in builtins.items():
        if name not in implemented:
            continue
        trigger = compile_trigger(b.example)
        used = [builtins.get(n) for n in _called(trigger)]
        if name not in _called(trigger) or None in used:
            problems.append(f"{name}: its example calls {_called(trigger)}")
            continue
        flags = [
            ("temporal", trigger.state_items > 0, any(u.temporal for u in used)),
            ("needs_detectors", bool(trigger.required_detectors), any(u.needs_detectors for u in used)),
            ("needs_map", _depends_on_the_map(trigger), any(u.needs_map for u in used)),
            ("columnar", trigger.vec is not None, all(u.columnar for u in used)),
        ]
        for flag, compiled, declared in flags:
            if compiled != declared:
                problems.append(f"{name}: {flag} is {declared} in the catalogue but compiling {b.example!r} says {compiled}")
    return problems


def test_the_compiler_and_the_suite_predicates_follow_the_catalogue():
    assert catalogue_problems(BUILTINS, FRAME_ONLY) == []


def test_the_check_fails_on_a_catalogue_out_of_step():
    doctored = {
        **BUILTINS,
        "flicker": replace(BUILTINS["flicker"], temporal=False),
        "score": replace(BUILTINS["score"], needs_detectors=False),
        "map_disagreement": replace(BUILTINS["map_disagreement"], needs_map=False),
        "first_seen": replace(BUILTINS["first_seen"], columnar=True),
        "sparkle": Builtin("sparkle", (), 0, BOOL, "not implemented", "sparkle()"),
    }
    del doctored["abs"]
    problems = "\n".join(catalogue_problems(doctored, FRAME_ONLY))
    assert "flicker: temporal is False" in problems
    assert "score: needs_detectors is False" in problems
    assert "map_disagreement: needs_map is False" in problems
    assert "first_seen: columnar is True" in problems
    assert "sparkle: declared but the compiler has no b_sparkle" in problems
    assert "abs: compiled but not declared" in problems
    assert "suite predicates accept" in problems  # flicker and score would now be frame-only
    assert "suite predicates accept" in "\n".join(catalogue_problems(BUILTINS, FRAME_ONLY | {"within"}))


def test_suite_predicates_accept_exactly_the_examples_of_frame_only_built_ins():
    for b in BUILTINS.values():
        trigger = compile_trigger(b.example)
        try:
            compile_predicate(b.example)
            accepted = True
        except PredicateError:
            accepted = False
        assert accepted == all(BUILTINS[n].frame_only for n in _called(trigger)), b.example


def test_the_column_backend_computes_every_field_as_the_catalogue_does():
    frames = [standard_frame(1), make_frame(2, [det("cone", 1.0), det("cone", float("nan"), class_scores={"a": 0.0}), det("x", 0.3, range_m=0.0, bearing=-3.0, box=(0.5, 0.5, 0.5, 0.5))])]
    batch = _Batch()
    batch.add_car(0, CarFrames(frames, []), [0, 1])
    batch.finish()
    dets = batch.dets()
    fields = {name: f.get for name, f in DET_FIELDS.items() if f.get is not None} | REDUCED_FIELDS
    for name, get in fields.items():
        column = batch.det_column(name)
        if name == "cls":  # class codes
            names = {code: cls for cls, code in batch.vocab.items()}
            column = np.array([names[c] for c in column])
        np.testing.assert_array_equal(column, np.array([get(d) for d in dets]), err_msg=name)


def test_docs_and_explain_show_every_built_in():
    runner = CliRunner()
    for name, b in BUILTINS.items():  # the reference itself: test_triggerlang_language.py
        out = runner.invoke(app, ["explain", b.example]).stdout
        assert re.search(rf"^  {name}\(.*  -- {re.escape(b.summary)}$", out, re.M), (name, out)
    for alias in BUILTIN_ALIASES:
        assert f"`{alias}(" in DOCS, alias
    for alias in FIRST_ALIASES:
        assert f"`.{alias}`" in DOCS, alias
    slow = [b.name for b in BUILTINS.values() if not b.columnar]
    bullet = DOCS.split("**What still runs frame by frame**", 1)[1].split("\n* ", 1)[0]
    out = runner.invoke(app, ["explain", BUILTINS[slow[0]].example]).stdout
    for name in slow:
        assert f"`{name}`" in bullet and name in out.split("fleet-side:", 1)[1], name


def test_the_documented_limits_are_the_catalogue_s():
    limits = DOCS.split("## Limits", 1)[1].split("\n## ", 1)[0]
    for row, value in [("`window` / `frames`", MAX_WINDOW), ("temporal built-ins per trigger", MAX_TEMPORAL), ("tracks remembered per track-based built-in", MAX_TRACKS), ("per-car state", MAX_STATE_ITEMS)]:
        assert re.search(rf"^\| {re.escape(row)} \| [^|]*\b{value}\b", limits, re.M), row
