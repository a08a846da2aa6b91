"""An end-to-end pass over the real infrastructure, used by `longtail demo` until the services
exist: one telemetry batch through Kafka, one snapshot into S3, one inference on Triton, one
PostgreSQL round trip. Every step checks its result; nothing is assumed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from longtail import config, topics
from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2
from longtail.kafka import BatchConsumer, Producer
from longtail.storage import SNAPSHOTS, ObjectStore


def telemetry_batch(vehicle_id: str, first_seq: int, frames: int, detections: int = 3) -> fleet_events.TelemetryBatchEvent:
    """A realistic batch: per-frame ego pose and a few detections (the benchmark uses it too)."""
    batch = fleet_events.TelemetryBatchEvent(vehicle_id=vehicle_id, gateway_id="smoke", batch_seq=first_seq)
    batch.received_at.GetCurrentTime()
    for seq in range(first_seq, first_seq + frames):
        frame = batch.frames.add(frame_id=f"{vehicle_id}:{seq}", vehicle_id=vehicle_id, sequence=seq)
        frame.captured_at.FromMilliseconds(1_700_000_000_000 + seq * 100)
        frame.ego.CopyFrom(common_pb2.Pose(x=seq * 1.5, y=20.0, heading=0.1, speed=12.0))
        frame.model.CopyFrom(common_pb2.ModelRef(name="multitask", version=1))
        for i in range(detections):
            det = frame.detections.add(cls="stop_sign" if i == 0 else "traffic_light", confidence=0.5 + 0.1 * i, track_id=i + 1)
            det.box.CopyFrom(common_pb2.BoundingBox(x_min=0.1 * i, y_min=0.2, x_max=0.1 * i + 0.1, y_max=0.3))
            det.attributes["occlusion"] = "foliage" if i == 0 else "none"
    return batch


def run(with_triton: bool = True, say: Callable[[str], None] = print) -> list[tuple[str, str]]:
    report: list[tuple[str, str]] = []
    kafka = config.load(config.KafkaSettings)

    # 1. Kafka: produce a batch, read it back through the shared consumer.
    vehicle = f"demo-car-{uuid.uuid4().hex[:6]}"
    sent = telemetry_batch(vehicle, 0, 50)
    producer = Producer(kafka.bootstrap_servers, "demo")
    producer.produce(topics.TELEMETRY, vehicle, sent)
    producer.flush()
    received: list = []
    done = threading.Event()

    def handle(records):
        received.extend(r.value for r in records if r.key == vehicle)
        if received:
            done.set()

    consumer = BatchConsumer(kafka.bootstrap_servers, f"demo-{uuid.uuid4().hex[:6]}", [topics.TELEMETRY], handle, producer)
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        consumer.poll_once()
    consumer.close()
    if not received or received[0] != sent:
        raise RuntimeError("the telemetry batch did not come back intact from Kafka")
    say(f"kafka: {len(sent.frames)} frames from {vehicle} produced and consumed intact")
    report.append(("telemetry through Kafka", f"{len(sent.frames)} frames intact"))

    # 2. Object store: a snapshot stored under its content hash, twice, once.
    store = ObjectStore(config.load(config.S3Settings), service="demo")
    image = fleet_pb2.SnapshotHeader(vehicle_id=vehicle, frame_id=f"{vehicle}:7").SerializeToString() * 10
    first = store.put_content(image, SNAPSHOTS, ".bin")
    again = store.put_content(image, SNAPSHOTS, ".bin")
    if first.key != again.key or again.created or store.get(first.key) != image:
        raise RuntimeError("content-addressed put is not idempotent")
    say(f"s3: snapshot stored once at {first.key}")
    report.append(("snapshot into S3", f"{first.key} (retry stored nothing)"))

    # 3. PostgreSQL.
    import sqlalchemy

    engine = sqlalchemy.create_engine(config.load(config.DatabaseSettings).url)
    with engine.connect() as conn:
        version = conn.execute(sqlalchemy.text("select version()")).scalar_one()
    report.append(("PostgreSQL", version.split(" on ")[0]))

    # 4. Triton.
    if with_triton:
        import numpy as np
        import torch
        import tritonclient.grpc as triton_grpc

        from longtail_dev.infra.triton_server import TINY_MODEL, tiny_model

        client = triton_grpc.InferenceServerClient(config.load(config.TritonSettings).grpc_addr)
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        inp = triton_grpc.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        got = client.infer(TINY_MODEL, [inp]).as_numpy("y")
        with torch.no_grad():
            want = tiny_model()(torch.from_numpy(x)).numpy()
        if not np.allclose(got, want, atol=1e-5):
            raise RuntimeError("Triton's answer differs from the same torch model run locally")
        say("triton: tiny_linear answered, matching torch")
        report.append(("inference on Triton", "tiny_linear matches local torch"))
    return report
