"""Type-checks the AST and compiles it, once, into Python closures.

Every node becomes a `C`: its type (bool, number, string, ...), its *level* (a constant, a
function of the frame `f(state)`, or a function of one detection `f(d, state)`), and its
normalized source text. Temporal built-ins (flicker, first_seen, sustained, ...) own a *slot*
in the per-car state and an *updater* that runs on every frame before the predicate, so their
history is correct even when `and`/`or` short-circuit past them.

Per-frame work is then: run the updaters, call one closure. No tree walking, no `eval`.

Each node also carries `vec`, the same computation as a hashable tree, for evaluating many
triggers over many frames at once (`vector.py`, the trigger evaluator's path).

What it checks against (built-ins, fields, types, limits) is declared in `catalogue.py`.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from longtail.triggerlang.catalogue import (
    ATTR,
    BOOL,
    BUILTIN_ALIASES,
    BUILTINS,
    DET_ALIASES,
    DET_FIELDS,
    EGO_FIELDS,
    FIRST,
    FIRST_ALIASES,
    FIRST_FIELDS,
    INF,
    LIST,
    MAX_STATE_ITEMS,
    MAX_TEMPORAL,
    MAX_TRACKS,
    NAN,
    NUM,
    REDUCED_FIELDS,
    REQUIRED,
    STR,
    TYPE_TEXT,
    VEC_TEMPORAL,
    Builtin,
    Param,
    det_bearing,
    det_range,
    truthy,
)
from longtail.triggerlang.errors import TriggerSyntaxError
from longtail.triggerlang.parser import (
    BinOp,
    Bool,
    BoolOp,
    Call,
    Compare,
    Field,
    ListLit,
    Name,
    Neg,
    Node,
    Not,
    Num,
    Str,
    parse,
)

# Levels
CONST, FRAME, DETL = 0, 1, 2
FrameFn = Callable[[Any], Any]  # FRAME level: fn(state)
DetFn = Callable[[Any, Any], Any]  # DETL level: fn(d, state)

DETECTOR_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}(@[0-9]{1,18})?$")


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:  # pragma: no cover
        return "<unset>"


UNSET = _Unset()


def fmt_num(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def fmt_str(value: str, bare: bool) -> str:
    if bare:
        return value
    return f'"{value}"' if '"' not in value else f"'{value}'"


def _wrap_angle(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


# ---------------------------------------------------------------------------------------------
# Compiled nodes
# ---------------------------------------------------------------------------------------------


@dataclass
class C:
    type: str
    level: int
    text: str
    prec: int = 9
    value: Any = None  # when level == CONST
    fn: Callable[..., Any] | None = None  # FRAME: fn(state); DETL: fn(d, state)
    costly: bool = False  # loops over detections: memoized when used inside a detection context
    extra: Any = None  # FIRST: index of its state slot
    bare_class: bool = False  # a bare identifier used as a class name
    # The same computation as a hashable tree for the column backend (`vector.py`); None when
    # the backend cannot evaluate it (the trigger then runs frame by frame).
    vec: Any = None


# Precedences for printing the normalized form.
P_OR, P_AND, P_NOT, P_CMP, P_SUM, P_PROD, P_NEG, P_ATOM = 1, 2, 3, 4, 5, 6, 7, 9


def _paren(c: C, min_prec: int) -> str:
    return c.text if c.prec >= min_prec else f"({c.text})"


# Column-backend trees (see C.vec): tuples ("op", child, ..., constant params...). A tree is None
# as soon as one child is, so an unsupported built-in makes its whole trigger frame-by-frame.
ALL_DETS = ("all_dets",)  # the detection filter "every detection"


def vconst(value: Any) -> tuple:
    return ("const", value, type(value).__name__)  # the type keeps True, 1 and 1.0 apart


def vnode(op: str, *children: Any) -> tuple | None:
    return None if any(c is None for c in children) else (op, *children)


def _vec_slots(tree: Any) -> set[int]:
    if not isinstance(tree, tuple) or not tree or tree[0] == "const":
        return set()
    slots = {tree[2]} if tree[0] in VEC_TEMPORAL else set()
    for child in tree[1:]:
        if isinstance(child, tuple):
            slots |= _vec_slots(child)
    return slots


def vec_at(c: C, level: int) -> tuple | None:
    """c's tree, broadcast from the frame to each detection when used at detection level."""
    if c.level == CONST:
        return vconst(c.value)
    if c.vec is None:
        return None
    return ("bcast", c.vec) if level == DETL and c.level == FRAME else c.vec


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# ---------------------------------------------------------------------------------------------
# Temporal slots
# ---------------------------------------------------------------------------------------------


class FlickerSlot:
    __slots__ = ("prev", "prev_idx", "toggles")

    def __init__(self, k: int) -> None:
        self.prev: bool | None = None
        self.prev_idx = 0
        self.toggles: deque[int] = deque(maxlen=k)  # index of the earlier frame of each toggle


class TrackFlickerSlot:
    __slots__ = ("tracks", "hot_until")

    def __init__(self) -> None:
        self.tracks: dict[int, list] = {}  # track_id -> [cls, last_idx, deque of change indices]
        self.hot_until = -1


class FirstSeenSlot:
    __slots__ = ("tracks", "untracked_idx", "started", "distance", "conf", "bearing", "count")

    def __init__(self) -> None:
        self.tracks: dict[int, int] = {}  # track_id -> last frame index seen
        self.untracked_idx: int | None = None
        self.started = False
        self.distance = NAN
        self.conf = 0.0
        self.bearing = NAN
        self.count = 0.0


class RunSlot:
    __slots__ = ("start", "last")

    def __init__(self) -> None:
        self.start: int | None = None  # sustained: index where the current true run began
        self.last: int | None = None  # within: last index where cond was true


def _remember(tracks: dict, key: int, value, horizon: int, last_of) -> None:
    """Insert/refresh `key` as most recently seen, keeping at most MAX_TRACKS entries
    (first dropping entries last seen before `horizon`, then the least recently seen)."""
    if key in tracks:
        del tracks[key]
    elif len(tracks) >= MAX_TRACKS:
        stale = [k for k, v in tracks.items() if last_of(v) < horizon]
        for k in stale:
            del tracks[k]
        if len(tracks) >= MAX_TRACKS:
            del tracks[next(iter(tracks))]  # least recently seen
    tracks[key] = value


def _entry_last(entry: list) -> int:
    return entry[1]


# ---------------------------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------------------------


@dataclass
class Program:
    predicate: Callable[[Any], bool]
    updaters: list[Callable[[Any], None]]
    slot_factories: list[Callable[[], Any]]
    memo_size: int
    required_detectors: frozenset[str]
    normalized: str
    calls: list[str]  # each built-in call with all its arguments, defaults included
    state_items: int  # upper bound of remembered values per car
    constant: bool | None  # the predicate's value when it does not depend on the frame
    vec: tuple | None  # the predicate for the column backend; None = frame by frame only


@dataclass
class _Selector:
    cls: str | None = None  # class name
    pred: Callable | None = None  # det-level bool fn
    text: str = ""
    vec: Any = None  # det-level bool, for the column backend


class Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        self.det_scope = False
        self.updaters: list[Callable] = []
        self.factories: list[Callable] = []
        self.memo_size = 0
        self.detectors: set[str] = set()
        self.calls: list[str] = []
        self.state_items = 0
        self.temporal = 0

    # -- helpers ---------------------------------------------------------------------------------

    def err(self, message: str, at: Node | tuple[int, int]) -> TriggerSyntaxError:
        line, column = at.pos if isinstance(at, Node) else at
        return TriggerSyntaxError(message, self.source, line, column)

    def program(self, node: Node) -> Program:
        c = self.compile(node)
        if c.type != BOOL:
            raise self.err(self._not_bool_message(c, "a trigger must be a condition (true or false)"), node)
        if c.level == CONST:
            value = bool(c.value)
            predicate = (lambda s: True) if value else (lambda s: False)
            constant = value
        else:
            predicate, constant = self.as_frame(c), None
        vec = vec_at(c, FRAME)
        if vec is not None and len(_vec_slots(vec)) != len(self.factories):
            vec = None  # a temporal built-in folded away (`true or flicker(...)`) still keeps its slot up to date
        return Program(predicate, self.updaters, self.factories, self.memo_size, frozenset(self.detectors), c.text, self.calls, self.state_items, constant, vec)

    def _not_bool_message(self, c: C, prefix: str) -> str:
        got = TYPE_TEXT.get(c.type, c.type)
        hint = ""
        if c.type == STR and c.bare_class:
            got = f"the class name '{c.text}'"
            hint = f" (did you mean any({c.text})?)"
        elif c.type == NUM:
            hint = " (compare it, e.g. '> 0.5')"
        elif c.type == FIRST:
            hint = " (use one of its fields, e.g. .distance < 20 or .count > 0)"
        return f"{prefix}, got {got}{hint}"

    def as_frame(self, c: C) -> FrameFn:
        if c.level == CONST:
            v = c.value
            return lambda s: v
        assert c.level == FRAME and c.fn is not None
        return c.fn

    def as_det(self, c: C) -> DetFn:
        if c.level == DETL:
            assert c.fn is not None
            return c.fn
        if c.level == CONST:
            v = c.value
            return lambda d, s: v
        f = self.as_frame(c)
        if c.costly:  # e.g. count(...) inside any(...): compute once per frame, not once per detection
            i = self.memo_size
            self.memo_size += 1

            def memo(d, s, f=f, i=i):
                m = s.memo
                v = m[i]
                if v is UNSET:
                    v = m[i] = f(s)
                return v

            return memo
        return lambda d, s: f(s)

    def lift(self, c: C, level: int) -> FrameFn | DetFn:
        return self.as_det(c) if level == DETL else self.as_frame(c)

    def unary(self, c: C, op: Callable, type_: str, text: str, prec: int, vop: tuple) -> C:
        if c.level == CONST:
            return C(type_, CONST, text, prec, value=op(c.value))
        vec = vnode(vop[0], c.vec, *vop[1:])
        if c.level == FRAME:
            f = self.as_frame(c)
            return C(type_, FRAME, text, prec, fn=lambda s: op(f(s)), costly=c.costly, vec=vec)
        g = self.as_det(c)
        return C(type_, DETL, text, prec, fn=lambda d, s: op(g(d, s)), vec=vec)

    def binary(self, a: C, b: C, op: Callable, type_: str, text: str, prec: int, vop: str) -> C:
        level = max(a.level, b.level)
        costly = a.costly or b.costly
        if level == CONST:
            return C(type_, CONST, text, prec, value=op(a.value, b.value))
        vec = vnode(vop, vec_at(a, level), vec_at(b, level))
        fn: FrameFn | DetFn
        if level == FRAME:
            if a.level == CONST:
                x, g = a.value, self.as_frame(b)
                fn = lambda s: op(x, g(s))  # noqa: E731
            elif b.level == CONST:
                f, y = self.as_frame(a), b.value
                fn = lambda s: op(f(s), y)  # noqa: E731
            else:
                f, g = self.as_frame(a), self.as_frame(b)
                fn = lambda s: op(f(s), g(s))  # noqa: E731
            return C(type_, FRAME, text, prec, fn=fn, costly=costly, vec=vec)
        if a.level == CONST:
            dx, dg = a.value, self.as_det(b)
            fn = lambda d, s: op(dx, dg(d, s))  # noqa: E731
        elif b.level == CONST:
            df, dy = self.as_det(a), b.value
            fn = lambda d, s: op(df(d, s), dy)  # noqa: E731
        else:
            df, dg = self.as_det(a), self.as_det(b)
            fn = lambda d, s: op(df(d, s), dg(d, s))  # noqa: E731
        return C(type_, DETL, text, prec, fn=fn, vec=vec)

    def to_bool(self, c: C, at: Node, context: str) -> C:
        if c.type == BOOL:
            return c
        if c.type == ATTR:
            return self.unary(c, truthy, BOOL, c.text, c.prec, ("truthy",))
        raise self.err(self._not_bool_message(c, f"{context} needs a condition"), at)

    # -- dispatch --------------------------------------------------------------------------------

    def compile(self, node: Node) -> C:
        method = getattr(self, "c_" + type(node).__name__)
        return method(node)

    def c_Num(self, node: Num) -> C:
        return C(NUM, CONST, fmt_num(node.value), value=node.value)

    def c_Str(self, node: Str) -> C:
        return C(STR, CONST, fmt_str(node.value, node.bare), value=node.value)

    def c_Bool(self, node: Bool) -> C:
        return C(BOOL, CONST, "true" if node.value else "false", value=node.value)

    def c_Name(self, node: Name) -> C:
        if node.name == "d":
            if not self.det_scope:
                raise self.err("'d' (the current detection) only exists inside any(), all(), count() and the other built-ins that take a condition on d", node)
            raise self.err("'d' is the current detection; use one of its fields, e.g. d.conf or d.cls", node)
        if node.name == "ego":
            raise self.err("'ego' is the ego pose; use one of its fields: " + ", ".join(f"ego.{k}" for k in EGO_FIELDS), node)
        return C(STR, CONST, node.name, value=node.name, bare_class=True)

    def c_ListLit(self, node: ListLit) -> C:
        raise self.err("a list is only allowed after 'in', e.g. d.cls in [stop_sign, yield_sign]", node)

    def c_Neg(self, node: Neg) -> C:
        c = self.compile(node.operand)
        if c.type != NUM:
            raise self.err(f"'-' needs a number, got {TYPE_TEXT.get(c.type, c.type)}", node.operand)
        return self.unary(c, operator.neg, NUM, "-" + _paren(c, P_NEG), P_NEG, ("neg",))

    def c_BinOp(self, node: BinOp) -> C:
        a, b = self.compile(node.left), self.compile(node.right)
        for side, c in ((node.left, a), (node.right, b)):
            if c.type != NUM:
                raise self.err(f"'{node.op}' needs numbers, got {TYPE_TEXT.get(c.type, c.type)}", side)
        prec = P_SUM if node.op in "+-" else P_PROD
        text = f"{_paren(a, prec)} {node.op} {_paren(b, prec + 1)}"
        op = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div}[node.op]
        return self.binary(a, b, op, NUM, text, prec, {"+": "add", "-": "sub", "*": "mul", "/": "div"}[node.op])

    def c_Not(self, node: Not) -> C:
        c = self.to_bool(self.compile(node.operand), node.operand, "'not'")
        return self.unary(c, operator.not_, BOOL, "not " + _paren(c, P_NOT), P_NOT, ("not",))

    def c_BoolOp(self, node: BoolOp) -> C:
        parts = [self.to_bool(self.compile(n), n, f"'{node.op}'") for n in node.operands]
        prec = P_AND if node.op == "and" else P_OR
        text = f" {node.op} ".join(_paren(p, prec) for p in parts)
        return self._bool_chain(node.op, parts, text, prec)

    def _bool_chain(self, op: str, parts: list[C], text: str, prec: int) -> C:
        absorbing = op == "or"  # `x or true` is true, `x and false` is false
        dynamic = []
        for p in parts:
            if p.level == CONST:
                if bool(p.value) == absorbing:
                    return C(BOOL, CONST, text, prec, value=absorbing)
                continue  # neutral element: drop
            dynamic.append(p)
        if not dynamic:
            return C(BOOL, CONST, text, prec, value=not absorbing)
        if len(dynamic) == 1:
            only = dynamic[0]
            return C(BOOL, only.level, text, prec, fn=only.fn, costly=only.costly, vec=only.vec)
        level = max(p.level for p in dynamic)
        fns = [self.lift(p, level) for p in dynamic]
        fn = fns[0]
        for g in fns[1:]:
            fn = _and2(fn, g, level) if op == "and" else _or2(fn, g, level)
        vec = vnode(op, *(vec_at(p, level) for p in dynamic))
        return C(BOOL, level, text, prec, fn=fn, costly=any(p.costly for p in dynamic), vec=vec)

    def c_Compare(self, node: Compare) -> C:
        cs = [C(LIST, CONST, "[...]") if isinstance(n, ListLit) and i and node.ops[i - 1][0] == "in" else self.compile(n) for i, n in enumerate(node.operands)]
        pairs: list[C] = []
        if any(op == "in" for op, _, _ in node.ops) and len(node.ops) > 1:
            op, line, column = next(o for o in node.ops if o[0] == "in")
            raise self.err("'in' cannot be chained with other comparisons; add parentheses", (line, column))
        for i, (op, line, column) in enumerate(node.ops):
            a, b = cs[i], cs[i + 1]
            pairs.append(self._compare(op, a, b, (line, column), node.operands[i + 1]))
        text = " ".join([_paren(cs[0], P_CMP + 1)] + [f"{op} {_paren(c, P_CMP + 1)}" for (op, _, _), c in zip(node.ops, cs[1:])])
        if len(pairs) == 1:
            p = pairs[0]
            p.text, p.prec = text, P_CMP
            return p
        return self._bool_chain("and", pairs, text, P_CMP)

    def _compare(self, op: str, a: C, b: C, at: tuple[int, int], right: Node) -> C:
        ta, tb = a.type, b.type
        if op == "in":
            if not isinstance(right, ListLit):
                raise self.err("'in' needs a list on its right, e.g. [stop_sign, yield_sign]", right)
            items = []
            want = NUM if ta == NUM else STR if ta in (STR, ATTR) else None
            if want is None:
                raise self.err(f"'in' tests a number or a string, got {TYPE_TEXT.get(ta, ta)}", at)
            for item in right.items:
                ci = self.compile(item)
                if ci.level != CONST or ci.type != want:
                    raise self.err(f"list items must be constant {'numbers' if want == NUM else 'class names or strings'}", item)
                items.append(ci.value)
            values = frozenset(items)
            text = "[" + ", ".join(self.compile(i).text for i in right.items) + "]"
            b.text = text
            return self.unary(a, lambda v: v in values, BOOL, f"{a.text} in {text}", P_CMP, ("in", values))
        kinds = {ta, tb}
        if kinds == {NUM}:
            fn, vop = _NUM_OPS[op], _VEC_NUM_OPS[op]
        elif kinds <= {STR, ATTR}:
            if op not in ("==", "!="):
                raise self.err(f"strings can only be compared with '==' or '!=', not '{op}'", at)
            fn, vop = _EQ_OPS[op], _VEC_EQ_OPS[op]
        elif kinds <= {BOOL, ATTR} and BOOL in kinds:
            if op not in ("==", "!="):
                raise self.err(f"booleans can only be compared with '==' or '!=', not '{op}'", at)
            a = self.to_bool(a, right, "comparison") if ta == ATTR else a
            b = self.to_bool(b, right, "comparison") if tb == ATTR else b
            fn, vop = _EQ_OPS[op], _VEC_EQ_OPS[op]
        else:
            hint = ""
            if STR in kinds and NUM in kinds:
                hint = " (class names and strings are not numbers)"
            if FIRST in kinds:
                hint = " (use a field, e.g. first_seen(stop_sign).distance)"
            raise self.err(f"cannot compare {TYPE_TEXT.get(ta, ta)} with {TYPE_TEXT.get(tb, tb)} using '{op}'{hint}", at)
        return self.binary(a, b, fn, BOOL, f"{a.text} {op} {b.text}", P_CMP, vop)

    def c_Field(self, node: Field) -> C:
        at = (node.name_line, node.name_column)
        obj = node.obj
        # d.<field> and d.<map>.<key>
        if isinstance(obj, Name) and obj.name == "d":
            if not self.det_scope:
                self.c_Name(obj)  # raises the scoping error at 'd'
            name = DET_ALIASES.get(node.name, node.name)
            if name not in DET_FIELDS:
                raise self.err(f"unknown field 'd.{node.name}'{_suggest(node.name, [*DET_FIELDS, *DET_ALIASES])} (fields: {', '.join(DET_FIELDS)})", at)
            det_field = DET_FIELDS[name]
            det_get = det_field.get
            if det_get is None:
                raise self.err(f"'d.{name}' needs a key, e.g. d.{name}.{'occluded' if name != 'class_score' else 'stop_sign'}", at)
            return C(det_field.type, DETL, f"d.{name}", fn=lambda d, s: det_get(d), vec=("det", name))
        if isinstance(obj, Field) and isinstance(obj.obj, Name) and obj.obj.name == "d":
            base = DET_ALIASES.get(obj.name, obj.name)
            if base in DET_FIELDS and DET_FIELDS[base].get is None:
                if not self.det_scope:
                    self.c_Name(obj.obj)
                key = node.name
                text = f"d.{base}.{key}"
                if base == "attr":
                    return C(ATTR, DETL, text, fn=lambda d, s: d.attributes.get(key, ""), vec=("attr", key))
                if base == "attr_score":
                    return C(NUM, DETL, text, fn=lambda d, s: d.attribute_scores.get(key, 0.0), vec=("attr_score", key))
                return C(NUM, DETL, text, fn=lambda d, s: d.class_scores.get(key, 0.0), vec=("class_score", key))
        if isinstance(obj, Name) and obj.name == "ego":
            if node.name not in EGO_FIELDS:
                raise self.err(f"unknown field 'ego.{node.name}'{_suggest(node.name, EGO_FIELDS)} (fields: {', '.join(EGO_FIELDS)})", at)
            getter = EGO_FIELDS[node.name][0]
            return C(NUM, FRAME, f"ego.{node.name}", fn=lambda s: getter(s.frame.ego), vec=("ego", node.name))
        c = self.compile(obj)
        if c.type == FIRST:
            name = FIRST_ALIASES.get(node.name, node.name)
            if name not in FIRST_FIELDS:
                raise self.err(f"unknown field '.{node.name}' of first_seen(){_suggest(node.name, FIRST_FIELDS)} (fields: {', '.join(FIRST_FIELDS)})", at)
            slot_index = c.extra
            attr = FIRST_FIELDS[name][0]
            getter = operator.attrgetter(attr)
            return C(NUM, FRAME, f"{c.text}.{name}", fn=lambda s: getter(s.slots[slot_index]))
        raise self.err(f"{TYPE_TEXT.get(c.type, c.type)} has no field '{node.name}'", at)

    # -- calls -----------------------------------------------------------------------------------

    def c_Call(self, node: Call) -> C:
        spec = BUILTINS.get(BUILTIN_ALIASES.get(node.name, node.name))
        if spec is None:
            raise self.err(f"unknown function '{node.name}'{_suggest(node.name, [*BUILTINS, *BUILTIN_ALIASES])}", node)
        bound = self._bind(node, spec)
        return getattr(self, "b_" + spec.name)(node, spec, bound)

    def _bind(self, node: Call, spec: Builtin) -> dict[str, Any]:
        if len(node.args) > spec.positional:
            extra = node.args[spec.positional]
            allowed = ", ".join(p.name for p in spec.params[: spec.positional])
            raise self.err(f"{spec.name}() takes {spec.positional} positional argument{'s' if spec.positional > 1 else ''} ({allowed}), got {len(node.args)}", extra)
        given: dict[str, Node] = {}
        for param, arg in zip(spec.params, node.args):
            given[param.name] = arg
        names = {p.name: p for p in spec.params}
        for kw in node.kwargs:
            if kw.name not in names:
                accepted = ", ".join(p.name for p in spec.params[spec.positional :]) or "none"
                raise self.err(f"unknown keyword argument '{kw.name}' for {spec.name}(){_suggest(kw.name, names)} (keywords: {accepted})", kw)
            if kw.name in given:
                raise self.err(f"{spec.name}() got '{kw.name}' twice", kw)
            given[kw.name] = kw.value
        close = (node.end_line, max(node.end_column - 1, 1)) if node.end_line else node.pos
        bound: dict[str, Any] = {}
        for p in spec.params:
            if p.name not in given:
                if p.default is REQUIRED:
                    raise self.err(f"{spec.name}() is missing its argument '{p.name}' ({p.doc or p.kind})", close)
                bound[p.name] = p.default
                continue
            bound[p.name] = self._convert(spec, p, given[p.name])
        bound["_given"] = given
        return bound

    def _constant(self, spec: Builtin, p: Param, arg: Node, want: str) -> Any:
        saved, self.det_scope = self.det_scope, False
        try:
            c = self.compile(arg)
        finally:
            self.det_scope = saved
        if c.level != CONST or c.type != want:
            raise self.err(f"'{p.name}' of {spec.name}() must be a constant {'number' if want == NUM else 'true or false'}", arg)
        return c.value

    def _convert(self, spec: Builtin, p: Param, arg: Node) -> Any:
        kind = p.kind
        if kind in ("num", "int"):
            v = self._constant(spec, p, arg, NUM)
            if kind == "int" and not float(v).is_integer():
                raise self.err(f"'{p.name}' of {spec.name}() must be a whole number", arg)
            lo = -INF if p.lo is None else p.lo
            hi = INF if p.hi is None else p.hi
            if v < lo or v > hi:
                raise self.err(f"'{p.name}' of {spec.name}() must be between {fmt_num(lo)} and {fmt_num(hi)}, got {fmt_num(v)}", arg)
            return int(v) if kind == "int" else float(v)
        if kind == "flag":
            return bool(self._constant(spec, p, arg, BOOL))
        if kind == "choice":
            value = arg.name if isinstance(arg, Name) else arg.value if isinstance(arg, Str) else None
            if value not in p.choices:
                raise self.err(f"'{p.name}' of {spec.name}() must be one of: {', '.join(p.choices)}", arg)
            return value
        if kind == "class":
            if isinstance(arg, Name) and arg.name not in ("d", "ego"):
                return _Selector(cls=arg.name, text=arg.name)
            if isinstance(arg, Str):
                return _Selector(cls=arg.value, text=fmt_str(arg.value, False))
            raise self.err(f"{spec.name}() needs a class name here (a bare name or a string)", arg)
        if kind == "detector":
            if isinstance(arg, Str):
                key, text = arg.value, fmt_str(arg.value, False)
            elif isinstance(arg, Name) and arg.name not in ("d", "ego"):
                key, text = arg.name, arg.name
            else:
                raise self.err(f'{spec.name}() needs a detector key as a string, e.g. "occluded_stop_sign@3"', arg)
            if not DETECTOR_KEY.match(key):
                raise self.err(f'invalid detector key {key!r}: expected "name" or "name@version" (letters, digits, _ . -; version digits)', arg)
            return key, text
        if kind == "selector":
            if isinstance(arg, Name) and arg.name not in ("d", "ego"):
                return _Selector(cls=arg.name, text=arg.name)
            if isinstance(arg, Str):
                return _Selector(cls=arg.value, text=fmt_str(arg.value, False))
            saved, self.det_scope = self.det_scope, True
            try:
                c = self.compile(arg)
            finally:
                self.det_scope = saved
            if c.type not in (BOOL, ATTR):
                raise self.err(f"{spec.name}() needs a class name or a condition on d, got {TYPE_TEXT.get(c.type, c.type)}", arg)
            c = self.to_bool(c, arg, f"{spec.name}()")
            return _Selector(pred=self.as_det(c), text=c.text, vec=vec_at(c, DETL))
        if kind == "cond":
            saved, self.det_scope = self.det_scope, False
            try:
                c = self.compile(arg)
            finally:
                self.det_scope = saved
            return self.to_bool(c, arg, f"{spec.name}()")
        if kind == "value":
            c = self.compile(arg)
            if c.type != NUM:
                raise self.err(f"{spec.name}() needs a number, got {TYPE_TEXT.get(c.type, c.type)}", arg)
            return c
        raise AssertionError(kind)  # pragma: no cover

    def _call_text(self, node: Call, spec: Builtin, bound: dict, full: bool) -> str:
        parts = []
        for i, p in enumerate(spec.params):
            v = bound[p.name]
            if p.name not in bound["_given"] and not full:
                continue
            if isinstance(v, _Selector):
                text = v.text
            elif isinstance(v, C):
                text = v.text
            elif isinstance(v, tuple):
                text = v[1]
            elif isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, (int, float)):
                text = fmt_num(v)
            elif v is None:
                continue
            else:
                text = str(v)
            positional = i < spec.positional and all(q.name in bound["_given"] or full for q in spec.params[:i])
            parts.append(text if positional else f"{p.name}={text}")
        return f"{spec.name}({', '.join(parts)})"

    def _finish_call(self, node: Call, spec: Builtin, bound: dict) -> str:
        text = self._call_text(node, spec, bound, full=False)
        self.calls.append(self._call_text(node, spec, bound, full=True))
        return text

    def _claim_state(self, node: Call, spec: Builtin, items: int, factory: Callable) -> int:
        self.temporal += 1
        if self.temporal > MAX_TEMPORAL:
            raise self.err(f"too many temporal built-ins (at most {MAX_TEMPORAL} per trigger)", node)
        self.state_items += items
        if self.state_items > MAX_STATE_ITEMS:
            raise self.err(f"this trigger would keep up to {self.state_items} values per car (at most {MAX_STATE_ITEMS}); use smaller windows", node)
        self.factories.append(factory)
        return len(self.factories) - 1

    @overload
    @staticmethod
    def _filter(sel: _Selector, min_conf: float) -> DetFn: ...

    @overload
    @staticmethod
    def _filter(sel: _Selector | None, min_conf: float) -> DetFn | None: ...

    @staticmethod
    def _filter(sel: _Selector | None, min_conf: float) -> DetFn | None:
        """Detection filter (d, s) -> bool, or None for 'every detection'."""
        if sel is None:
            if min_conf > 0.0:
                return lambda d, s: d.confidence >= min_conf
            return None
        if sel.cls is not None:
            cls = sel.cls
            if min_conf > 0.0:
                return lambda d, s: d.cls == cls and d.confidence >= min_conf
            return lambda d, s: d.cls == cls
        pred = sel.pred
        assert pred is not None  # a selector is a class name or a condition
        if min_conf > 0.0:
            return lambda d, s: d.confidence >= min_conf and pred(d, s)
        return pred

    @staticmethod
    def _filter_vec(sel: _Selector | None, min_conf: float) -> tuple | None:
        """_filter as a column tree: a detection mask (ALL_DETS for every detection)."""
        parts = []
        if sel is not None:
            parts.append(("eq", ("det", "cls"), vconst(sel.cls)) if sel.cls is not None else sel.vec)
        if min_conf > 0.0:
            parts.append(("ge", ("det", "conf"), vconst(min_conf)))
        if not parts:
            return ALL_DETS
        return parts[0] if len(parts) == 1 else vnode("and", *parts)

    # -- built-ins: frame filters ---------------------------------------------------------------

    def b_any(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        sel, min_conf = bound["selector"], bound["min_conf"]
        text = self._finish_call(node, spec, bound)
        if sel.cls is not None and min_conf == 0.0:
            cls = sel.cls

            def fn(s):
                for d in s.dets:
                    if d.cls == cls:
                        return True
                return False
        else:
            pred = self._filter(sel, min_conf)

            def fn(s):
                for d in s.dets:
                    if pred(d, s):
                        return True
                return False

        return C(BOOL, FRAME, text, fn=fn, costly=True, vec=vnode("any", self._filter_vec(sel, min_conf)))

    def b_all(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        pred = self._filter(bound["selector"], 0.0)
        text = self._finish_call(node, spec, bound)

        def fn(s):
            for d in s.dets:
                if not pred(d, s):
                    return False
            return True

        return C(BOOL, FRAME, text, fn=fn, costly=True, vec=vnode("all", self._filter_vec(bound["selector"], 0.0)))

    def b_count(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        pred = self._filter(bound["selector"], bound["min_conf"])
        text = self._finish_call(node, spec, bound)
        vec = vnode("count", self._filter_vec(bound["selector"], bound["min_conf"]))
        if pred is None:
            return C(NUM, FRAME, text, fn=lambda s: float(len(s.dets)), costly=False, vec=vec)
        sel = bound["selector"]
        if sel is not None and sel.cls is not None and bound["min_conf"] == 0.0:
            cls = sel.cls

            def fn(s):
                n = 0
                for d in s.dets:
                    if d.cls == cls:
                        n += 1
                return float(n)
        else:

            def fn(s):
                n = 0
                for d in s.dets:
                    if pred(d, s):
                        n += 1
                return float(n)

        return C(NUM, FRAME, text, fn=fn, costly=True, vec=vec)

    def _reduce(self, node: Call, spec: Builtin, bound: dict[str, Any], field: str, better: Callable, empty: float, min_conf: float = 0.0) -> C:
        """Best `field` (a key of REDUCED_FIELDS) of the matching detections by `better`, skipping
        unknown values; `empty` when there is none."""
        pred = self._filter(bound["selector"], min_conf)
        text = self._finish_call(node, spec, bound)
        value = REDUCED_FIELDS[field]
        vec = vnode("reduce", self._filter_vec(bound["selector"], min_conf), ("det", field), "max" if better is operator.gt else "min", vconst(empty))

        def fn(s):
            best = empty
            found = False
            for d in s.dets:
                if pred is None or pred(d, s):
                    v = value(d)
                    if v == v and (not found or better(v, best)):  # skip unknown (NaN) values
                        best, found = v, True
            return best

        return C(NUM, FRAME, text, fn=fn, costly=True, vec=vec)

    def b_max_conf(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        return self._reduce(node, spec, bound, "conf", operator.gt, 0.0)

    def b_nearest(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        return self._reduce(node, spec, bound, "range", operator.lt, NAN, bound["min_conf"])

    def b_entropy(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        field = "entropy_normalized" if bound["normalized"] else "entropy"
        return self._reduce(node, spec, bound, field, operator.gt, 0.0, bound["min_conf"])

    def b_margin(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        return self._reduce(node, spec, bound, "margin", operator.lt, 1.0, bound["min_conf"])

    def b_score(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        key, _ = bound["detector"]
        self.detectors.add(key)
        text = self._finish_call(node, spec, bound)
        return C(NUM, FRAME, text, fn=lambda s: s.frame.trigger_scores.get(key, 0.0), vec=("score", key))

    def b_has_score(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        key, _ = bound["detector"]
        self.detectors.add(key)
        text = self._finish_call(node, spec, bound)
        return C(BOOL, FRAME, text, fn=lambda s: key in s.frame.trigger_scores, vec=("has_score", key))

    def b_abs(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        x = bound["x"]
        return self.unary(x, abs, NUM, self._finish_call(node, spec, bound), P_ATOM, ("abs",))

    def b_min(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        return self.binary(bound["a"], bound["b"], _nan_min, NUM, self._finish_call(node, spec, bound), P_ATOM, "nan_min")

    def b_max(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        return self.binary(bound["a"], bound["b"], _nan_max, NUM, self._finish_call(node, spec, bound), P_ATOM, "nan_max")

    # -- built-ins: temporal --------------------------------------------------------------------

    def b_flicker(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        window, k = bound["window"], bound["min_toggles"]
        if k > window - 1:
            at = bound["_given"].get("min_toggles", node)
            raise self.err(f"min_toggles={k} can never happen in window={window} (a window of {window} frames has at most {window - 1} toggles)", at)
        text = self._finish_call(node, spec, bound)
        present = self._presence(bound["selector"], bound["min_conf"])
        i = self._claim_state(node, spec, k + 4, lambda: FlickerSlot(k))

        def update(s):
            slot = s.slots[i]
            p = present(s)
            if slot.prev is not None and p != slot.prev:
                slot.toggles.append(slot.prev_idx)
            slot.prev, slot.prev_idx = p, s.idx

        def fn(s):
            q = s.slots[i].toggles
            return len(q) == k and q[0] > s.idx - window

        self.updaters.append(update)
        presence = vnode("any", self._filter_vec(bound["selector"], bound["min_conf"]))
        return C(BOOL, FRAME, text, fn=fn, vec=vnode("flicker", presence, i, window, k))

    def _presence(self, sel: _Selector, min_conf: float) -> Callable:
        pred = self._filter(sel, min_conf)

        def present(s):
            for d in s.dets:
                if pred(d, s):
                    return True
            return False

        return present

    def b_track_flicker(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        window, k = bound["window"], bound["min_changes"]
        if k > window - 1:
            at = bound["_given"].get("min_changes", node)
            raise self.err(f"min_changes={k} can never happen in window={window} (at most {window - 1} changes)", at)
        cls = bound["cls"].cls if bound["cls"] is not None else None
        text = self._finish_call(node, spec, bound)
        i = self._claim_state(node, spec, MAX_TRACKS * (k + 4) + 2, TrackFlickerSlot)

        def update(s: Any) -> None:
            slot = s.slots[i]
            tracks = slot.tracks
            idx = s.idx
            seen: dict[int, str] = {}
            for d in s.dets:
                tid = d.track_id
                if tid and tid not in seen:
                    seen[tid] = d.cls
            for tid, c in seen.items():
                entry = tracks.get(tid)
                if entry is None:
                    entry = [c, idx, deque(maxlen=k)]
                else:
                    old = entry[0]
                    if c != old and (cls is None or cls == c or cls == old) and entry[1] > idx - window:
                        q = entry[2]
                        q.append(entry[1])
                        if len(q) == k:
                            slot.hot_until = max(slot.hot_until, q[0] + window)
                    entry[0], entry[1] = c, idx
                _remember(tracks, tid, entry, idx - window + 1, _entry_last)

        def fn(s):
            return s.idx < s.slots[i].hot_until

        self.updaters.append(update)
        return C(BOOL, FRAME, text, fn=fn)

    def b_first_seen(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        window = bound["window"]
        pred = self._filter(bound["selector"], bound["min_conf"])
        text = self._finish_call(node, spec, bound)
        i = self._claim_state(node, spec, 2 * MAX_TRACKS + 8, FirstSeenSlot)

        def update(s):
            slot = s.slots[i]
            idx = s.idx
            tracks = slot.tracks
            horizon = idx - window
            untracked_new = slot.untracked_idx is None or slot.untracked_idx < horizon
            any_untracked = False
            count, distance, conf, bearing = 0, NAN, 0.0, NAN
            for d in s.dets:
                if pred is not None and not pred(d, s):
                    continue
                tid = d.track_id
                if tid:
                    last = tracks.get(tid)
                    new = last is None or last < horizon
                    _remember(tracks, tid, idx, horizon, int)
                else:
                    any_untracked = True
                    new = untracked_new
                if new and slot.started:
                    count += 1
                    if d.confidence > conf:
                        conf = d.confidence
                    r = det_range(d)
                    if r == r and not (r >= distance):  # first known range, or nearer
                        distance = r
                        bearing = det_bearing(d)
            if any_untracked:
                slot.untracked_idx = idx
            slot.started = True
            slot.count, slot.distance, slot.conf, slot.bearing = float(count), distance, conf, bearing

        self.updaters.append(update)
        return C(FIRST, FRAME, text, extra=i)

    def b_sustained(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        frames = bound["frames"]
        cond = self.as_frame(bound["cond"])
        text = self._finish_call(node, spec, bound)
        i = self._claim_state(node, spec, 2, RunSlot)

        def update(s):
            slot = s.slots[i]
            if cond(s):
                if slot.start is None:
                    slot.start = s.idx
            else:
                slot.start = None

        def fn(s):
            start = s.slots[i].start
            return start is not None and s.idx - start + 1 >= frames

        self.updaters.append(update)
        return C(BOOL, FRAME, text, fn=fn, vec=vnode("sustained", vec_at(bound["cond"], FRAME), i, frames))

    def b_within(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        frames = bound["frames"]
        cond = self.as_frame(bound["cond"])
        text = self._finish_call(node, spec, bound)
        i = self._claim_state(node, spec, 2, RunSlot)

        def update(s):
            if cond(s):
                s.slots[i].last = s.idx

        def fn(s):
            last = s.slots[i].last
            return last is not None and last > s.idx - frames

        self.updaters.append(update)
        return C(BOOL, FRAME, text, fn=fn, vec=vnode("within", vec_at(bound["cond"], FRAME), i, frames))

    # -- built-ins: map-vision ------------------------------------------------------------------

    def b_map_disagreement(self, node: Call, spec: Builtin, bound: dict[str, Any]) -> C:
        cls = bound["cls"].cls if bound["cls"] is not None else None
        kind, min_conf = bound["kind"], bound["min_conf"]
        bearing_tol, range_tol = bound["bearing_tol"], bound["range_tol"]
        text = self._finish_call(node, spec, bound)
        check_missing = kind in ("any", "missing")
        check_extra = kind in ("any", "extra")

        def matches(feature, d) -> bool:
            if feature[0] != d.cls:
                return False
            if d.HasField("bearing_rad") and feature[2] == feature[2]:
                if abs(_wrap_angle(d.bearing_rad - feature[2])) > bearing_tol:
                    return False
            if d.HasField("range_m") and feature[1] == feature[1]:
                if abs(d.range_m - feature[1]) > max(range_tol, 0.2 * abs(feature[1])):
                    return False
            return True

        def fn(s):
            ctx = s.ctx
            features = ctx.map_features if ctx is not None else None
            if features is None:
                return False  # no map knowledge: never a disagreement
            dets = [d for d in s.dets if (cls is None or d.cls == cls) and d.confidence >= min_conf]
            feats = [f for f in features if cls is None or f[0] == cls]
            if check_missing:
                for f in feats:
                    if not any(matches(f, d) for d in dets):
                        return True
            if check_extra:
                for d in dets:
                    if not any(matches(f, d) for f in feats):
                        return True
            return False

        return C(BOOL, FRAME, text, fn=fn, costly=True)


# ---------------------------------------------------------------------------------------------
# Operators (NaN = unknown: every comparison with it is false, including '!=')
# ---------------------------------------------------------------------------------------------


def _div(a: float, b: float) -> float:
    return a / b if b != 0 else NAN


def _ne_num(a: float, b: float) -> bool:
    return a != b and a == a and b == b


def _nan_min(a: float, b: float) -> float:
    return a if a <= b else b if b < a else NAN


def _nan_max(a: float, b: float) -> float:
    return a if a >= b else b if b > a else NAN


_NUM_OPS: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": _ne_num}
_EQ_OPS: dict[str, Callable[[Any, Any], Any]] = {"==": operator.eq, "!=": operator.ne}
_VEC_NUM_OPS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne_num"}
_VEC_EQ_OPS = {"==": "eq", "!=": "ne"}


def _and2(f: Callable, g: Callable, level: int) -> Callable:
    if level == DETL:
        return lambda d, s: f(d, s) and g(d, s)
    return lambda s: f(s) and g(s)


def _or2(f: Callable, g: Callable, level: int) -> Callable:
    if level == DETL:
        return lambda d, s: f(d, s) or g(d, s)
    return lambda s: f(s) or g(s)


def compile_program(source: str) -> Program:
    return Compiler(source).program(parse(source))


__all__ = ["Program", "compile_program"]
