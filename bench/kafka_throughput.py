"""Produce + consume N telemetry frames (batched, 100 frames per message) through the shared
Kafka helpers vs raw confluent-kafka with the same settings, in the same run, on fresh topics.
Both paths serialize and parse protobuf, so the ratio is the cost of the helpers themselves
(type checks, headers, metrics, dead-letter handling, commit-after-process).
Target: helpers >= 0.8x raw frames/s.
"""

from __future__ import annotations

import os
import time
import uuid

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic
from rich.progress import Progress

from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.kafka import BatchConsumer, Producer
from longtail.topics import Topic

from longtail_dev.smoke import telemetry_batch

FRAMES_PER_BATCH = 100
PARTITIONS = 6
PRODUCER_CONF = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4", "queue.buffering.max.messages": 200_000, "queue.buffering.max.kbytes": 262_144}


def _batches(count: int) -> list[fleet_events.TelemetryBatchEvent]:
    return [telemetry_batch(f"bench-car-{i}", i * FRAMES_PER_BATCH, FRAMES_PER_BATCH) for i in range(count)]


def _raw(bootstrap: str, topic: str, messages: int, batches, progress) -> tuple[float, float]:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONF})
    task = progress.add_task("raw confluent-kafka: produce", total=messages)
    started = time.perf_counter()
    for i in range(messages):
        batch = batches[i % len(batches)]
        while True:
            try:
                producer.produce(topic, batch.SerializeToString(), batch.vehicle_id)
                break
            except BufferError:
                producer.poll(0.005)
        producer.poll(0)
        if i % 1000 == 0:
            progress.update(task, completed=i)
    if producer.flush(60):
        raise RuntimeError("raw producer did not drain")
    produce_s = time.perf_counter() - started
    progress.update(task, completed=messages)

    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.max.bytes": 64 * 1024 * 1024})
    consumer.subscribe([topic])
    task = progress.add_task("raw confluent-kafka: consume", total=messages)
    started = time.perf_counter()
    frames = 0
    seen = 0
    while seen < messages:
        msgs = consumer.consume(500, 0.5)
        for m in msgs:
            if m.error():
                continue
            frames += len(fleet_events.TelemetryBatchEvent.FromString(m.value()).frames)
            seen += 1
        if msgs:
            consumer.commit(asynchronous=False)
            progress.update(task, completed=seen)
    consume_s = time.perf_counter() - started
    consumer.close()
    assert frames == messages * FRAMES_PER_BATCH
    return produce_s, consume_s


def _helpers(bootstrap: str, topic: Topic, messages: int, batches, progress) -> tuple[float, float]:
    producer = Producer(bootstrap, "bench", **{k: v for k, v in PRODUCER_CONF.items() if k not in ("acks", "enable.idempotence")})
    task = progress.add_task("longtail helpers: produce", total=messages)
    started = time.perf_counter()
    for i in range(messages):
        batch = batches[i % len(batches)]
        producer.produce(topic, batch.vehicle_id, batch)
        if i % 1000 == 0:
            progress.update(task, completed=i)
    producer.flush(60)
    produce_s = time.perf_counter() - started
    progress.update(task, completed=messages)

    counted = {"frames": 0, "messages": 0}

    def handle(records):
        counted["messages"] += len(records)
        counted["frames"] += sum(len(r.value.frames) for r in records)

    consumer = BatchConsumer(bootstrap, f"bench-helpers-{uuid.uuid4().hex[:6]}", [topic], handle, producer)
    task = progress.add_task("longtail helpers: consume", total=messages)
    started = time.perf_counter()
    while counted["messages"] < messages:
        if consumer.poll_once():
            progress.update(task, completed=counted["messages"])
    consume_s = time.perf_counter() - started
    consumer.close()
    producer.close()
    assert counted["frames"] == messages * FRAMES_PER_BATCH
    return produce_s, consume_s


def run(args, console) -> dict:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    messages = max(1, args.frames // FRAMES_PER_BATCH)
    frames = messages * FRAMES_PER_BATCH
    run_id = uuid.uuid4().hex[:8]
    raw_topic = f"bench.telemetry-raw-{run_id}.v1"
    helper_topic = Topic(f"bench.telemetry-helpers-{run_id}.v1", fleet_events.TelemetryBatchEvent, key="vehicle_id", partitions=PARTITIONS)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in (raw_topic, helper_topic.name)]).values():
        fut.result()
    batches = _batches(64)
    size = len(batches[0].SerializeToString())
    try:
        with Progress(console=console, transient=True) as progress:
            raw = _raw(bootstrap, raw_topic, messages, batches, progress)
            ours = _helpers(bootstrap, helper_topic, messages, batches, progress)
    finally:
        for fut in admin.delete_topics([raw_topic, helper_topic.name]).values():
            try:
                fut.result()
            except Exception:
                pass
    raw_rate = frames / sum(raw)
    our_rate = frames / sum(ours)
    ratio = our_rate / raw_rate
    return {
        "title": f"Kafka produce+consume: {frames:,} frames in {messages:,} batches of {FRAMES_PER_BATCH} (~{size / 1024:.0f} KiB each)",
        "columns": ["path", "produce s", "consume s", "frames/s", "vs raw"],
        "rows": [
            ["raw confluent-kafka (baseline)", f"{raw[0]:.2f}", f"{raw[1]:.2f}", f"{raw_rate:,.0f}", "1.00x"],
            ["longtail helpers", f"{ours[0]:.2f}", f"{ours[1]:.2f}", f"{our_rate:,.0f}", f"{ratio:.2f}x"],
        ],
        "verdict": [f"target: helpers >= 0.80x raw -> {'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.2f}x)"],
        "ratio": ratio,
    }
