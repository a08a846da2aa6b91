"""Fleet-side evaluation (faust agents + changelog tables) in the trigger-evaluator process:
fires, fleet-wide dedup, per-car rate limit, upload commands, and recovery after kill -9."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.kafka import BatchConsumer, Producer
from longtail.registry import TRIGGER_EVALUATOR
from longtail.triggerlang import FiringOptions, compile_trigger
from longtail.triggers.v1 import triggers_pb2 as S
from longtail.triggers.v1 import triggers_pb2_grpc

from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

SECRET = "test-operator-secret-0123456789abcdefgh"
SERVICE = TRIGGER_EVALUATOR.grpc
AUTH = [("authorization", f"Bearer {issue_token('alice', SECRET, audience=OPERATOR_AUDIENCE)}")]


def start() -> ServiceProcess:
    return ServiceProcess("trigger_evaluator", SERVICE, {"OPERATOR_TOKEN_SECRET": SECRET}).start(timeout=120)


def frames_at(vehicle: str, marker: float, count: int, spacing: float, first: int = 0):
    """One stop sign on even frames only (a rising edge every other frame), ego.y = marker so the
    trigger ignores everyone else's telemetry, x advancing `spacing` metres per frame."""
    batch = telemetry_batch(vehicle, first, count, detections=1)
    for frame in batch.frames:
        frame.ego.y = marker
        frame.ego.x = frame.sequence * spacing
        if frame.sequence % 2:
            del frame.detections[:]
    return batch


def activate_fleet_trigger(api, expression: str, **spec_fields) -> str:
    trigger_id = f"fleet-{uuid.uuid4().hex[:8]}"
    spec = S.TriggerSpec(name=trigger_id, expression=expression, site=S.TRIGGER_SITE_FLEET, task="stop_sign", upload_budget=1000, max_uploads_per_car_hour=1000)
    for key, value in spec_fields.items():
        setattr(spec, key, value)
    api.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec), metadata=AUTH, timeout=10)
    api.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=AUTH, timeout=10)
    return trigger_id


def collect(kafka: str, topic, keep, until, timeout: float = 90.0) -> list:
    found = []
    producer = Producer(kafka, "test-reader")
    consumer = BatchConsumer(kafka, f"test-{uuid.uuid4().hex[:8]}", [topic], lambda rs: found.extend(r.value for r in rs if keep(r.value)), producer)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(found):
        consumer.poll_once()
    for _ in range(4):  # a little longer: would reveal extra records
        consumer.poll_once()
    consumer.close()
    producer.close()
    return found


def test_fleet_side_fires_dedup_rate_limit_and_upload_commands(kafka, s3):
    service = start()
    try:
        api = triggers_pb2_grpc.TriggerCatalogServiceStub(service.channel())
        marker = float(uuid.uuid4().int % 100_000) + 0.5
        trigger_id = activate_fleet_trigger(api, f"count(stop_sign) >= 1 and ego.y == {marker}", max_uploads_per_car_hour=2)
        time.sleep(1.0)  # the worker's catalog view follows the topic
        producer = Producer(kafka, "test")
        a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
        for vehicle in (a, b):  # both drive the same road: the same places, the same signs
            producer.produce(topics.TELEMETRY, vehicle, frames_at(vehicle, marker, 10, 30.0))
        producer.flush()
        producer.close()

        fired = collect(kafka, topics.TRIGGERS_FIRED, lambda v: v.trigger_id == trigger_id, lambda f: len({x.fire_id for x in f}) >= 10)
        commands = collect(kafka, topics.VEHICLE_COMMANDS, lambda v: v.command.request_upload.trigger_id == trigger_id, lambda c: len(c) >= 4, timeout=20)
    finally:
        service.stop()
    decisions = {f.fire_id: f for f in fired}
    assert len(decisions) == 10  # 5 rising edges per car
    requested = [f for f in decisions.values() if f.upload_requested]
    assert len(requested) == 4  # 5 places; a place bought once; at most 2 per car per hour
    assert len({f.dedup_key for f in requested}) == 4
    per_car = defaultdict(int)
    for f in requested:
        per_car[f.vehicle_id] += 1
    assert max(per_car.values()) <= 2
    reasons = {f.suppressed_reason for f in decisions.values() if not f.upload_requested}
    assert reasons <= {"duplicate_event", "per_car_rate_limit"} and "duplicate_event" in reasons
    assert {c.command.command_id for c in commands} == {f"upload/{f.fire_id}" for f in requested}
    assert all(c.command.HasField("expires_at") for c in commands)


def expected_fire_ids(trigger_id: str, version: int, expression: str, batches) -> set[str]:
    program = compile_trigger(expression, FiringOptions(), trigger_id, version)
    states, fires = {}, set()
    for batch in batches:
        for frame in sorted(batch.frames, key=lambda f: f.sequence):
            state = states.setdefault(frame.vehicle_id, program.new_state())
            fire = program.evaluate(state, frame)
            if fire is not None:
                fires.add(fire.fire_id)
    return fires


def test_kill_minus_nine_loses_nothing_and_duplicates_nothing(kafka, s3):
    service = start()
    api = triggers_pb2_grpc.TriggerCatalogServiceStub(service.channel())
    marker = float(uuid.uuid4().int % 100_000) + 0.25
    expression = f"count(stop_sign) >= 1 and ego.y == {marker}"
    trigger_id = activate_fleet_trigger(api, expression)
    time.sleep(1.0)
    vehicles = [f"k-{i}-{uuid.uuid4().hex[:4]}" for i in range(12)]
    # Each car streams 10 batches of 20 frames; the worker is killed while they are processed.
    batches = [frames_at(v, marker, 20, 5.0, first=k * 20) for k in range(10) for v in vehicles]
    want = expected_fire_ids(trigger_id, 1, expression, batches)
    producer = Producer(kafka, "test")
    for i, batch in enumerate(batches):
        producer.produce(topics.TELEMETRY, batch.vehicle_id, batch)
        if i == len(batches) // 2:
            producer.flush()
            time.sleep(0.5)
            service.proc.kill()  # -9: no drain, no commit, no changelog flush
            service.proc.wait()
    producer.flush()
    producer.close()
    restarted = start()
    try:
        fired = collect(kafka, topics.TRIGGERS_FIRED, lambda v: v.trigger_id == trigger_id, lambda f: want <= {x.fire_id for x in f}, timeout=120)
    finally:
        restarted.stop()
    got = {f.fire_id for f in fired}
    assert got == want, f"missing {len(want - got)}, unexpected {len(got - want)}"
    # Redelivery after the crash may repeat a record, never a different decision for one fire.
    by_id = defaultdict(set)
    for f in fired:
        by_id[f.fire_id].add((f.upload_requested, f.suppressed_reason))
    assert all(len(decisions) == 1 for decisions in by_id.values())


@pytest.fixture(autouse=True)
def _needs(kafka, s3):
    yield


def test_map_disagreement_fires_fleet_side_where_the_map_expects_a_sign_vision_misses(kafka, s3):
    """map_disagrees() on the server: the evaluator follows map-vision's features topic; a car
    facing a mapped stop sign 30 m ahead that vision does not see fires, one that sees it does not."""
    from longtail.common.v1 import common_pb2
    from longtail.mapvision.v1 import events_pb2 as map_events
    from longtail.mapvision.v1 import map_pb2

    marker = float(uuid.uuid4().int % 100_000) + 0.75
    x0 = 500_000.0 + marker  # far from every other test's map
    feature = map_pb2.MapFeature(feature_id=f"stop_sign/test-{uuid.uuid4().hex[:8]}", kind=map_pb2.FEATURE_KIND_STOP_SIGN, x=x0 + 30.0, y=marker, heading=3.14159, confidence=0.9)
    producer = Producer(kafka, "test")
    producer.produce(topics.MAP_FEATURES, feature.feature_id, map_events.MapFeatureUpdated(feature=feature))
    producer.flush()
    service = start()  # its map view has caught up with the features topic before the worker starts
    try:
        api = triggers_pb2_grpc.TriggerCatalogServiceStub(service.channel())
        trigger_id = activate_fleet_trigger(api, f"map_disagrees(stop_sign, kind=missing) and ego.y == {marker}")
        time.sleep(1.0)
        blind, seeing = f"blind-{uuid.uuid4().hex[:6]}", f"seeing-{uuid.uuid4().hex[:6]}"
        # Poison first: an undecodable record and a pose of NaNs must not stop the worker.
        producer.produce_bytes(topics.TELEMETRY.name, blind, b"\xff\xffnot a batch")
        nan_batch = telemetry_batch(blind, 1, 1, detections=0)
        nan_batch.frames[0].ego.CopyFrom(common_pb2.Pose(x=float("nan"), y=marker, heading=0.0))
        producer.produce(topics.TELEMETRY, blind, nan_batch)
        for vehicle in (blind, seeing):
            batch = telemetry_batch(vehicle, 1, 3, detections=0)
            for frame in batch.frames:
                frame.ego.CopyFrom(common_pb2.Pose(x=x0, y=marker, heading=0.0, speed=5.0))
                if vehicle == seeing:
                    frame.detections.add(cls="stop_sign", confidence=0.9, range_m=30.0, bearing_rad=0.0)
            producer.produce(topics.TELEMETRY, vehicle, batch)
        producer.flush()
        producer.close()
        fired = collect(kafka, topics.TRIGGERS_FIRED, lambda v: v.trigger_id == trigger_id, lambda f: len(f) >= 1, timeout=60)
    finally:
        service.stop()
    assert {f.vehicle_id for f in fired} == {blind}
    assert len({f.fire_id for f in fired}) == 1  # rising edge: the first frame only
    letters = collect(kafka, topics.DEAD_LETTERS, lambda v: v.key == blind.encode() and v.consumer_group == "trigger-evaluator", lambda f: len(f) >= 1, timeout=30)
    assert letters and "cannot decode TelemetryBatchEvent" in letters[0].error


def test_edge_fires_are_decided_even_when_no_fleet_side_trigger_is_active(kafka, s3):
    """A fleet running only edge triggers (the demo's case): every fire the cars report reaches the
    decide stage and triggers.fired (the yield ledger's "fired" stage), marked uploaded by the car."""
    service = start()
    try:
        api = triggers_pb2_grpc.TriggerCatalogServiceStub(service.channel())
        active = api.ListTriggers(S.ListTriggersRequest(states=[S.TRIGGER_STATE_ACTIVE], page_size=1000), timeout=10).triggers
        for other in active:  # earlier tests' fleet-side triggers would hide the edge-only path
            if other.spec.site != S.TRIGGER_SITE_EDGE:
                api.RetireTrigger(S.RetireTriggerRequest(trigger_id=other.trigger_id, reason="edge-only test"), metadata=AUTH, timeout=10)
        trigger_id = f"edge-{uuid.uuid4().hex[:8]}"
        spec = S.TriggerSpec(name=trigger_id, expression="count(stop_sign) >= 1", site=S.TRIGGER_SITE_EDGE, task="stop_sign", upload_budget=1000, max_uploads_per_car_hour=1000)
        api.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec), metadata=AUTH, timeout=10)
        version = api.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=AUTH, timeout=10).trigger.version
        time.sleep(1.0)
        vehicle = f"e-{uuid.uuid4().hex[:6]}"
        batch = telemetry_batch(vehicle, 0, 6, detections=1)
        for frame in batch.frames:  # far apart: three places, so the fleet-wide dedup keeps all three
            frame.ego.x = frame.sequence * 100.0
        for frame in batch.frames[::2]:  # the car's engine fired on frames 0, 2, 4
            frame.edge_fires.add(trigger_id=trigger_id, trigger_version=version, fire_id=f"{vehicle}-{frame.sequence}", score=0.9)
        producer = Producer(kafka, "test")
        producer.produce(topics.TELEMETRY, vehicle, batch)
        producer.flush()
        producer.close()
        fired = collect(kafka, topics.TRIGGERS_FIRED, lambda v: v.trigger_id == trigger_id, lambda f: len(f) >= 3)
    finally:
        service.stop()
    assert {f.fire_id for f in fired} == {f"{vehicle}-0", f"{vehicle}-2", f"{vehicle}-4"}
    assert all(not f.upload_requested and f.suppressed_reason == "uploaded_by_car" for f in fired)
