"""fleet-gateway as a real process against the real broker and S3: sessions, acks after Kafka,
beam-down from the catalog topic, snapshot uploads, and every auth and limit rule; each test with
mutual TLS (every car its own certificate) and in explicit plaintext, so the limits (batch size,
rate, snapshot and chunk size, one session per car) are shown to hold under TLS (issue #18)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
import uuid
from dataclasses import dataclass

import grpc
import pytest

from longtail import topics
from longtail.auth import issue_token
from longtail.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from longtail.kafka import BatchConsumer, Producer
from longtail.registry import GATEWAY
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2

from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

SECRET = "test-fleet-secret-0123456789abcdefghij"


@dataclass
class Gateway:
    """The gateway under test and how a car reaches it: with mutual TLS, the car's own certificate
    (the default), or in plaintext (a gateway started with GRPC_PLAINTEXT=true). Every test runs
    both ways: the limits hold under TLS too (issue #18)."""

    process: ServiceProcess

    @property
    def address(self) -> str:
        return self.process.address

    def channel(self, vehicle_id: str) -> grpc.Channel:
        return self.process.channel(vehicle=vehicle_id)

    def aio_channel(self, vehicle_id: str) -> grpc.aio.Channel:
        return self.process.aio_channel(vehicle=vehicle_id)


@pytest.fixture(scope="module", params=["mtls", "plaintext"])
def gateway_process(request, kafka, s3):
    env = {
        "FLEET_TOKEN_SECRET": SECRET,
        "GATEWAY_MAX_BATCH_FRAMES": "50",
        "GATEWAY_MAX_BATCHES_PER_SECOND": "20",
        "GATEWAY_MAX_SNAPSHOT_BYTES": "200000",
        "GATEWAY_MAX_CHUNK_BYTES": "65536",
    }
    if request.param == "mtls":
        env["GRPC_TLS_CLIENT_AUTH"] = "require"  # on the development CA's certificate (ServiceProcess)
    else:
        env["GRPC_PLAINTEXT"] = "true"
    service = ServiceProcess(GATEWAY.package, GATEWAY.grpc, env).start()
    yield service
    assert service.stop() == 0, "the gateway did not drain and exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def gateway(gateway_process) -> Gateway:
    return Gateway(gateway_process)


def vehicle() -> str:
    return f"car-{uuid.uuid4().hex[:8]}"


def frames_for(vehicle_id: str, first: int, count: int) -> list[fleet_pb2.Frame]:
    return list(telemetry_batch(vehicle_id, first, count).frames)


def hello(vehicle_id: str, token: str | None = None, **extra) -> fleet_pb2.CarMessage:
    return fleet_pb2.CarMessage(hello=fleet_pb2.Hello(vehicle_id=vehicle_id, auth_token=issue_token(vehicle_id, SECRET) if token is None else token, **extra))


class Car:
    """A minimal asyncio session client for the tests (the simulator has the full one)."""

    def __init__(self, gateway: Gateway, vehicle_id: str, token: str | None = None, **hello_extra) -> None:
        self.channel = gateway.aio_channel(vehicle_id)
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.outbox.put_nowait(hello(vehicle_id, token, **hello_extra))
        self.call = fleet_pb2_grpc.FleetGatewayServiceStub(self.channel).Session(self._requests())
        self.vehicle_id = vehicle_id

    async def _requests(self):
        while True:
            message = await self.outbox.get()
            if message is None:
                return
            yield message

    def send(self, message: fleet_pb2.CarMessage) -> None:
        self.outbox.put_nowait(message)

    async def receive(self, kind: str | None = None, timeout: float = 10.0) -> fleet_pb2.ServerMessage:
        deadline = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(self.call.read(), max(0.1, deadline - time.monotonic()))
            if message is grpc.aio.EOF:
                raise EOFError("session ended")
            if kind is None or message.WhichOneof("payload") == kind:
                return message

    async def close(self) -> None:
        self.outbox.put_nowait(None)
        await self.channel.close()


def telemetry(batch_seq: int, frames) -> fleet_pb2.CarMessage:
    return fleet_pb2.CarMessage(telemetry=fleet_pb2.TelemetryBatch(batch_seq=batch_seq, frames=frames))


def read_topic(kafka: str, topic, keep, want: int, max_polls: int = 100) -> list:
    found = []
    producer = Producer(kafka, "test-reader")
    consumer = BatchConsumer(kafka, f"test-{uuid.uuid4().hex[:8]}", [topic], lambda rs: found.extend(r.value for r in rs if keep(r)), producer)
    for _ in range(max_polls):
        consumer.poll_once()
        if len(found) >= want:
            consumer.poll_once()  # one more pass: would reveal duplicates
            break
    consumer.close()
    producer.close()
    return found


def test_cars_connect_stream_batches_and_get_acks_after_kafka(gateway, kafka):
    vid = vehicle()

    async def run():
        car = Car(gateway, vid)
        welcome = await car.receive("welcome")
        assert welcome.welcome.limits.max_batch_frames == 50
        for seq in range(1, 4):
            car.send(telemetry(seq, frames_for(vid, seq * 10, 10)))
        acks = [(await car.receive("ack")).ack for _ in range(3)]
        await car.close()
        return acks

    acks = asyncio.run(run())
    assert sorted(a.batch_seq for a in acks) == [1, 2, 3]
    assert all(a.frames_accepted == 10 and a.frames_rejected == 0 for a in acks)
    events = read_topic(kafka, topics.TELEMETRY, lambda r: r.key == vid, 3)
    assert sorted(f.sequence for e in events for f in e.frames) == list(range(10, 40))


def test_many_cars_at_once(gateway):
    async def one(vid):
        car = Car(gateway, vid)
        await car.receive("welcome")
        car.send(telemetry(1, frames_for(vid, 0, 5)))
        ack = (await car.receive("ack")).ack
        await car.close()
        return ack.frames_accepted

    async def run():
        return await asyncio.gather(*(one(vehicle()) for _ in range(50)))

    assert asyncio.run(run()) == [5] * 50


@pytest.mark.parametrize(
    "token, code",
    [("", grpc.StatusCode.UNAUTHENTICATED), ("not-a-jwt", grpc.StatusCode.UNAUTHENTICATED), ("expired", grpc.StatusCode.UNAUTHENTICATED), ("wrong-secret", grpc.StatusCode.UNAUTHENTICATED), ("other-car", grpc.StatusCode.PERMISSION_DENIED)],
)
def test_session_auth_rules(gateway, token, code):
    vid = vehicle()
    tokens = {
        "expired": issue_token(vid, SECRET, ttl_seconds=60, now=time.time() - 3600),
        "wrong-secret": issue_token(vid, "another-secret-0123456789abcdefghijklmn"),
        "other-car": issue_token("someone-else", SECRET),
    }

    async def run():
        car = Car(gateway, vid, tokens.get(token, token))
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await car.receive("welcome")
            return err.value.code(), err.value.details()
        finally:
            await car.close()

    got, details = asyncio.run(run())
    assert got == code, details


def test_one_session_per_car_a_second_closes_the_first(gateway):
    """A car reconnecting (or a second copy of its identity) gets the session; the older stream ends."""
    vid = vehicle()

    async def run():
        first = Car(gateway, vid)
        await first.receive("welcome")
        second = Car(gateway, vid)
        await second.receive("welcome")
        seen, ended = [], False
        try:
            while True:  # whatever was queued for it, then the end of the stream
                seen.append((await first.receive(timeout=10)).WhichOneof("payload"))
        except (EOFError, grpc.aio.AioRpcError):
            ended = True
        except TimeoutError:
            pass
        second.send(telemetry(1, frames_for(vid, 0, 2)))
        ack = (await second.receive("ack")).ack
        await first.close()
        await second.close()
        return ended, ack

    ended, ack = asyncio.run(run())
    assert ended and ack.frames_accepted == 2


def test_first_message_must_be_hello(gateway):
    async def run():
        channel = gateway.aio_channel(vehicle())

        async def requests():
            yield telemetry(1, [])

        call = fleet_pb2_grpc.FleetGatewayServiceStub(channel).Session(requests())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        await channel.close()
        return err.value.code()

    assert asyncio.run(run()) == grpc.StatusCode.INVALID_ARGUMENT


def test_non_finite_values_are_rejected_naming_the_field(gateway):
    vid = vehicle()
    frames = frames_for(vid, 0, 3)
    frames[1].ego.x = math.nan
    frames[2].detections[0].confidence = math.inf

    async def run():
        car = Car(gateway, vid)
        await car.receive("welcome")
        car.send(telemetry(1, frames))
        error = (await car.receive("error")).error
        ack = (await car.receive("ack")).ack
        await car.close()
        return error, ack

    error, ack = asyncio.run(run())
    assert error.code == fleet_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert error.field == "frames[1].ego.x" and "not finite" in error.message
    assert (ack.frames_accepted, ack.frames_rejected) == (1, 2)


def test_unary_publish_checks_auth_and_values(gateway):
    vid = vehicle()
    stub = fleet_pb2_grpc.FleetGatewayServiceStub(gateway.channel(vid))
    frame = frames_for(vid, 0, 1)[0]
    ok = stub.PublishTelemetry(fleet_pb2.PublishTelemetryRequest(vehicle_id=vid, auth_token=issue_token(vid, SECRET), frame=frame), timeout=10)
    assert ok.accepted and ok.frame_id == f"{vid}:0"
    frame.detections[0].box.x_min = math.nan
    with pytest.raises(grpc.RpcError) as err:
        stub.PublishTelemetry(fleet_pb2.PublishTelemetryRequest(vehicle_id=vid, auth_token=issue_token(vid, SECRET), frame=frame), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frame.detections[0].box.x_min" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.PublishTelemetry(fleet_pb2.PublishTelemetryRequest(vehicle_id=vid, auth_token="", frame=frame), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_batch_limit_refuses_and_the_rate_limit_slows_the_car_in_order(gateway, gateway_process):
    """Over max_batch_frames: refused. Over max_batches_per_second (20/s, a 2 s burst): not refused
    but waited for, the car's batches read in order, every one stored and acked in order (a
    refused batch resent later would reach the fleet-side worker after newer frames, which it
    skips); the gateway counts the time it held the car back."""
    vid = vehicle()
    throttled_before = gateway_process.metric("longtail_gateway_throttled_seconds_total")

    async def run():
        car = Car(gateway, vid)
        await car.receive("welcome")
        car.send(telemetry(1, frames_for(vid, 0, 51)))  # over max_batch_frames=50
        too_big = (await car.receive("error")).error
        for seq in range(2, 80):  # 78 batches at once: twice the burst
            car.send(telemetry(seq, frames_for(vid, seq * 100, 1)))
        answers = [await car.receive(timeout=30) for _ in range(78)]
        await car.close()
        return too_big, answers

    too_big, answers = asyncio.run(run())
    assert too_big.code == fleet_pb2.ERROR_CODE_LIMIT_EXCEEDED and too_big.batch_seq == 1
    assert [a.WhichOneof("payload") for a in answers] == ["ack"] * 78
    assert [a.ack.batch_seq for a in answers] == list(range(2, 80))
    assert gateway_process.metric("longtail_gateway_throttled_seconds_total") > throttled_before


def _trigger(trigger_id: str, version: int, state=triggers_pb2.TRIGGER_STATE_ACTIVE, site=triggers_pb2.TRIGGER_SITE_EDGE):
    spec = triggers_pb2.TriggerSpec(name=trigger_id, expression="count(stop_sign) >= 1", site=site, upload_budget=10, max_uploads_per_car_hour=1)
    return trigger_events.TriggerRecord(trigger=triggers_pb2.Trigger(trigger_id=trigger_id, version=version, spec=spec, state=state))


def test_catalog_record_reaches_connected_and_reconnecting_cars(gateway, kafka):
    trigger_id = f"t-{uuid.uuid4().hex[:8]}"
    producer = Producer(kafka, "test-operator")

    async def run():
        cars = [Car(gateway, vehicle()) for _ in range(5)]
        for car in cars:
            await car.receive("welcome")
        producer.produce(topics.TRIGGER_CATALOG, trigger_id, _trigger(trigger_id, 1))
        producer.flush()

        async def activation(car):
            while True:
                command = (await car.receive("command", timeout=10)).command
                if command.WhichOneof("action") == "activate_trigger" and command.activate_trigger.trigger.trigger_id == trigger_id:
                    return command.command_id

        live = await asyncio.gather(*(activation(c) for c in cars))
        for car in cars:
            await car.close()
        # A car that connects later gets the current set with its welcome.
        late = Car(gateway, vehicle())
        await late.receive("welcome")
        late_id = await activation(late)
        # Retiring it reaches the connected car as a RetireTrigger.
        producer.produce(topics.TRIGGER_CATALOG, trigger_id, _trigger(trigger_id, 1, triggers_pb2.TRIGGER_STATE_RETIRED))
        producer.flush()
        while True:
            command = (await late.receive("command")).command
            if command.WhichOneof("action") == "retire_trigger" and command.retire_trigger.trigger_id == trigger_id:
                break
        await late.close()
        # And a car reconnecting that still runs it is told to retire it.
        back = Car(gateway, vehicle(), active_triggers=[triggers_pb2.TriggerRef(trigger_id=trigger_id, version=1)])
        await back.receive("welcome")
        while True:  # other tests' triggers may come first
            command = (await back.receive("command")).command
            if command.WhichOneof("action") == "retire_trigger" and command.retire_trigger.trigger_id == trigger_id:
                break
        await back.close()
        return live, late_id, command

    live, late_id, command = asyncio.run(run())
    producer.close()
    assert live == [f"activate/{trigger_id}/1"] * 5
    assert late_id == f"activate/{trigger_id}/1"
    assert command.retire_trigger.trigger_id == trigger_id


def upload(stub, vid: str, data: bytes, token: str | None = None, chunk: int = 65536, **header_overrides):
    header = fleet_pb2.SnapshotHeader(
        vehicle_id=vid,
        auth_token=issue_token(vid, SECRET) if token is None else token,
        frame_id=f"{vid}:7",
        trigger_id="occluded-stop",
        trigger_version=1,
        fire_id=hashlib.sha256(f"occluded-stop/1/{vid}/{vid}:7".encode()).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        content_type="image/png",
    )
    header.captured_at.GetCurrentTime()
    for key, value in header_overrides.items():
        setattr(header, key, value)

    def requests():
        yield fleet_pb2.UploadSnapshotRequest(header=header)
        for i in range(0, len(data), chunk):
            yield fleet_pb2.UploadSnapshotRequest(chunk=data[i : i + chunk])

    return stub.UploadSnapshot(requests(), timeout=20)


def test_snapshot_stored_once_and_announced_once_per_content(gateway, kafka, s3):
    from longtail.config import S3Settings, load
    from longtail.storage import ObjectStore

    vid = vehicle()
    data = os.urandom(150_000)
    stub = fleet_pb2_grpc.FleetGatewayServiceStub(gateway.channel(vid))
    first = upload(stub, vid, data)
    again = upload(stub, vid, data)
    assert first.snapshot_id == again.snapshot_id == hashlib.sha256(data).hexdigest()
    assert first.object_key == again.object_key
    assert not first.already_existed and again.already_existed
    assert ObjectStore(load(S3Settings)).get(first.object_key) == data
    events = read_topic(kafka, topics.SNAPSHOTS, lambda r: r.key == first.snapshot_id, 1)
    assert len(events) == 1
    event = events[0]
    assert (event.vehicle_id, event.frame_id, event.trigger_id, event.object_key) == (vid, f"{vid}:7", "occluded-stop", first.object_key)


@pytest.mark.parametrize(
    "case, code",
    [
        ("as-another-car", grpc.StatusCode.PERMISSION_DENIED),
        ("no-token", grpc.StatusCode.UNAUTHENTICATED),
        ("too-big", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("wrong-hash", grpc.StatusCode.INVALID_ARGUMENT),
        ("short", grpc.StatusCode.INVALID_ARGUMENT),
        ("huge-chunk", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("bad-type", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_upload_rules(gateway, case, code):
    vid = vehicle()
    data = os.urandom(10_000)
    stub = fleet_pb2_grpc.FleetGatewayServiceStub(gateway.channel(vid))
    kwargs = {
        "as-another-car": {"token": issue_token("someone-else", SECRET)},
        "no-token": {"token": ""},
        "too-big": {"size_bytes": 300_000},
        "wrong-hash": {"sha256": hashlib.sha256(b"other").hexdigest()},
        "short": {"size_bytes": 20_000},
        "huge-chunk": {"chunk": 100_000, "size_bytes": 150_000},
        "bad-type": {"content_type": "text/html"},
    }[case]
    if case == "huge-chunk":
        data = os.urandom(150_000)
        kwargs = {"chunk": 100_000}
    with pytest.raises(grpc.RpcError) as err:
        upload(stub, vid, data, **kwargs)
    assert err.value.code() == code, err.value.details()
