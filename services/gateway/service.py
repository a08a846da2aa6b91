"""FleetGatewayService: car sessions, telemetry into Kafka (acked only after Kafka acked),
commands to cars, chunked snapshot uploads into the object store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Histogram

from longtail import topics
from longtail.auth import AuthError, verify_token
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from longtail.grpc_handlers import abort
from longtail.kafka import DeliveryError, Producer
from longtail.log import get_logger
from longtail.registry import GATEWAY
from longtail.storage import SNAPSHOTS, ObjectStore
from longtail.tls import peer_certificate, peer_vehicle

from gateway.fleet_state import CarSession, FleetState
from gateway.revocation import RevocationList
from gateway.settings import GatewaySettings
from gateway.validation import InvalidFrame, validate_frame, validate_shadow_disagreement

log = get_logger(__name__)

SERVICE = GATEWAY.name
SERVICE_NAME = GATEWAY.grpc
FRAMES = Counter("longtail_gateway_frames_total", "Telemetry frames acked into Kafka", ["service"])
REJECTS = Counter("longtail_gateway_rejects_total", "Rejected requests by reason", ["service", "reason"])
THROTTLED = Counter("longtail_gateway_throttled_seconds_total", "Time telemetry reading paused for cars over max_batches_per_second", ["service"])
REJECT_REASONS = ("unauthenticated", "permission_denied", "no_hello", "invalid_argument", "slow_consumer", "protocol_violation", "limit_exceeded", "kafka_unavailable")
UPLOADS = Counter("longtail_gateway_uploads_total", "Snapshot uploads by outcome", ["service", "outcome"])
UPLOAD_BYTES = Counter("longtail_gateway_upload_bytes_total", "Snapshot bytes received", ["service"])
ACK_LATENCY = Histogram(
    "longtail_gateway_ack_latency_seconds",
    "Telemetry batch receipt to Kafka-acked Ack",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
EXTENSIONS = {"image/png": ".png", "application/x-tar": ".tar", "image/jpeg": ".jpg"}
RECEIPTS = "snapshots/receipts/"


class TokenBucket:
    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, burst_seconds: float = 2.0) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * burst_seconds)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    async def acquire(self) -> float:
        """Waits for a token; the seconds waited (0 within the rate and its burst)."""
        waited = 0.0
        while not self.take():
            pause = (1.0 - self.tokens) / self.rate
            await asyncio.sleep(pause)
            waited += pause
        return waited


def _error(code: fleet_pb2.ErrorCode, message: str, batch_seq: int = 0, field: str = "", fatal: bool = False) -> fleet_pb2.ServerMessage:
    return fleet_pb2.ServerMessage(error=fleet_pb2.Error(code=code, message=message, batch_seq=batch_seq, field=field, fatal=fatal))


class FleetGateway(fleet_pb2_grpc.FleetGatewayServiceServicer):
    def __init__(self, settings: GatewaySettings, secret: str, producer: Producer, store: ObjectStore, state: FleetState) -> None:
        self.settings = settings
        self.secret = secret
        self.producer = producer
        self.store = store
        self.state = state
        self.revocations = RevocationList(settings.revoked_file)
        self.revocations.reload()
        self.frames = FRAMES.labels(SERVICE)
        self.ack_latency = ACK_LATENCY.labels(SERVICE)
        for reason in REJECT_REASONS:  # every reason at 0 from the start: "no rejects" is data too
            REJECTS.labels(SERVICE, reason)
        THROTTLED.labels(SERVICE)

    async def watch_revocations(self) -> None:
        """Reload the deny list when it changes; close the sessions of the cars it newly revokes."""
        while True:
            await asyncio.sleep(self.settings.revocation_check_seconds)
            newly = await asyncio.to_thread(self.revocations.reload)
            if newly:
                closed = self.state.revoke(newly)
                log.warning("cars revoked", vehicles=len(newly), sessions_closed=closed)

    def _reject(self, reason: str) -> None:
        REJECTS.labels(SERVICE, reason).inc()

    async def _authenticate(self, token: str, vehicle_id: str, context) -> None:
        """The car's client certificate (mutual TLS), when it presented one, must be the vehicle's
        the request names; its token too."""
        cert = peer_certificate(context)
        if self.revocations.revoked(vehicle_id, cert.serial_number if cert is not None else None):
            self._reject("permission_denied")
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{vehicle_id} or its certificate was revoked (the gateway's deny list)")
        if cert is not None:
            cert_vehicle = peer_vehicle(context)
            if cert_vehicle != vehicle_id:
                self._reject("permission_denied")
                what = f"issued to vehicle {cert_vehicle!r}" if cert_vehicle else "not a vehicle's (no urn:longtail:vehicle: SAN)"
                await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"the client certificate is {what}, not {vehicle_id!r}'s")
        try:
            token_vehicle = verify_token(token, self.secret)
        except AuthError as exc:
            self._reject("unauthenticated")
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if token_vehicle != vehicle_id:
            self._reject("permission_denied")
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"token was issued to {token_vehicle!r}, not {vehicle_id!r}")

    def _limits(self) -> fleet_pb2.SessionLimits:
        s = self.settings
        return fleet_pb2.SessionLimits(max_batch_frames=s.max_batch_frames, max_snapshot_bytes=s.max_snapshot_bytes, max_chunk_bytes=s.max_chunk_bytes, max_batches_per_second=s.max_batches_per_second)

    # -- Session -------------------------------------------------------------------------------
    async def Session(self, request_iterator, context) -> None:
        """Writes with context.write() (registered without a response serializer: every message is
        serialized already, see add_to_server); a task reads what the car sends."""
        try:
            first = await asyncio.wait_for(request_iterator.__anext__(), self.settings.hello_timeout_seconds)
        except (TimeoutError, StopAsyncIteration):
            self._reject("no_hello")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the first message must be Hello, within {self.settings.hello_timeout_seconds:.0f}s")
        if first.WhichOneof("payload") != "hello":
            self._reject("no_hello")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be Hello")
        hello = first.hello
        if not hello.vehicle_id:
            self._reject("invalid_argument")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "hello.vehicle_id is empty")
        await self._authenticate(hello.auth_token, hello.vehicle_id, context)

        session = CarSession(hello.vehicle_id, self.settings.session_queue)
        # The welcome and the commands that bring the car up to date, then (attached in the same
        # step, so no update falls in between) whatever is broadcast from now on.
        initial = [self._welcome(session), *(fleet_pb2.ServerMessage(command=c).SerializeToString() for c in self.state.welcome_commands(hello))]
        del first, hello  # held for the whole session otherwise
        self.state.attach(session)
        reader = asyncio.create_task(self._read(session, request_iterator))
        try:
            for data in initial:
                await context.write(data)
            del initial
            while (data := await session.next()) is not None:
                await context.write(data)
            if session.revoked:
                self._reject("permission_denied")
                await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{session.vehicle_id} was revoked (the gateway's deny list)")
            if session.overflowed:
                self._reject("slow_consumer")
                await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "the car fell too far behind reading commands and acks; reconnect")
        finally:
            session.close()
            reader.cancel()
            self.state.detach(session)

    def _welcome(self, session: CarSession) -> bytes:
        welcome = fleet_pb2.Welcome(session_id=session.session_id, limits=self._limits(), gateway_id=self.settings.id)
        welcome.server_time.GetCurrentTime()
        welcome.heartbeat_interval.FromSeconds(int(self.settings.heartbeat_seconds))
        return fleet_pb2.ServerMessage(welcome=welcome).SerializeToString()

    async def _read(self, session: CarSession, request_iterator) -> None:
        # Made on the first telemetry batch: a car that only listens (most of the fleet, most of
        # the time) holds none of them.
        inflight: asyncio.Semaphore | None = None
        bucket: TokenBucket | None = None
        tasks: set[asyncio.Task] | None = None
        last_seq = 0
        try:
            async for message in request_iterator:
                kind = message.WhichOneof("payload")
                if kind == "telemetry":
                    if bucket is None or inflight is None or tasks is None:  # the first batch: all three at once
                        inflight = asyncio.Semaphore(self.settings.max_inflight_batches)
                        bucket = TokenBucket(self.settings.max_batches_per_second)
                        tasks = set()
                    batch = message.telemetry
                    if batch.batch_seq <= last_seq:
                        self._reject("protocol_violation")
                        session.offer(_error(fleet_pb2.ERROR_CODE_PROTOCOL_VIOLATION, f"batch_seq {batch.batch_seq} is not above {last_seq}", batch.batch_seq))
                        continue
                    last_seq = batch.batch_seq
                    if len(batch.frames) > self.settings.max_batch_frames:
                        self._reject("limit_exceeded")
                        session.offer(_error(fleet_pb2.ERROR_CODE_LIMIT_EXCEEDED, f"{len(batch.frames)} frames in one batch, at most {self.settings.max_batch_frames}", batch.batch_seq, "frames"))
                        continue
                    # Over the rate: wait, reading nothing more of this car meanwhile (HTTP/2 flow
                    # control then stops its sends), instead of refusing the batch. A refused batch
                    # would be resent after later ones were stored, and the fleet-side worker, which
                    # reads a car's frames in sequence order, would skip it (the overload drill
                    # lost fires that way; docs/reliability.md).
                    if throttled := await bucket.acquire():
                        THROTTLED.labels(SERVICE).inc(throttled)
                    await inflight.acquire()  # backpressure: stop reading while too many await Kafka
                    task = asyncio.create_task(self._ingest(session, batch, inflight))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif kind == "command_result":
                    self.state.on_command_result(session.vehicle_id, message.command_result)
                elif kind == "shadow_disagreement":
                    d = message.shadow_disagreement
                    try:
                        validate_shadow_disagreement(d, session.vehicle_id)
                    except InvalidFrame as exc:
                        self._reject("invalid_argument")
                        session.offer(_error(fleet_pb2.ERROR_CODE_INVALID_ARGUMENT, exc.problem, field=exc.field))
                        continue
                    event = fleet_events.ShadowDisagreementEvent(
                        vehicle_id=session.vehicle_id,
                        frame_id=d.frame_id,
                        captured_at=d.captured_at,
                        production=d.production,
                        candidate=d.candidate,
                        task=d.task,
                        differences=d.differences,
                        frames_compared=d.frames_compared,
                    )
                    event.received_at.GetCurrentTime()
                    self.producer.produce(topics.SHADOW_DISAGREEMENTS, session.vehicle_id, event)
                elif kind == "goodbye":
                    break
                elif kind == "hello":
                    session.offer(_error(fleet_pb2.ERROR_CODE_PROTOCOL_VIOLATION, "Hello is only valid as the first message"))
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke: the session ends, the car reconnects
            log.info("session read ended", vehicle=session.vehicle_id, error=repr(exc))
        finally:
            session.close()

    async def _ingest(self, session: CarSession, batch: fleet_pb2.TelemetryBatch, inflight: asyncio.Semaphore) -> None:
        started = time.perf_counter()
        try:
            event = fleet_events.TelemetryBatchEvent(vehicle_id=session.vehicle_id, gateway_id=self.settings.id, session_id=session.session_id, batch_seq=batch.batch_seq)
            event.received_at.GetCurrentTime()
            rejected = 0
            for i, frame in enumerate(batch.frames):
                try:
                    validate_frame(frame, session.vehicle_id, f"frames[{i}]")
                except InvalidFrame as exc:
                    rejected += 1
                    self._reject("invalid_argument")
                    if rejected == 1:  # one error per batch names the first bad field
                        session.offer(_error(fleet_pb2.ERROR_CODE_INVALID_ARGUMENT, str(exc), batch.batch_seq, exc.field))
                    continue
                event.frames.append(frame)
            if event.frames:
                await self.producer.produce_and_wait(topics.TELEMETRY, session.vehicle_id, event)
            self.frames.inc(len(event.frames))
            session.offer(fleet_pb2.ServerMessage(ack=fleet_pb2.Ack(batch_seq=batch.batch_seq, frames_accepted=len(event.frames), frames_rejected=rejected)))
            self.ack_latency.observe(time.perf_counter() - started)
        except DeliveryError as exc:
            self._reject("kafka_unavailable")
            session.offer(_error(fleet_pb2.ERROR_CODE_INTERNAL, f"not stored, resend: {exc}", batch.batch_seq))
        finally:
            inflight.release()

    # -- Naive unary telemetry (benchmark baseline) -------------------------------------------
    async def PublishTelemetry(self, request, context):
        await self._authenticate(request.auth_token, request.vehicle_id, context)
        try:
            validate_frame(request.frame, request.vehicle_id)
        except InvalidFrame as exc:
            self._reject("invalid_argument")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        event = fleet_events.TelemetryBatchEvent(vehicle_id=request.vehicle_id, gateway_id=self.settings.id, frames=[request.frame])
        event.received_at.GetCurrentTime()
        try:
            await self.producer.produce_and_wait(topics.TELEMETRY, request.vehicle_id, event)
        except DeliveryError as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"telemetry not stored: {exc}")
        self.frames.inc()
        return fleet_pb2.PublishTelemetryResponse(accepted=True, frame_id=request.frame.frame_id)

    # -- Snapshot upload -----------------------------------------------------------------------
    async def UploadSnapshot(self, request_iterator, context):
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "empty upload: the first message must be a header")
        if first.WhichOneof("payload") != "header":
            self._reject("invalid_argument")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a header")
        header = first.header
        await self._authenticate(header.auth_token, header.vehicle_id, context)
        problem = self._check_header(header)
        if problem is not None:
            code, field, text = problem
            self._reject("invalid_argument" if code == grpc.StatusCode.INVALID_ARGUMENT else "limit_exceeded")
            await abort(context, code, f"header.{field}: {text}")

        digest = hashlib.sha256()
        parts: list[bytes] = []
        size = 0
        async for message in request_iterator:
            if message.WhichOneof("payload") != "chunk":
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "only chunks may follow the header")
            chunk = message.chunk
            if len(chunk) > self.settings.max_chunk_bytes:
                self._reject("limit_exceeded")
                await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"chunk of {len(chunk)} bytes, at most {self.settings.max_chunk_bytes}")
            size += len(chunk)
            if size > header.size_bytes:
                self._reject("invalid_argument")
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"more bytes than the declared size_bytes {header.size_bytes}")
            digest.update(chunk)
            parts.append(chunk)
        if size != header.size_bytes:
            self._reject("invalid_argument")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"received {size} bytes, header.size_bytes declared {header.size_bytes}")
        if digest.hexdigest() != header.sha256:
            self._reject("invalid_argument")
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"header.sha256: content hashes to {digest.hexdigest()}")
        UPLOAD_BYTES.labels(SERVICE).inc(size)
        return await self._store_snapshot(header, b"".join(parts), context)

    def _check_header(self, header: fleet_pb2.SnapshotHeader):
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        if header.size_bytes > self.settings.max_snapshot_bytes:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "size_bytes", f"{header.size_bytes} bytes, at most {self.settings.max_snapshot_bytes}"
        if header.size_bytes == 0:
            return invalid, "size_bytes", "must be > 0"
        if len(header.sha256) != 64 or any(c not in "0123456789abcdef" for c in header.sha256):
            return invalid, "sha256", "must be 64 lowercase hex characters"
        if header.content_type not in EXTENSIONS:
            return invalid, "content_type", f"{header.content_type!r} is not one of {', '.join(EXTENSIONS)}"
        if header.frame_id and not header.frame_id.startswith(f"{header.vehicle_id}:"):
            return invalid, "frame_id", f"{header.frame_id!r} is not a frame of {header.vehicle_id!r}"
        if not header.HasField("captured_at"):
            return invalid, "captured_at", "is missing"
        return None

    async def _store_snapshot(self, header: fleet_pb2.SnapshotHeader, data: bytes, context) -> fleet_pb2.UploadSnapshotResponse:
        """Object first, then the event, then a receipt: a retry after any step completes the rest
        and never emits a second event for the same (content, fire)."""
        receipt_key = f"{RECEIPTS}{hashlib.sha256(f'{header.sha256}/{header.fire_id}'.encode()).hexdigest()}.json"
        try:
            if await asyncio.to_thread(self.store.exists, receipt_key):
                receipt = json.loads(await asyncio.to_thread(self.store.get, receipt_key))
                UPLOADS.labels(SERVICE, "duplicate").inc()
                return fleet_pb2.UploadSnapshotResponse(snapshot_id=header.sha256, object_key=receipt["object_key"], bucket=self.store.bucket, size_bytes=len(data), already_existed=True)
            put = await asyncio.to_thread(self.store.put_content, data, SNAPSHOTS, EXTENSIONS[header.content_type], header.content_type, header.sha256)
        except Exception as exc:
            log.error("object store failed", error=repr(exc))
            await abort(context, grpc.StatusCode.UNAVAILABLE, "object store unavailable; retry the upload")
        event = fleet_events.SnapshotUploaded(
            snapshot_id=put.sha256,
            vehicle_id=header.vehicle_id,
            frame_id=header.frame_id,
            trigger_id=header.trigger_id,
            trigger_version=header.trigger_version,
            fire_id=header.fire_id,
            object_key=put.key,
            bucket=self.store.bucket,
            size_bytes=put.size,
            content_type=header.content_type,
            metadata=header.metadata,
            priority=self.state.trigger_priority(header.trigger_id),
        )
        event.captured_at.CopyFrom(header.captured_at)
        event.uploaded_at.CopyFrom(Timestamp(seconds=int(time.time())))
        try:
            await self.producer.produce_and_wait(topics.SNAPSHOTS, put.sha256, event)
            await asyncio.to_thread(self.store.put_at, receipt_key, json.dumps({"object_key": put.key, "snapshot_id": put.sha256, "fire_id": header.fire_id}).encode(), "application/json")
        except DeliveryError as exc:
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"snapshot stored but not announced; retry the upload: {exc}")
        UPLOADS.labels(SERVICE, "stored" if put.created else "existing").inc()
        return fleet_pb2.UploadSnapshotResponse(snapshot_id=put.sha256, object_key=put.key, bucket=self.store.bucket, size_bytes=put.size, already_existed=not put.created)


def add_to_server(gateway: FleetGateway, server: grpc.aio.Server) -> None:
    """What the generated fleet_pb2_grpc.add_FleetGatewayServiceServicer_to_server does, except
    that Session has no response serializer: it writes ServerMessage bytes, so a broadcast is
    serialized once for every connected car instead of once per car."""
    handlers = {
        "Session": grpc.stream_stream_rpc_method_handler(gateway.Session, request_deserializer=fleet_pb2.CarMessage.FromString),
        "UploadSnapshot": grpc.stream_unary_rpc_method_handler(gateway.UploadSnapshot, request_deserializer=fleet_pb2.UploadSnapshotRequest.FromString, response_serializer=fleet_pb2.UploadSnapshotResponse.SerializeToString),
        "PublishTelemetry": grpc.unary_unary_rpc_method_handler(gateway.PublishTelemetry, request_deserializer=fleet_pb2.PublishTelemetryRequest.FromString, response_serializer=fleet_pb2.PublishTelemetryResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
