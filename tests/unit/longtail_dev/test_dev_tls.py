"""The development CA for local runs: certificates made once and reused, issued again near expiry,
and none left over from a CA that was replaced."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from longtail.pki import init_ca, issue

from longtail_dev.dev_tls import DevTls


def _serial(cert: Path) -> int:
    return x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


def _issuer_is(cert: Path, ca: Path) -> bool:
    return x509.load_pem_x509_certificate(cert.read_bytes()).issuer == x509.load_pem_x509_certificate(ca.read_bytes()).subject


def test_an_identity_is_made_once_then_reused(tmp_path: Path) -> None:
    tls = DevTls(tmp_path)
    first = tls.identity("services")
    again = tls.identity("services")
    assert first == again and _serial(first.cert) == _serial(again.cert)
    assert _issuer_is(first.cert, tls.ca)


def test_a_car_identity_lives_under_cars(tmp_path: Path) -> None:
    car = DevTls(tmp_path).identity("car-0007", vehicle=True)
    assert car.cert == tmp_path / "cars" / "car-0007.pem" and car.key.exists()


def test_a_certificate_close_to_expiry_is_issued_again(tmp_path: Path) -> None:
    tls = DevTls(tmp_path)
    tls.identity("operator")  # makes the CA
    issue(tmp_path, "operator", days=1)  # expires within RENEW_WITHIN
    short_lived = _serial(tmp_path / "operator.pem")
    renewed = tls.identity("operator")
    assert _serial(renewed.cert) != short_lived


def test_an_expiring_ca_is_replaced_with_everything_it_issued(tmp_path: Path) -> None:
    init_ca(tmp_path, days=1)
    issue(tmp_path, "car-0001", vehicle=True, out=tmp_path / "cars")
    old_ca = _serial(tmp_path / "ca.pem")
    tls = DevTls(tmp_path)
    services = tls.identity("services")
    assert _serial(tls.ca) != old_ca
    assert _issuer_is(services.cert, tls.ca)
    assert not (tmp_path / "cars" / "car-0001.pem").exists()  # would no longer verify


def test_service_env_names_existing_files(tmp_path: Path) -> None:
    env = DevTls(tmp_path).service_env(client_auth="require")
    assert env["GRPC_TLS_CLIENT_AUTH"] == "require"
    for key in ("GRPC_TLS_CERT", "GRPC_TLS_KEY", "GRPC_TLS_CA"):
        assert Path(env[key]).is_file(), key
    operator = DevTls(tmp_path).operator_env()
    assert Path(operator["LONGTAIL_TLS_CERT"]).name == "operator.pem"
    assert operator["LONGTAIL_TLS_CA"] == env["GRPC_TLS_CA"]
