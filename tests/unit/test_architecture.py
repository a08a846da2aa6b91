"""Imports under services/ run one way: top -> services -> core -> contracts.

Every `import` and `from ... import` of every module (module level, inside functions, under
TYPE_CHECKING: all of them) is classified by the layer of the package it names. A service may
import the contracts and the shared core, never another service; the core imports no service;
only the top floor (the demo, the operator's task workflow) may import anything. A new top-level
package fails until it is given a layer here.

`KNOWN` lists the edges that break the rule on the day this test was written (issue #16 removes
them); it may only shrink: a new edge fails, and so does a listed edge that is gone (delete it).
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
CONTRACT_DOMAINS = {"common", "fleet", "inference", "labels", "mapvision", "models", "ops", "triggers"}  # longtail.<domain>.v1

LAYERS = {
    "longtail": "core",
    "gateway": "service", "trigger_evaluator": "service", "map_vision": "service", "inference": "service",
    "label_store": "service", "trainer": "service", "fleet_sim": "service",
    "demo": "top", "task_workflow": "top",
}
MAY_IMPORT = {  # importer's layer -> the other layers it may import (a package may always import itself)
    "contracts": {"contracts"},
    "core": {"contracts"},
    "service": {"contracts", "core"},
    "top": {"contracts", "core", "service", "top"},
}
KNOWN = {  # (importing file, imported module): to be removed by issue #16, never added to
    ("longtail/cli.py", "label_store"), ("longtail/cli.py", "trigger_evaluator"), ("longtail/cli.py", "task_workflow"),
    ("longtail/cli.py", "trainer"), ("longtail/cli.py", "fleet_sim.__main__"), ("longtail/cli.py", "demo"),
}


def layer_of(module: str) -> tuple[str, str] | None:
    """(layer, top-level package) of a module of this project; None for the standard library and third parties."""
    parts = module.split(".")
    if parts[0] not in LAYERS:
        return None
    if parts[0] == "longtail" and len(parts) > 1 and parts[1] in CONTRACT_DOMAINS:
        return "contracts", "longtail"
    return LAYERS[parts[0]], parts[0]


def imported_modules(path: Path, package: str):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            if name == "longtail":  # `from longtail import model` names a module of the core
                for alias in node.names:
                    yield node.lineno, f"longtail.{alias.name}"


def modules():
    for path in sorted(SERVICES.rglob("*.py")):
        rel = path.relative_to(SERVICES)
        if "__pycache__" not in rel.parts and not path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            yield path, rel


def edges_against_the_rule() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path, rel in modules():
        parts = list(rel.with_suffix("").parts)
        package = ".".join(parts if rel.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")
        src = layer_of(".".join(parts))
        for line, name in imported_modules(path, package):
            dst = layer_of(name)
            if src is None or dst is None or src == dst:
                continue
            if dst[0] not in MAY_IMPORT[src[0]]:
                found.setdefault((rel.as_posix(), name), []).append(f"{rel}:{line}: {src[0]} {src[1]} imports {dst[0]} {name}")
    return found


def test_every_package_has_a_layer():
    packages = {p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), f"give these packages a layer in LAYERS: {sorted(packages - set(LAYERS))}"


def test_imports_run_downward():
    found = edges_against_the_rule()
    new = [where for edge, places in sorted(found.items()) if edge not in KNOWN for where in places]
    assert not new, "a service imports another service, or the core imports a service:\n  " + "\n  ".join(new)


def test_the_known_exceptions_only_shrink():
    gone = sorted(KNOWN - set(edges_against_the_rule()))
    assert not gone, f"these edges are gone: delete them from KNOWN: {gone}"


def test_the_rule_sees_a_sideways_import(tmp_path):
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "x.py").write_text("def f():\n    from trainer import runner\n")
    assert list(imported_modules(tmp_path / "gateway" / "x.py", "gateway")) == [(2, "trainer")]
    assert layer_of("trainer.runner") == ("service", "trainer") and "service" not in MAY_IMPORT["service"]
    assert layer_of("longtail.labels.v1.labels_pb2") == ("contracts", "longtail")
