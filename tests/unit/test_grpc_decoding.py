"""Bytes that are not the method's message get INVALID_ARGUMENT naming the type, on unary and
streaming methods (grpc alone answers UNKNOWN and logs a traceback): a real in-process server
(longtail.grpc_server), its health service."""

from __future__ import annotations

import asyncio

import grpc

from longtail.config import ServiceSettings
from longtail.grpc_server import GrpcServer

NOT_A_MESSAGE = b"\xff\xff\xff"  # a field tag whose varint never ends


async def _calls() -> list[tuple[str, grpc.StatusCode, str]]:
    server = GrpcServer("decoding-test", ServiceSettings(grpc_port=0, metrics_port=0, grpc_plaintext=True))
    port = await server.start()
    seen = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=bytes, response_deserializer=bytes)
            watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=bytes, response_deserializer=bytes)
            for name, data in (("check", NOT_A_MESSAGE), ("check-good", b"")):
                try:
                    await check(data, timeout=5)
                    seen.append((name, grpc.StatusCode.OK, ""))
                except grpc.aio.AioRpcError as exc:
                    seen.append((name, exc.code(), exc.details()))
            try:
                async for _ in watch(NOT_A_MESSAGE, timeout=5):
                    pass
            except grpc.aio.AioRpcError as exc:
                seen.append(("watch", exc.code(), exc.details()))
    finally:
        await server.stop(0)
    return seen


def test_undecodable_requests_are_invalid_arguments_naming_the_type():
    seen = asyncio.run(_calls())
    assert seen[1] == ("check-good", grpc.StatusCode.OK, "")
    for name, code, details in (seen[0], seen[2]):
        assert code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "not a valid grpc.health.v1.HealthCheckRequest" in details, name


def test_times_no_conversion_accepts_are_named_with_their_field():
    from longtail.grpc_decoding import _out_of_range
    from longtail.labels.v1 import labels_pb2 as L

    request = L.ListSamplesRequest()
    assert _out_of_range(request) == ""
    request.filter.captured.since.seconds = -(2**63)
    assert _out_of_range(request).startswith("filter.captured.since: not a time between years 1 and 9999")
    request.filter.captured.since.seconds = 0
    request.filter.captured.until.nanos = -1
    assert _out_of_range(request).startswith("filter.captured.until:")
    lease = L.GetNextTaskRequest()
    lease.lease_duration.seconds, lease.lease_duration.nanos = 5, -3  # signs must agree
    assert _out_of_range(lease).startswith("lease_duration: not a duration")


def test_the_health_port_answers_in_plaintext_beside_a_tls_port(tmp_path):
    """GRPC_HEALTH_PORT: Kubernetes' gRPC probes speak no TLS; the health service (only it) answers
    there in plaintext while the service's port speaks TLS only."""
    import socket

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from longtail.pki import init_ca, issue

    init_ca(tmp_path)
    issue(tmp_path, "server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        health_port = s.getsockname()[1]
    settings = ServiceSettings(grpc_port=0, metrics_port=0, grpc_health_port=health_port, grpc_tls_cert=str(tmp_path / "server.pem"), grpc_tls_key=str(tmp_path / "server-key.pem"))

    async def probe() -> tuple:
        server = GrpcServer("health-port-test", settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
                status = (await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)).status
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:  # the service's port: TLS only
                try:
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    plaintext = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    plaintext = exc.code()
        finally:
            await server.stop(0)
        return status, plaintext

    status, plaintext = asyncio.run(probe())
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert plaintext == grpc.StatusCode.UNAVAILABLE
