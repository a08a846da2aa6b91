"""MapVisionService handlers and the telemetry handler, without a network or a broker: a fake
gRPC context, a fake producer, records built by hand."""

from __future__ import annotations

import asyncio
import math
import threading

import grpc
import pytest

from longtail import topics
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2
from longtail.kafka import Record
from longtail.mapvision.v1 import events_pb2, map_pb2, mapvision_pb2

from map_vision.mapping import InvalidFrame, MapState, Tunables
from map_vision.service import MapVisionServicer, RecentDisagreements
from map_vision.worker import MapWorker

SECRET = "map-vision-unit-test-secret-0123456789"
STOP, LIGHT = map_pb2.FEATURE_KIND_STOP_SIGN, map_pb2.FEATURE_KIND_TRAFFIC_LIGHT
MISSING = events_pb2.DISAGREEMENT_KIND_MAP_WITHOUT_VISION
EXTRA = events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP


class Aborted(Exception):
    def __init__(self, code, details):
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class Context:
    def __init__(self, metadata=()):
        self.metadata = metadata

    async def abort(self, code, details):
        raise Aborted(code, details)

    def invocation_metadata(self):
        return self.metadata


def call(method, request, metadata=()):
    return asyncio.run(method(request, Context(metadata)))


def abort_code(method, request, metadata=()):
    with pytest.raises(Aborted) as err:
        call(method, request, metadata)
    return err.value.code, err.value.details


def feature(fid, x, y, kind=STOP, conf=1.0):
    return map_pb2.MapFeature(feature_id=fid, kind=kind, x=x, y=y, heading=math.pi, confidence=conf)


@pytest.fixture
def api():
    state = MapState(Tunables())
    state.seed([feature("a", 0, 0), feature("b", 100, 50), feature("c", 500, 500, LIGHT), feature("d", -30, 5, conf=0.3)], now=0.0)
    state.seed([feature("e", 60, 60)], now=0.0)
    state.features["e"].removed = True
    state.grid.remove(state.features["e"])
    state.drain(0.0, 0.0, force=True)  # the initial map is already on the topic
    published = []

    async def publish():
        published.extend(state.drain(0.0, 0.0, force=True))

    servicer = MapVisionServicer(state, threading.RLock(), RecentDisagreements(100), publish)
    servicer.published = published
    return servicer


def ids(response):
    return [f.feature_id for f in response.features]


@pytest.mark.parametrize(
    "request_kw,expected",
    [
        ({}, ["a", "b", "c", "d"]),
        ({"region": mapvision_pb2.Region(x_min=-10, y_min=-10, x_max=150, y_max=60)}, ["a", "b"]),
        ({"region": mapvision_pb2.Region(x_min=-1e6, y_min=-1e6, x_max=1e6, y_max=1e6)}, ["a", "b", "c", "d"]),
        ({"region": mapvision_pb2.Region(x_min=1, y_min=1, x_max=2, y_max=2)}, []),
        ({"kinds": [LIGHT]}, ["c"]),
        ({"min_confidence": 0.5}, ["a", "b", "c"]),
        ({"include_removed": True}, ["a", "b", "c", "d", "e"]),
        ({"include_removed": True, "region": mapvision_pb2.Region(x_min=50, y_min=50, x_max=70, y_max=70)}, ["e"]),
    ],
)
def test_get_map(api, request_kw, expected):
    response = call(api.GetMap, mapvision_pb2.GetMapRequest(**request_kw))
    assert ids(response) == expected and response.as_of.seconds > 0


@pytest.mark.parametrize(
    "request_kw",
    [
        {"region": mapvision_pb2.Region(x_min=10, y_min=0, x_max=0, y_max=1)},
        {"region": mapvision_pb2.Region(x_min=0, y_min=0, x_max=math.inf, y_max=1)},
        {"min_confidence": 2.0},
        {"kinds": [7]},
    ],
)
def test_get_map_rejects_bad_requests(api, request_kw):
    assert abort_code(api.GetMap, mapvision_pb2.GetMapRequest(**request_kw))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_get_feature(api):
    assert call(api.GetFeature, mapvision_pb2.GetFeatureRequest(feature_id="b")).feature.x == 100
    assert abort_code(api.GetFeature, mapvision_pb2.GetFeatureRequest(feature_id="zz"))[0] == grpc.StatusCode.NOT_FOUND
    assert abort_code(api.GetFeature, mapvision_pb2.GetFeatureRequest())[0] == grpc.StatusCode.INVALID_ARGUMENT


def _disagreement(i, vehicle, kind, fid="", t=1000):
    d = events_pb2.Disagreement(disagreement_id=f"id{i}", vehicle_id=vehicle, frame_id=f"{vehicle}:{i}", kind=kind)
    if fid:
        d.feature.feature_id = fid
    d.observed_at.seconds = t + i
    return d


def test_list_disagreements_filters_and_pages_newest_first(api):
    api.recent.add([_disagreement(i, f"car-{i % 2}", MISSING if i % 3 else EXTRA, "a" if i % 3 else "") for i in range(10)])
    everything = call(api.ListDisagreements, mapvision_pb2.ListDisagreementsRequest())
    assert [d.disagreement_id for d in everything.disagreements] == [f"id{i}" for i in reversed(range(10))]
    assert everything.next_page_token == ""
    got, token = [], ""
    while True:
        page = call(api.ListDisagreements, mapvision_pb2.ListDisagreementsRequest(vehicle_id="car-1", page_size=2, page_token=token))
        got += [d.disagreement_id for d in page.disagreements]
        token = page.next_page_token
        if not token:
            break
    assert got == ["id9", "id7", "id5", "id3", "id1"]
    extra = call(api.ListDisagreements, mapvision_pb2.ListDisagreementsRequest(kinds=[EXTRA]))
    assert [d.disagreement_id for d in extra.disagreements] == ["id9", "id6", "id3", "id0"]
    by_feature = call(api.ListDisagreements, mapvision_pb2.ListDisagreementsRequest(feature_id="a", page_size=100))
    assert len(by_feature.disagreements) == 6
    window = mapvision_pb2.ListDisagreementsRequest()
    window.time_range.since.seconds, window.time_range.until.seconds = 1002, 1005
    assert [d.disagreement_id for d in call(api.ListDisagreements, window).disagreements] == ["id4", "id3", "id2"]
    assert abort_code(api.ListDisagreements, mapvision_pb2.ListDisagreementsRequest(page_token="x"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert abort_code(api.ListDisagreements, mapvision_pb2.ListDisagreementsRequest(page_size=-1))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_recent_disagreements_are_bounded():
    recent = RecentDisagreements(3)
    recent.add([_disagreement(i, "car", MISSING) for i in range(5)])
    items, token = recent.page(lambda d: True, None, 10)
    assert [d.disagreement_id for d in items] == ["id4", "id3", "id2"] and token == "" and len(recent) == 3


def test_seed_map_publishes_the_changes(api):
    """(Who may seed is longtail.access's: an operator, tests/unit/test_access.py.)"""
    request = mapvision_pb2.SeedMapRequest(features=[feature("a", 0, 0), feature("new", 7, 7)], replace=True)
    response = call(api.SeedMap, request)
    assert (response.created, response.updated, response.removed) == (1, 0, 3)  # b, c, d are not in the new survey
    assert {e.feature.feature_id: e.change for e in api.published} == {"new": events_pb2.FEATURE_CHANGE_CREATED, "b": events_pb2.FEATURE_CHANGE_REMOVED, "c": events_pb2.FEATURE_CHANGE_REMOVED, "d": events_pb2.FEATURE_CHANGE_REMOVED}
    bad = mapvision_pb2.SeedMapRequest(features=[map_pb2.MapFeature(feature_id="x", kind=STOP, x=math.nan)])
    code, details = abort_code(api.SeedMap, bad)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "x is not finite" in details


# -- the telemetry handler ---------------------------------------------------------------------------


class FakeProducer:
    def __init__(self):
        self.sent, self.flushes = [], 0

    def produce(self, topic, key, value):
        self.sent.append((topic.name, key, value))

    def flush(self, timeout=30.0):
        self.flushes += 1


def _record(offset, vehicle, frames):
    batch = fleet_events.TelemetryBatchEvent(vehicle_id=vehicle, frames=frames)
    return Record(topics.TELEMETRY.name, 0, offset, vehicle, batch, 1_700_000_000_000)


def _frame(vehicle, seq, x=15.0, heading=0.0):
    f = fleet_pb2.Frame(frame_id=f"{vehicle}:{seq}", vehicle_id=vehicle, sequence=seq)
    f.captured_at.seconds = 1_700_000_000 + seq
    f.ego.x, f.ego.heading = x, heading
    return f


@pytest.fixture
def worker():
    state = MapState(Tunables())
    state.seed([feature("s1", 30, 0)], now=0.0)
    recent = RecentDisagreements(100)
    producer = FakeProducer()
    w = MapWorker(state, threading.RLock(), producer, "unused:1", recent.add, consumer=object(), publish_interval_s=0.0)
    w.recent = recent
    return w


def test_handler_produces_disagreements_and_map_changes_then_flushes(worker):
    worker.handle([_record(1, "car-1", [_frame("car-1", 1), _frame("car-1", 2)])])
    sent = worker.producer.sent
    disagreements = [v for t, k, v in sent if t == topics.MAP_DISAGREEMENTS.name]
    assert [(d.kind, d.frame_id) for d in disagreements] == [(MISSING, "car-1:1"), (MISSING, "car-1:2")]
    assert all(k == "car-1" for t, k, v in sent if t == topics.MAP_DISAGREEMENTS.name)  # keyed by vehicle
    assert [k for t, k, v in sent if t == topics.MAP_FEATURES.name] == ["s1"]  # keyed by feature
    assert worker.producer.flushes == 1 and len(worker.recent) == 2


def test_an_invalid_record_raises_before_anything_changes(worker):
    bad = _frame("car-2", 1)
    bad.ego.x = math.nan
    with pytest.raises(InvalidFrame):
        worker.handle([_record(1, "car-1", [_frame("car-1", 1)]), _record(2, "car-2", [bad])])
    assert worker.producer.sent == [] and worker.state.frames == 0
    # the BatchConsumer then retries record by record: the good one goes through
    worker.handle([_record(1, "car-1", [_frame("car-1", 1)])])
    assert worker.state.frames == 1
    worker.handle([_record(1, "car-1", [_frame("car-1", 1)])])  # redelivered: a duplicate, nothing new
    assert worker.state.frames == 1 and worker.state.duplicates == 1
