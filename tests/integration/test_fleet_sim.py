"""The simulated fleet end to end on the real gateway, broker and S3: cars run the bootstrap shadow
model and a beamed-down edge trigger, stream telemetry (all acked), and upload what fires, once
per content, within the trigger's per-car limit; ground truth goes only to groundtruth/."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import pytest

from fleet_sim.__main__ import build_fleet
from fleet_sim.fleet import GROUND_TRUTH, SimConfig
from longtail import topics
from longtail.config import S3Settings, load
from longtail.kafka import BatchConsumer, Producer
from longtail.storage import ObjectStore
from longtail.supervisor import ServiceProcess
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S

SECRET = "test-fleet-secret-0123456789abcdefghij"


@pytest.fixture(scope="module")
def gateway(kafka, s3):
    service = ServiceProcess("gateway", "longtail.fleet.v1.FleetGatewayService", {"FLEET_TOKEN_SECRET": SECRET}).start()
    yield service.address
    service.stop()


def read_snapshots(kafka: str, vehicles: set[str], want: int) -> list:
    found = []
    producer = Producer(kafka, "test-reader")
    consumer = BatchConsumer(kafka, f"test-{uuid.uuid4().hex[:8]}", [topics.SNAPSHOTS], lambda rs: found.extend(r.value for r in rs if r.value.vehicle_id in vehicles), producer)
    for _ in range(60):
        consumer.poll_once()
        if len(found) >= want:
            break
    for _ in range(3):
        consumer.poll_once()
    consumer.close()
    producer.close()
    return found


def test_fleet_streams_fires_and_uploads_through_the_gateway(gateway, kafka, s3):
    trigger_id = f"sim-{uuid.uuid4().hex[:8]}"
    spec = S.TriggerSpec(
        name=trigger_id, expression="any(d.cls == stop_sign and d.conf > 0.5)", site=S.TRIGGER_SITE_EDGE, task="stop_sign",
        firing_mode=S.FIRING_MODE_RISING_EDGE, upload_budget=1000, max_uploads_per_car_hour=2, capture_window=S.CaptureWindow(frames_before=1, frames_after=1),
    )
    producer = Producer(kafka, "test-operator")
    producer.produce(topics.TRIGGER_CATALOG, trigger_id, trigger_events.TriggerRecord(trigger=S.Trigger(trigger_id=trigger_id, version=1, spec=spec, state=S.TRIGGER_STATE_ACTIVE)))
    producer.flush()

    store = ObjectStore(load(S3Settings))
    prefix = f"t{uuid.uuid4().hex[:6]}"
    fleet = build_fleet(SimConfig(cars=6, duration_s=60.0, seed=3, vehicle_prefix=prefix), gateway, SECRET, store, say=lambda _m: None)
    report = asyncio.run(fleet.run())
    producer.produce(topics.TRIGGER_CATALOG, trigger_id, None)  # leave no active trigger behind
    producer.flush()
    producer.close()

    assert report.frames == 6 * 600
    assert report.frames_acked == report.frames and report.batches_dropped == 0
    assert report.fires.get(trigger_id, 0) > 0
    assert report.upload_errors == 0

    vehicles = {car.vehicle_id for car in fleet.cars}
    events = [e for e in read_snapshots(kafka, vehicles, report.uploads) if e.trigger_id == trigger_id]
    assert 0 < len(events) <= report.uploads
    per_car = Counter(e.vehicle_id for e in events)
    assert max(per_car.values()) <= 2  # the trigger's per-car limit (uploads per hour)
    assert len({e.fire_id for e in events}) == len(events)  # one event per fire
    true_positives = 0
    for event in events:
        assert event.content_type == "application/x-tar" and len(event.metadata.clip_frame_ids) == 3
        assert store.exists(event.object_key)
        truth = json.loads(store.get(f"{GROUND_TRUTH}{event.snapshot_id}.json"))
        assert truth["firing_frame_id"] == event.frame_id and len(truth["frames"]) == 3
        true_positives += any(o["cls"] == "stop_sign" for f in truth["frames"] for o in f["objects"])
    # The shadow model is real, so some fires are false positives; most must be real stop signs.
    assert true_positives >= 0.5 * len(events)
