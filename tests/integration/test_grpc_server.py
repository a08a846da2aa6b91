"""The shared gRPC bootstrap: standard health check, reflection, metrics, drain on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from longtail_dev.dev_tls import dev_tls

APP = Path(__file__).with_name("grpc_app.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app():
    port, metrics_port = free_port(), free_port()
    tls = dev_tls()  # on TLS, as every service (GRPC_TLS_* read by its ServiceSettings)
    proc = subprocess.Popen([sys.executable, str(APP), str(port), str(metrics_port)], stdout=subprocess.PIPE, text=True, env={**os.environ, **tls.service_env()})
    assert proc.stdout.readline().strip() == "READY"
    channel = grpc.secure_channel(f"127.0.0.1:{port}", tls.credentials())
    yield proc, channel, metrics_port
    channel.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def sleep_call(channel):
    return channel.unary_unary("/longtail.testing.v1.SleepService/Sleep", request_serializer=None, response_deserializer=None)


def test_standard_health_check_answers_serving(app):
    _, channel, _ = app
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "longtail.testing.v1.SleepService"):
        assert stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_every_service(app):
    _, channel, _ = app
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for s in next(responses).list_services_response.service}
    assert {"longtail.testing.v1.SleepService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_metrics_count_calls_by_method_and_code(app):
    _, channel, metrics_port = app
    assert sleep_call(channel)(b"0", timeout=5) == b"slept 0"
    with pytest.raises(grpc.RpcError) as err:
        sleep_call(channel)(b"-1", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert 'longtail_grpc_requests_total{code="OK",method="Sleep",service="test-app"} 1.0' in text
    assert 'longtail_grpc_requests_total{code="INVALID_ARGUMENT",method="Sleep",service="test-app"} 1.0' in text


def test_sigterm_drains_in_flight_calls_then_exits(app):
    proc, channel, _ = app
    result = {}

    def slow():
        result["reply"] = sleep_call(channel)(b"1.5", timeout=10)

    caller = threading.Thread(target=slow)
    caller.start()
    time.sleep(0.4)  # the call is in flight
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # Draining: health says NOT_SERVING and new calls are refused ...
    with pytest.raises(grpc.RpcError):
        sleep_call(channel)(b"0", timeout=2)
    caller.join(timeout=10)
    # ... but the in-flight call completed normally.
    assert result.get("reply") == b"slept 1.5"
    assert proc.wait(timeout=15) == 0
