"""The development CA (longtail.pki) and the TLS settings (longtail.tls) without a server: what a
certificate says, and every half configuration refused at start with the variable named."""

from __future__ import annotations

import pytest
from cryptography import x509

from longtail.config import ServiceSettings
from longtail.pki import VEHICLE_URI, init_ca, issue
from longtail.tls import TlsConfigError, peer_vehicle, server_credentials


class Context:
    def __init__(self, pem: bytes | None) -> None:
        self.pem = pem

    def auth_context(self):
        return {"x509_pem_cert": [self.pem]} if self.pem else {}


def test_the_ca_issues_vehicle_and_server_certificates_and_is_not_replaced_by_accident(tmp_path):
    init_ca(tmp_path)
    with pytest.raises(FileExistsError, match="invalidate"):
        init_ca(tmp_path)
    car = issue(tmp_path, "car-7", vehicle=True)
    cert = x509.load_pem_x509_certificate(car.cert.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier) == [VEHICLE_URI + "car-7"]
    assert oct(car.key.stat().st_mode & 0o777) == "0o600"
    assert peer_vehicle(Context(car.cert.read_bytes())) == "car-7"
    server = issue(tmp_path, "label-store", dns=("label-store.longtail.svc",))
    assert peer_vehicle(Context(server.cert.read_bytes())) is None  # a service is no car
    assert peer_vehicle(Context(None)) is None and peer_vehicle(object()) is None
    with pytest.raises(ValueError, match="without '/'"):
        issue(tmp_path, "../escape", vehicle=True)


def test_tls_settings_are_all_or_nothing_and_plaintext_is_explicit(tmp_path):
    init_ca(tmp_path)
    server = issue(tmp_path, "gateway")
    assert server_credentials(ServiceSettings(grpc_plaintext=True)) is None
    assert server_credentials(ServiceSettings(grpc_tls_cert=str(server.cert), grpc_tls_key=str(server.key))) is not None
    cases = {
        "no TLS certificate: set GRPC_TLS_CERT and GRPC_TLS_KEY .* or GRPC_PLAINTEXT=true": ServiceSettings(),
        "no TLS certificate": ServiceSettings(grpc_tls_client_auth="require"),
        "GRPC_PLAINTEXT=true contradicts": ServiceSettings(grpc_plaintext=True, grpc_tls_cert=str(server.cert), grpc_tls_key=str(server.key)),
        "GRPC_PLAINTEXT=true contradicts GRPC_TLS_CERT/GRPC_TLS_KEY/GRPC_TLS_CLIENT_AUTH": ServiceSettings(grpc_plaintext=True, grpc_tls_client_auth="optional"),
        "GRPC_TLS_CERT and GRPC_TLS_KEY go together": ServiceSettings(grpc_tls_cert=str(server.cert)),
        "needs GRPC_TLS_CA": ServiceSettings(grpc_tls_cert=str(server.cert), grpc_tls_key=str(server.key), grpc_tls_client_auth="require"),
        "GRPC_TLS_KEY: cannot read": ServiceSettings(grpc_tls_cert=str(server.cert), grpc_tls_key=str(tmp_path / "missing.pem")),
    }
    for message, settings in cases.items():
        with pytest.raises(TlsConfigError, match=message):
            server_credentials(settings)


def test_a_service_calls_others_over_tls_unless_plaintext_is_set(tmp_path):
    from longtail.grpc_client import service_credentials

    init_ca(tmp_path)
    server = issue(tmp_path, "trainer")
    assert service_credentials(ServiceSettings(grpc_plaintext=True)) is None
    assert service_credentials(ServiceSettings(grpc_tls_cert=str(server.cert), grpc_tls_key=str(server.key), grpc_tls_ca=str(tmp_path / "ca.pem"))) is not None
    assert service_credentials(ServiceSettings()) is not None  # TLS verified with the system's roots
