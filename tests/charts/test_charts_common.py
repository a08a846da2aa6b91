"""What every chart satisfies, parametrized over the charts and their ci/*.yaml values: helm lint
--strict, renders valid against the Kubernetes schema (strict: unknown fields fail; the Prometheus
Operator's objects structurally), golden renders, a schema that accepts what a parent passes
(`enabled`, `global`), values schemas generated from the library's fragments (and not stale),
library sections declared alike in values.yaml and the schema, dashboards, and metrics that
exist. The charts' own properties: test_chart_<chart>.py."""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_helpers import (
    CASE_IDS,
    CASES,
    CHARTS,
    GOLDEN,
    KUBE_VERSION,
    ROOT,
    SERVICE_CHARTS,
    Renderer,
    check_prometheus_rule,
    check_replica_limit,
    check_service_monitor,
    defined_metrics,
    one,
    run,
)

# Triton's own metrics a dashboard may query (docs/user_guide/metrics.md of triton-inference-server/server).
TRITON_METRICS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count",
    "nv_gpu_utilization",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_power_usage",
    "nv_gpu_power_limit",
    "nv_energy_consumption",
    "nv_cpu_utilization",
    "nv_cpu_memory_total_bytes",
    "nv_cpu_memory_used_bytes",
}
SCHEMA_BUILD = CHARTS / "longtail-lib" / "schema" / "build.py"
LIBRARY_SECTIONS = sorted(p.stem for p in (CHARTS / "longtail-lib" / "schema" / "sections").glob("*.json"))


def _schema_build():
    """charts/longtail-lib/schema/build.py as a module (it is a script under charts/, not a package)."""
    spec = importlib.util.spec_from_file_location("longtail_chart_schema_build", SCHEMA_BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- tools ------------------------------------------------------------------------------------


def test_helm_tools_is_cached(helm: str) -> None:
    started = time.monotonic()
    out = subprocess.run([str(ROOT / "scripts" / "helm-tools")], capture_output=True, text=True, check=True).stdout.strip()
    assert out == helm and time.monotonic() - started < 5
    assert "v3.19.0" in run([helm, "version", "--short"])


def test_kubectl_tools_is_cached(kubectl: str) -> None:
    started = time.monotonic()
    out = subprocess.run([str(ROOT / "scripts" / "kubectl-tools")], capture_output=True, text=True, check=True).stdout.strip()
    assert out == kubectl and time.monotonic() - started < 5
    version = json.loads(run([kubectl, "version", "--client", "-o", "json"]))["clientVersion"]
    assert version["gitVersion"] == "v1.34.2"


# --- lint, validate, golden -------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_lint(helm: str, charts: Path, chart: str, values: str) -> None:
    run([helm, "lint", "--strict", "--kube-version", KUBE_VERSION, charts / chart, "-f", charts / chart / "ci" / f"{values}.yaml"])


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_render_is_valid_kubernetes(render: Renderer, chart: str, values: str) -> None:
    docs = render.docs(chart, values)
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, docs)
            continue
        if doc["kind"] == "PrometheusRule":
            check_prometheus_rule(doc)
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{chart} with ci/{values}.yaml: {name} is not valid Kubernetes {KUBE_VERSION}: {exc.message} at {list(exc.path)}") from None
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_golden_render(render: Renderer, chart: str, values: str) -> None:
    golden = GOLDEN / f"{chart}-{values}.yaml"
    actual = render.text(chart, values)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    assert golden.exists(), f"{golden.relative_to(ROOT)} is missing; create it with UPDATE_GOLDEN=1"
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(golden.relative_to(ROOT)), "render"))
        raise AssertionError(f"render differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")


def test_no_stray_golden_files() -> None:
    expected = {f"{chart}-{values}.yaml" for chart, values in CASES}
    stray = sorted(p.name for p in GOLDEN.glob("*.yaml") if p.name not in expected)
    assert not stray, f"golden files without a ci values file: {stray}"


# --- values and schema ------------------------------------------------------------------------


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_schema_accepts_enabled_and_global(render: Renderer, chart: str) -> None:
    """A subchart receives `enabled` and `global` from its parent; additionalProperties:false must allow both."""
    render.text(chart, "defaults", ("--set", "enabled=true", "--set", "global.image.tag=v9", "--set", "global.other=1"))


@pytest.mark.parametrize("chart", [c for c in SERVICE_CHARTS if c != "triton"])
def test_each_service_runs_its_own_image(render: Renderer, chart: str) -> None:
    """longtail-<chart> (the Dockerfile target of that name), under global.image.registry; the old
    one-image global.image.repository is refused rather than silently ignored."""
    images = {
        c["image"]
        for d in render.docs(chart, "defaults", ("--set", "global.image.registry=reg.example/lt/", "--set", "global.image.tag=v9"))
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"reg.example/lt/longtail-{chart}:v9"}
    assert "repository" in render.fails(chart, "--set", "global.image.repository=reg.example/lt/longtail")


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_values_schema_is_generated(chart: str) -> None:
    """values.schema.json is what charts/longtail-lib/schema/build.py makes of the library's
    fragments and the chart's values.schema.patch.json: edit those, not the output."""
    build = _schema_build()
    path = CHARTS / chart / "values.schema.json"
    expected = build.render(build.build(CHARTS / chart))
    if path.read_text() != expected:
        diff = "".join(difflib.unified_diff(path.read_text().splitlines(True), expected.splitlines(True), str(path.relative_to(ROOT)), "generated"))
        raise AssertionError(f"{path.relative_to(ROOT)} is stale: run python3 {SCHEMA_BUILD.relative_to(ROOT)}\n{diff[:6000]}")
    assert "$comment" in json.loads(expected), "the output says it is generated"


def test_schema_build_detects_a_stale_schema(tmp_path: Path) -> None:
    """The staleness check can fail: a changed library fragment makes every output stale, and
    build.py then rewrites them."""
    build = _schema_build()
    copy = tmp_path / "charts"
    shutil.copytree(CHARTS, copy, ignore=shutil.ignore_patterns("*.tgz", "dashboards", "golden", "ci"))
    assert build.main(["--check", "--charts", str(copy)]) == 0
    common = copy / "longtail-lib" / "schema" / "common.json"
    schema = json.loads(common.read_text())
    schema["properties"]["tmpSizeLimit"]["description"] = "changed"
    common.write_text(json.dumps(schema, indent=2) + "\n")
    assert build.main(["--check", "--charts", str(copy)]) == 1
    assert build.main(["--charts", str(copy)]) == 0
    assert build.main(["--check", "--charts", str(copy)]) == 0
    for chart in SERVICE_CHARTS:
        assert json.loads((copy / chart / "values.schema.json").read_text())["properties"]["tmpSizeLimit"]["description"] == "changed"


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_library_sections_are_declared_in_values_and_schema_alike(chart: str) -> None:
    """A library section (kafka, s3, fleet, operator, persistence) is in a chart's values.yaml
    exactly when its schema has it: the library fills a section's defaults (and sets its
    environment) only when the values have it, and the schema rejects it when the chart has none."""
    values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())["properties"]
    in_values = {s for s in LIBRARY_SECTIONS if s in values}
    in_schema = {s for s in LIBRARY_SECTIONS if s in schema}
    assert in_values == in_schema, f"{chart}: sections in values.yaml {sorted(in_values)}, in the schema {sorted(in_schema)}"
    assert set(values) <= set(schema), f"{chart}: values.yaml keys the schema does not declare: {sorted(set(values) - set(schema))}"


# --- observability ----------------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "kind"), [("trigger-evaluator", "StatefulSet"), ("map-vision", "Deployment"), ("label-store", "Deployment"), ("inference", "Deployment"), ("trainer", "Deployment")])
def test_observability_of_the_consumers(render: Renderer, chart: str, kind: str) -> None:
    docs = render.docs(chart, "observability")
    check_service_monitor(one(docs, "ServiceMonitor"), docs)
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert [d["metadata"]["name"] for d in dashboards] == [f"{chart}-dashboard-{chart}"]
    assert dashboards[0]["metadata"]["namespace"] == "monitoring"
    json.loads(dashboards[0]["data"][f"{chart}.json"])
    default_docs = render.docs(chart, "defaults")
    assert not [d for d in default_docs if d["kind"] == "ServiceMonitor" or "grafana_dashboard" in d["metadata"]["labels"]]


def test_every_service_chart_has_a_dashboard() -> None:
    for chart in SERVICE_CHARTS:
        assert list((CHARTS / chart / "dashboards").glob("*.json")), f"{chart} has no dashboards/*.json"


def test_dashboard_metrics_exist_in_the_code() -> None:
    defined = defined_metrics()
    assert "longtail_gateway_frames_total" in defined
    assert {"longtail_trigger_frames_evaluated_total", "longtail_mapvision_features"} <= defined
    for path in CHARTS.glob("*/dashboards/*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["panels"]
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                for metric in re.findall(r"longtail_[a-z0-9_]+", target["expr"]):
                    base = re.sub(r"_(bucket|sum|count)$", "", metric)
                    assert base in defined, f"{path.name} panel {panel['title']!r} queries {metric}, which no service defines"
                for metric in re.findall(r"\bnv_[a-z0-9_]+", target["expr"]):
                    assert metric in TRITON_METRICS, f"{path.name} panel {panel['title']!r} queries {metric}, which Triton does not export"
                assert re.search(r"\b(longtail|nv)_[a-z0-9_]+", target["expr"]), f"{path.name} panel {panel['title']!r} queries no known metric"


# --- the replica limit (an admission policy) -------------------------------------------------


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_replica_limit_only_where_a_chart_says_exactly_one(render: Renderer, chart: str) -> None:
    kinds = {d["kind"] for d in render.docs(chart, "defaults")}
    assert ({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds) == (chart in ("trainer", "map-vision"))


def test_replica_limit_on_any_chart_and_only_where_the_cluster_serves_it(render: Renderer, helm: str) -> None:
    """Any chart may turn it on (here the gateway at 3, a reason with a quote in it: the CEL string
    literal must stay well-formed); a cluster without admissionregistration.k8s.io/v1 gets no policy."""
    args = ("--set", "replicaLimit.enabled=true", "--set", "replicaLimit.max=3", "--set", "replicaLimit.reason=it's shared")
    docs = render.docs("gateway", "defaults", args)
    check_replica_limit(docs, most=3)
    message = one(docs, "ValidatingAdmissionPolicy")["spec"]["validations"][0]["messageExpression"]
    name = one(docs, "Deployment")["metadata"]["name"]
    assert message == f"'Deployment {name} runs at most 3 replicas: it\\'s shared; asked for ' + string(object.spec.replicas)"
    plain = run([helm, "template", "longtail", render.charts / "gateway", "--namespace", "longtail", "-f", render.charts / "gateway" / "ci" / "defaults.yaml", *args])
    assert "ValidatingAdmissionPolicy" not in plain
