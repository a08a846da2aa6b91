"""TLS for services run on this machine (the demo, the drills, the integration tests, the
benchmarks): a development CA (longtail.pki) in a directory, one certificate for every local
service (localhost, 127.0.0.1) that also serves as their client certificate, one for the operator,
and one per car on demand. Local runs speak TLS like production does; plaintext is only for a
service started with GRPC_PLAINTEXT=true on purpose.

Files are made once and reused: several processes may ask at the same time (a lock file orders
them), and a certificate close to expiry is issued again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from longtail.pki import CA_CERT, Issued, init_ca, issue

RENEW_WITHIN = dt.timedelta(days=7)


def _fresh(cert: Path) -> bool:
    from cryptography import x509

    if not cert.exists():
        return False
    not_after = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    return not_after - dt.datetime.now(dt.UTC) > RENEW_WITHIN


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class DevTls:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / CA_CERT

    def identity(self, name: str, vehicle: bool = False) -> Issued:
        """<name>.pem and <name>-key.pem (a car's under cars/), issued when missing or expiring."""
        out = self.directory / "cars" if vehicle else self.directory
        issued = Issued(out / f"{name}.pem", out / f"{name}-key.pem")
        with _locked(self.directory):
            if not _fresh(self.ca):
                for old in [*self.directory.glob("*.pem"), *self.directory.glob("cars/*.pem")]:
                    old.unlink()  # issued by the CA being replaced: they would not verify
                init_ca(self.directory)
            if not (_fresh(issued.cert) and issued.key.exists()):
                issue(self.directory, name, vehicle=vehicle, out=out)
        return issued

    def service_env(self, client_auth: str = "optional") -> dict[str, str]:
        """A service's GRPC_TLS_* settings: its certificate, and the CA that client certificates
        (cars', services', the operator's) are verified with."""
        services = self.identity("services")
        return {"GRPC_TLS_CERT": str(services.cert), "GRPC_TLS_KEY": str(services.key), "GRPC_TLS_CA": str(self.ca), "GRPC_TLS_CLIENT_AUTH": client_auth}

    def operator_env(self) -> dict[str, str]:
        """What `longtail` commands read to reach the services (longtail_cli.client.client_credentials)."""
        operator = self.identity("operator")
        return {"LONGTAIL_TLS_CA": str(self.ca), "LONGTAIL_TLS_CERT": str(operator.cert), "LONGTAIL_TLS_KEY": str(operator.key)}

    def credentials(self, name: str = "operator", vehicle: bool = False) -> grpc.ChannelCredentials:
        """A client's channel credentials as `name` (a car's with `vehicle`)."""
        from longtail.tls import channel_credentials

        issued = self.identity(name, vehicle)
        return channel_credentials(str(self.ca), str(issued.cert), str(issued.key))


def default_directory() -> Path:
    """$LONGTAIL_PKI_DIR, or <state dir>/pki: shared by the local runs and `longtail fleet ca`."""
    from longtail_dev.infra.launcher import state_dir

    return Path(os.environ.get("LONGTAIL_PKI_DIR") or state_dir() / "pki")


def dev_tls(directory: Path | None = None) -> DevTls:
    """The development CA in `directory` (default: `default_directory()`)."""
    return DevTls(directory or default_directory())
