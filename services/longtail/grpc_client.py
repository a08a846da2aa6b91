"""Client channels that ride out a restart of the server they call.

A service restarted by Kubernetes (or `kill -9`ed by a drill) is away for a few seconds; a caller
that gives up on the first UNAVAILABLE turns a restart into a failed job. `channel()` retries a
unary call that ends UNAVAILABLE (the server was not there, or went away mid-call) with backoff
for up to `patience_s`, independently of each call's own deadline. Only UNAVAILABLE: every other
status is the server's answer. A call the server may have executed before it died is sent again,
so use it for calls that are idempotent (reads, and writes with an idempotency key or a
client-chosen id, as every write API of the project has).
"""

from __future__ import annotations

import time

import grpc

from longtail.log import get_logger

log = get_logger(__name__)


class RetryUnavailable(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, patience_s: float = 60.0, first_backoff_s: float = 0.25, max_backoff_s: float = 2.0) -> None:
        self.patience_s = patience_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s

    def intercept_unary_unary(self, continuation, client_call_details, request):
        deadline = time.monotonic() + self.patience_s
        backoff = self.first_backoff_s
        while True:
            outcome = continuation(client_call_details, request)
            if outcome.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + backoff > deadline:
                return outcome
            log.info("server unavailable, retrying", method=client_call_details.method, details=outcome.details())
            time.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)


def channel(address: str, patience_s: float = 60.0, options: list[tuple[str, object]] | None = None, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A channel to `address` (TLS with `credentials`, else plaintext) whose unary calls retry
    UNAVAILABLE for `patience_s`."""
    base = grpc.secure_channel(address, credentials, options=options or []) if credentials is not None else grpc.insecure_channel(address, options=options or [])
    return grpc.intercept_channel(base, RetryUnavailable(patience_s))


def service_credentials(settings) -> grpc.ChannelCredentials | None:
    """A service calling another: TLS, verified with its GRPC_TLS_CA (the system's roots when
    empty), presenting its own certificate (service certificates serve both ways, longtail.pki);
    None (plaintext) only with GRPC_PLAINTEXT."""
    from longtail.tls import channel_credentials

    if settings.grpc_plaintext:
        return None
    return channel_credentials(settings.grpc_tls_ca, settings.grpc_tls_cert, settings.grpc_tls_key)
