"""What every command that talks to a service needs: a stub from the service's address variable,
operator credentials, and calls whose gRPC errors become one line and exit code 1. Missing
configuration exits with 2."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import typer
from rich.console import Console

from longtail.grpc_client import channel

err = Console(stderr=True)

# The variables that name each service's host:port for the commands (service -> variable).
ADDRESS_VARIABLES = {"label-store": "LABEL_STORE_ADDR", "trainer": "TRAINER_ADDR", "trigger-evaluator": "TRIGGER_EVALUATOR_ADDR"}
StubT = TypeVar("StubT")


def stub(stub_class: Callable[[grpc.Channel], StubT], address_variable: str, what: str) -> StubT:
    address = os.environ.get(address_variable, "").strip()
    if not address:
        err.print(f"[red]error:[/] {address_variable} is not set (host:port of {what})")
        raise typer.Exit(2)
    return stub_class(channel(address, credentials=client_credentials()))


def client_credentials() -> grpc.ChannelCredentials | None:
    """TLS for a person's commands: LONGTAIL_TLS_CA (the CA the services' certificates chain to),
    LONGTAIL_TLS_CERT / LONGTAIL_TLS_KEY (a client certificate, where a service asks for one).
    Unset: plaintext."""
    ca = os.environ.get("LONGTAIL_TLS_CA", "").strip()
    if not ca:
        return None
    from longtail.tls import channel_credentials

    return channel_credentials(ca, os.environ.get("LONGTAIL_TLS_CERT", "").strip(), os.environ.get("LONGTAIL_TLS_KEY", "").strip())


def operator_metadata(operator: str | None = None) -> list[tuple[str, str]]:
    """The caller's token as an operator (`token_metadata`)."""
    return token_metadata("operator", operator)


def token_metadata(role: str, name: str | None = None) -> list[tuple[str, str]]:
    """LONGTAIL_TOKEN (`longtail token NAME --role ROLE`; LONGTAIL_OPERATOR_TOKEN is read too), or a
    one-hour token for `name` (default: the user) in `role`, minted from OPERATOR_TOKEN_SECRET."""
    token = os.environ.get("LONGTAIL_TOKEN", "").strip() or os.environ.get("LONGTAIL_OPERATOR_TOKEN", "").strip()
    if not token:
        secret = os.environ.get("OPERATOR_TOKEN_SECRET", "")
        if not secret:
            err.print(f"[red]error:[/] set LONGTAIL_TOKEN (`longtail token NAME --role {role}`), or OPERATOR_TOKEN_SECRET to mint one")
            raise typer.Exit(2)
        from longtail.auth import OPERATOR_AUDIENCE, issue_token

        token = issue_token(name or getpass.getuser(), secret, 3600, audience=OPERATOR_AUDIENCE, roles=(role,))
    return [("authorization", f"Bearer {token}")]


def call(method: Callable[..., Any], request: Any, metadata: list[tuple[str, str]] | None = None, timeout: float = 120) -> Any:
    try:
        return method(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as exc:
        err.print(f"[red]error:[/] {exc.code().name}: {exc.details()}")
        raise typer.Exit(1) from None


def duration_seconds(text: str) -> float:
    """'90s', '15m', '1h', '2d' (or plain seconds) -> seconds, for CLI options."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?", text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r}: use e.g. 90s, 15m, 1h, 2d")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[match.group(2)]
