"""TLS for gRPC: the server's credentials from `ServiceSettings` (GRPC_TLS_CERT, GRPC_TLS_KEY,
GRPC_TLS_CA, GRPC_TLS_CLIENT_AUTH), a client's from files, and who is on the other end.

A server listens with TLS only: a plaintext client is refused in the handshake. Plaintext is an
explicit choice (GRPC_PLAINTEXT=true, for local experiments); a service with neither a
certificate nor that setting refuses to start, so a forgotten Secret never means plaintext. With GRPC_TLS_CLIENT_AUTH=require (the gateway's, for cars) a client without a
certificate chaining to GRPC_TLS_CA, or with an expired or not-yet-valid one, is refused there too;
`peer_vehicle` reads the vehicle id the certificate was issued to (longtail.pki).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from longtail.config import ConfigError, ServiceSettings
from longtail.pki import VEHICLE_URI


class TlsConfigError(ConfigError, ValueError):
    """Missing or contradictory TLS settings: the service stops at start with one line (exit 2)."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """None for plaintext (GRPC_PLAINTEXT); no certificate otherwise, or a half configuration, is
    refused at start."""
    if settings.grpc_plaintext:
        if settings.grpc_tls_cert or settings.grpc_tls_key or settings.grpc_tls_client_auth != "none":
            raise TlsConfigError("GRPC_PLAINTEXT=true contradicts GRPC_TLS_CERT/GRPC_TLS_KEY/GRPC_TLS_CLIENT_AUTH: choose TLS or plaintext")
        return None
    if not settings.grpc_tls_cert and not settings.grpc_tls_key:
        raise TlsConfigError("no TLS certificate: set GRPC_TLS_CERT and GRPC_TLS_KEY (`longtail fleet server-cert` makes a development one), or GRPC_PLAINTEXT=true to listen in plaintext for a local experiment")
    if not (settings.grpc_tls_cert and settings.grpc_tls_key):
        raise TlsConfigError("GRPC_TLS_CERT and GRPC_TLS_KEY go together")
    pair = [(_read(settings.grpc_tls_key, "GRPC_TLS_KEY"), _read(settings.grpc_tls_cert, "GRPC_TLS_CERT"))]
    if settings.grpc_tls_client_auth == "none":
        return grpc.ssl_server_credentials(pair)
    if not settings.grpc_tls_ca:
        raise TlsConfigError(f"GRPC_TLS_CLIENT_AUTH={settings.grpc_tls_client_auth} needs GRPC_TLS_CA (the CA client certificates chain to)")
    return grpc.ssl_server_credentials(pair, root_certificates=_read(settings.grpc_tls_ca, "GRPC_TLS_CA"), require_client_auth=settings.grpc_tls_client_auth == "require")


def channel_credentials(ca: str, cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """A client's credentials: the CA to verify the server with (empty: the system's roots), and
    its own certificate if any."""
    return grpc.ssl_channel_credentials(_read(ca, "CA") if ca else None, _read(key, "client key") if key else None, _read(cert, "client certificate") if cert else None)


def peer_certificate(context: Any):
    """The client's verified certificate (a cryptography x509.Certificate), or None."""
    from cryptography import x509

    auth_context = getattr(context, "auth_context", None)  # test doubles of a context may have none
    pem = (auth_context() or {}).get("x509_pem_cert") if auth_context else None
    return x509.load_pem_x509_certificate(pem[0]) if pem else None


def peer_vehicle(context: Any) -> str | None:
    """The vehicle id of the client's certificate (its `urn:longtail:vehicle:` URI SAN), or None
    when the client presented no certificate or one that names no vehicle."""
    from cryptography import x509

    cert = peer_certificate(context)
    if cert is None:
        return None
    try:
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        return None
    return next((u.removeprefix(VEHICLE_URI) for u in uris if u.startswith(VEHICLE_URI)), None)
