"""map-vision as a real process on the real broker.

Twelve cars drive the simulator's roads (a 3x3-block world); their detections are the true stop
signs and traffic lights projected back through (range, bearing) from the ego pose, with noise,
misses, occlusion and false positives. The service starts from the simulator's deliberately
imperfect map (a seed file) plus injected errors: a missing sign, stale (moved) features and a
wrong attribute. The whole world is translated to a place of its own per run and the vehicle ids
are unique, so runs on a shared broker never see each other's map.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import urllib.request
import uuid

import confluent_kafka
import grpc
import numpy as np
import pytest
from confluent_kafka import TopicPartition
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from kafka_probe import read_since

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.kafka import Producer
from longtail.mapvision.v1 import events_pb2, map_pb2, mapvision_pb2, mapvision_pb2_grpc
from longtail.registry import MAP_VISION

from longtail_dev.supervisor import ServiceProcess
from map_vision.seed import simulator_world, write_seed_file
from map_vision.synthetic import Perception, batches, drive_frames, shift_pose, shifted

SERVICE = MAP_VISION.grpc
SECRET = "map-vision-test-operator-secret-0123456789"
GROUP = "map-vision"
TOLERANCE_M = 3.0
MISSING = events_pb2.DISAGREEMENT_KIND_MAP_WITHOUT_VISION
EXTRA = events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP
MISMATCH = events_pb2.DISAGREEMENT_KIND_ATTRIBUTE_MISMATCH
CARS, FRAMES = 12, 4000


class Scenario:
    """The world of this run: truth, the seed map with its known errors, and the telemetry."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        k = random.randint(1, 800)
        self.dx, self.dy = k * 100_000.0, -k * 100_000.0
        self.prefix = f"it-{self.run}/"
        sim = simulator_world(world_seed=1, blocks=3, missing_rate=0.15, stale_rate=0.15, map_seed=3)
        self.truth = shifted(sim.truth, self.dx, self.dy, self.prefix)
        self.by_id = {t.feature_id: t for t in self.truth}
        seed = []
        for f in sim.seed_map:
            g = map_pb2.MapFeature()
            g.CopyFrom(f)
            g.feature_id, g.x, g.y = self.prefix + f.feature_id, f.x + self.dx, f.y + self.dy
            seed.append(g)
        self.dropped = self.prefix + "stop_sign/00002"  # one more sign missing from the map, for sure
        seed = [f for f in seed if f.feature_id != self.dropped]
        self.missing = sorted({t.feature_id for t in self.truth if t.permanent} - {f.feature_id for f in seed})
        self.stale = sorted(f.feature_id for f in seed if math.hypot(f.x - self.by_id[f.feature_id].x, f.y - self.by_id[f.feature_id].y) > 1.0)
        self.wrong_attribute = []
        for f in seed:  # two correct stop signs get a modifier plate they do not have
            if f.kind == map_pb2.FEATURE_KIND_STOP_SIGN and f.feature_id not in self.stale and f.attributes.get("modifier") == "none":
                f.attributes["modifier"] = "except_right_turn"
                self.wrong_attribute.append(f.feature_id)
                if len(self.wrong_attribute) == 2:
                    break
        self.seed = seed
        self.vehicles = [f"mv-{self.run}-{c}" for c in range(CARS)]
        rng = np.random.default_rng(7)
        perception = Perception(range_noise_frac=0.05, bearing_noise_rad=0.01, false_positive_rate=0.01)
        t0 = time.time() - FRAMES * 0.1
        self.telemetry = []  # (vehicle, TelemetryBatchEvent), interleaved in time like a live fleet
        per_car = []
        for c, vehicle in enumerate(self.vehicles):
            poses = [shift_pose(p, self.dx, self.dy) for p in sim.drive(c, FRAMES)]
            per_car.append(batches(vehicle, drive_frames(vehicle, poses, self.truth, rng, perception, t0=t0)))
        for group in zip(*per_car):
            for vehicle, batch in zip(self.vehicles, group):
                self.telemetry.append((vehicle, batch))

    def region(self) -> mapvision_pb2.Region:
        return mapvision_pb2.Region(x_min=self.dx - 100, y_min=self.dy - 100, x_max=self.dx + 700, y_max=self.dy + 700)


@pytest.fixture(scope="module")
def scenario():
    return Scenario()


def _env(seed_file=None) -> dict[str, str]:
    env = {"OPERATOR_TOKEN_SECRET": SECRET, "MAP_VISION_STALE_PASSES": "2", "MAP_VISION_PUBLISH_INTERVAL_S": "1"}
    if seed_file is not None:
        env["MAP_VISION_SEED_FILE"] = str(seed_file)
    return env


def stub(service) -> mapvision_pb2_grpc.MapVisionServiceStub:
    return mapvision_pb2_grpc.MapVisionServiceStub(service.channel())


def get_map(service, scenario, include_removed=False) -> dict[str, map_pb2.MapFeature]:
    response = stub(service).GetMap(mapvision_pb2.GetMapRequest(region=scenario.region(), include_removed=include_removed), timeout=10)
    return {f.feature_id: f for f in response.features}


def _high_watermarks(bootstrap: str, topic: topics.Topic) -> dict[int, int]:
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex[:6]}"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)[1] for p in range(topic.partitions)}
    finally:
        c.close()


def wait_consumed(bootstrap: str, targets: dict[int, int], timeout: float = 120.0) -> None:
    """Until the map-vision group committed at least `targets` on every telemetry partition."""
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + timeout
        while True:
            committed = c.committed([TopicPartition(topics.TELEMETRY.name, p) for p in targets], timeout=10)
            if all(tp.offset >= targets[tp.partition] for tp in committed):
                return
            assert time.monotonic() < deadline, f"map-vision did not consume telemetry: {committed} < {targets}"
            time.sleep(0.5)
    finally:
        c.close()


@pytest.fixture(scope="module")
def processed(kafka, scenario, tmp_path_factory):
    """Start map-vision with the seed file, drive the fleet through it (with two bad records in
    the middle), wait until every record is consumed. Yields (service, since_ms, bad keys)."""
    seed_file = write_seed_file(scenario.seed, tmp_path_factory.mktemp("map") / "seed.json")
    service = ServiceProcess("map_vision", SERVICE, _env(seed_file)).start(timeout=180)
    try:
        since_ms = int(time.time() * 1000) - 1000
        producer = Producer(kafka, "map-vision-test")
        bad_keys = [f"mv-{scenario.run}-bad-bytes", f"mv-{scenario.run}-bad-pose"]
        half = len(scenario.telemetry) // 2
        for vehicle, batch in scenario.telemetry[:half]:
            producer.produce(topics.TELEMETRY, vehicle, batch)
        producer.produce_bytes(topics.TELEMETRY.name, bad_keys[0], b"\xff\x00 definitely not a TelemetryBatchEvent")
        nan_pose = fleet_events.TelemetryBatchEvent(vehicle_id=bad_keys[1])
        frame = nan_pose.frames.add(frame_id=f"{bad_keys[1]}:1", vehicle_id=bad_keys[1], sequence=1)
        frame.ego.x = math.nan
        producer.produce(topics.TELEMETRY, bad_keys[1], nan_pose)
        for vehicle, batch in scenario.telemetry[half:]:
            producer.produce(topics.TELEMETRY, vehicle, batch)
        producer.flush()
        producer.close()
        started = time.monotonic()
        wait_consumed(kafka, _high_watermarks(kafka, topics.TELEMETRY))
        print(f"\nmap-vision consumed {len(scenario.telemetry)} records ({CARS * FRAMES} frames) in {time.monotonic() - started:.1f} s")
        yield service, since_ms, bad_keys
    finally:
        assert service.stop() == 0


def test_map_from_fleet_observations_is_within_tolerance(processed, scenario):
    service, _, _ = processed
    active = {fid: f for fid, f in get_map(service, scenario).items() if not f.removed}
    errors = {}
    for t in scenario.truth:
        if t.permanent:
            kind = map_pb2.FEATURE_KIND_STOP_SIGN if t.cls == "stop_sign" else map_pb2.FEATURE_KIND_TRAFFIC_LIGHT
            errors[t.feature_id] = min(math.hypot(f.x - t.x, f.y - t.y) for f in active.values() if f.kind == kind)
    print(f"placement error over {len(errors)} features: max {max(errors.values()):.2f} m, median {float(np.median(list(errors.values()))):.2f} m")
    assert max(errors.values()) <= TOLERANCE_M, errors
    for f in active.values():
        if f.source == map_pb2.FEATURE_SOURCE_FLEET:  # discovered features are real ones
            nearest = min(math.hypot(f.x - t.x, f.y - t.y) for t in scenario.truth)
            assert nearest <= TOLERANCE_M and f.observation_count >= 5 and 0 < f.confidence <= 1, f
    fleet_near_dropped = [f for f in active.values() if f.source == map_pb2.FEATURE_SOURCE_FLEET and math.hypot(f.x - scenario.by_id[scenario.dropped].x, f.y - scenario.by_id[scenario.dropped].y) <= 1.0]
    assert len(fleet_near_dropped) == 1 and fleet_near_dropped[0].feature_id.startswith("stop_sign/")


def test_injected_map_errors_produce_the_right_disagreements(processed, scenario, kafka):
    service, since_ms, _ = processed
    ours = set(scenario.vehicles)
    records = read_since(kafka, topics.MAP_DISAGREEMENTS, since_ms, lambda k, v: v.vehicle_id in ours)
    events = [v for _, v in records]
    assert events and all(k == v.vehicle_id for k, v in records)  # keyed by vehicle (co-partitioned with telemetry)
    by_kind = {k: [e for e in events if e.kind == k] for k in (MISSING, EXTRA, MISMATCH)}
    print(f"disagreements: {len(by_kind[MISSING])} map-without-vision, {len(by_kind[EXTRA])} vision-without-map, {len(by_kind[MISMATCH])} attribute-mismatch")

    # a sign missing from the map: vision sees it (before the fleet adds it)
    dropped = scenario.by_id[scenario.dropped]
    seen_missing = [e for e in by_kind[EXTRA] if _detection_distance(e, dropped) <= TOLERANCE_M]
    assert seen_missing and all(not e.HasField("feature") for e in seen_missing)
    # stale (moved) features: the map says sign where there is none, and they are retired
    stale_flagged = {e.feature.feature_id for e in by_kind[MISSING]} & set(scenario.stale)
    assert len(stale_flagged) >= len(scenario.stale) - 1, (stale_flagged, scenario.stale)
    everything = get_map(service, scenario, include_removed=True)
    removed = [fid for fid in scenario.stale if everything[fid].removed]
    print(f"stale seeds: {len(scenario.stale)}, flagged {len(stale_flagged)}, removed {len(removed)}")
    assert len(removed) >= len(scenario.stale) - 2, (removed, scenario.stale)
    assert not any(everything[fid].removed for fid in scenario.wrong_attribute)
    # a wrong attribute: both agree the sign is there, not on its plate
    mismatches = [e for e in by_kind[MISMATCH] if e.feature.feature_id in scenario.wrong_attribute]
    assert mismatches and all(list(e.mismatched_attributes) == ["modifier"] for e in mismatches)
    assert all(e.detection.attributes["modifier"] == "none" for e in mismatches)

    for e in events[:500]:  # the documented deterministic id, and the frame reference
        subject = e.feature.feature_id if e.HasField("feature") else (f"track:{e.detection.track_id}" if e.detection.track_id else None)
        if subject is not None:
            name = events_pb2.DisagreementKind.Name(e.kind)
            assert e.disagreement_id == hashlib.sha256(f"{e.vehicle_id}/{e.frame_id}/{name}/{subject}".encode()).hexdigest()
        assert e.frame_id.startswith(e.vehicle_id + ":") and e.observed_at.seconds > 0
        if e.kind == MISSING:
            assert e.distance_m == pytest.approx(math.hypot(e.feature.x - e.ego.x, e.feature.y - e.ego.y), rel=1e-4)
            assert 6.0 <= e.distance_m <= 35.0

    listed = stub(service).ListDisagreements(mapvision_pb2.ListDisagreementsRequest(vehicle_id=scenario.vehicles[0], page_size=50), timeout=10)
    assert listed.disagreements and all(d.vehicle_id == scenario.vehicles[0] for d in listed.disagreements)
    times = [d.observed_at.ToNanoseconds() for d in listed.disagreements]
    assert times == sorted(times, reverse=True)  # newest first


def _detection_distance(event, truth) -> float:
    ego, d = event.ego, event.detection
    a = ego.heading + d.bearing_rad
    return math.hypot(ego.x + d.range_m * math.cos(a) - truth.x, ego.y + d.range_m * math.sin(a) - truth.y)


def test_malformed_telemetry_is_dead_lettered_and_the_service_keeps_going(processed, kafka):
    service, since_ms, bad_keys = processed
    letters = read_since(kafka, topics.DEAD_LETTERS, since_ms, lambda k, v: v.consumer_group == GROUP and v.key.decode(errors="replace") in bad_keys)
    by_key = {v.key.decode(): v for _, v in letters}
    assert set(by_key) == set(bad_keys)
    assert all(v.source_topic == topics.TELEMETRY.name for v in by_key.values())
    assert "cannot decode" in by_key[bad_keys[0]].error
    assert "ego.x is not finite" in by_key[bad_keys[1]].error
    assert by_key[bad_keys[0]].value.startswith(b"\xff\x00")  # the original bytes, untouched
    # kept going: the records after the bad ones were consumed (the fixture waited for all of them)
    assert service.proc.poll() is None


def test_api_metrics_health_and_reflection(processed, scenario):
    service, _, _ = processed
    api = stub(service)
    some = next(iter(get_map(service, scenario)))
    assert api.GetFeature(mapvision_pb2.GetFeatureRequest(feature_id=some), timeout=10).feature.feature_id == some
    with pytest.raises(grpc.RpcError) as err:
        api.GetFeature(mapvision_pb2.GetFeatureRequest(feature_id=f"{scenario.prefix}nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        api.GetMap(mapvision_pb2.GetMapRequest(region=mapvision_pb2.Region(x_min=1, x_max=0)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    survey = map_pb2.MapFeature(feature_id=f"{scenario.prefix}surveyed", kind=map_pb2.FEATURE_KIND_TRAFFIC_LIGHT, x=scenario.dx + 650, y=scenario.dy + 650, heading=1.0)
    with pytest.raises(grpc.RpcError) as err:
        api.SeedMap(mapvision_pb2.SeedMapRequest(features=[survey]), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    auth = [("authorization", f"Bearer {issue_token('alice', SECRET, audience=OPERATOR_AUDIENCE)}")]
    assert api.SeedMap(mapvision_pb2.SeedMapRequest(features=[survey]), metadata=auth, timeout=10).created == 1
    assert api.SeedMap(mapvision_pb2.SeedMapRequest(features=[survey]), metadata=auth, timeout=10).created == 0  # idempotent
    assert get_map(service, scenario)[survey.feature_id].source == map_pb2.FEATURE_SOURCE_SEED

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10).read().decode()
    values = {}
    for line in metrics.splitlines():
        if line.startswith("longtail_mapvision_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values['longtail_mapvision_disagreements_total{kind="map_without_vision",service="map-vision"}'] > 0
    assert values['longtail_mapvision_disagreements_total{kind="vision_without_map",service="map-vision"}'] > 0
    assert values['longtail_mapvision_features{service="map-vision",source="fleet"}'] >= 1
    assert values['longtail_mapvision_features{service="map-vision",source="seed"}'] >= len(scenario.seed) - len(scenario.stale)
    assert values['longtail_mapvision_frames_total{outcome="compared",service="map-vision"}'] >= CARS * FRAMES

    services = ProtoReflectionDescriptorDatabase(service.channel()).get_services()
    assert SERVICE in services and "grpc.health.v1.Health" in services


def test_a_restarted_replica_rebuilds_the_same_map(processed, scenario):
    service, _, _ = processed
    before = get_map(service, scenario, include_removed=True)
    assert service.stop() == 0  # graceful: pending refinements are published before exit
    restarted = ServiceProcess("map_vision", SERVICE, _env()).start(timeout=180)  # no seed file this time
    try:
        rebuilt = get_map(restarted, scenario, include_removed=True)
    finally:
        assert restarted.stop() == 0
    assert set(rebuilt) == set(before)
    for fid, f in before.items():
        g = rebuilt[fid]
        assert (g.removed, g.source, dict(g.attributes), g.kind, g.observation_count, g.miss_count) == (f.removed, f.source, dict(f.attributes), f.kind, f.observation_count, f.miss_count), fid
        assert (g.x, g.y, g.heading, g.confidence) == pytest.approx((f.x, f.y, f.heading, f.confidence), abs=1e-6)
