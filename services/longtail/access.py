"""Who may call what: roles, the one table of every RPC's rule, and the server interceptor that
enforces it (default deny) and writes the audit log.

People and services carry a token (longtail.auth, audience "longtail-operators") whose `roles`
claim names what they are:

- operator: changes the catalog (triggers, tasks, suites, datasets) and the model registry;
- labeller: takes items from the label queues and submits labels, as themselves;
- reviewer: a labeller who also works the review queue and promotes samples to suite cases;
- service: another service of the loop (the trainer reading datasets, recording suite results);
- bridge: a labelling front end that authenticates its own users (Label Studio's bridge): it
  labels on their behalf, and the label store records them as `<bridge>:<user>`, so a bridge can
  never label as one of the label store's own labellers.

Cars are not in this table's roles: the gateway authenticates them itself (vehicle token and
client certificate, docs/security.md). Reads are open (read-only, behind TLS on the cluster's
network); a token on a read is still verified and its caller known.

Every method of every service must be in `POLICY`; one that is not is refused (PERMISSION_DENIED)
and a unit test lists the services' methods against the table. Calls to `audited` methods are
written to the audit log: who, their roles, the method, the request, the status, when.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from prometheus_client import Counter

from longtail.auth import OPERATOR_AUDIENCE, AuthError, bearer, verify_claims
from longtail.grpc_handlers import status_name, wrap_handler
from longtail.log import get_logger
from longtail.registry import GATEWAY, INFERENCE, LABEL_STORE, MAP_VISION, TRAINER, TRIGGER_EVALUATOR

log = get_logger(__name__)

OPERATOR, LABELLER, REVIEWER, SERVICE, BRIDGE = "operator", "labeller", "reviewer", "service", "bridge"
ROLES = (OPERATOR, LABELLER, REVIEWER, SERVICE, BRIDGE)

DENIED = Counter("longtail_access_denied_total", "Calls refused by the access policy, by method and status", ["service", "method", "code"])


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str] = frozenset()  # who may call; empty with open=False: nobody
    open: bool = False  # no token needed (reads, health); a token sent is still verified
    car: bool = False  # the fleet gateway authenticates the car itself
    audited: bool = False  # every call written to the audit log

    def describe(self) -> str:
        return "cars" if self.car else "anyone" if self.open else " or ".join(sorted(self.roles)) or "nobody"


def roles(*names: str, audited: bool = False) -> Rule:
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return Rule(frozenset(names), audited=audited)


OPEN = Rule(open=True)
CAR = Rule(car=True)
CHANGE = roles(OPERATOR, audited=True)  # catalog and registry changes
LABELLING = roles(LABELLER, REVIEWER, BRIDGE)


def _service(name: str, rules: dict[str, Rule]) -> dict[str, Rule]:
    return {f"/{name}/{method}": rule for method, rule in rules.items()}


POLICY: dict[str, Rule] = {
    # cars, authenticated by the gateway itself (token + certificate)
    **_service(
        GATEWAY.grpc,
        {
            "Session": CAR,
            "UploadSnapshot": CAR,
            "PublishTelemetry": CAR,
        },
    ),
    **_service(
        INFERENCE.grpc,
        {
            "Infer": OPEN,  # read-only: an answer from the serving version
            "GetServingModel": OPEN,
        },
    ),
    # EvaluateSuites is open to dry runs; recording results (record=true) needs an operator or a service (the servicer checks the field)
    **_service(
        LABEL_STORE.grpc,
        {
            "RegisterSample": roles(OPERATOR, SERVICE),
            "GetSample": OPEN,
            "ListSamples": OPEN,
            "UpsertTask": roles(OPERATOR, SERVICE, audited=True),  # the trainer syncs its tasks file at start
            "ListTasks": OPEN,
            "GetTask": OPEN,
            "GetNextTask": LABELLING,
            "SubmitLabel": LABELLING,
            "ReleaseLease": LABELLING,
            "ListQueue": OPEN,
            "CreateDataset": roles(OPERATOR, SERVICE, audited=True),
            "GetDataset": OPEN,
            "ListDatasets": OPEN,
            "RebuildDataset": CHANGE,
            "UpsertSuite": roles(OPERATOR, SERVICE, audited=True),  # and the suites of its tasks
            "GetSuite": OPEN,
            "ListSuites": OPEN,
            "PromoteToSuiteCase": roles(OPERATOR, REVIEWER, audited=True),
            "EvaluateSuites": OPEN,
            "GetSuiteReport": OPEN,
        },
    ),
    **_service(
        MAP_VISION.grpc,
        {
            "GetMap": OPEN,
            "GetFeature": OPEN,
            "ListDisagreements": OPEN,
            "SeedMap": CHANGE,
        },
    ),
    # the trainer and its model registry
    **_service(
        TRAINER.grpc,
        {
            "StartRun": roles(OPERATOR, SERVICE, audited=True),
            "GetRun": OPEN,
            "ListRuns": OPEN,
            "ListModels": OPEN,
            "GetModel": OPEN,
            "PromoteModel": CHANGE,
            "RollbackModel": CHANGE,
            "CompareModels": OPEN,
            "ImportModel": CHANGE,
        },
    ),
    # the trigger catalog
    **_service(
        TRIGGER_EVALUATOR.grpc,
        {
            "CreateTrigger": CHANGE,
            "UpdateTrigger": CHANGE,
            "ValidateTrigger": OPEN,
            "GetTrigger": OPEN,
            "ListTriggers": OPEN,
            "ActivateTrigger": CHANGE,
            "PauseTrigger": CHANGE,
            "RetireTrigger": CHANGE,
            "BacktestTrigger": roles(OPERATOR, SERVICE),
            "GetYield": OPEN,
        },
    ),
    "/grpc.health.v1.Health/Check": OPEN,
    "/grpc.health.v1.Health/Watch": OPEN,
    "/grpc.health.v1.Health/List": OPEN,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": OPEN,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": OPEN,
}


@dataclass(frozen=True)
class Principal:
    subject: str  # a person's or a service's name ("" = anonymous)
    roles: frozenset[str] = frozenset()

    def has(self, *names: str) -> bool:
        return bool(self.roles & set(names))


ANONYMOUS = Principal("")
_caller: contextvars.ContextVar[Principal] = contextvars.ContextVar("longtail_caller", default=ANONYMOUS)


def caller() -> Principal:
    """Who made the call being handled (set by `AccessInterceptor`; ANONYMOUS on open methods
    called without a token)."""
    return _caller.get()


def decide(method: str, token: str, secret: str | None, policy: dict[str, Rule] = POLICY) -> tuple[Principal, grpc.StatusCode | None, str]:
    """(the caller, None) when `method` may be called with `token`, else the refusal's status and reason."""
    rule = policy.get(method)
    if rule is None:
        return ANONYMOUS, grpc.StatusCode.PERMISSION_DENIED, f"{method} is not in the access policy (longtail.access.POLICY): refused by default"
    if rule.car:
        return ANONYMOUS, None, ""
    principal = ANONYMOUS
    if token:
        if not secret:
            return ANONYMOUS, grpc.StatusCode.UNAUTHENTICATED, "this server accepts no tokens (no OPERATOR_TOKEN_SECRET)"
        try:
            principal = principal_of(token, secret)
        except AuthError as exc:
            return ANONYMOUS, grpc.StatusCode.UNAUTHENTICATED, f"{exc} (authorization: Bearer <token>)"
    if rule.open:
        return principal, None, ""
    if not principal.subject:
        return ANONYMOUS, grpc.StatusCode.UNAUTHENTICATED, f"{method.rsplit('/', 1)[-1]} needs a token of a {rule.describe()} (authorization: Bearer <token>; longtail token NAME --role ROLE)"
    if not principal.roles & rule.roles:
        return principal, grpc.StatusCode.PERMISSION_DENIED, f"{principal.subject} ({', '.join(sorted(principal.roles)) or 'no role'}) may not call {method.rsplit('/', 1)[-1]}: it needs {rule.describe()}"
    return principal, None, ""


def principal_of(token: str, secret: str) -> Principal:
    """The subject and roles of a verified token. Tokens without a `roles` claim were issued as
    operator tokens (before roles existed) and keep that meaning."""
    claims = verify_claims(token, secret, OPERATOR_AUDIENCE)
    named = claims.get("roles", [OPERATOR])
    if not isinstance(named, list) or not all(isinstance(r, str) for r in named):
        raise AuthError("invalid token: roles is not a list of names")
    return Principal(str(claims["sub"]), frozenset(named) & set(ROLES))


class AuditLog:
    """Audited calls as JSON lines: the service's log always, and a file when one is configured."""

    def __init__(self, service: str, path: str = "") -> None:
        self.service, self.path = service, Path(path) if path else None
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, principal: Principal, method: str, request: Any, code: str) -> None:
        try:
            what = json_format.MessageToDict(request, preserving_proto_field_name=True) if request is not None else {}
        except Exception:  # noqa: BLE001 - a streaming request has no single message
            what = {}
        text = json.dumps(what, default=str)
        entry = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "service": self.service,
            "who": principal.subject,
            "roles": sorted(principal.roles),
            "method": method,
            "status": code,
            "request": what if len(text) <= 4000 else {"truncated": text[:4000]},
        }
        log.info("audit", **{k: v for k, v in entry.items() if k != "request"}, request=text[:500])
        if self.path is not None:
            with self._lock, self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=str) + "\n")


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Enforces `POLICY` on every call before its handler runs, makes the caller known to the
    handler (`caller()`), and writes audited calls to the audit log."""

    def __init__(self, service: str, secret: str | None, audit: AuditLog, extra_rules: dict[str, Rule] | None = None) -> None:
        self.service, self.secret, self.audit = service, secret, audit
        self.policy = {**POLICY, **(extra_rules or {})}  # extra: a server's own methods outside the project's services (tests)

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        principal, code, reason = decide(method, bearer(handler_call_details.invocation_metadata), self.secret, self.policy)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if code is not None:
            DENIED.labels(self.service, method.rsplit("/", 1)[-1], code.name).inc()
            log.warning("call refused", method=method, code=code.name, reason=reason, who=principal.subject)
            return _refusal(handler, code, reason)
        audited = self.policy[method].audited
        if principal is ANONYMOUS and not audited:
            return handler  # nothing to tell the handler (cars' streams, open reads): no layer per call
        return self._with_caller(handler, method, principal, audited)

    def _with_caller(self, handler, method: str, principal: Principal, audited: bool):
        def around(behavior: Callable, generator: bool) -> Callable:
            if generator:

                async def stream(request: Any, context: Any):
                    _caller.set(principal)
                    async for item in behavior(request, context):
                        yield item

                return stream

            # The status is read as MetricsInterceptor reads it; not a shared coroutine helper, which
            # would add a frame per call (and per open stream where metrics wrap a session).
            async def call(request: Any, context: Any) -> Any:
                _caller.set(principal)
                code = "UNKNOWN"
                try:
                    response = await behavior(request, context)
                    code = status_name(context, "OK")
                    return response
                except BaseException:
                    code = status_name(context, "UNKNOWN")
                    raise
                finally:
                    if audited:
                        self.audit.write(principal, method, None if hasattr(request, "__aiter__") else request, code)

            return call

        return wrap_handler(handler, around)


def _refusal(handler, code: grpc.StatusCode, reason: str):
    """`handler` of the same kind (unary or streaming), answering `code` without running."""

    async def refuse(_request: Any, context: Any) -> Any:
        await context.abort(code, reason)

    return wrap_handler(handler, lambda _behavior, _generator: refuse)
