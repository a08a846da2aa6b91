"""The simulated car's session client against a real gateway: everything submitted reaches Kafka,
including across a gateway crash (kill -9) and restart: unacked batches are resent."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from longtail import topics
from longtail.auth import issue_token
from longtail.kafka import BatchConsumer, Producer
from longtail.registry import GATEWAY

from fleet_sim.car_client import CarLink
from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

SECRET = "test-fleet-secret-0123456789abcdefghij"
SERVICE = GATEWAY.grpc


def sequences_in_kafka(kafka: str, vehicle_id: str, want: set[int]) -> set[int]:
    seen: set[int] = set()

    def handle(records):
        for r in records:
            if r.key == vehicle_id:
                seen.update(f.sequence for f in r.value.frames)

    producer = Producer(kafka, "test-reader")
    consumer = BatchConsumer(kafka, f"test-{uuid.uuid4().hex[:8]}", [topics.TELEMETRY], handle, producer)
    for _ in range(120):
        consumer.poll_once()
        if want <= seen:
            break
    consumer.close()
    producer.close()
    return seen


async def _ok(_command):
    return True, "applied"


def test_every_frame_arrives_across_a_gateway_crash(kafka, s3):
    env = {"FLEET_TOKEN_SECRET": SECRET}
    first = ServiceProcess("gateway", SERVICE, env).start()
    port = first.grpc_port
    vid = f"car-{uuid.uuid4().hex[:8]}"

    async def run():
        channel = first.aio_channel(vehicle=vid)
        link = CarLink(channel, vid, issue_token(vid, SECRET), _ok)
        task = asyncio.create_task(link.run())
        await asyncio.wait_for(link.connected.wait(), 20)
        for b in range(10):
            link.submit(list(telemetry_batch(vid, b * 10, 10).frames))
        assert await link.drain(20)
        first.proc.kill()  # crash: no drain, no goodbye
        first.proc.wait()
        for b in range(10, 20):  # produced while the gateway is down
            link.submit(list(telemetry_batch(vid, b * 10, 10).frames))
        await asyncio.sleep(1.0)
        second = ServiceProcess("gateway", SERVICE, env, grpc_port=port)
        await asyncio.to_thread(second.start)
        try:
            assert await link.drain(60), f"unacked batches remain: {len(link.pending)}; stats {link.stats}"
        finally:
            link.stop()
            task.cancel()
            await channel.close()
            second.stop()
        return link.stats

    stats = asyncio.run(run())
    assert stats.sessions >= 2
    assert stats.batches_dropped == 0
    want = set(range(200))
    assert sequences_in_kafka(kafka, vid, want) >= want


def test_a_refused_token_stops_the_car_with_the_reason(kafka, s3):
    gateway = ServiceProcess("gateway", SERVICE, {"FLEET_TOKEN_SECRET": SECRET}).start()

    async def run():
        channel = gateway.aio_channel(vehicle="car-x")
        link = CarLink(channel, "car-x", "forged", _ok)
        try:
            await asyncio.wait_for(link.run(), 20)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        finally:
            await channel.close()

    try:
        assert asyncio.run(run()) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        gateway.stop()
