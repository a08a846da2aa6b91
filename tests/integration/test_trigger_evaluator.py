"""trigger-evaluator as a real process on the real broker: catalog API with operator auth,
rebuild from the compacted topic, backtests over Kafka and archived segments, yield and rules."""

from __future__ import annotations

import hashlib
import time
import uuid

import grpc
import pytest

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.config import S3Settings, load
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.kafka import Producer
from longtail.labels.v1 import events_pb2 as label_events
from longtail.registry import TRIGGER_EVALUATOR
from longtail.storage import ObjectStore
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S
from longtail.triggers.v1 import triggers_pb2_grpc

from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess
from trigger_evaluator.backtest import write_segment

SECRET = "test-operator-secret-0123456789abcdefgh"
SERVICE = TRIGGER_EVALUATOR.grpc


def start():
    return ServiceProcess("trigger_evaluator", SERVICE, {"OPERATOR_TOKEN_SECRET": SECRET}).start()


@pytest.fixture(scope="module")
def evaluator(kafka, s3):
    service = start()
    yield service
    assert service.stop() == 0


def stub(service):
    return triggers_pb2_grpc.TriggerCatalogServiceStub(service.channel())


AUTH = [("authorization", f"Bearer {issue_token('alice', SECRET, audience=OPERATOR_AUDIENCE)}")]


def spec(expression="count(stop_sign) >= 1", **kw) -> S.TriggerSpec:
    base = dict(name="stop signs", expression=expression, site=S.TRIGGER_SITE_EDGE, task="stop_sign", upload_budget=100, max_uploads_per_car_hour=1000)
    base.update(kw)
    return S.TriggerSpec(**base)


def tid() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_writes_need_an_operator_token(evaluator):
    api = stub(evaluator)
    with pytest.raises(grpc.RpcError) as err:
        api.CreateTrigger(S.CreateTriggerRequest(trigger_id=tid(), spec=spec()), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    fleet_token = issue_token("alice", SECRET)  # right secret, wrong audience
    with pytest.raises(grpc.RpcError) as err:
        api.CreateTrigger(S.CreateTriggerRequest(trigger_id=tid(), spec=spec()), metadata=[("authorization", f"Bearer {fleet_token}")], timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_bad_expression_is_refused_with_line_and_column(evaluator):
    api = stub(evaluator)
    check = api.ValidateTrigger(S.ValidateTriggerRequest(expression="count(stop_sign) >=\n  entropi(traffic_light)"), timeout=10)
    assert not check.ok
    [error] = check.errors
    assert (error.line, error.column) == (2, 3) and "entropi" in error.message and "^" in error.snippet
    with pytest.raises(grpc.RpcError) as err:
        api.CreateTrigger(S.CreateTriggerRequest(trigger_id=tid(), spec=spec("count(stop_sign >= 1")), metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 1, column" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        api.CreateTrigger(S.CreateTriggerRequest(trigger_id=tid(), spec=spec(upload_budget=0)), metadata=AUTH, timeout=10)
    assert "upload_budget" in err.value.details()


def test_lifecycle_versions_and_rebuild_after_restart(kafka, s3):
    service = start()
    api = stub(service)
    trigger_id = tid()
    created = api.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec()), metadata=AUTH, timeout=10)
    assert (created.trigger.version, created.trigger.state, created.trigger.created_by) == (1, S.TRIGGER_STATE_DRAFT, "alice")
    again = api.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec()), metadata=AUTH, timeout=10)
    assert again.already_existed and again.trigger.version == 1
    with pytest.raises(grpc.RpcError) as err:
        api.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec("count(stop_sign) >= 2")), metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    api.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=AUTH, timeout=10)
    updated = api.UpdateTrigger(S.UpdateTriggerRequest(trigger_id=trigger_id, spec=spec("count(stop_sign) >= 2"), expected_version=1), metadata=AUTH, timeout=10)
    assert (updated.trigger.version, updated.trigger.state) == (2, S.TRIGGER_STATE_ACTIVE)
    paused = api.PauseTrigger(S.PauseTriggerRequest(trigger_id=trigger_id, reason="too many fires"), metadata=AUTH, timeout=10)
    assert paused.trigger.state_reason == "too many fires"
    api.RetireTrigger(S.RetireTriggerRequest(trigger_id=trigger_id), metadata=AUTH, timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        api.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert service.stop() == 0

    restarted = start()  # rebuilds its view from the compacted topic
    try:
        got = stub(restarted).GetTrigger(S.GetTriggerRequest(trigger_id=trigger_id), timeout=10).trigger
        assert (got.version, got.state, got.spec.expression) == (2, S.TRIGGER_STATE_RETIRED, "count(stop_sign) >= 2")
        listed = stub(restarted).ListTriggers(S.ListTriggersRequest(states=[S.TRIGGER_STATE_RETIRED], page_size=1000), timeout=10)
        assert trigger_id in {t.trigger_id for t in listed.triggers}
    finally:
        restarted.stop()


def _telemetry_with_known_fires(vehicle: str, frames: int) -> fleet_events.TelemetryBatchEvent:
    """telemetry_batch frames each have one stop sign; drop it on odd frames so a rising-edge
    trigger fires on every even frame: frames/2 fires."""
    batch = telemetry_batch(vehicle, 0, frames, detections=2)
    for frame in batch.frames:
        if frame.sequence % 2 == 1:
            del frame.detections[0]
    return batch


def test_backtest_over_kafka_and_over_a_segment(evaluator, kafka, s3):
    vehicles = [f"bt-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    batches = [_telemetry_with_known_fires(v, 40) for v in vehicles]
    since = time.time() - 1
    producer = Producer(kafka, "test")
    for v, b in zip(vehicles, batches):
        producer.produce(topics.TELEMETRY, v, b)
    producer.flush()
    api = stub(evaluator)
    # An ad-hoc expression that only matches these vehicles, so other tests' telemetry is ignored.
    expression = "count(stop_sign) >= 1 and ego.y == 20"
    request = S.BacktestTriggerRequest(spec=spec(expression), sample_limit=5)
    request.time_range.since.FromNanoseconds(int(since * 1e9))
    result = api.BacktestTrigger(request, metadata=AUTH, timeout=60)
    ours = [s for s in result.sample]
    assert result.fires >= 60 and len(ours) == 5
    assert result.distinct_vehicles >= 3 and result.fires_per_car_hour > 0 and result.expected_uploads_per_day > 0

    store = ObjectStore(load(S3Settings))
    key = f"telemetry-segments/test-{uuid.uuid4().hex[:8]}.bin"
    store.put_at(key, write_segment(batches))
    by_segment = api.BacktestTrigger(S.BacktestTriggerRequest(spec=spec(expression), segment_key=key), metadata=AUTH, timeout=60)
    assert (by_segment.frames_evaluated, by_segment.fires, by_segment.distinct_vehicles) == (120, 60, 3)
    # The per-car rate limit bounds what would be uploaded.
    limited = api.BacktestTrigger(S.BacktestTriggerRequest(spec=spec(expression, max_uploads_per_car_hour=2), segment_key=key), metadata=AUTH, timeout=60)
    assert limited.fires == 6
    producer.close()


def test_yield_counts_distinct_fires_and_budget_exhausts_the_trigger(evaluator, kafka):
    api = stub(evaluator)
    trigger_id = tid()
    api.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec(upload_budget=3)), metadata=AUTH, timeout=10)
    api.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=AUTH, timeout=10)
    producer = Producer(kafka, "test")
    fire_ids = [hashlib.sha256(f"{trigger_id}/1/car/car:{i}".encode()).hexdigest() for i in range(4)]
    for i, fire_id in enumerate(fire_ids):
        event = trigger_events.TriggerFired(fire_id=fire_id, trigger_id=trigger_id, trigger_version=1, vehicle_id="car", frame_id=f"car:{i}", upload_requested=i < 3)
        producer.produce(topics.TRIGGERS_FIRED, "car", event)
        producer.produce(topics.TRIGGERS_FIRED, "car", event)  # a duplicate delivery
    for i in range(2):
        producer.produce(topics.SNAPSHOTS, f"s{i}", fleet_events.SnapshotUploaded(snapshot_id=f"s{i}", trigger_id=trigger_id, trigger_version=1, fire_id=fire_ids[i]))
        label = label_events.LabelCreated()
        label.provenance.trigger_id, label.provenance.trigger_version, label.provenance.fire_id = trigger_id, 1, fire_ids[i]
        label.label.trigger_true_positive = i == 0
        producer.produce(topics.LABELS_CREATED, f"s{i}", label)
    producer.flush()
    deadline = time.monotonic() + 20
    while True:
        [y] = api.GetYield(S.GetYieldRequest(trigger_id=trigger_id), timeout=10).yields
        state = api.GetTrigger(S.GetTriggerRequest(trigger_id=trigger_id), timeout=10).trigger
        if (y.labelled == 2 and state.state == S.TRIGGER_STATE_EXHAUSTED) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (y.fired, y.uploaded, y.labelled, y.true_positive) == (4, 2, 2, 1)
    assert y.yield_ratio == pytest.approx(0.5)
    assert y.budget_remaining == 0
    assert state.state == S.TRIGGER_STATE_EXHAUSTED and "budget" in state.state_reason
    producer.close()
