"""A development certificate authority for the fleet and the services (`longtail fleet ca init`,
`longtail fleet cert <vehicle-id>`, `longtail fleet server-cert <name>`), with the `cryptography`
package. Production issues from its own CA (cert-manager in the charts); the files have the same
shape: PEM, one key and one certificate per identity, the CA's certificate to trust.

A vehicle's certificate carries its id as the subject's common name and as the URI SAN
`urn:longtail:vehicle:<id>` (what the gateway reads, `longtail.tls.peer_vehicle`); a server's
carries its DNS names and IP addresses as SANs (localhost and 127.0.0.1 by default).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

VEHICLE_URI = "urn:longtail:vehicle:"
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def init_ca(directory: Path, name: str = "longtail development CA", days: int = 3650, force: bool = False) -> Issued:
    """A new CA key and self-signed certificate in `directory` (refused if one exists, unless `force`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and not force:
        raise FileExistsError(f"{cert_path} exists: a new CA would invalidate every certificate it issued (use force to replace it)")
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _pem_key(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path)


def issue(
    directory: Path,
    name: str,
    *,
    vehicle: bool = False,
    dns: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
    days: float = 365,
    not_before: dt.datetime | None = None,
    out: Path | None = None,
) -> Issued:
    """A key and a certificate for `name` signed by the CA in `directory`, written to `out`
    (default `directory`) as <name>.pem and <name>-key.pem. `vehicle`: a car's client certificate
    (its id in the CN and the URI SAN); otherwise a server certificate (and a client one: services
    call each other) for `dns` and `ips`. `not_before`/`days` make expired or not-yet-valid ones for tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not name or "/" in name or len(name) > 128:
        raise ValueError(f"{name!r}: a certificate name is 1-128 characters without '/'")
    ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    key = _key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    if vehicle:
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(VEHICLE_URI + name)]
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    else:
        names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out = out or directory
    return Issued(_write(out / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)), _write(out / f"{name}-key.pem", _pem_key(key), private=True))
