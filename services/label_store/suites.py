"""Unit-test suite files (YAML): parsing with line numbers, case ids, fingerprints.

    suite: stop_sign.occluded            # [a-z0-9_.-]+
    task: stop_sign
    description: Occluded stop signs must be detected with their attributes.
    predicate: any(d.cls == stop_sign and d.conf >= 0.5)   # default for cases without one
    cases:
      - sample: 3f9a...e1                 # a registered sample id (sha256 hex)
        predicate: any(d.cls == stop_sign and d.attr.occlusion == foliage and d.conf >= 0.5)
        note: foliage covers the top half

Every error names the line (and, for predicates, the column) so the YAML can be fixed directly.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import yaml

from longtail.triggerlang.predicates import PredicateError, compile_predicate

MAX_SUITE_BYTES = 1024 * 1024
MAX_CASES = 10_000
SUITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SAMPLE_ID = re.compile(r"^[0-9a-f]{64}$")


class SuiteFileError(ValueError):
    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass(frozen=True)
class Case:
    sample_id: str
    predicate: str
    note: str = ""
    line: int = 0


@dataclass
class SuiteFile:
    name: str
    task: str
    description: str = ""
    cases: list[Case] = field(default_factory=list)


def case_id(suite: str, sample_id: str, predicate: str) -> str:
    return hashlib.sha256(f"{suite}/{sample_id}/{predicate}".encode()).hexdigest()


def fingerprint(task: str, description: str, cases: list[Case], suite: str) -> str:
    """Identity of a suite's content: a new version only when this changes."""
    body = {"task": task, "description": description, "cases": sorted((case_id(suite, c.sample_id, c.predicate), c.note) for c in cases)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_predicate(source: str, line: int = 0) -> None:
    try:
        compile_predicate(source)
    except PredicateError as exc:
        where = line + max(exc.line - 1, 0) if line else 0
        column = f", column {exc.column}" if exc.column else ""
        raise SuiteFileError(f"predicate{column}: {exc}", where) from None


def _scalar(node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise SuiteFileError(f"{what} must be a string", node.start_mark.line + 1)
    return str(node.value)


def _mapping(node: yaml.Node, what: str, allowed: set[str]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise SuiteFileError(f"{what} must be a mapping", node.start_mark.line + 1)
    out: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = _scalar(key_node, "a key")
        if key not in allowed:
            raise SuiteFileError(f"unknown key {key!r} in {what}; expected one of {', '.join(sorted(allowed))}", key_node.start_mark.line + 1)
        if key in out:
            raise SuiteFileError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
        out[key] = value_node
    return out


def _line(node: yaml.Node) -> int:
    # a block scalar (`predicate: |`) starts on the line after its indicator
    return node.start_mark.line + 1 + (1 if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") else 0)


def parse(text: str) -> SuiteFile:
    if len(text.encode()) > MAX_SUITE_BYTES:
        raise SuiteFileError(f"suite file larger than {MAX_SUITE_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SuiteFileError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", mark.line + 1 if mark else 0) from None
    if root is None:
        raise SuiteFileError("empty suite file", 1)
    top = _mapping(root, "the suite", {"suite", "name", "task", "description", "predicate", "cases"})
    if "suite" in top and "name" in top:
        raise SuiteFileError("give `suite` or `name`, not both", top["name"].start_mark.line + 1)
    name_node = top.get("suite") or top.get("name")
    if name_node is None:
        raise SuiteFileError("missing `suite:` (the suite name)", 1)
    name = _scalar(name_node, "suite")
    if not SUITE_NAME.match(name):
        raise SuiteFileError(f"suite name {name!r} must match [a-z0-9][a-z0-9_.-]*", name_node.start_mark.line + 1)
    if "task" not in top:
        raise SuiteFileError("missing `task:`", 1)
    task = _scalar(top["task"], "task")
    description = _scalar(top["description"], "description") if "description" in top else ""
    default = None
    if "predicate" in top:
        default = _scalar(top["predicate"], "predicate").strip()
        check_predicate(default, _line(top["predicate"]))
    suite = SuiteFile(name, task, description)
    cases_node = top.get("cases")
    if cases_node is None:
        return suite
    if not isinstance(cases_node, yaml.SequenceNode):
        raise SuiteFileError("cases must be a list", cases_node.start_mark.line + 1)
    if len(cases_node.value) > MAX_CASES:
        raise SuiteFileError(f"more than {MAX_CASES} cases", cases_node.start_mark.line + 1)
    seen: dict[str, int] = {}
    for item in cases_node.value:
        line = item.start_mark.line + 1
        c = _mapping(item, "a case", {"sample", "predicate", "note"})
        if "sample" not in c:
            raise SuiteFileError("case without `sample:`", line)
        sample = _scalar(c["sample"], "sample").strip().lower()
        if not SAMPLE_ID.match(sample):
            raise SuiteFileError(f"sample {sample!r} is not a sample id (64 hex digits)", c["sample"].start_mark.line + 1)
        if "predicate" in c:
            predicate = _scalar(c["predicate"], "predicate").strip()
            check_predicate(predicate, _line(c["predicate"]))
        elif default is not None:
            predicate = default
        else:
            raise SuiteFileError("case without `predicate:` and no suite-level default", line)
        cid = case_id(name, sample, predicate)
        if cid in seen:
            raise SuiteFileError(f"duplicate case (same sample and predicate as line {seen[cid]})", line)
        seen[cid] = line
        note = _scalar(c["note"], "note") if "note" in c else ""
        suite.cases.append(Case(sample, predicate, note, line))
    return suite


def render(suite: SuiteFile) -> str:
    """The YAML of a suite (after a promotion the stored source stays the whole truth)."""
    doc = {"suite": suite.name, "task": suite.task, "description": suite.description, "cases": [{"sample": c.sample_id, "predicate": c.predicate, **({"note": c.note} if c.note else {})} for c in suite.cases]}
    return yaml.safe_dump(doc, sort_keys=False, width=200)
