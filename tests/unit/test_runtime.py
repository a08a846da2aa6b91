"""The service runtime: health from the workers' progress, a dead worker stops the process with its
error, and shutdown undoes the start-up steps in reverse order — against a real gRPC server on
loopback, probed with the standard health client."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from longtail.config import ServiceSettings
from longtail.runtime import ServiceRuntime, _Watched, health

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_NAME = "longtail.test.v1.Nothing"


class FakeWorker:
    def __init__(self, started: bool = True, events: list[str] | None = None) -> None:
        self.alive, self.error, self.started = True, None, started
        self.last_progress = time.monotonic()
        self.events = [] if events is None else events

    def start(self) -> None:
        self.started = True
        self.last_progress = time.monotonic()

    def stop(self) -> None:
        self.events.append("worker stopped")


def test_health_rules() -> None:
    now = time.monotonic()
    moving, stalled, idle, not_started = FakeWorker(), FakeWorker(), FakeWorker(), FakeWorker(started=False)
    stalled.last_progress = idle.last_progress = not_started.last_progress = now - 100
    assert health([_Watched("a", moving, 10)], [], now) == (True, True, None)
    assert health([_Watched("a", moving, 10), _Watched("b", stalled, 10)], [], now)[:2] == (False, False)
    assert health([_Watched("c", idle, None)], [], now)[:2] == (True, True)  # no stall timeout: only death counts
    assert health([_Watched("d", not_started, 10)], [], now)[:2] == (True, True)  # not started yet: not stalled
    assert health([_Watched("a", moving, 10)], [lambda: False], now)[:2] == (True, False)  # alive, not ready
    stalled.alive = False
    assert health([_Watched("a", moving, 10), _Watched("b", stalled, 10)], [], now)[2].name == "b"


async def _status(port: int, name: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        return response.status


async def _wait_for(port: int, name: str, status: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while await _status(port, name) != status:
        assert time.monotonic() < deadline, f"{name or 'the server'} never became {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"
        await asyncio.sleep(0.1)


def _runtime() -> ServiceRuntime:
    runtime = ServiceRuntime("test", ServiceSettings(grpc_port=0, metrics_port=0, grpc_plaintext=True))
    runtime.server.service_names.append(SERVICE_NAME)  # a name to probe readiness with; no servicer needed
    return runtime


def test_stall_turns_liveness_off_and_progress_back_on() -> None:
    async def main() -> None:
        runtime = _runtime()
        worker = runtime.add_worker("consumer", FakeWorker(), stall_timeout_s=0.5)
        started = asyncio.Event()
        serving = asyncio.create_task(runtime.run(started))
        await started.wait()
        port = runtime.server.port
        assert await _status(port, "") == SERVING
        await _wait_for(port, "", NOT_SERVING)  # no progress for 0.5 s
        assert await _status(port, SERVICE_NAME) == NOT_SERVING
        worker.last_progress = time.monotonic() + 3600
        await _wait_for(port, "", SERVING)
        assert await _status(port, SERVICE_NAME) == SERVING
        runtime.server.request_stop()
        await serving
        assert worker.events == ["worker stopped"]

    asyncio.run(main())


def test_readiness_check_keeps_the_process_alive() -> None:
    async def main() -> None:
        runtime = _runtime()
        model_loaded = False
        runtime.ready_when(lambda: model_loaded)
        started = asyncio.Event()
        serving = asyncio.create_task(runtime.run(started))
        await started.wait()
        port = runtime.server.port
        assert (await _status(port, ""), await _status(port, SERVICE_NAME)) == (SERVING, NOT_SERVING)
        model_loaded = True
        await _wait_for(port, SERVICE_NAME, SERVING)
        runtime.server.request_stop()
        await serving

    asyncio.run(main())


def test_dead_worker_stops_the_service_with_its_error_and_shutdown_runs_in_reverse_order() -> None:
    order: list[str] = []

    async def main() -> None:
        runtime = _runtime()
        runtime.on_shutdown(lambda: order.append("producer closed"))

        async def close_async() -> None:
            order.append("client closed")

        runtime.on_shutdown(close_async)
        runtime.on_shutdown(lambda: 1 / 0)  # a failing step is logged; the others still run
        worker = runtime.add_worker("consumer", FakeWorker(events=order), stall_timeout_s=60)
        runtime.background(asyncio.sleep(3600))
        started = asyncio.Event()
        serving = asyncio.create_task(runtime.run(started))
        await started.wait()
        worker.error, worker.alive = ValueError("broker gone"), False
        with pytest.raises(RuntimeError, match="worker consumer failed") as failure:
            await asyncio.wait_for(serving, 30)
        assert isinstance(failure.value.__cause__, ValueError)

    asyncio.run(main())
    assert order == ["worker stopped", "client closed", "producer closed"]
