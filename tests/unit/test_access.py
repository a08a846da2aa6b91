"""The access policy (longtail.access): every RPC of every service is in the one table, nothing
else is; the decisions for each kind of caller; the audit log's lines. Enforced on real servers
with TLS in tests/integration/test_roles_over_tls.py."""

from __future__ import annotations

import json

import grpc
import pytest

from longtail import access, registry
from longtail.access import LABELLER, OPERATOR, POLICY, REVIEWER, SERVICE, AuditLog, Principal, decide
from longtail.auth import AUDIENCE, OPERATOR_AUDIENCE, issue_token
from longtail.labels.v1 import labels_pb2 as L

SECRET = "s" * 32
LS, TC, TR, MV = registry.LABEL_STORE.grpc, registry.TRIGGER_EVALUATOR.grpc, registry.TRAINER.grpc, registry.MAP_VISION.grpc
SERVICES = [registry.GATEWAY, registry.TRIGGER_EVALUATOR, registry.MAP_VISION, registry.LABEL_STORE, registry.INFERENCE, registry.TRAINER]


def token(name: str, *roles: str, secret: str = SECRET, audience: str = OPERATOR_AUDIENCE) -> str:
    return issue_token(name, secret, 600, audience=audience, roles=roles or None)


def method_paths() -> set[str]:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    return {f"/{s.grpc}/{m.name}" for s in SERVICES for m in pool.FindServiceByName(s.grpc).methods}


def test_every_method_of_every_service_has_a_rule_and_no_rule_is_stale():
    ours = {path for path in POLICY if path.startswith("/longtail.")}
    assert method_paths() - ours == set(), "methods without a rule (they would be refused)"
    assert ours - method_paths() == set(), "rules for methods that do not exist"


def test_a_method_not_in_the_table_is_refused_by_default():
    _, code, reason = decide(f"/{LS}/DropEverything", token("root", OPERATOR), SECRET)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not in the access policy" in reason


@pytest.mark.parametrize(
    ("method", "roles", "expected"),
    [
        (f"/{TC}/CreateTrigger", (LABELLER,), grpc.StatusCode.PERMISSION_DENIED),  # a labeller cannot create triggers
        (f"/{TC}/CreateTrigger", (REVIEWER,), grpc.StatusCode.PERMISSION_DENIED),
        (f"/{TC}/CreateTrigger", (SERVICE,), grpc.StatusCode.PERMISSION_DENIED),
        (f"/{TC}/CreateTrigger", (OPERATOR,), None),
        (f"/{TR}/PromoteModel", (LABELLER,), grpc.StatusCode.PERMISSION_DENIED),
        (f"/{LS}/SubmitLabel", (LABELLER,), None),
        (f"/{LS}/SubmitLabel", (REVIEWER,), None),
        (f"/{LS}/SubmitLabel", (OPERATOR,), grpc.StatusCode.PERMISSION_DENIED),  # operators do not label
        (f"/{LS}/SubmitLabel", (SERVICE,), grpc.StatusCode.PERMISSION_DENIED),
        (f"/{LS}/CreateDataset", (SERVICE,), None),
        (f"/{LS}/PromoteToSuiteCase", (REVIEWER,), None),
        (f"/{LS}/PromoteToSuiteCase", (LABELLER,), grpc.StatusCode.PERMISSION_DENIED),
        (f"/{LS}/ListSamples", (LABELLER,), None),
    ],
)
def test_roles_decide(method, roles, expected):
    principal, code, reason = decide(method, token("ann", *roles), SECRET)
    assert code == expected, reason
    assert principal.subject == "ann" and principal.roles == frozenset(roles)
    if code is not None:
        assert "ann" in reason and method.rsplit("/", 1)[-1] in reason  # who, and what they may not call


def test_without_a_token_only_open_methods_and_cars_pass():
    for path, rule in POLICY.items():
        _, code, reason = decide(path, "", SECRET)
        if rule.open or rule.car:
            assert code is None, path
        else:
            assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in reason, path


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        # minted when the test runs (a token minted at collection may expire before the test runs)
        (lambda: token("ann", OPERATOR, secret="x" * 32), "invalid token"),
        (lambda: token("ann", OPERATOR, audience=AUDIENCE), "invalid token"),  # a car's token is not a person's
        (lambda: issue_token("ann", SECRET, -10, audience=OPERATOR_AUDIENCE, roles=(OPERATOR,)), "expired"),
        (lambda: "not-a-jwt", "invalid token"),
    ],
)
def test_a_bad_token_is_refused_even_on_an_open_method(bad, why):
    for method in (f"/{LS}/ListSamples", f"/{TC}/CreateTrigger"):
        _, code, reason = decide(method, bad(), SECRET)
        assert code == grpc.StatusCode.UNAUTHENTICATED and why in reason


def test_a_server_without_a_secret_takes_no_tokens():
    _, code, reason = decide(f"/{MV}/SeedMap", token("ann", OPERATOR), None)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "OPERATOR_TOKEN_SECRET" in reason


def test_tokens_issued_before_roles_are_operator_tokens_and_unknown_roles_give_nothing():
    legacy = issue_token("ann", SECRET, 600, audience=OPERATOR_AUDIENCE)
    assert access.principal_of(legacy, SECRET) == Principal("ann", frozenset({OPERATOR}))
    assert access.principal_of(token("ann", "root"), SECRET).roles == frozenset()
    with pytest.raises(ValueError, match="unknown roles"):
        access.roles("root")


def test_the_audit_log_says_who_did_what_when(tmp_path):
    log = AuditLog("trainer", str(tmp_path / "audit" / "audit.jsonl"))
    request = L.UpsertTaskRequest(task=L.Task(name="stop_sign"))
    log.write(Principal("ann", frozenset({OPERATOR})), f"/{LS}/UpsertTask", request, "OK")
    log.write(Principal("bob", frozenset({OPERATOR})), f"/{TR}/PromoteModel", L.GetSuiteRequest(name="x" * 5000), "FAILED_PRECONDITION")
    first, second = (json.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines())
    assert first["who"] == "ann" and first["roles"] == ["operator"] and first["method"].endswith("/UpsertTask") and first["status"] == "OK"
    assert first["request"] == {"task": {"name": "stop_sign"}} and first["at"].endswith("Z") and first["service"] == "trainer"
    assert second["status"] == "FAILED_PRECONDITION" and "truncated" in second["request"]


def test_changes_are_audited_and_reads_are_not():
    audited = {path.rsplit("/", 1)[-1] for path, rule in POLICY.items() if rule.audited}
    assert {"CreateTrigger", "ActivateTrigger", "RetireTrigger", "UpsertTask", "UpsertSuite", "PromoteModel", "RollbackModel", "ImportModel", "SeedMap", "StartRun", "CreateDataset"} <= audited
    assert not audited & {"ListSamples", "GetTrigger", "GetModel", "SubmitLabel"}
