"""Regenerate the Python code for protos/ (`longtail protos generate`) and check it is current
(`longtail protos check`, also a test). Generated code is committed so images, grpcurl users and
readers see it; the check keeps it honest.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "protos"
OUT = REPO / "services"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def _generate_into(target: Path) -> list[Path]:
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={target}",
        f"--pyi_out={target}",
        f"--grpc_python_out={target}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed (see the messages above)")
    files = [p for p in target.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)]
    for package_dir in {p.parent for p in files}:
        d = package_dir
        while d != target:  # packages all the way up, so setuptools and mypy see them
            (d / "__init__.py").touch()
            d = d.parent
    return [p.relative_to(target) for p in target.rglob("*") if p.is_file()]


def _committed() -> set[Path]:
    root = OUT / "longtail"
    found = {p.relative_to(OUT) for p in root.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)}
    return found


def diff() -> list[str]:
    """Human-readable differences between the committed and freshly generated code."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = set(_generate_into(Path(tmp)))
        problems = []
        for rel in sorted(fresh):
            mine = OUT / rel
            if not mine.exists():
                problems.append(f"missing: services/{rel}")
            elif rel.name != "__init__.py" and not filecmp.cmp(mine, Path(tmp) / rel, shallow=False):
                problems.append(f"out of date: services/{rel}")
        for rel in sorted(_committed() - fresh):
            problems.append(f"stale (no .proto any more): services/{rel}")
        return problems


def generate() -> list[str]:
    """Write generated code under services/; returns what changed."""
    changed = diff()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = set(_generate_into(Path(tmp)))
        for rel in sorted(_committed() - fresh):
            (OUT / rel).unlink()
        for rel in fresh:
            dest = OUT / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if rel.name == "__init__.py":
                dest.touch()
            else:
                shutil.copyfile(Path(tmp) / rel, dest)
    return changed
