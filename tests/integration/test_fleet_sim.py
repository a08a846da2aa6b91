"""The simulated fleet end to end on the real gateway, broker and S3: cars run the bootstrap shadow
model and a beamed-down edge trigger, stream telemetry (all acked), and upload what fires, once
per content, within the trigger's per-car limit; ground truth goes only to groundtruth/. Cars
install the models the gateway beams down (production, a shadow candidate on part of the fleet, a
trigger detector), and the fleet's shadow-mode reports add up to what the cars compared."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections import Counter

import pytest
import torch
from kafka_probe import read_since

from longtail import model_repo, topics
from longtail.common.v1 import common_pb2 as C
from longtail.config import S3Settings, load
from longtail.kafka import BatchConsumer, Producer, read_time_range
from longtail.registry import GATEWAY
from longtail.storage import ObjectStore
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S

from fleet_sim.__main__ import build_fleet
from fleet_sim.bootstrap import train_bootstrap_model
from fleet_sim.fleet import GROUND_TRUTH, SimConfig
from gateway.fleet_state import in_shadow_cohort
from longtail_dev.supervisor import ServiceProcess
from trainer import compare, detector

SECRET = "test-fleet-secret-0123456789abcdefghij"
FLEET_MODEL = f"simfleet-{uuid.uuid4().hex[:6]}"  # this module's model line: other tests' models never reach these cars


@pytest.fixture(scope="module")
def gateway(kafka, s3):
    service = ServiceProcess(GATEWAY.package, GATEWAY.grpc, {"FLEET_TOKEN_SECRET": SECRET, "GATEWAY_FLEET_MODEL": FLEET_MODEL, "GRPC_TLS_CLIENT_AUTH": "require"}).start()
    yield service  # on TLS: every car with its own certificate
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
        name=trigger_id,
        expression="any(d.cls == stop_sign and d.conf > 0.5)",
        site=S.TRIGGER_SITE_EDGE,
        task="stop_sign",
        firing_mode=S.FIRING_MODE_RISING_EDGE,
        upload_budget=1000,
        max_uploads_per_car_hour=2,
        capture_window=S.CaptureWindow(frames_before=1, frames_after=1),
    )
    producer = Producer(kafka, "test-operator")
    producer.produce(topics.TRIGGER_CATALOG, trigger_id, trigger_events.TriggerRecord(trigger=S.Trigger(trigger_id=trigger_id, version=1, spec=spec, state=S.TRIGGER_STATE_ACTIVE)))
    producer.flush()

    store = ObjectStore(load(S3Settings))
    prefix = f"t{uuid.uuid4().hex[:6]}"
    fleet = build_fleet(SimConfig(cars=6, duration_s=60.0, seed=3, vehicle_prefix=prefix, tls_dir=gateway.tls_dir), gateway.address, SECRET, store, say=lambda _m: None)
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


def test_cars_run_beamed_models_and_a_shadow_candidate_and_the_fleet_evidence_adds_up(gateway, kafka, s3):
    store = ObjectStore(load(S3Settings))
    store.ensure_bucket()
    production = train_bootstrap_model(seed=3)
    candidate = copy.deepcopy(production)
    # A candidate that sees stop signs more readily: it disagrees now and then. Which frames a car
    # sees depends on its index only (seed 5); with +4.0 every car but index 4 disagrees at least
    # once in 200 frames (with +2.5, two of eight never did), so a cohort of two cars or more
    # always reports some disagreement.
    with torch.no_grad():
        candidate.heads["stop_sign"].out.bias[0] += 4.0
    det_name = f"occl_{FLEET_MODEL.split('-')[1]}"
    events = [
        model_repo.published_event(model_repo.publish(store, production, FLEET_MODEL, 1), C.MODEL_ROLE_PRODUCTION, store.bucket),
        model_repo.published_event(model_repo.publish(store, candidate, FLEET_MODEL, 2), C.MODEL_ROLE_CANDIDATE, store.bucket),
        model_repo.published_event(model_repo.publish(store, detector.new_detector(det_name, 0), det_name, 1), C.MODEL_ROLE_TRIGGER_DETECTOR, store.bucket),
    ]
    events[1].shadow_fraction = 0.5
    events[2].detector_name = det_name
    cars = 8
    prefix = next(p for p in (f"sh{uuid.uuid4().hex[:6]}" for _ in range(100)) if 2 <= sum(in_shadow_cohort(f"{p}-{i:05d}", events[1]) for i in range(cars)) < cars)
    cohort = {f"{prefix}-{i:05d}" for i in range(cars) if in_shadow_cohort(f"{prefix}-{i:05d}", events[1])}
    since_ms = int(time.time() * 1000) - 1000
    producer = Producer(kafka, "test-trainer")
    # The gateway beams a detector only while an active trigger calls it (this one never fires).
    uses_detector = S.Trigger(trigger_id=f"uses-{det_name}", version=1, state=S.TRIGGER_STATE_ACTIVE, spec=S.TriggerSpec(name="uses", expression=f'score("{det_name}") > 2', site=S.TRIGGER_SITE_FLEET, task="stop_sign", upload_budget=1))
    producer.produce(topics.TRIGGER_CATALOG, uses_detector.trigger_id, trigger_events.TriggerRecord(trigger=uses_detector))
    for event in events:
        producer.produce(topics.MODELS_PUBLISHED, event.model.name, event)
    producer.flush()
    time.sleep(1.0)  # the gateway follows the topics

    fleet = build_fleet(SimConfig(cars=cars, duration_s=20.0, seed=5, vehicle_prefix=prefix, tls_dir=gateway.tls_dir), gateway.address, SECRET, store, say=lambda _m: None)
    report = asyncio.run(fleet.run())

    assert report.models == {f"{FLEET_MODEL}@1": cars * 200}  # every frame on the beamed-down production model
    assert {car.vehicle_id for car in fleet.cars if car.models.candidate is not None} == cohort
    assert report.shadow_frames == len(cohort) * 200
    vehicles = {car.vehicle_id for car in fleet.cars}
    batches = read_since(kafka, topics.TELEMETRY, since_ms, keep=lambda k, v: v.vehicle_id in vehicles, want=report.frames // fleet.config.batch_frames)
    by_id = {f.frame_id: f for _, e in batches for f in e.frames}
    assert len(by_id) == report.frames == cars * 200
    assert all(f.model.version == 1 and f"{det_name}@1" in f.trigger_scores and det_name in f.trigger_scores for f in by_id.values())
    assert {f.vehicle_id for f in by_id.values() if f.shadow_model.version == 2} == cohort

    # what the cars reported, through the gateway onto fleet.shadow-disagreements.v1
    until_ms = int(time.time() * 1000) + 1000
    deadline = time.monotonic() + 30
    while True:
        reports = [e for e in read_time_range(kafka, topics.SHADOW_DISAGREEMENTS, since_ms, until_ms) if e.vehicle_id in vehicles]
        if sum(e.frames_compared for e in reports) >= report.shadow_frames or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {e.vehicle_id for e in reports} == cohort
    assert sum(e.frames_compared for e in reports) == report.shadow_frames
    assert sum(bool(e.differences) for e in reports) == report.shadow_disagreements > 0
    for e in reports:
        if e.differences:
            assert by_id[e.frame_id].shadow_model.version == 2
    # the trainer's CompareModels aggregation, over the real topic
    from longtail.models.v1 import trainer_pb2 as T

    request = T.CompareModelsRequest(production=C.ModelRef(name=FLEET_MODEL, version=1), candidate=C.ModelRef(name=FLEET_MODEL, version=2))
    request.time_range.since.FromMilliseconds(since_ms)
    result = compare.fleet_compare(request.production, request.candidate, request, lambda a, b: (e for e in read_time_range(kafka, topics.SHADOW_DISAGREEMENTS, a, b) if e.vehicle_id in vehicles))
    assert result.frames_compared == report.shadow_frames and result.distinct_vehicles == len(cohort)
    assert 0 < result.frames_disagreeing <= report.shadow_disagreements and result.by_task["stop_sign"] > 0
    producer.produce(topics.TRIGGER_CATALOG, uses_detector.trigger_id, None)  # tombstone: leave no test trigger active
    producer.close()
