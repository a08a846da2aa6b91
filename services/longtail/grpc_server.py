"""asyncio gRPC server bootstrap shared by every service.

Gives each service the reference health servicer (grpc.health.v1, also on a plaintext
health-only port when asked: GRPC_HEALTH_PORT), server reflection for every service name (so
grpcurl and friends work), TLS by settings (longtail.tls), the access policy (longtail.access),
precise refusals of requests that do not decode (longtail.grpc_decoding), per-method Prometheus
metrics, a /metrics port, and a graceful drain on SIGTERM/SIGINT: health flips to NOT_SERVING first
(load balancers stop sending), then in-flight calls get `grace` seconds to finish.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from longtail import metrics
from longtail.access import AccessInterceptor, AuditLog, Rule
from longtail.config import ServiceSettings
from longtail.grpc_decoding import DecodingInterceptor
from longtail.grpc_handlers import PerMethodInterceptor, status_name, wrap_handler
from longtail.log import get_logger
from longtail.tls import server_credentials

log = get_logger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class MetricsInterceptor(PerMethodInterceptor):
    """Counts calls by method and status code and times them (longtail_grpc_*)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def _wrap(self, handler, path: str):
        method = path.rsplit("/", 1)[-1]
        return wrap_handler(handler, lambda behavior, generator: self._streaming(behavior, method) if generator else self._awaited(behavior, method))

    def _observe(self, method: str, started: float, code: str) -> None:
        metrics.GRPC_REQUESTS.labels(self.service, method, code).inc()
        metrics.GRPC_LATENCY.labels(self.service, method).observe(time.perf_counter() - started)

    def _awaited(self, behavior: Callable, method: str) -> Callable:
        """Unary handlers, and streaming ones that write with context.write() (return None)."""

        async def wrapper(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            code = "UNKNOWN"
            try:
                response = await behavior(request, context)
                code = status_name(context, "OK")
                return response
            except BaseException:
                code = status_name(context, "UNKNOWN")
                raise
            finally:
                self._observe(method, started, code)

        return wrapper

    def _streaming(self, behavior: Callable, method: str) -> Callable:
        async def wrapper(request: Any, context: Any):
            started = time.perf_counter()
            code = "UNKNOWN"
            try:
                result = behavior(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:  # a handler that writes with context.write()
                    await result
                code = status_name(context, "OK")
            except BaseException:
                code = status_name(context, "UNKNOWN")
                raise
            finally:
                self._observe(method, started, code)

        return wrapper


class GrpcServer:
    def __init__(
        self, service: str, settings: ServiceSettings | None = None, *, token_secret: str | None = None, extra_rules: dict[str, Rule] | None = None, max_message_bytes: int = MAX_MESSAGE_BYTES, options: list[tuple[str, Any]] | None = None
    ) -> None:
        """`token_secret` verifies the tokens of people and services (OPERATOR_TOKEN_SECRET); a
        server without one serves only what `longtail.access.POLICY` opens to anyone (and cars)."""
        self.service = service
        self.settings = settings or ServiceSettings()
        self.server = grpc.aio.server(
            interceptors=[MetricsInterceptor(service), AccessInterceptor(service, token_secret, AuditLog(service, self.settings.audit_log_file), extra_rules), DecodingInterceptor()],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
                *(options or []),
            ],
        )
        self.credentials = server_credentials(self.settings)  # TLS settings checked before anything else starts
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names: list[str] = []
        self.port: int | None = None
        self.health_port: int | None = None
        self._health_server: grpc.aio.Server | None = None
        self._stopping = asyncio.Event()

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        """Register a servicer, e.g. add(fleet_pb2_grpc.add_FleetGatewayServiceServicer_to_server, s, registry.GATEWAY.grpc)."""
        register(servicer, self.server)
        self.service_names.append(full_name)

    async def start(self) -> int:
        names = [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        credentials = self.credentials
        self.port = self.server.add_secure_port(address, credentials) if credentials else self.server.add_insecure_port(address)
        if not self.port:
            raise RuntimeError(f"cannot listen on {address}")
        await self.server.start()
        if self.settings.grpc_health_port:
            await self._serve_health_in_plaintext(self.settings.grpc_health_port)
        metrics.serve_metrics(self.settings.metrics_port, self.settings.grpc_host)  # same interface as gRPC: 0.0.0.0 in a pod
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("grpc server started", address=f"{self.settings.grpc_host}:{self.port}", services=self.service_names, metrics_port=self.settings.metrics_port, tls=bool(credentials), client_auth=self.settings.grpc_tls_client_auth)
        return self.port

    async def _serve_health_in_plaintext(self, port: int) -> None:
        """The same health answers on a plaintext port of their own: Kubernetes' gRPC probes speak
        no TLS. Only grpc.health.v1 is there (nothing else is reachable without TLS)."""
        self._health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        address = f"{self.settings.grpc_host}:{port}"
        self.health_port = self._health_server.add_insecure_port(address)
        if not self.health_port:
            raise RuntimeError(f"cannot listen on {address} (GRPC_HEALTH_PORT)")
        await self._health_server.start()

    async def set_health(self, live: bool, ready: bool) -> None:
        """Health from real progress: "" (the server) answers liveness probes, the service names
        answer readiness probes. Not ready but alive (e.g. waiting for a model) is no reason to be
        restarted; a stalled worker is."""

        def status(ok: bool):
            return health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING

        await self.health.set("", status(live))
        for name in self.service_names:
            await self.health.set(name, status(live and ready))

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("draining", grace_seconds=grace)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)
        log.info("stopped")

    def request_stop(self) -> None:
        self._stopping.set()

    async def serve_until_signal(self) -> None:
        """Start (if needed), then block until SIGTERM/SIGINT and drain."""
        if self.port is None:
            await self.start()
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        await self.stop()


def run_service(service: str, serve: Callable[[], Any]) -> None:
    """Entry point of every service: structured logging, asyncio, and one clear line (exit 2)
    instead of a traceback when the configuration is missing or invalid."""
    import sys

    from longtail.config import ConfigError
    from longtail.log import configure

    configure(service)
    try:
        asyncio.run(serve())
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
