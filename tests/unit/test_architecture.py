"""Imports under services/ run one way: top -> services -> core -> contracts.

Every `import` and `from ... import` of every module (module level, inside functions, under
TYPE_CHECKING: all of them) is classified by the layer of the package it names. A service may
import the contracts and the shared core, never another service; the core imports no service;
only the top floor (the operator CLI, the demo, the task workflow) may import anything. A new top-level
package fails until it is given a layer here.

Developer tooling (`longtail_dev`: local infrastructure, supervisor, code generation) imports the
core only; it starts services by module name.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
CONTRACT_DOMAINS = {"common", "fleet", "inference", "labels", "mapvision", "models", "ops", "triggers"}  # longtail.<domain>.v1

LAYERS = {
    "longtail": "core",
    "gateway": "service",
    "trigger_evaluator": "service",
    "map_vision": "service",
    "inference": "service",
    "label_store": "service",
    "trainer": "service",
    "fleet_sim": "service",
    "studio_bridge": "service",
    "longtail_dev": "tooling",
    "demo": "top",
    "task_workflow": "top",
    "drills": "top",
    "longtail_cli": "top",
}
MAY_IMPORT = {  # importer's layer -> the other layers it may import (a package may always import itself)
    "contracts": {"contracts"},
    "core": {"contracts"},
    "service": {"contracts", "core"},
    "tooling": {"contracts", "core"},
    "top": {"contracts", "core", "service", "tooling", "top"},
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


def edges_against_the_rule() -> list[str]:
    found = []
    for path, rel in modules():
        parts = list(rel.with_suffix("").parts)
        package = ".".join(parts if rel.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")
        src = layer_of(".".join(parts))
        for line, name in imported_modules(path, package):
            dst = layer_of(name)
            if src is not None and dst is not None and src != dst and dst[0] not in MAY_IMPORT[src[0]]:
                found.append(f"{rel}:{line}: {src[0]} {src[1]} imports {dst[0]} {name}")
    return found


def test_every_package_has_a_layer():
    packages = {p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), f"give these packages a layer in LAYERS: {sorted(packages - set(LAYERS))}"


def test_imports_run_downward():
    found = edges_against_the_rule()
    assert not found, "a service imports another service, or the core a service or tooling:\n  " + "\n  ".join(found)


def test_the_rule_sees_a_sideways_import(tmp_path):
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "x.py").write_text("def f():\n    from trainer import runner\n")
    assert list(imported_modules(tmp_path / "gateway" / "x.py", "gateway")) == [(2, "trainer")]
    assert layer_of("trainer.runner") == ("service", "trainer") and "service" not in MAY_IMPORT["service"]
    assert layer_of("longtail.labels.v1.labels_pb2") == ("contracts", "longtail")
