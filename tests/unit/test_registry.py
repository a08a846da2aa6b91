"""One registry of services (`longtail.registry`): the charts, the Tiltfile and the code agree with it,
and no gRPC service name is typed out anywhere else."""

import ast
import re
from pathlib import Path

import yaml

from longtail.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]
TYPED_OUT = re.compile(r"longtail\.(?:common|fleet|inference|labels|mapvision|models|ops|triggers)\.v1\.[A-Za-z]+Service\b")


def test_names_come_from_the_generated_descriptors():
    from longtail.labels.v1 import labels_pb2

    assert SERVICES["label-store"].grpc == labels_pb2.DESCRIPTOR.services_by_name["LabelStoreService"].full_name
    assert all(s.package == s.name.replace("-", "_") for s in SERVICES.values())


def test_every_chart_probes_the_registry_s_grpc_service():
    for name, service in SERVICES.items():
        values = yaml.safe_load((ROOT / "charts" / name / "values.yaml").read_text())
        assert values["grpc"]["healthService"] == service.grpc, f"charts/{name}/values.yaml grpc.healthService"


def test_the_tiltfile_runs_every_service_of_the_registry():
    tiltfile = (ROOT / "Tiltfile").read_text()
    listed = ast.literal_eval(re.search(r"^SERVICES = (\[[^\]]*\])", tiltfile, re.M).group(1))
    assert sorted(listed) == sorted(SERVICES)


def test_no_grpc_service_name_is_typed_out_in_the_code():
    typed = []
    for folder in ("services", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")) or "__pycache__" in path.parts or path == Path(__file__).resolve():
                continue
            typed += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if TYPED_OUT.search(line)]
    assert not typed, "use longtail.registry instead of typing the gRPC service name:\n  " + "\n  ".join(typed)
