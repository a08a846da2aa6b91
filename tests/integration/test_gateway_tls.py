"""The gateway with mutual TLS for cars (issue #18), as a real process: a development CA
(longtail.pki, what `longtail fleet ca init` / `fleet cert` write), the gateway on TLS with client
certificates required; a car's certificate must be its own vehicle's. Refused in the handshake:
plaintext, no client certificate, a certificate of another CA, an expired or not-yet-valid one.
Revoked through the deny list, reloaded while the gateway runs: a car's open session is closed
within seconds, and its (or a revoked certificate's) next call refused."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
import pytest
from cryptography import x509

from longtail.auth import issue_token
from longtail.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from longtail.pki import init_ca, issue
from longtail.registry import GATEWAY
from longtail.tls import channel_credentials

from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

SECRET = "test-fleet-secret-0123456789abcdefghij"
CAR_A, CAR_B, CAR_C, CAR_D = (f"car-{c}-{uuid.uuid4().hex[:6]}" for c in "abcd")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = tmp_path_factory.mktemp("pki")
    init_ca(ca)
    issue(ca, "gateway")
    for car in (CAR_A, CAR_B, CAR_C, CAR_D):
        issue(ca, car, vehicle=True)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    issue(ca, "expired", vehicle=True, not_before=long_ago, days=1, out=ca / "bad")
    issue(ca, "future", vehicle=True, not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), out=ca / "bad")
    other = tmp_path_factory.mktemp("other-ca")
    init_ca(other, name="someone else's CA")
    issue(other, CAR_A, vehicle=True)
    return ca, other


@pytest.fixture(scope="module")
def gateway(pki, kafka, s3):
    ca, _ = pki
    (ca / "revoked.txt").write_text("# revoked cars\n")
    env = {
        "FLEET_TOKEN_SECRET": SECRET,
        "GRPC_TLS_CERT": str(ca / "gateway.pem"),
        "GRPC_TLS_KEY": str(ca / "gateway-key.pem"),
        "GRPC_TLS_CA": str(ca / "ca.pem"),
        "GRPC_TLS_CLIENT_AUTH": "require",
        "GATEWAY_REVOKED_FILE": str(ca / "revoked.txt"),
        "GATEWAY_REVOCATION_CHECK_SECONDS": "0.5",
    }
    service = ServiceProcess(GATEWAY.package, GATEWAY.grpc, env).start()
    yield service
    assert service.stop() == 0


def publish(channel: grpc.Channel, vehicle_id: str):
    frame = telemetry_batch(vehicle_id, 0, 1).frames[0]
    stub = fleet_pb2_grpc.FleetGatewayServiceStub(channel)
    return stub.PublishTelemetry(fleet_pb2.PublishTelemetryRequest(vehicle_id=vehicle_id, auth_token=issue_token(vehicle_id, SECRET), frame=frame), timeout=10)


def car_channel(gateway, ca, cert_dir, name: str) -> grpc.Channel:
    return grpc.secure_channel(gateway.address, channel_credentials(str(ca / "ca.pem"), str(cert_dir / f"{name}.pem"), str(cert_dir / f"{name}-key.pem")))


def test_a_car_with_its_own_certificate_is_served(gateway, pki):
    ca, _ = pki
    with car_channel(gateway, ca, ca, CAR_A) as channel:
        assert publish(channel, CAR_A).accepted


def test_a_car_certificate_with_another_vehicle_id_is_permission_denied(gateway, pki):
    ca, _ = pki
    with car_channel(gateway, ca, ca, CAR_A) as channel, pytest.raises(grpc.RpcError) as err:
        publish(channel, CAR_B)  # B's valid token, A's certificate
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert CAR_A in err.value.details() and CAR_B in err.value.details()


def test_a_service_certificate_is_not_a_car(gateway, pki):
    ca, _ = pki
    with car_channel(gateway, ca, ca, "gateway") as channel, pytest.raises(grpc.RpcError) as err:
        publish(channel, CAR_A)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "not a vehicle's" in err.value.details()


@pytest.mark.parametrize("how", ["plaintext", "no client certificate", "another CA", "expired", "not yet valid"])
def test_refused_in_the_handshake(gateway, pki, how):
    ca, other = pki
    channels = {
        "plaintext": lambda: grpc.insecure_channel(gateway.address),
        "no client certificate": lambda: grpc.secure_channel(gateway.address, channel_credentials(str(ca / "ca.pem"))),
        "another CA": lambda: car_channel(gateway, ca, other, CAR_A),
        "expired": lambda: car_channel(gateway, ca, ca / "bad", "expired"),
        "not yet valid": lambda: car_channel(gateway, ca, ca / "bad", "future"),
    }
    with channels[how]() as channel, pytest.raises(grpc.RpcError) as err:
        publish(channel, CAR_A)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()


def test_revoking_a_car_closes_its_session_within_seconds_and_refuses_it_after(gateway, pki):
    import threading
    import time

    ca, _ = pki
    hang_up = threading.Event()

    def messages():
        yield fleet_pb2.CarMessage(hello=fleet_pb2.Hello(vehicle_id=CAR_C, auth_token=issue_token(CAR_C, SECRET)))
        hang_up.wait(60)

    with car_channel(gateway, ca, ca, CAR_C) as channel:
        stream = fleet_pb2_grpc.FleetGatewayServiceStub(channel).Session(messages(), timeout=60)
        assert next(stream).HasField("welcome")
        with (ca / "revoked.txt").open("a") as f:
            f.write(f"{CAR_C}  # stolen\n")
        revoked_at = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            for _ in stream:  # commands until the gateway closes the stream
                pass
        closed_after = time.monotonic() - revoked_at
        print(f"session closed {closed_after:.2f} s after the deny list was written")
        hang_up.set()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "revoked" in err.value.details()
        assert closed_after < 5, closed_after
        with pytest.raises(grpc.RpcError) as err:
            publish(channel, CAR_C)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "revoked" in err.value.details()
    with car_channel(gateway, ca, ca, CAR_A) as channel:
        assert publish(channel, CAR_A).accepted  # the others drive on


def test_revoking_one_certificate_by_serial(gateway, pki):
    import time

    ca, _ = pki
    serial = x509.load_pem_x509_certificate((ca / f"{CAR_D}.pem").read_bytes()).serial_number
    with car_channel(gateway, ca, ca, CAR_D) as channel:
        assert publish(channel, CAR_D).accepted
        with (ca / "revoked.txt").open("a") as f:
            f.write(f"serial:{serial:x}\n")
        time.sleep(2.0)  # four checks of the file
        with pytest.raises(grpc.RpcError) as err:
            publish(channel, CAR_D)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
