"""The umbrella chart on a real API server (issue #20): the Secrets created exactly as docs/deploy.md
creates them, `helm install` with charts/longtail/ci/defaults.yaml in a fresh namespace, every
Deployment and StatefulSet Available, `kubectl scale` of every scalable service honoured and
refused by the API server where the chart says exactly one (trainer, map-vision: their admission
policy), `helm uninstall` leaving nothing of the release behind, cluster-scoped objects included.
kwok marks the pods Running and Ready: no container runs (docs/deploy.md, "A local control plane")."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from k8s_helpers import SERVICE_CHARTS

# at most 1 replica (charts/<chart>/values.yaml: replicaCount, replicaLimit)
SINGLE = ("map-vision", "trainer")

ROOT = Path(__file__).resolve().parents[2]
SECRETS_SECTION = "## 2. Create the namespace and the Secrets"


def create_secrets_as_the_docs_do(kube) -> None:
    """Runs the ```bash block of docs/deploy.md's Secrets section against the cluster, in this
    test's namespace instead of `longtail` (the namespace itself exists already)."""
    import re
    import subprocess

    text = (ROOT / "docs" / "deploy.md").read_text()
    section = re.split(r"^## ", text.split(SECRETS_SECTION, 1)[1], flags=re.M)[0]
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1)
    shutil.copy(ROOT / "tasks.yaml", kube.workdir / "tasks.yaml")
    script = kube.workdir / "secrets.sh"
    script.write_text(
        "set -euo pipefail\n"
        'kubectl() { local args=(); for a in "$@"; do [ "$a" = longtail ] && a="$NAMESPACE"; args+=("$a"); done\n'
        '  [ "${args[0]} ${args[1]}" = "create namespace" ] && return 0; "$LONGTAIL_KUBECTL" "${args[@]}"; }\n' + block
    )
    path = f"{Path(sys.executable).parent}:{kube.env.get('PATH', '/usr/bin:/bin')}"  # the block runs `longtail` (TLS certificates) of this venv
    env = {**kube.env, "PATH": path, "LONGTAIL_KUBECTL": kube.kubectl_bin, "NAMESPACE": kube.namespace, "S3_ACCESS_KEY": "k8s-test-access", "S3_SECRET_KEY": "k8s-test-secret"}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, cwd=kube.workdir, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout


def workloads(kube) -> dict[str, dict]:
    items = json.loads(kube.kubectl("get", "deployments,statefulsets", "-o", "json").stdout)["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i for i in items}


def test_the_umbrella_chart_installs_scales_and_uninstalls_cleanly(kube, charts):
    """One release: scaling each service in turn here saves an install per service."""
    create_secrets_as_the_docs_do(kube)
    kube.helm("install", "longtail", str(charts / "longtail"), "-f", str(ROOT / "charts" / "longtail" / "ci" / "defaults.yaml"), "--wait", "--timeout", "5m")
    found = workloads(kube)
    assert {name.split("/", 1)[1] for name in found} >= {f"longtail-{c}" for c in SERVICE_CHARTS}, sorted(found)
    for name, w in found.items():
        want = w["spec"].get("replicas", 1)
        ready = w["status"].get("availableReplicas" if w["kind"] == "Deployment" else "readyReplicas", 0)
        assert ready == want, f"{name}: {ready}/{want} ready"

    for chart in SERVICE_CHARTS:
        kind, name = workload_of(found, f"longtail-{chart}")
        if chart in SINGLE:
            assert_scale_refused(kube, kind, name)
        else:
            replicas = found[f"{kind}/{name}"]["spec"]["replicas"] + 1
            kube.kubectl("scale", f"{kind.lower()}/{name}", f"--replicas={replicas}")
            kube.kubectl("rollout", "status", f"{kind.lower()}/{name}", "--timeout=120s")
            status = workloads(kube)[f"{kind}/{name}"]["status"]
            assert status.get("availableReplicas" if kind == "Deployment" else "readyReplicas") == replicas, f"{name}: {status}"

    kube.helm("uninstall", "longtail", "--wait", "--timeout", "3m")
    # helm waits for what it deleted; the pods go after, through the garbage collector and kwok
    deadline = time.monotonic() + 120
    while left := released(kube):
        assert time.monotonic() < deadline, f"left behind 120 s after helm uninstall: {left}"
        time.sleep(1)
    assert helm_releases(kube) == []


def workload_of(found: dict[str, dict], name: str) -> tuple[str, str]:
    (key,) = [k for k in found if k.split("/", 1)[1] == name]
    return key.split("/", 1)[0], name


def assert_scale_refused(kube, kind: str, name: str) -> None:
    """More than one replica is refused by the API server however it is asked for (the scale
    subresource, a patch of the workload); 0 (paused) and back to 1 are allowed."""
    ref = f"{kind.lower()}/{name}"
    for attempt in (("scale", ref, "--replicas=2"), ("patch", ref, "--type=merge", "-p", '{"spec": {"replicas": 3}}')):
        refused = kube.kubectl(*attempt, check=False)
        assert refused.returncode != 0 and "runs at most 1 replica" in refused.stderr, f"kubectl {' '.join(attempt)}: {refused.stderr or refused.stdout}"
    assert workloads(kube)[f"{kind}/{name}"]["spec"]["replicas"] == 1
    kube.kubectl("scale", ref, "--replicas=0")
    kube.kubectl("scale", ref, "--replicas=1")
    kube.kubectl("rollout", "status", ref, "--timeout=120s")


def released(kube) -> list[str]:
    kinds = "all,configmaps,secrets,serviceaccounts,poddisruptionbudgets,horizontalpodautoscalers,roles,rolebindings"
    items = json.loads(kube.kubectl("get", kinds, "-l", "app.kubernetes.io/instance=longtail", "-o", "json").stdout)["items"]
    # cluster-scoped, named after their namespace
    policies = json.loads(kube.kubectl("get", "validatingadmissionpolicies,validatingadmissionpolicybindings", "-o", "json").stdout)["items"]
    items += [i for i in policies if f".{kube.namespace}." in i["metadata"]["name"]]
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items]


def helm_releases(kube) -> list[str]:
    return [r["name"] for r in json.loads(kube.helm("list", "--all", "-o", "json").stdout)]
