"""`longtail k8s up | status | down`: a real Kubernetes control plane on loopback, to try the charts
without a cluster (docs/deploy.md, "A local control plane"); tests/k8s install the charts on it.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.34.2, built once by
`scripts/k8s-tools` from the Go module proxy, and kwok, which plays the nodes: NODES Node objects
that kwok keeps Ready, and every pod scheduled to them is marked Running and Ready **without any
container running** (kwok simulates the kubelet). So Deployments become Available, scaling,
rollouts, PodDisruptionBudgets and drains behave as on a cluster, and the API server validates
every object, including custom resources whose CRDs are installed; nothing executes the images.

Everything listens on 127.0.0.1 only (etcd, the API server with a self-made CA and a static admin
token, the controllers' health ports). The kubeconfig is `<state>/k8s/kubeconfig`
(`longtail k8s env` prints `export KUBECONFIG=...`). The components are started, tracked and
stopped by the same launcher as `longtail infra` (`Launcher(components=COMPONENTS, state_name="k8s")`).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from longtail_dev.infra.launcher import Component, InfraError, _port, _run, state_dir

ROOT = Path(__file__).resolve().parents[3]
NODES = 3  # fake nodes, one per zone: a drain has somewhere to move pods to, spreading has room
GPU_NODE = NODES - 1  # the last one also says it has GPUs (label and nvidia.com/gpu capacity), as GPU node pools do
SERVICE_CIDR = "10.96.0.0/16"
TOKEN_USER = "longtail-admin"  # in system:masters: the static token of the kubeconfig


def home() -> Path:
    return state_dir() / "k8s"


def kubeconfig_path() -> Path:
    return home() / "kubeconfig"


_tools: dict[str, Path] = {}


def tools(say: Callable[[str], None] = lambda _: None) -> Path:
    """The directory scripts/k8s-tools built (bin/, crds/, kwok-stages.yaml); builds it the first time."""
    if "dir" not in _tools:
        if not (Path(ROOT) / "scripts" / "k8s-tools").exists():
            raise InfraError("scripts/k8s-tools not found: the local control plane is built from the repository's scripts")
        say("k8s: building the control plane with scripts/k8s-tools (the first time 12-15 minutes on 2 cores, then cached)")
        done = subprocess.run([str(ROOT / "scripts" / "k8s-tools")], capture_output=True, text=True)
        if done.returncode != 0:
            raise InfraError(f"scripts/k8s-tools failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        _tools["dir"] = Path(done.stdout.strip().splitlines()[-1])
    return _tools["dir"]


def _pki(say: Callable[[str], None]) -> Path:
    """A CA, the API server's serving certificate (127.0.0.1), the service-account key pair and the
    static token file; made once per state directory with openssl."""
    pki = home() / "pki"
    if (pki / "tokens.csv").exists():
        return pki
    pki.mkdir(parents=True, exist_ok=True)
    log = home() / "pki.log"
    openssl = "openssl"
    say("k8s: making a CA, the API server's certificate and the service-account keys (openssl)")
    _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=longtail-local-ca", "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt")], log, "openssl (CA)")
    (pki / "apiserver.ext").write_text("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n")
    _run([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver", "-keyout", str(pki / "apiserver.key"), "-out", str(pki / "apiserver.csr")], log, "openssl (API server key)")
    _run(
        [openssl, "x509", "-req", "-in", str(pki / "apiserver.csr"), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "3650", "-extfile", str(pki / "apiserver.ext"), "-out", str(pki / "apiserver.crt")],
        log,
        "openssl (API server certificate)",
    )
    _run([openssl, "genrsa", "-out", str(pki / "sa.key"), "2048"], log, "openssl (service-account key)")
    _run([openssl, "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")], log, "openssl (service-account public key)")
    token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    (pki / "tokens.csv").write_text(f"{token},{TOKEN_USER},{TOKEN_USER},system:masters\n")
    os.chmod(pki / "tokens.csv", 0o600)
    return pki


def _token() -> str:
    return (home() / "pki" / "tokens.csv").read_text().split(",", 1)[0]


def _api_port() -> int:
    return _port("LONGTAIL_K8S_API_PORT", 16443)


def _write_kubeconfig() -> Path:
    ca = base64.b64encode((home() / "pki" / "ca.crt").read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "longtail-local", "cluster": {"server": f"https://127.0.0.1:{_api_port()}", "certificate-authority-data": ca}}],
        "users": [{"name": TOKEN_USER, "user": {"token": _token()}}],
        "contexts": [{"name": "longtail-local", "context": {"cluster": "longtail-local", "user": TOKEN_USER}}],
        "current-context": "longtail-local",
    }
    path = kubeconfig_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def _get(url: str, token: str | None = None, verify: bool = True) -> tuple[int, str]:
    context = None
    if url.startswith("https:"):  # the API server's CA, or (verify=False) the controllers' self-signed health ports, loopback only
        context = ssl.create_default_context(cafile=str(home() / "pki" / "ca.crt")) if verify else ssl._create_unverified_context()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        return 0, ""


class _K8sComponent(Component):
    ready_timeout = 120.0

    def __init__(self, name: str, ports: dict[str, int]) -> None:
        super().__init__(name, ports)
        self.home = home() / name

    def bin(self, name: str) -> str:
        return str(tools() / "bin" / name)

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(kubeconfig_path())}


class Etcd(_K8sComponent):
    def __init__(self) -> None:
        super().__init__("etcd", {"client": _port("LONGTAIL_K8S_ETCD_PORT", 12379), "peer": _port("LONGTAIL_K8S_ETCD_PEER_PORT", 12380)})

    def install(self, say: Callable[[str], None]) -> None:
        tools(say)

    def command(self):
        client, peer = f"http://127.0.0.1:{self.ports['client']}", f"http://127.0.0.1:{self.ports['peer']}"
        cmd = [self.bin("etcd"), "--name", "longtail", "--data-dir", str(self.home / "data"), "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        cmd += ["--initial-cluster", f"longtail={peer}", "--unsafe-no-fsync", "--listen-metrics-urls", f"http://127.0.0.1:{self.ports['client'] + 2}"]
        return cmd, {}, {"cwd": str(self.home)}

    def ready(self) -> bool:
        status, body = _get(f"http://127.0.0.1:{self.ports['client']}/health")
        return status == 200 and '"health":"true"' in body.replace(" ", "")


class ApiServer(_K8sComponent):
    def __init__(self) -> None:
        super().__init__("kube-apiserver", {"https": _api_port()})

    def install(self, say: Callable[[str], None]) -> None:
        tools(say)
        _pki(say)

    def command(self):
        pki = home() / "pki"
        etcd = Etcd()
        cmd = [
            self.bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd.ports['client']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['https']}",
            f"--cert-dir={self.home / 'certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        return cmd, {}, {"cwd": str(self.home)}

    def ready(self) -> bool:
        return _get(f"https://127.0.0.1:{self.ports['https']}/readyz", _token())[0] == 200

    def after_ready(self) -> None:
        _write_kubeconfig()


class _Controller(_K8sComponent):
    """A controller process of the control plane (the controller manager, the scheduler): the
    admin kubeconfig, a self-signed health port on loopback, no leader election."""

    binary = ""

    def flags(self) -> list[str]:
        return []

    def command(self):
        cmd = [
            self.bin(self.binary),
            f"--kubeconfig={kubeconfig_path()}",
            f"--authentication-kubeconfig={kubeconfig_path()}",
            f"--authorization-kubeconfig={kubeconfig_path()}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['https']}",
            f"--cert-dir={self.home / 'certs'}",
            "--leader-elect=false",
            "--profiling=false",
            *self.flags(),
        ]
        return cmd, {}, {"cwd": str(self.home)}

    def ready(self) -> bool:
        return _get(f"https://127.0.0.1:{self.ports['https']}/healthz", verify=False)[0] == 200


class ControllerManager(_Controller):
    binary = "kube-controller-manager"

    def __init__(self) -> None:
        super().__init__("kube-controller-manager", {"https": _port("LONGTAIL_K8S_CONTROLLER_MANAGER_PORT", 16257)})

    def flags(self) -> list[str]:
        pki = home() / "pki"
        return [
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=true",
            # an HPA acts on its target within seconds (Kubernetes' default: 15 s), the tests wait less
            "--horizontal-pod-autoscaler-sync-period=5s",
        ]


class Scheduler(_Controller):
    binary = "kube-scheduler"

    def __init__(self) -> None:
        super().__init__("kube-scheduler", {"https": _port("LONGTAIL_K8S_SCHEDULER_PORT", 16259)})


def node_names() -> list[str]:
    return [f"kwok-node-{i}" for i in range(NODES)]


def _node(index: int) -> dict:
    name = node_names()[index]
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok", "topology.kubernetes.io/zone": f"zone-{'abc'[index % 3]}"}
    if index == GPU_NODE:
        capacity["nvidia.com/gpu"] = "8"
        labels["nvidia.com/gpu.present"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}, "labels": labels},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def api():
    """A kubernetes.client.ApiClient on the local control plane."""
    from kubernetes import config

    return config.new_client_from_config(str(kubeconfig_path()))


class Kwok(_K8sComponent):
    """kwok as a controller: it keeps the fake nodes Ready and plays the kubelet for their pods."""

    def __init__(self) -> None:
        super().__init__("kwok", {"metrics": _port("LONGTAIL_K8S_KWOK_PORT", 16247)})

    def command(self):
        cmd = [
            self.bin("kwok"),
            f"--kubeconfig={kubeconfig_path()}",
            f"--config={tools() / 'kwok-stages.yaml'}",
            "--manage-all-nodes=true",
            "--node-ip=127.0.0.1",
            # the pods' (fake) addresses: never loopback, which EndpointSlices refuse; nothing routes
            # or connects to them (no container runs)
            "--cidr=10.244.0.0/16",
            # kwok renews each node's Lease (the heartbeat stage refreshes the node status only every
            # ~10 min): without it the node lifecycle controller marks the nodes NotReady, taints
            # them and the disruption controller sees no healthy pod
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{self.ports['metrics']}",
        ]
        return cmd, {}, {"cwd": str(self.home)}

    def ready(self) -> bool:
        """Creates the fake nodes (once), then waits until kwok reports every one Ready."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            core = client.CoreV1Api(api())
            existing = {n["metadata"]["name"] for n in _nodes(core)}
            for index, name in enumerate(node_names()):
                if name not in existing:
                    core.create_node(cast(Any, _node(index)))
            nodes = _nodes(core)
        except (ApiException, OSError):
            return False
        ready = {n["metadata"]["name"] for n in nodes for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"}
        return set(node_names()) <= ready


def _nodes(core: Any) -> list[dict[str, Any]]:
    return json.loads(core.list_node(_preload_content=False).data)["items"]


COMPONENTS: dict[str, Callable[[], Component]] = {"etcd": Etcd, "kube-apiserver": ApiServer, "kube-controller-manager": ControllerManager, "kube-scheduler": Scheduler, "kwok": Kwok}


@dataclass(frozen=True)
class Summary:
    version: str
    nodes: dict[str, str]  # name -> its Ready condition's status
    kubeconfig: str


def summary() -> Summary:
    """Version and nodes, for `longtail k8s up` and `status`."""
    from kubernetes import client

    version = client.VersionApi(api()).get_code().git_version
    nodes = _nodes(client.CoreV1Api(api()))
    ready = {n["metadata"]["name"]: next((c["status"] for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready"), "Unknown") for n in nodes}
    return Summary(version, ready, str(kubeconfig_path()))
