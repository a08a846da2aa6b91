"""One slim image per service: pyproject.toml's groups, requirements/<service>.lock and the Dockerfile's
targets agree with each other, with requirements.lock and with what each service imports.

- The gateway, the trigger-evaluator, map-vision and the label store carry no torch, Triton or CUDA.
- A service's lock is exactly pyproject.toml's `dependencies` + its group, resolved with the pins
  of requirements.lock (checked offline through the installed distributions' metadata: the test
  virtualenv is requirements.lock); `requirements/regenerate` rewrites the locks.
- The Dockerfile's target <service> installs requirements/<service>.lock and no other lock, and
  keeps the image's properties (uid 10001, `longtail serve`, /app/services first on sys.path).
- Every third-party module a service can import (every import reachable from `<service>.__main__`,
  module level or inside functions, plus what `longtail serve` imports before it execs the service)
  belongs to a distribution in its lock.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from longtail.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "services"
TORCH_FREE = ["gateway", "trigger-evaluator", "map-vision", "label-store"]
HEAVY = re.compile(r"^(torch|triton|tritonclient|nvidia-.*|cuda-.*)$")
# Distributions a service loads by name rather than by an import statement in our code.
LOADED_BY_NAME = {"label-store": {"psycopg", "psycopg-binary"}}  # SQLAlchemy's postgresql+psycopg:// dialect


# --- locks and pyproject ------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, str]:
    """canonical name -> pinned version of a pip-freeze style lock (comments and blank lines skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def lock_of(service: str) -> dict[str, str]:
    return read_lock(ROOT / "requirements" / f"{service}.lock")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def group_requirements(group: str | None) -> list[Requirement]:
    """pyproject.toml's `dependencies` plus a group, self-references (`longtail[a,b]`) expanded."""
    proj = project()
    found, todo, seen = [Requirement(r) for r in proj["dependencies"]], [group] if group else [], set()
    while todo:
        g = todo.pop()
        if g in seen:
            continue
        seen.add(g)
        for text in proj["optional-dependencies"][g]:
            req = Requirement(text)
            if canonicalize_name(req.name) == canonicalize_name(proj["name"]):
                todo += sorted(req.extras)
            else:
                found.append(req)
    return found


def applies(req: Requirement, extras: set[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def closure(requirements: list[Requirement]) -> dict[str, str]:
    """canonical name -> installed version of every distribution the requirements pull in, from the
    installed distributions' metadata (what pip resolves when every version is pinned as installed)."""
    wanted: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), set(r.extras)) for r in requirements if applies(r, set())]
    while todo:
        name, extras = todo.pop()
        if name in wanted and extras <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | extras
        for text in metadata.distribution(name).requires or []:
            req = Requirement(text)
            if applies(req, wanted[name]):
                todo.append((canonicalize_name(req.name), set(req.extras)))
    return {name: metadata.version(name) for name in wanted}


# --- the Dockerfile -----------------------------------------------------------------------------


def dockerfile_stages(text: str) -> dict[str, dict]:
    """stage name -> {"base": FROM's image or stage, "steps": [(instruction, arguments)]}."""
    stages, current = {}, None
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"<unnamed {len(stages)}>"
            current = stages[name] = {"base": words[0], "steps": []}
        elif current is not None:
            current["steps"].append((instruction, args.strip()))
    return stages


def stages_used(stages: dict[str, dict], target: str) -> list[str]:
    """The target and every stage it builds on (FROM) or copies from (COPY --from)."""
    used, todo = [], [target]
    while todo:
        name = todo.pop()
        if name in used or name not in stages:
            continue
        used.append(name)
        todo.append(stages[name]["base"])
        todo += [m.group(1) for i, a in stages[name]["steps"] if i == "COPY" for m in [re.search(r"--from=(\S+)", a)] if m]
    return used


def context_sources(args: str) -> list[str]:
    """The build-context paths a COPY copies (none for COPY --from=...)."""
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    return [] if "--from=" in args else words[:-1]


def locks_installed(stages: dict[str, dict], target: str) -> list[str]:
    """Lock files the target's stages copy from the context and install with `pip install --no-deps -r`."""
    installed = []
    for name in stages_used(stages, target):
        steps = stages[name]["steps"]
        for instruction, args in steps:
            if instruction != "COPY":
                continue
            for source in context_sources(args):
                if source.endswith(".lock"):
                    dest = shlex.split(args)[-1]
                    runs = [a for i, a in steps if i == "RUN" and re.search(rf"pip install --no-deps -r {re.escape(dest)}(\s|$)", a)]
                    installed += [source] if runs else [f"{source} (copied, never installed with --no-deps -r)"]
    return sorted(installed)


def final_settings(stages: dict[str, dict], target: str) -> dict[str, str]:
    """USER, ENTRYPOINT and the ENV lines in effect in a target (its FROM chain, last one wins)."""
    chain, name = [], target
    while name in stages:
        chain.insert(0, name)
        name = stages[name]["base"]
    settings: dict[str, str] = {}
    for stage in chain:
        for instruction, args in stages[stage]["steps"]:
            if instruction in ("USER", "ENTRYPOINT"):
                settings[instruction] = args
            elif instruction == "ENV":
                settings.update(re.findall(r"(\w+)=(\S+)", args))
    return settings


# --- imports ------------------------------------------------------------------------------------


def module_path(module: str, sources: Path = SOURCES) -> Path | None:
    base = sources.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.exists():
            return path
    return None


def imports_of(path: Path, module: str, module_level_only: bool):
    """Names imported by a module (not under TYPE_CHECKING; not inside functions if module_level_only)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                yield from (alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - child.level + 1] + ([child.module] if child.module else [])) if child.level else child.module or ""
                yield base
                yield from (f"{base}.{alias.name}" for alias in child.names)  # may name a submodule
            else:
                yield from visit(child)

    yield from visit(ast.parse(path.read_text(), str(path)))


def third_party_imports(roots: list[str], module_level_only: bool, sources: Path = SOURCES) -> dict[str, set[str]]:
    """top-level third-party module -> the project modules importing it, over the import closure of roots."""
    ours = {p.name for p in sources.iterdir() if (p / "__init__.py").exists()}
    seen, found, todo = set(), {}, list(roots)
    while todo:
        module = todo.pop()
        path = module_path(module, sources)
        if module in seen or path is None:
            continue
        seen.add(module)
        todo += [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]  # parents run first
        for name in imports_of(path, module, module_level_only):
            top = name.split(".")[0]
            if top in ours:
                todo.append(name)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(module)
    return found


@functools.cache
def providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def missing_distributions(imported: dict[str, set[str]], lock: dict[str, str]) -> list[str]:
    missing = []
    for top, importers in sorted(imported.items()):
        candidates = {canonicalize_name(d) for d in providers().get(top, [])}
        if not candidates & set(lock):
            missing.append(f"{top} ({' or '.join(sorted(candidates)) or 'no installed distribution'}) imported by {', '.join(sorted(importers))}")
    return missing


# --- the tests ----------------------------------------------------------------------------------


def test_every_service_has_a_group_a_lock_and_an_image_target():
    groups = set(project()["optional-dependencies"])
    locks = {p.name.removesuffix(".lock") for p in (ROOT / "requirements").glob("*.lock")}
    targets = set(dockerfile_stages((ROOT / "Dockerfile").read_text()))
    for service in SERVICES:
        assert service in groups, f"pyproject.toml: no group [project.optional-dependencies] {service}"
        assert service in targets, f"Dockerfile: no target {service} (FROM ... AS {service})"
    assert locks == set(SERVICES), f"requirements/*.lock should be one per service of longtail.registry: extra {sorted(locks - set(SERVICES))}, missing {sorted(set(SERVICES) - locks)}"


@pytest.mark.parametrize("service", TORCH_FREE)
def test_the_service_image_has_no_torch(service):
    heavy = sorted(name for name in lock_of(service) if HEAVY.match(name))
    assert not heavy, f"requirements/{service}.lock pulls in {heavy}: which requirement of pyproject.toml's [{service}] or dependencies brings it?"
    assert not [r.name for r in group_requirements(service) if HEAVY.match(canonicalize_name(r.name))]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_pin_is_requirements_lock_s(service):
    full = read_lock(ROOT / "requirements.lock")
    lock = lock_of(service)
    differ = {name: (version, full.get(name)) for name, version in lock.items() if full.get(name) != version}
    assert not differ, f"requirements/{service}.lock pins differently from requirements.lock (lock, requirements.lock): {differ}; run requirements/regenerate"


@pytest.mark.parametrize("group", [*sorted(SERVICES), "all"])
def test_each_lock_is_its_pyproject_group(group):
    lock = read_lock(ROOT / "requirements.lock") if group == "all" else lock_of(group)
    resolved = closure(group_requirements(group))
    drift = {n: (v, lock[n]) for n, v in resolved.items() if n in lock and lock[n] != v}
    assert not drift, f"the test virtualenv differs from the locks (installed, lock): {drift}; run scripts/bootstrap"
    name = "requirements.lock" if group == "all" else f"requirements/{group}.lock"
    assert set(lock) == set(resolved), f"{name} is not pyproject.toml's dependencies + [{group}]: only in the lock {sorted(set(lock) - set(resolved))}, missing from it {sorted(set(resolved) - set(lock))}; run requirements/regenerate"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_target_installs_its_service_s_lock(service):
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    assert locks_installed(stages, service) == [f"requirements/{service}.lock"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_target_keeps_the_image_s_properties(service):
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    settings = final_settings(stages, service)
    assert settings.get("USER") == "10001:10001"
    assert settings.get("ENTRYPOINT") == '["longtail", "serve"]'
    assert settings.get("PYTHONPATH") == "/app/services"
    used = stages_used(stages, service)
    copies = [a for s in used for i, a in stages[s]["steps"] if i == "COPY"]
    sources = [a for a in copies if a.endswith(" /app/services/")]
    assert sources and all("--chown=${SOURCE_OWNER}:${SOURCE_OWNER}" in a for a in sources), f"target {service}: /app/services owned by SOURCE_OWNER"
    assert ("ARG", "SOURCE_OWNER=0") in stages[service]["steps"], f"target {service}: ARG SOURCE_OWNER=0 (root owns the code by default)"
    assert any(i == "RUN" and "compileall" in a for s in used for i, a in stages[s]["steps"]), f"target {service}: the sources are not compiled"
    for data in ("tasks.yaml", "suites/"):
        assert any(data in context_sources(a) for a in copies), f"target {service} does not copy {data}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_what_a_service_imports_is_in_its_lock(service):
    lock = lock_of(service)
    imported = third_party_imports([f"{SERVICES[service].package}.__main__"], module_level_only=False)
    for top, importers in third_party_imports(["longtail_cli.app"], module_level_only=True).items():  # `longtail serve`
        imported.setdefault(top, set()).update(importers)
    missing = missing_distributions(imported, lock)
    missing += [f"{d} (loaded by name)" for d in sorted(LOADED_BY_NAME.get(service, set()) - set(lock))]
    assert not missing, f"requirements/{service}.lock lacks what the service imports; add it to pyproject.toml's [{service}] (or dependencies) and run requirements/regenerate:\n  " + "\n  ".join(missing)


def test_the_label_studio_bridge_runs_from_the_label_store_image():
    """The label-store chart runs `longtail studio bridge` from the label-store image (labelStudio.enabled)."""
    imported = third_party_imports(["studio_bridge.__main__"], module_level_only=False)
    missing = missing_distributions(imported, lock_of("label-store"))
    assert not missing, "requirements/label-store.lock lacks what studio_bridge imports:\n  " + "\n  ".join(missing)


def test_the_import_walk_sees_an_import_inside_a_function(tmp_path):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "__init__.py").write_text("")
    (tmp_path / "svc" / "__main__.py").write_text("from svc import work\n")
    (tmp_path / "svc" / "work.py").write_text("import yaml\n\ndef run():\n    import torch\n")
    assert third_party_imports(["svc.__main__"], module_level_only=False, sources=tmp_path) == {"yaml": {"svc.work"}, "torch": {"svc.work"}}
    assert third_party_imports(["svc.__main__"], module_level_only=True, sources=tmp_path) == {"yaml": {"svc.work"}}
    assert missing_distributions({"yaml": {"svc.work"}}, {"pyyaml": "6.0.3"}) == []
    assert missing_distributions({"yaml": {"svc.work"}, "torch": {"svc.work"}}, {"pyyaml": "6.0.3"}) == ["torch (torch) imported by svc.work"]


def test_the_dockerfile_check_sees_a_target_on_another_lock():
    text = (ROOT / "Dockerfile").read_text().replace("COPY --from=deps-gateway ", "COPY --from=deps-inference ")
    assert locks_installed(dockerfile_stages(text), "gateway") == ["requirements/inference.lock"]
