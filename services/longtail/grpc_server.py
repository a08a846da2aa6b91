"""asyncio gRPC server bootstrap shared by every service.

Gives each service the reference health servicer (grpc.health.v1), server reflection for every
service name (so grpcurl and friends work), per-method Prometheus metrics, a /metrics port, and a
graceful drain on SIGTERM/SIGINT: health flips to NOT_SERVING first (load balancers stop sending),
then in-flight calls get `grace` seconds to finish.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from longtail import metrics
from longtail.access import AccessInterceptor, AuditLog, Rule
from longtail.config import ServiceSettings
from longtail.log import get_logger
from longtail.tls import server_credentials

log = get_logger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


async def abort(context: Any, code: grpc.StatusCode, details: str) -> NoReturn:
    """`await context.abort(code, details)`, which always raises; typed so (grpc has no type
    information), so that the checker knows the code after it runs only when it did not abort."""
    await context.abort(code, details)
    raise AssertionError("ServicerContext.abort returned")


def _code_name(context: Any, default: str) -> str:
    try:
        code = context.code()
    except Exception:
        code = None
    if code is None:
        return default
    return getattr(code, "name", str(code))


def wrap_handler(handler, around: Callable[[Callable, bool], Callable]):
    """`handler` with its behavior replaced by `around(behavior, generator)`; `generator` says the
    new behavior must be an async generator (a streaming handler that yields). A streaming handler
    that writes with context.write() is a coroutine and stays one: grpc treats coroutine and
    async-generator handlers differently, and a generator layer costs memory per open stream."""
    for kind in ("unary_unary", "stream_unary", "unary_stream", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior:
            generator = kind.endswith("_stream") and not inspect.iscoroutinefunction(behavior)
            return handler._replace(**{kind: around(behavior, generator)})
    return handler


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts calls by method and status code and times them (longtail_grpc_*).

    Each method's handler is wrapped once, not per call: a server with 10,000 open streams would
    otherwise keep 10,000 copies of the same wrapper alive."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # method path -> (its handler, wrapped)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is None or known[0] is not handler:
            known = self._wrapped[path] = (handler, self._wrap(handler, path.rsplit("/", 1)[-1]))
        return known[1]

    def _wrap(self, handler, method: str):
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
                code = _code_name(context, "OK")
                return response
            except BaseException:
                code = _code_name(context, "UNKNOWN")
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
                code = _code_name(context, "OK")
            except BaseException:
                code = _code_name(context, "UNKNOWN")
                raise
            finally:
                self._observe(method, started, code)

        return wrapper


class _Malformed:
    """What a request that does not decode becomes, so its handler can refuse it precisely."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else "message"

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - a DecodeError, or a message nested too deep
            return _Malformed(f"the request is not a valid {name}: {exc}")

    return deserialize


# What google.protobuf's Timestamp and Duration can represent (their own range checks).
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)  # 0001-01-01 .. 9999-12-31
_DURATION_SECONDS = 315576000000  # 10,000 years


def _out_of_range(message: Any, path: str = "") -> str:
    """The first Timestamp or Duration field of a unary request that no conversion accepts, as
    "field: why" ('' when none): decoded, yet not a time, and handlers convert them everywhere."""
    if not hasattr(message, "ListFields"):
        return ""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        lo, hi = _TIMESTAMP_SECONDS
        ok = lo <= message.seconds <= hi and 0 <= message.nanos < 1_000_000_000
        return "" if ok else f"{path or 'timestamp'}: not a time between years 1 and 9999 (seconds={message.seconds}, nanos={message.nanos})"
    if name == "google.protobuf.Duration":
        ok = abs(message.seconds) <= _DURATION_SECONDS and abs(message.nanos) < 1_000_000_000 and (message.seconds * message.nanos >= 0)
        return "" if ok else f"{path or 'duration'}: not a duration of at most 10,000 years (seconds={message.seconds}, nanos={message.nanos})"
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        where = f"{path}.{field.name}" if path else field.name
        if field.message_type.GetOptions().map_entry:
            items = value.values() if field.message_type.fields_by_name["value"].type == field.TYPE_MESSAGE else ()
        elif field.is_repeated:
            items = value
        else:
            items = (value,)
        for item in items:
            found = _out_of_range(item, where)
            if found:
                return found
    return ""


class _CheckedRequests:
    """A stream's requests, refusing the first that did not decode. A slotted iterator, not an
    async generator: it lives as long as the stream (a car's session), ten thousand at a time."""

    __slots__ = ("_context", "_requests")

    def __init__(self, requests: Any, context: Any) -> None:
        self._requests, self._context = requests, context

    def __aiter__(self) -> _CheckedRequests:
        return self

    async def __anext__(self) -> Any:
        request = await self._requests.__anext__()
        if isinstance(request, _Malformed):
            await abort(self._context, grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return request


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    """Requests that are not the method's message get INVALID_ARGUMENT naming the type (grpc
    itself answers UNKNOWN and logs a traceback for each), and so do unary requests with a time
    no conversion accepts. Wrapped once per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is None or known[0] is not handler:
            known = self._wrapped[path] = (handler, self._wrap(handler))
        return known[1]

    @staticmethod
    def _wrap(handler):
        streaming_requests = handler.request_streaming

        async def first_checked(request: Any, context: Any) -> Any:
            if streaming_requests:
                return _CheckedRequests(request, context)
            if isinstance(request, _Malformed):
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            out_of_range = _out_of_range(request)
            if out_of_range:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, out_of_range)
            return request

        def around(behavior: Callable, generator: bool) -> Callable:
            if generator:

                async def stream(request: Any, context: Any):
                    async for item in behavior(await first_checked(request, context), context):
                        yield item

                return stream

            async def call(request: Any, context: Any) -> Any:
                return await behavior(await first_checked(request, context), context)

            return call

        return wrap_handler(handler, around)._replace(request_deserializer=_tolerant(handler.request_deserializer))


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
        credentials = server_credentials(self.settings)
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
