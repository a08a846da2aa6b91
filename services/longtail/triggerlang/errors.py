"""The one error type of the trigger language: a message with a 1-based position and a caret."""

from __future__ import annotations


def source_lines(source: str) -> list[str]:
    """Lines as the parser counts them: split on "\\n" only (a trailing "\\r" is dropped)."""
    return [line[:-1] if line.endswith("\r") else line for line in source.split("\n")]


def clamp_position(source: str, line: int, column: int) -> tuple[int, int]:
    """Keep a position inside the source: 1 <= line <= #lines, 1 <= column <= len(line) + 1."""
    lines = source_lines(source)
    line = min(max(int(line or 1), 1), len(lines))
    column = min(max(int(column or 1), 1), len(lines[line - 1]) + 1)
    return line, column


def snippet(source: str, line: int, column: int) -> str:
    """The source line, a newline, and a caret under `column` (tabs kept so the caret aligns)."""
    text = source_lines(source)[line - 1]
    pad = "".join("\t" if ch == "\t" else " " for ch in text[: column - 1])
    return f"{text}\n{pad}^"


class TriggerSyntaxError(ValueError):
    """A trigger expression was rejected (syntax, types, unknown names, or resource limits).

    `line` and `column` are 1-based and always inside `source` (column may be one past the end
    of the line, for "unexpected end of expression"). str(error) is
    "line L, column C: message\\n<source line>\\n<spaces>^".
    """

    def __init__(self, message: str, source: str, line: int = 1, column: int = 1) -> None:
        self.message = message
        self.source = source
        self.line, self.column = clamp_position(source, line, column)
        super().__init__(self.format())

    @property
    def snippet(self) -> str:
        return snippet(self.source, self.line, self.column)

    def format(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}\n{self.snippet}"

    def __str__(self) -> str:
        return self.format()

    def __reduce__(self):  # picklable (multiprocessing, faust tables)
        return (type(self), (self.message, self.source, self.line, self.column))
