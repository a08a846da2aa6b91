"""Identities and roles on real services with TLS (issue #18): the trigger catalog and the label
store as processes on TLS (a development CA, longtail.pki), the access policy (longtail.access)
enforced on every call: a labeller cannot create triggers, an operator token cannot label (nor
as someone else), catalog changes are in the audit log with who, what and when; a plaintext
client is refused; grpcurl with the CA and a client certificate lists and calls the services
through reflection, and gets the same answers."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import pytest

from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.pki import init_ca, issue
from longtail.registry import LABEL_STORE, TRIGGER_EVALUATOR
from longtail.tls import channel_credentials
from longtail.triggers.v1 import triggers_pb2 as S
from longtail.triggers.v1 import triggers_pb2_grpc

from longtail_dev.supervisor import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-operator-secret-0123456789abcdefgh"


def token(name: str, role: str) -> str:
    return issue_token(name, SECRET, 600, audience=OPERATOR_AUDIENCE, roles=(role,))


def bearer(name: str, role: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(name, role)}")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = tmp_path_factory.mktemp("pki")
    init_ca(ca)
    issue(ca, "services")
    issue(ca, "operator")
    return ca


@pytest.fixture(scope="module")
def services(pki, kafka, s3, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    tls = {"GRPC_TLS_CERT": str(pki / "services.pem"), "GRPC_TLS_KEY": str(pki / "services-key.pem"), "GRPC_TLS_CA": str(pki / "ca.pem"), "GRPC_TLS_CLIENT_AUTH": "optional"}
    common = {**tls, "OPERATOR_TOKEN_SECRET": SECRET, "AUDIT_LOG_FILE": str(state / "audit.jsonl")}
    started = {}
    try:
        started["catalog"] = ServiceProcess(TRIGGER_EVALUATOR.package, TRIGGER_EVALUATOR.grpc, common).start(timeout=120)
        env = {**common, "DATABASE_URL": f"sqlite:///{state / 'labels.db'}", "LABEL_STORE_CONSUMER_GROUP": f"access-{uuid.uuid4().hex[:6]}", "LABEL_STORE_DATA_DIR": str(state)}
        started["labels"] = ServiceProcess(LABEL_STORE.package, LABEL_STORE.grpc, env).start(timeout=120)
        yield started, state / "audit.jsonl"
    finally:
        for service in started.values():
            service.stop()


def secure(pki, address: str) -> grpc.Channel:
    return grpc.secure_channel(address, channel_credentials(str(pki / "ca.pem"), str(pki / "operator.pem"), str(pki / "operator-key.pem")))


def spec() -> S.TriggerSpec:
    return S.TriggerSpec(name="stop signs", expression="count(stop_sign) >= 1", site=S.TRIGGER_SITE_EDGE, task="stop_sign", upload_budget=100, max_uploads_per_car_hour=1000)


def code(call, request, metadata=None) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call(request, metadata=metadata, timeout=10)
    return err.value.code(), err.value.details()


def test_roles_decide_who_changes_the_catalog_and_changes_are_audited(pki, services):
    (started, audit) = services
    catalog = triggers_pb2_grpc.TriggerCatalogServiceStub(secure(pki, started["catalog"].address))
    trigger_id = f"acc-{uuid.uuid4().hex[:8]}"
    request = S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec())
    status, details = code(catalog.CreateTrigger, request, bearer("lena", "labeller"))  # a labeller cannot create triggers
    assert status == grpc.StatusCode.PERMISSION_DENIED and "lena (labeller) may not call CreateTrigger: it needs operator" in details
    assert code(catalog.CreateTrigger, request, bearer("trainer", "service"))[0] == grpc.StatusCode.PERMISSION_DENIED
    assert code(catalog.CreateTrigger, request)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert code(catalog.CreateTrigger, request, [("authorization", "Bearer forged")])[0] == grpc.StatusCode.UNAUTHENTICATED
    created = catalog.CreateTrigger(request, metadata=bearer("olga", "operator"), timeout=10)
    assert created.trigger.trigger_id == trigger_id and created.trigger.created_by == "olga"
    catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=trigger_id), metadata=bearer("olga", "operator"), timeout=10)
    assert catalog.GetTrigger(S.GetTriggerRequest(trigger_id=trigger_id), timeout=10).trigger.trigger_id == trigger_id  # reads are open

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        mine = [e for e in lines if trigger_id in json.dumps(e["request"])]
        if len(mine) >= 2:
            break
        time.sleep(0.2)
    assert [(e["who"], e["method"].rsplit("/", 1)[-1], e["status"]) for e in mine] == [("olga", "CreateTrigger", "OK"), ("olga", "RetireTrigger", "OK")]
    assert mine[0]["roles"] == ["operator"] and mine[0]["service"] == "trigger-evaluator" and mine[0]["at"].endswith("Z")
    assert not any(e["who"] == "lena" for e in lines)  # refused calls changed nothing (they are counted and logged as refusals)


def test_labellers_label_as_themselves(pki, services):
    (started, _) = services
    labels = labels_pb2_grpc.LabelStoreServiceStub(secure(pki, started["labels"].address))
    task = labels.ListTasks(L.ListTasksRequest(), timeout=10).tasks[0].name
    assert code(labels.GetNextTask, L.GetNextTaskRequest(task=task), bearer("olga", "operator"))[0] == grpc.StatusCode.PERMISSION_DENIED  # operators do not label
    status, details = code(labels.GetNextTask, L.GetNextTaskRequest(task=task, labeller_id="lena"), bearer("mallory", "labeller"))
    assert status == grpc.StatusCode.PERMISSION_DENIED and "'lena' is not the caller 'mallory'" in details
    assert labels.GetNextTask(L.GetNextTaskRequest(task=task), metadata=bearer("lena", "labeller"), timeout=10) is not None  # an empty queue answers


def test_a_plaintext_client_is_refused(services):
    (started, _) = services
    api = triggers_pb2_grpc.TriggerCatalogServiceStub(grpc.insecure_channel(started["catalog"].address))
    assert code(api.ListTriggers, S.ListTriggersRequest())[0] == grpc.StatusCode.UNAVAILABLE


def test_grpcurl_lists_and_calls_the_services_through_reflection_over_tls(pki, services):
    (started, _) = services
    grpcurl = subprocess.run([str(ROOT / "scripts" / "grpcurl-tools")], capture_output=True, text=True, check=True, timeout=900).stdout.strip()
    tls = ["-cacert", str(pki / "ca.pem"), "-cert", str(pki / "operator.pem"), "-key", str(pki / "operator-key.pem")]
    address = started["catalog"].address

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([grpcurl, *tls, *args], capture_output=True, text=True, timeout=60)

    listed = run(address, "list")
    assert listed.returncode == 0 and TRIGGER_EVALUATOR.grpc in listed.stdout.split(), listed.stderr
    called = run("-d", "{}", address, f"{TRIGGER_EVALUATOR.grpc}/ListTriggers")
    assert called.returncode == 0, called.stderr
    denied = run("-H", f"authorization: Bearer {token('lena', 'labeller')}", "-d", json.dumps({"trigger_id": "x", "spec": {"name": "x"}}), address, f"{TRIGGER_EVALUATOR.grpc}/CreateTrigger")
    assert denied.returncode != 0 and "PermissionDenied" in denied.stderr + denied.stdout
    plaintext = subprocess.run([grpcurl, "-plaintext", address, "list"], capture_output=True, text=True, timeout=60)
    assert plaintext.returncode != 0
