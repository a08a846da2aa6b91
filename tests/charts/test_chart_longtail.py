"""The umbrella chart `longtail`: every service in one release with global.image, switched with
<service>.enabled; the subcharts' schemas apply through it; the Secrets block of docs/deploy.md
creates every Secret, key and ConfigMap its pods reference; the system dashboards and the alert
rules (valid, and firing as tests/charts/rules_test.yaml says)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_helpers import ADMISSION_API, CHARTS, NAMESPACE, ROOT, TELEMETRY_PARTITIONS, UMBRELLA, Renderer, defined_metrics, one

REJECTED = [
    (["--set", "trainer.replicaCount=2"], ["trainer", "/replicaCount"]),
    (["--set", "label-store.database.type=mysql"], ["label-store", "/database/type"]),
    (["--set", "gatway.enabled=true"], ["additional properties 'gatway' not allowed"]),
    (["--set", "gateway.grpc.prot=1"], ["gateway", "/grpc", "'prot' not allowed"]),
    (["--set", "trigger-evaluator.autoscaling.maxReplicas=7"], ["trigger-evaluator", "/autoscaling/maxReplicas"]),
    (["--set", "map-vision.replicaCount=2"], ["map-vision", "/replicaCount"]),
]


@pytest.mark.parametrize(("args", "expected"), REJECTED, ids=[" ".join(args) for args, _ in REJECTED])
def test_schema_rejects(render: Renderer, args: list[str], expected: list[str]) -> None:
    """Each service section is validated by that service chart's own schema."""
    error = render.fails(UMBRELLA, *args)
    for text in expected:
        assert text in error, f"expected {text!r} in:\n{error}"


def _workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def test_umbrella(render: Renderer) -> None:
    docs = render.docs(UMBRELLA, "production")
    workloads = _workloads(docs)
    assert {name: w["kind"] for name, w in workloads.items()} == {
        "longtail-gateway": "Deployment",
        "longtail-trigger-evaluator": "StatefulSet",
        "longtail-map-vision": "Deployment",
        "longtail-triton": "Deployment",
        "longtail-label-store": "Deployment",
        "longtail-inference": "Deployment",
        "longtail-trainer": "Deployment",
    }
    for name in ("longtail-gateway", "longtail-trigger-evaluator", "longtail-map-vision", "longtail-label-store", "longtail-inference", "longtail-trainer"):
        (c,) = workloads[name]["spec"]["template"]["spec"]["containers"]
        assert c["image"] == f"registry.example.com/longtail/longtail-{name.removeprefix('longtail-')}:2026.11.1", f"global.image applies to {name}"
    (triton,) = workloads["longtail-triton"]["spec"]["template"]["spec"]["containers"]
    assert triton["image"] == "nvcr.io/nvidia/tritonserver:25.06-pyt-python-py3", "global.image is the longtail image, not Triton's"
    assert "replicas" not in workloads["longtail-gateway"]["spec"]
    assert "replicas" not in workloads["longtail-trigger-evaluator"]["spec"]
    assert workloads["longtail-map-vision"]["spec"]["replicas"] == 1
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"longtail-gateway", "longtail-trigger-evaluator", "longtail-label-store", "longtail-inference"}
    assert workloads["longtail-trainer"]["spec"]["replicas"] == 1 and workloads["longtail-trainer"]["spec"]["strategy"] == {"type": "Recreate"}
    configs = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" not in d["metadata"]["labels"]}
    assert configs["longtail-inference"]["TRITON_GRPC_ADDR"] == "longtail-triton:8001"
    assert configs["longtail-trainer"]["LABEL_STORE_ADDR"] == "longtail-label-store:50051"
    assert hpas["longtail-trigger-evaluator"]["maxReplicas"] <= TELEMETRY_PARTITIONS
    # the shared S3 block (YAML merge key) reaches the evaluator, with its own `enabled`
    evaluator_env = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "longtail-trigger-evaluator"][0]["data"]
    assert evaluator_env["S3_ENDPOINT"] == "s3.eu-central-1.amazonaws.com:443"

    disabled = _workloads(render.docs(UMBRELLA, "gateway-disabled"))
    assert set(disabled) == {"longtail-trigger-evaluator", "longtail-map-vision", "longtail-triton", "longtail-label-store", "longtail-inference", "longtail-trainer"}
    assert render.docs(UMBRELLA, "none") == []


DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SECRETS_SECTION = "## 2. Create the namespace and the Secrets"


def _docs_bash_block(heading: str) -> str:
    """The first ```bash block of a `## ` section of docs/deploy.md."""
    text = DEPLOY_DOC.read_text()
    assert heading in text, f"docs/deploy.md has no section {heading!r}"
    section = re.split(r"^## ", text.split(heading, 1)[1], flags=re.M)[0]
    match = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert match, f"docs/deploy.md section {heading!r} has no ```bash block"
    return match.group(1)


def _run_docs_block(kubectl: str, block: str, workdir: Path) -> list[dict]:
    """Runs a docs block with `kubectl` a shell function that appends --dry-run=client -o yaml to
    every call (no cluster: no kubeconfig, HOME in the temp dir) and returns the objects it printed."""
    script = workdir / "block.sh"
    script.write_text('set -euo pipefail\nkubectl() { "$LONGTAIL_KUBECTL" "$@" --dry-run=client -o yaml; echo ---; }\n' + block)
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",  # `longtail` of this venv
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "HOME": str(workdir),
        "KUBECONFIG": str(workdir / "no-kubeconfig"),
        "LONGTAIL_KUBECTL": kubectl,
        "S3_ACCESS_KEY": "docs-access-key",
        "S3_SECRET_KEY": "docs-secret-key",
    }
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, cwd=workdir, env=env)
    assert proc.returncode == 0, f"the docs' block failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}\n--- block ---\n{block}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for d in docs:
        spec = d.get("spec") or {}
        if d["kind"] == "Pod":
            specs.append((f"Pod/{d['metadata']['name']}", spec))
        elif d["kind"] == "CronJob":
            specs.append((f"CronJob/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]))
        elif "template" in spec and "spec" in spec["template"]:
            specs.append((f"{d['kind']}/{d['metadata']['name']}", spec["template"]["spec"]))
    return specs


def _external_references(docs: list[dict]) -> tuple[set[tuple[str, str | None, str]], set[tuple[str, str | None, str]]]:
    """(name, key or None for the whole object, where) of every Secret and of every ConfigMap the
    pods reference that the render does not contain. A volume mounted whole needs the keys the
    container's environment points at under its mount path (TRAINER_TASKS_FILE=<mount>/tasks.yaml)."""
    rendered_configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets: set[tuple[str, str | None, str]] = set()
    configmaps: set[tuple[str, str | None, str]] = set()
    for where, pod in _pod_specs(docs):
        mounts: dict[str, list[tuple[str, dict[str, str]]]] = {}  # volume -> [(mountPath, env of the container)]
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            env_values = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    secrets.add((source["secretRef"]["name"], None, f"{where} envFrom"))
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    if name in rendered_configmaps:
                        env_values.update(rendered_configmaps[name])
                    else:
                        configmaps.add((name, None, f"{where} envFrom"))
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    secrets.add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"], f"{where} env {e['name']}"))
                if "configMapKeyRef" in ref and ref["configMapKeyRef"]["name"] not in rendered_configmaps:
                    configmaps.add((ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"], f"{where} env {e['name']}"))
            for mount in c.get("volumeMounts", []):
                mounts.setdefault(mount["name"], []).append((mount["mountPath"], env_values))
        for volume in pod.get("volumes", []):
            for src in [volume, *volume.get("projected", {}).get("sources", [])]:
                for kind, name_field, found in (("secret", "secretName", secrets), ("configMap", "name", configmaps)):
                    if kind not in src or (kind == "configMap" and src[kind]["name"] in rendered_configmaps):
                        continue
                    name, label = src[kind][name_field], f"{where} volume {volume['name']}"
                    if src[kind].get("items"):
                        found.update((name, item["key"], label) for item in src[kind]["items"])
                        continue
                    keys = set()
                    for mount_path, env_values in mounts.get(volume["name"], []):
                        prefix = mount_path.rstrip("/") + "/"
                        keys |= {v[len(prefix) :].split("/", 1)[0] for v in env_values.values() if isinstance(v, str) and v.startswith(prefix)}
                    found.update((name, key, label) for key in keys or {None})
    return secrets, configmaps


def test_docs_create_the_secrets_and_configmaps_the_charts_reference(kubectl: str, render: Renderer, tmp_path: Path) -> None:
    """docs/deploy.md section 2, run with a kubectl that only prints (--dry-run=client -o yaml),
    creates every Secret (and key) the pods of the umbrella with its default values reference, and
    every ConfigMap they reference that the charts do not render (the trainer's tasks)."""
    if shutil.which("openssl") is None:
        pytest.skip("the docs' block generates keys with openssl, which is not installed")
    shutil.copy(ROOT / "tasks.yaml", tmp_path / "tasks.yaml")
    created = _run_docs_block(kubectl, _docs_bash_block(SECRETS_SECTION), tmp_path)
    assert [d["metadata"]["name"] for d in created if d["kind"] == "Namespace"] == [NAMESPACE]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in created if d["kind"] in ("Secret", "ConfigMap")}
    for (kind, name), d in objects.items():
        assert d["metadata"].get("namespace") == NAMESPACE, f"the docs create {kind} {name} outside the namespace {NAMESPACE}"
    doc_keys = {(kind, name): set(d.get("data", {})) | set(d.get("stringData", {})) | set(d.get("binaryData", {})) for (kind, name), d in objects.items()}
    # a sanity check of the dry-run output itself: values are the ones the block passed
    assert objects["Secret", "longtail-s3"]["data"]["access-key"] == base64.b64encode(b"docs-access-key").decode()

    secrets, configmaps = _external_references(render.docs(UMBRELLA, "defaults"))
    assert {name for name, _, _ in secrets} >= {"longtail-s3", "longtail-fleet", "longtail-operator", "longtail-label-store-db"}
    assert {name for name, _, _ in configmaps} == {"longtail-trainer-tasks"}, "the only ConfigMap the charts expect to exist is the trainer's tasks"
    problems = []
    for kind, refs in (("Secret", secrets), ("ConfigMap", configmaps)):
        for name, key, where in sorted(refs, key=lambda r: (r[0], r[1] or "", r[2])):
            if (kind, name) not in doc_keys:
                problems.append(f"{where} references {kind} {name}, which docs/deploy.md does not create")
            elif key is not None and key not in doc_keys[kind, name]:
                problems.append(f"{where} references key {key!r} of {kind} {name}; docs/deploy.md creates it with {sorted(doc_keys[kind, name])}")
    assert not problems, "docs/deploy.md section 2 and the charts disagree:\n" + "\n".join(problems)
    # and the docs create nothing the charts do not use
    referenced = {("Secret", n) for n, _, _ in secrets} | {("ConfigMap", n) for n, _, _ in configmaps}
    assert set(doc_keys) <= referenced, f"docs/deploy.md creates objects no chart references: {sorted(set(doc_keys) - referenced)}"
    assert doc_keys["ConfigMap", "longtail-trainer-tasks"] == {"tasks.yaml"}
    assert objects["ConfigMap", "longtail-trainer-tasks"]["data"]["tasks.yaml"] == (ROOT / "tasks.yaml").read_text()


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        message = "promtool not found: apt-get install prometheus (scripts/bootstrap does it as root)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return found


def test_alert_rules_are_valid_and_fire_as_their_unit_tests_say() -> None:
    """promtool checks the rule file and runs tests/charts/rules_test.yaml: each alert fires on the
    series it is meant for (after its `for:`), and stays quiet on the near misses."""
    promtool = _promtool()
    for args in (["check", "rules", *map(str, (CHARTS / "longtail" / "rules").glob("*.yaml"))], ["test", "rules", str(ROOT / "tests" / "charts" / "rules_test.yaml")]):
        proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"promtool {' '.join(args[:2])}:\n{proc.stdout}{proc.stderr}"
    defined = defined_metrics()
    for path in (CHARTS / "longtail" / "rules").glob("*.yaml"):
        for rule in (r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]):
            for metric in re.findall(r"longtail_[a-z0-9_]+", rule["expr"]):
                assert re.sub(r"_(bucket|sum|count)$", "", metric) in defined, f"{rule['alert']} queries {metric}, which no service defines"


def test_umbrella_ships_the_system_dashboards_and_the_alert_rules(render: Renderer) -> None:
    docs = render.docs("longtail", "observability")
    dashboards = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1" and d["metadata"]["labels"]["app.kubernetes.io/name"] == "longtail"}
    assert set(dashboards) == {"longtail-dashboard-trigger-yield", "longtail-dashboard-pipeline", "longtail-dashboard-model-quality"}
    assert {d["metadata"]["namespace"] for d in dashboards.values()} == {"monitoring"}
    yield_panels = json.loads(dashboards["longtail-dashboard-trigger-yield"]["data"]["trigger-yield.json"])["panels"]
    exprs = " ".join(t["expr"] for p in yield_panels for t in p["targets"])
    for stage in ("fired", "uploaded", "labelled", "true_positive"):  # per trigger, every stage of the funnel
        assert f'stage="{stage}"' in exprs
    assert "longtail_trigger_yield_ratio" in exprs
    # the per-task panel repeats over the task variable: a task declared in tasks.yaml gets its panel
    quality = json.loads(dashboards["longtail-dashboard-model-quality"]["data"]["model-quality.json"])
    assert [p["repeat"] for p in quality["panels"] if p.get("repeat")] == ["task"]
    assert "task" in {v["name"] for v in quality["templating"]["list"]}
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    shipped = [yaml.safe_load(p.read_text())["groups"] for p in sorted((CHARTS / "longtail" / "rules").glob("*.yaml"))]
    assert rule["spec"]["groups"] == [g for groups in shipped for g in groups]  # verbatim: the local Prometheus loads the same file
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"LongtailTriggerYieldLow", "LongtailConsumerLagGrowing", "LongtailModelRefused"} <= alerts
    defaults = render.docs("longtail", "defaults")
    assert not [d for d in defaults if d["kind"] == "PrometheusRule" or d["metadata"]["name"].startswith("longtail-dashboard-")]


def test_monitoring_objects_are_skipped_where_the_cluster_has_no_prometheus_operator(render: Renderer) -> None:
    """The same values on a cluster without monitoring.coreos.com/v1 (no --api-versions): no
    ServiceMonitor, no PrometheusRule, nothing else missing. tests/k8s install both ways for real."""
    import subprocess

    production = CHARTS / "longtail" / "ci" / "production.yaml"
    with_api = render.docs("longtail", "production", ("--set", "observability.prometheusRule.enabled=true"))
    assert {"ServiceMonitor", "PrometheusRule"} <= {d["kind"] for d in with_api}
    cmd = [render.helm, "template", "longtail", str(render.charts / "longtail"), "--namespace", NAMESPACE, *ADMISSION_API, "-f", str(production), "--set", "observability.prometheusRule.enabled=true"]
    without = [d for d in yaml.safe_load_all(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout) if d]
    assert not [d for d in without if d["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in without) == sorted((d["kind"], d["metadata"]["name"]) for d in with_api if d["kind"] not in ("ServiceMonitor", "PrometheusRule"))
