"""Grammar, parse tree -> AST, and resource limits of the trigger language.

The grammar is LALR(1) (lark) with a basic lexer, inline here so that it ships with the code
(no package-data file to forget). Nothing in this module or the compiler ever calls `eval`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from longtail.triggerlang.errors import TriggerSyntaxError, source_lines

# Resource limits: a beamed-down trigger cannot make the parser, the compiler or the car's
# per-frame evaluation blow up.
MAX_SOURCE_BYTES = 4096  # UTF-8 bytes of the expression
MAX_DEPTH = 32  # nesting of the syntax tree (parentheses, calls, operators)

GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr -> not_
         | comparison
?comparison: sum ((COMP_OP | IN) sum)*
?sum: product
    | sum PLUS product -> binop
    | sum MINUS product -> binop
?product: unary
    | product STAR unary -> binop
    | product SLASH unary -> binop
?unary: MINUS unary -> neg
      | postfix
?postfix: atom
        | postfix "." NAME -> field
?atom: NUMBER -> number
     | STRING -> string
     | NAME -> name
     | TRUE -> true
     | FALSE -> false
     | NAME "(" [arglist] ")" -> call
     | "(" expr ")"
     | LSQB [items] "]" -> list
items: expr ("," expr)* ","?
arglist: arg ("," arg)* ","?
?arg: expr
    | NAME "=" expr -> kwarg

_OR: "or"
_AND: "and"
NOT: "not"
IN: "in"
TRUE: "true"
FALSE: "false"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
LSQB: "["
COMP_OP: "==" | "!=" | "<=" | ">=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"[^"\n]*"|'[^'\n]*'/
COMMENT: /#[^\n]*/
WS: /[ \t\r\n\f]+/
%ignore WS
%ignore COMMENT
"""

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})

# How the parser's expected terminals are named in error messages.
_TERMINAL_TEXT = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison",
    "_AND": "'and'",
    "_OR": "'or'",
    "NOT": "'not'",
    "IN": "'in'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "DOT": "'.'",
    "EQUAL": "'='",
    "$END": "end of expression",
}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=True)


# ---------------------------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    line: int
    column: int

    @property
    def pos(self) -> tuple[int, int]:
        return self.line, self.column


@dataclass(eq=False)
class Num(Node):
    value: float


@dataclass(eq=False)
class Str(Node):
    value: str
    bare: bool = False  # written as a bare identifier (a class name), not a quoted string


@dataclass(eq=False)
class Bool(Node):
    value: bool


@dataclass(eq=False)
class Name(Node):
    """A bare identifier that is not a keyword: `d`, `ego`, or a class name (resolved later)."""

    name: str


@dataclass(eq=False)
class Field(Node):
    obj: Node
    name: str
    name_line: int = 0
    name_column: int = 0


@dataclass(eq=False)
class Kwarg(Node):
    name: str
    value: Node


@dataclass(eq=False)
class Call(Node):
    name: str
    args: list[Node] = field(default_factory=list)
    kwargs: list[Kwarg] = field(default_factory=list)
    end_line: int = 0  # position of the closing parenthesis
    end_column: int = 0


@dataclass(eq=False)
class Neg(Node):
    operand: Node


@dataclass(eq=False)
class BinOp(Node):
    op: str  # + - * /
    left: Node
    right: Node
    op_line: int = 0
    op_column: int = 0


@dataclass(eq=False)
class Not(Node):
    operand: Node


@dataclass(eq=False)
class BoolOp(Node):
    op: str  # and / or
    operands: list[Node]


@dataclass(eq=False)
class Compare(Node):
    """`a < b <= c` == `a < b and b <= c`; ops[i] = (operator, line, column)."""

    operands: list[Node]
    ops: list[tuple[str, int, int]]


@dataclass(eq=False)
class ListLit(Node):
    items: list[Node]


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of expression"
    text = str(token)
    if text in KEYWORDS:
        return f"keyword '{text}'"
    if len(text) > 20:
        text = text[:17] + "..."
    return f"'{text}'"


def _expected_text(expected: set[str] | frozenset[str] | None) -> str:
    names = sorted({_TERMINAL_TEXT.get(name, name) for name in (expected or ()) if not name.startswith("__")})
    if not names:
        return ""
    if len(names) > 6:
        # Long lists are noise; the most useful summary is "an operator or the end" vs "a value".
        values = {"a name", "a number", "a string", "'('", "'['", "'-'", "'not'", "'true'", "'false'"}
        if values & set(names):
            return "; expected a value (a name, number, string, call or parenthesis)"
        return "; expected an operator, ')' or the end of the expression"
    return "; expected " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1])


def _end_position(source: str) -> tuple[int, int]:
    """Just after the last token (so the caret points at where something is missing)."""
    last = None
    try:
        for last in _lark().lex(source):  # noqa: B007 - we want the last one
            pass
    except LarkError:
        last = None
    if last is None or last.end_line is None or last.end_column is None:
        lines = source_lines(source)
        return len(lines), len(lines[-1]) + 1
    return last.end_line, last.end_column


def _syntax_error(source: str, exc: UnexpectedInput) -> TriggerSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        char = exc.char
        if char in "\"'":
            message = "unterminated string (strings end on the same line with the same quote)"
        elif char == "=":
            message = "unexpected '='; use '==' to compare (a single '=' only names a keyword argument)"
        elif char in "&|!":
            message = f"unexpected character {char!r}; use 'and', 'or', 'not' (and '!=' for inequality)"
        else:
            message = f"unexpected character {char!r}"
        return TriggerSyntaxError(message, source, exc.line, exc.column)
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        if token.type == "EQUAL":
            return TriggerSyntaxError("unexpected '='; use '==' to compare (a single '=' only names a keyword argument)", source, token.line, token.column)
        message = f"unexpected {_describe_token(token)}" + _expected_text(exc.expected)
        return TriggerSyntaxError(message, source, token.line, token.column)
    expected = getattr(exc, "expected", None)
    line, column = _end_position(source)
    return TriggerSyntaxError("unexpected end of expression" + _expected_text(expected), source, line, column)


def _check_size(source: str) -> None:
    if not isinstance(source, str):
        raise TypeError(f"a trigger expression is a str, not {type(source).__name__}")
    size = len(source.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        # Point at the first character beyond the limit.
        cut, total = 0, 0
        for cut, ch in enumerate(source):  # noqa: B007 (the index where the loop stops is the answer)
            total += len(ch.encode("utf-8", errors="surrogatepass"))
            if total > MAX_SOURCE_BYTES:
                break
        line = source.count("\n", 0, cut) + 1
        column = cut - (source.rfind("\n", 0, cut) + 1) + 1
        raise TriggerSyntaxError(f"expression too long: {size} bytes (at most {MAX_SOURCE_BYTES})", source, line, column)
    if not source.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in source_lines(source)):
        raise TriggerSyntaxError("empty expression", source, 1, 1)


def _check_depth(source: str, tree: Tree) -> None:
    """Iterative, so a pathological tree cannot exhaust Python's stack before we refuse it."""
    stack: list[tuple[object, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > MAX_DEPTH:
            meta = node.meta
            line = getattr(meta, "line", 1) if not meta.empty else 1
            column = getattr(meta, "column", 1) if not meta.empty else 1
            raise TriggerSyntaxError(f"expression nested too deeply (more than {MAX_DEPTH} levels)", source, line, column)
        stack.extend((child, depth + 1) for child in node.children)


def parse(source: str) -> Node:
    """Source text -> AST. Raises TriggerSyntaxError (never anything else for a str input)."""
    _check_size(source)
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    _check_depth(source, tree)
    return _Builder(source).build(tree)


def _at(node: Tree | Token) -> tuple[int, int]:
    """Line and column of a token child (lark types them Optional; its lexer always sets them)."""
    assert isinstance(node, Token) and node.line is not None and node.column is not None
    return node.line, node.column


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, message: str, line: int, column: int) -> TriggerSyntaxError:
        return TriggerSyntaxError(message, self.source, line, column)

    def build(self, node: Tree | Token) -> Node:
        if isinstance(node, Token):  # only NAME/NUMBER/... leaves wrapped by their rule
            raise self.error(f"unexpected {_describe_token(node)}", *_at(node))
        kind = node.data if isinstance(node.data, str) else str(node.data)
        line, column = node.meta.line, node.meta.column
        ch = node.children
        if kind == "number":
            text = str(ch[0])
            value = float(text)
            if not math.isfinite(value):
                raise self.error(f"number out of range: {text}", line, column)
            return Num(line, column, value)
        if kind == "string":
            return Str(line, column, str(ch[0])[1:-1], bare=False)
        if kind == "name":
            return Name(line, column, str(ch[0]))
        if kind == "true":
            return Bool(line, column, True)
        if kind == "false":
            return Bool(line, column, False)
        if kind == "field":
            token = ch[1]
            return Field(line, column, self.build(ch[0]), str(token), *_at(token))
        if kind == "call":
            name_token, arglist = ch[0], ch[1]
            args: list[Node] = []
            kwargs: list[Kwarg] = []
            if arglist is not None:
                for arg in arglist.children:
                    if isinstance(arg, Tree) and arg.data == "kwarg":
                        key = arg.children[0]
                        if any(k.name == str(key) for k in kwargs):
                            raise self.error(f"keyword argument '{key}' given twice", *_at(key))
                        kwargs.append(Kwarg(*_at(key), str(key), self.build(arg.children[1])))
                    else:
                        built = self.build(arg)
                        if kwargs:
                            raise self.error("a positional argument cannot follow a keyword argument", built.line, built.column)
                        args.append(built)
            return Call(line, column, str(name_token), args, kwargs, node.meta.end_line, node.meta.end_column)
        if kind == "neg":
            return Neg(line, column, self.build(ch[1]))
        if kind == "binop":
            op = ch[1]
            return BinOp(line, column, str(op), self.build(ch[0]), self.build(ch[2]), *_at(op))
        if kind == "not_":
            return Not(line, column, self.build(ch[1]))
        if kind in ("and_expr", "or_expr"):
            return BoolOp(line, column, kind[:-5], [self.build(c) for c in ch])
        if kind == "comparison":
            operands = [self.build(c) for c in ch[0::2]]
            ops = [(str(t), *_at(t)) for t in ch[1::2]]
            return Compare(line, column, operands, ops)
        if kind == "list":
            items = [self.build(c) for c in ch[1].children] if ch[1] is not None else []
            return ListLit(line, column, items)
        raise self.error(f"unsupported construct {kind!r}", line, column)  # pragma: no cover - grammar/AST drift


__all__ = [
    "MAX_DEPTH",
    "MAX_SOURCE_BYTES",
    "Bool",
    "BinOp",
    "BoolOp",
    "Call",
    "Compare",
    "Field",
    "Kwarg",
    "ListLit",
    "Name",
    "Neg",
    "Node",
    "Not",
    "Num",
    "Str",
    "parse",
]
