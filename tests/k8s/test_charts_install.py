"""The umbrella chart on a real API server (issue #20, first slice): the Secrets created exactly as
docs/deploy.md creates them, `helm install` with charts/longtail/ci/defaults.yaml in a fresh
namespace, every Deployment and StatefulSet Available, `kubectl scale` of the gateway honoured,
`helm uninstall` leaving nothing of the release behind. kwok marks the pods Running and Ready: no
container runs (docs/deploy.md, "A local control plane")."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from k8s_helpers import SERVICE_CHARTS

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
    env = {**kube.env, "LONGTAIL_KUBECTL": kube.kubectl_bin, "NAMESPACE": kube.namespace, "S3_ACCESS_KEY": "k8s-test-access", "S3_SECRET_KEY": "k8s-test-secret"}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, cwd=kube.workdir, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout


def workloads(kube) -> dict[str, dict]:
    items = json.loads(kube.kubectl("get", "deployments,statefulsets", "-o", "json").stdout)["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i for i in items}


def test_the_umbrella_chart_installs_scales_and_uninstalls_cleanly(kube, charts):
    create_secrets_as_the_docs_do(kube)
    kube.helm("install", "longtail", str(charts / "longtail"), "-f", str(ROOT / "charts" / "longtail" / "ci" / "defaults.yaml"), "--wait", "--timeout", "5m")
    found = workloads(kube)
    assert {name.split("/", 1)[1] for name in found} >= {f"longtail-{c}" for c in SERVICE_CHARTS}, sorted(found)
    for name, w in found.items():
        want = w["spec"].get("replicas", 1)
        ready = w["status"].get("availableReplicas" if w["kind"] == "Deployment" else "readyReplicas", 0)
        assert ready == want, f"{name}: {ready}/{want} ready"

    kube.kubectl("scale", "deployment/longtail-gateway", "--replicas=3")
    kube.kubectl("rollout", "status", "deployment/longtail-gateway", "--timeout=120s")
    assert workloads(kube)["Deployment/longtail-gateway"]["status"]["availableReplicas"] == 3

    kube.helm("uninstall", "longtail", "--wait", "--timeout", "3m")
    # helm waits for what it deleted; the pods go after, through the garbage collector and kwok
    deadline = time.monotonic() + 120
    while left := released(kube):
        assert time.monotonic() < deadline, f"left behind 120 s after helm uninstall: {left}"
        time.sleep(1)
    assert helm_releases(kube) == []


def released(kube) -> list[str]:
    kinds = "all,configmaps,secrets,serviceaccounts,poddisruptionbudgets,horizontalpodautoscalers,roles,rolebindings"
    items = json.loads(kube.kubectl("get", kinds, "-l", "app.kubernetes.io/instance=longtail", "-o", "json").stdout)["items"]
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items]


def helm_releases(kube) -> list[str]:
    return [r["name"] for r in json.loads(kube.helm("list", "--all", "-o", "json").stdout)]
