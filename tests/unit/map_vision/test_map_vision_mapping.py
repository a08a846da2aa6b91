"""map-vision map logic: association, disagreements, refresh, discovery, staleness, persistence
(pure, table-driven, no infrastructure)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import fleet_pb2
from longtail.mapvision.v1 import events_pb2, map_pb2

from map_vision.mapping import (
    FLEET,
    SEED,
    InvalidFeature,
    InvalidFrame,
    MapState,
    Tunables,
    fleet_feature_id,
    observe,
    validate_frame,
)

PI = math.pi
MISSING = events_pb2.DISAGREEMENT_KIND_MAP_WITHOUT_VISION
EXTRA = events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP
MISMATCH = events_pb2.DISAGREEMENT_KIND_ATTRIBUTE_MISMATCH
STOP = map_pb2.FEATURE_KIND_STOP_SIGN
LIGHT = map_pb2.FEATURE_KIND_TRAFFIC_LIGHT


def det(cls="stop_sign", conf=0.9, r=None, b=None, track=0, attrs=None, scores=None) -> common_pb2.Detection:
    d = common_pb2.Detection(cls=cls, confidence=conf, track_id=track)
    if r is not None:
        d.range_m = r
    if b is not None:
        d.bearing_rad = b
    for k, v in (attrs or {}).items():
        d.attributes[k] = v
        d.attribute_scores[k] = (scores or {}).get(k, 0.9)
    return d


def frame(seq, ego=(15.0, 0.0, 0.0), dets=(), vehicle="car-1", t=None) -> fleet_pb2.Frame:
    f = fleet_pb2.Frame(frame_id=f"{vehicle}:{seq}", vehicle_id=vehicle, sequence=seq)
    f.captured_at.FromNanoseconds(int(round(((1000.0 + seq * 0.1) if t is None else t) * 1e9)))
    f.ego.x, f.ego.y, f.ego.heading = ego
    f.detections.extend(dets)
    return f


def feature(fid="s1", x=30.0, y=0.0, heading=PI, kind=STOP, conf=1.0, attrs=None) -> map_pb2.MapFeature:
    return map_pb2.MapFeature(feature_id=fid, kind=kind, x=x, y=y, heading=heading, confidence=conf, attributes=attrs or {})


def seeded(*features, **tunables) -> MapState:
    state = MapState(Tunables(**tunables))
    state.seed(list(features) or [feature()], now=0.0)
    state.drain(0.0, 0.0, force=True)
    return state


def kinds(result) -> list[int]:
    return sorted(d.kind for d in result.disagreements)


# -- one frame against one feature -------------------------------------------------------------------
# ego at (15, 0) heading east; the seeded stop sign is 15 m ahead at (30, 0) facing the car.


@pytest.mark.parametrize(
    "dets,expected",
    [
        ([], [MISSING]),
        ([det(r=15.0, b=0.0)], []),
        ([det(r=15.0, b=0.15)], []),  # 2.2 m to the side: within the 4 m lateral gate
        ([det(r=15.0, b=0.35)], [MISSING, EXTRA]),  # 5.1 m to the side: another sign
        ([det(r=22.0, b=0.0)], [MISSING, EXTRA]),  # 7 m behind it: outside 4 + 0.15 * 15 m along the ray
        ([det(r=20.0, b=0.0)], []),  # 5 m along the ray: a (loose) match, no disagreement
        ([det("traffic_light", r=15.0, b=0.0)], [MISSING, EXTRA]),  # wrong class
        ([det(conf=0.55, r=15.0, b=0.35)], [MISSING]),  # unmatched but not confident enough to be "extra"
        ([det(conf=0.4, r=15.0, b=0.0)], [MISSING]),  # too weak to count as seeing it
        ([det(b=0.0)], []),  # no range: matched by bearing alone
        ([det(r=15.0)], [MISSING]),  # no bearing: cannot be compared
        ([det(r=50.0, b=0.3)], [MISSING]),  # beyond the trusted range: never "extra"
        ([det("car", r=15.0, b=0.0)], [MISSING]),  # classes the map does not hold are ignored
        ([det(r=15.0, b=0.0), det(r=15.0, b=0.02)], [EXTRA]),  # two signs where the map has one
    ],
)
def test_one_frame_disagreements(dets, expected):
    assert kinds(seeded().process_frame(frame(1, dets=dets))) == sorted(expected)


@pytest.mark.parametrize(
    "ego,feat,expected",
    [
        ((15.0, 0.0, 0.0), feature(), [MISSING]),
        ((15.0, 0.0, 0.0), feature(heading=0.0), []),  # faces away: cannot be seen
        ((15.0, 0.0, 0.0), feature(heading=PI / 2), []),  # edge-on
        ((15.0, 0.0, PI / 2), feature(), []),  # not in the field of view
        ((15.0, 0.0, 0.5), feature(), []),  # 0.5 rad off the heading: outside the trusted +-0.45 rad
        ((-10.0, 0.0, 0.0), feature(), []),  # 40 m: beyond the trusted range
        ((26.0, 0.0, 0.0), feature(), []),  # 4 m: too close to be in the image
        ((15.0, 0.0, 0.0), feature(conf=0.1), []),  # the map barely believes in it
        ((15.0, 0.0, 0.0), feature(kind=LIGHT), [MISSING]),
    ],
)
def test_which_features_are_expected(ego, feat, expected):
    assert kinds(seeded(feat).process_frame(frame(1, ego=ego))) == expected


def test_disagreement_fields_and_ids():
    state = seeded()
    [missing] = state.process_frame(frame(7, dets=[det("car")])).disagreements
    assert (missing.vehicle_id, missing.frame_id, missing.kind, missing.feature.feature_id) == ("car-1", "car-1:7", MISSING, "s1")
    assert missing.distance_m == pytest.approx(15.0)
    assert not missing.HasField("detection") and missing.ego.x == 15.0
    assert missing.observed_at.ToNanoseconds() == int(round(1000.7 * 1e9))
    name = "DISAGREEMENT_KIND_MAP_WITHOUT_VISION"
    assert missing.disagreement_id == hashlib.sha256(f"car-1/car-1:7/{name}/s1".encode()).hexdigest()

    extra = [d for d in seeded().process_frame(frame(8, dets=[det("car"), det(r=12.0, b=-0.4, track=9), det(r=12.0, b=0.4)])).disagreements if d.kind == EXTRA]
    assert sorted(d.disagreement_id for d in extra) == sorted(hashlib.sha256(f"car-1/car-1:8/DISAGREEMENT_KIND_VISION_WITHOUT_MAP/{s}".encode()).hexdigest() for s in ("track:9", "det:2"))
    assert all(not d.HasField("feature") and d.detection.cls == "stop_sign" and d.distance_m == pytest.approx(12.0) for d in extra)


def test_duplicate_frames_change_nothing():
    state = seeded()
    first = state.process_frame(frame(5))
    again = state.process_frame(frame(5))
    older = state.process_frame(frame(4))
    assert len(first.disagreements) == 1 and again.duplicate and older.duplicate and not again.disagreements
    assert state.get("s1").miss_count == 1 and state.duplicates == 2


# -- attributes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attrs,scores,expected",
    [
        ({"modifier": "except_right_turn"}, {}, ["modifier"]),
        ({"modifier": "except_right_turn"}, {"modifier": 0.5}, []),  # not confident about the attribute
        ({"modifier": "none"}, {}, []),
        ({"occlusion": "foliage"}, {}, []),  # not an attribute the map keeps
        ({"mount": "gate", "modifier": "except_right_turn"}, {}, ["modifier", "mount"]),
    ],
)
def test_attribute_mismatch(attrs, scores, expected):
    state = seeded(feature(attrs={"mount": "pole", "modifier": "none"}))
    result = state.process_frame(frame(1, dets=[det(r=15.0, b=0.0, attrs=attrs, scores=scores)]))
    got = [list(d.mismatched_attributes) for d in result.disagreements if d.kind == MISMATCH]
    assert got == ([expected] if expected else [])


def test_map_attribute_follows_consistent_observations():
    state = seeded(feature(attrs={"mount": "pole", "modifier": "none"}))
    mismatches = 0
    for seq in range(1, 15):
        result = state.process_frame(frame(seq, dets=[det(r=15.0, b=0.0, attrs={"modifier": "except_right_turn"})]))
        mismatches += sum(d.kind == MISMATCH for d in result.disagreements)
    assert state.get("s1").attributes == {"mount": "pole", "modifier": "except_right_turn"}
    assert 0 < mismatches < 14  # disagreed until the map changed its mind (1 + attr_switch_votes frames)
    assert any(e.feature.attributes["modifier"] == "except_right_turn" for e in state.drain(1.0, 60.0))


# -- driving past signs ------------------------------------------------------------------------------


def drive_by(state, vehicle, truth=((30.0, 0.0),), t0=1000.0, start=0.0, stop=26.4, step=1.2, seq0=1, rng=None, noise=(0.0, 0.0), attrs=None, detect=True):
    """One pass east along y=0 from x=start to x=stop; each true sign is detected (with noise)."""
    out = []
    n = int(round((stop - start) / step)) + 1
    for i in range(n):
        x = start + i * step
        dets = []
        if detect:
            for sx, sy in truth:
                r, b = observe(x, 0.0, 0.0, sx, sy)
                if 3.0 <= r <= 50.0 and abs(b) <= 0.52:
                    if rng is not None:
                        r *= 1 + rng.normal(0, noise[0])
                        b += rng.normal(0, noise[1])
                    dets.append(det(r=r, b=b, attrs=attrs))
        out.append(state.process_frame(frame(seq0 + i, ego=(x, 0.0, 0.0), dets=dets, vehicle=vehicle, t=t0 + i * 0.1)))
    return out


def test_refresh_moves_a_feature_to_where_the_fleet_sees_it():
    state = seeded(feature(x=32.0, y=1.0))  # surveyed 2.2 m off
    rng = np.random.default_rng(1)
    for p in range(6):
        drive_by(state, f"car-{p}", rng=rng, noise=(0.05, 0.01))
    f = state.get("s1")
    assert math.hypot(f.x - 30.0, f.y) < 0.5
    assert f.observation_count >= 100 and f.source == SEED and f.confidence == 1.0


@pytest.mark.parametrize(
    "passes,kw,promoted",
    [
        (1, {}, False),  # one car, one pass: could be anything
        (2, {}, True),
        (2, {"start": 12.0, "stop": 16.0}, False),  # only seen from 14-18 m: never close enough
        (2, {"attrs": {"mount": "handheld"}}, False),  # a crossing guard's sign is not a map feature
        (2, {"attrs": {"temporary": "true"}}, False),
        (3, {"start": 16.8, "stop": 18.0}, False),  # 2 frames per pass: not a pass
    ],
)
def test_discovery_of_a_sign_the_map_lacks(passes, kw, promoted):
    state = MapState(Tunables())
    results = []
    for p in range(passes):
        results += drive_by(state, f"car-{p}", t0=1000.0 + 100 * p, **kw)
    fleet = [f for f in state.active() if f.source == FLEET]
    assert bool(fleet) is promoted
    assert all(d.kind == EXTRA for r in results for d in r.disagreements)
    if promoted:
        [f] = fleet
        assert f.feature_id == fleet_feature_id("stop_sign", f.x, f.y, state.tun.assoc_radius_m)
        assert math.hypot(f.x - 30.0, f.y) < 0.1 and abs(f.heading) > 2.5  # faces back along the road
        # 1 - 0.7^passes at promotion, then the rest of the promoting pass confirmed it: one hit more
        assert f.confidence == pytest.approx(1 - 0.7**3)
        [created] = [e for e in state.drain(2000.0, 60.0) if e.feature.feature_id == f.feature_id]
        assert created.change == events_pb2.FEATURE_CHANGE_CREATED and created.feature.source == FLEET
        later = drive_by(state, "car-9", t0=5000.0)  # now the map has it: no more disagreements
        assert not any(r.disagreements for r in later)


def test_stale_feature_loses_confidence_then_is_removed():
    state = seeded(stale_passes=3)
    confidences = []
    for p in range(3):
        results = drive_by(state, f"car-{p}", truth=(), t0=1000.0 + 100 * p)
        assert any(d.kind == MISSING for r in results for d in r.disagreements)
        state.sweep(now=state.clock + 1000)  # closes the pass of a car that went silent
        confidences.append(round(state.get("s1").confidence, 3))
    f = state.get("s1")
    assert confidences == [0.7, 0.49, 0.343] and f.removed and f.miss_passes == 3
    assert [e.change for e in state.drain(2000.0, 60.0)] == [events_pb2.FEATURE_CHANGE_REMOVED]
    assert not drive_by(state, "car-8", truth=(), t0=3000.0)[0].disagreements  # removed: no longer expected
    assert [f.feature_id for f in state.query(include_removed=True)] == ["s1"] and not state.query()


def test_a_seen_pass_resets_the_miss_streak():
    state = seeded(stale_passes=2)
    drive_by(state, "car-1", truth=(), t0=1000.0)
    drive_by(state, "car-2", t0=1100.0)
    drive_by(state, "car-3", truth=(), t0=1200.0)
    state.sweep(now=state.clock + 1000)
    f = state.get("s1")
    assert not f.removed and f.miss_passes == 1
    assert f.confidence == pytest.approx(0.7 * (0.7 + 0.3 * 0.3))


def test_moved_sign_is_replaced():
    """The survey put the sign 12 m before where it stands: the old position goes stale, the real
    one is discovered; no pass ever confirms the stale one."""
    state = seeded(feature(x=18.0), stale_passes=3)
    seen = set()
    for p in range(4):
        for r in drive_by(state, f"car-{p}", truth=((30.0, 0.0),), t0=1000.0 + 100 * p, start=-15.0, stop=24.0):
            seen.update(d.kind for d in r.disagreements)
        state.sweep(now=state.clock + 1000)
    assert seen == {MISSING, EXTRA}
    assert state.get("s1").removed
    [f] = list(state.active())
    assert f.source == FLEET and math.hypot(f.x - 30.0, f.y) < 0.1


# -- persistence and seeding -----------------------------------------------------------------------


def test_map_rebuilds_from_its_published_events():
    state = MapState(Tunables(stale_passes=1))
    state.seed([feature(), feature("s2", x=230.0), feature("l1", x=40.0, y=-5.0, kind=LIGHT)], now=0.0)
    log = state.drain(0.0, 5.0)
    drive_by(state, "car-1", truth=((30.0, 0.0), (60.0, 0.0)), t0=1000.0, start=0.0, stop=54.0)
    log += state.drain(1.0, 5.0)
    drive_by(state, "car-2", truth=((30.0, 0.0), (60.0, 0.0)), t0=1100.0, start=0.0, stop=54.0)
    state.sweep(now=state.clock + 1000)
    log += state.drain(3000.0, 5.0)
    assert [e.feature.feature_id for e in log].count("s1") >= 2  # created, then updated
    rebuilt = MapState(Tunables())
    for e in log:
        rebuilt.restore(e, e.feature.feature_id)
    assert {f.feature_id: f.to_proto() for f in rebuilt.features.values()} == {f.feature_id: f.to_proto() for f in state.features.values()}
    assert any(f.source == FLEET for f in rebuilt.active())
    rebuilt.restore(None, "s2")  # a tombstone deletes
    assert rebuilt.get("s2") is None


@pytest.mark.parametrize(
    "request_features,kw,expected_counts",
    [
        ([feature()], {}, (0, 0, 0)),  # identical: idempotent
        ([feature(x=31.0)], {}, (0, 1, 0)),
        ([feature(), feature("s3", x=90.0)], {}, (1, 0, 0)),
        ([feature("s3", x=90.0)], {"replace": True}, (1, 0, 2)),  # s1 and s2 are no longer in the survey
        ([feature(x=31.0), feature("s3", x=90.0)], {"only_new": True}, (1, 0, 0)),  # start-up file: keep what we have
    ],
)
def test_seed_is_idempotent_by_feature_id(request_features, kw, expected_counts):
    state = seeded(feature(), feature("s2", x=230.0))
    assert state.seed(request_features, now=1.0, **kw) == expected_counts
    again = state.seed(request_features, now=2.0, **kw)
    assert again[0] == 0 and again[1] == 0


def test_seed_revives_a_removed_feature_and_publishes_changes():
    state = seeded(stale_passes=1)
    drive_by(state, "car-1", truth=())
    state.sweep(now=state.clock + 1000)
    assert state.get("s1").removed
    state.drain(0.0, 0.0, force=True)
    assert state.seed([feature()], now=5.0) == (0, 1, 0)
    [event] = state.drain(5.0, 60.0)
    assert event.change == events_pb2.FEATURE_CHANGE_CREATED and not event.feature.removed and event.feature.source == SEED


@pytest.mark.parametrize(
    "bad,message",
    [
        (map_pb2.MapFeature(kind=STOP), "feature_id"),
        (map_pb2.MapFeature(feature_id="a"), "kind"),
        (map_pb2.MapFeature(feature_id="a", kind=STOP, x=math.nan), "x is not finite"),
        (map_pb2.MapFeature(feature_id="a", kind=STOP, confidence=1.5), "confidence"),
        (map_pb2.MapFeature(feature_id="a", kind=STOP, y=1e12), "out of range"),
    ],
)
def test_seed_rejects_bad_features_before_changing_anything(bad, message):
    state = seeded()
    with pytest.raises(InvalidFeature, match=message):
        state.seed([feature("ok", x=5.0), bad], now=1.0)
    assert state.get("ok") is None


def test_drain_publishes_structure_at_once_and_counters_at_most_every_interval():
    state = seeded()  # published (CREATED) at wall time 0
    state.process_frame(frame(1))  # a miss: a counter, not a structural change
    assert state.drain(2.0, 5.0) == []
    [event] = state.drain(6.0, 5.0)
    assert event.change == events_pb2.FEATURE_CHANGE_UPDATED and event.feature.miss_count == 1
    assert state.drain(200.0, 5.0) == []  # nothing pending
    state.seed([feature(x=31.0)], now=7.0)
    assert [e.change for e in state.drain(7.5, 5.0)] == [events_pb2.FEATURE_CHANGE_UPDATED]  # structural: at once


# -- frame validation --------------------------------------------------------------------------------


def _bad(mutate) -> fleet_pb2.Frame:
    f = frame(1, dets=[det(r=10.0, b=0.1)])
    mutate(f)
    return f


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda f: f.ClearField("ego"), "no ego pose"),
        (lambda f: setattr(f.ego, "x", math.nan), "ego.x is not finite"),
        (lambda f: setattr(f.ego, "heading", math.inf), "ego.heading"),
        (lambda f: setattr(f.ego, "y", 1e9), "out of range"),
        (lambda f: setattr(f.detections[0], "range_m", -1.0), "range_m is negative"),
        (lambda f: setattr(f.detections[0], "bearing_rad", math.nan), "bearing_rad is not finite"),
        (lambda f: setattr(f.detections[0], "confidence", 1.5), "outside"),
        (lambda f: setattr(f, "vehicle_id", ""), "no vehicle_id"),
    ],
)
def test_invalid_frames_are_refused(mutate, message):
    with pytest.raises(InvalidFrame, match=message):
        validate_frame(_bad(mutate))


def test_frame_vehicle_must_match_its_batch():
    assert validate_frame(frame(1)) == "car-1"
    assert validate_frame(frame(1, vehicle=""), "car-2") == "car-2"
    with pytest.raises(InvalidFrame, match="in a batch of"):
        validate_frame(frame(1), "car-2")


# -- the whole loop on the simulator's world ----------------------------------------------------------


def test_map_from_simulated_fleet_is_within_tolerance():
    """Cars drive the simulator's roads; detections are the true features projected back through
    (range, bearing) with 5% range and 0.01 rad bearing noise, 5% misses, occlusion, false
    positives. Starting from the simulator's imperfect map, every permanent feature ends up on the
    map within 3 m, stale ones are removed and false positives never become features."""
    from map_vision.seed import simulator_world
    from map_vision.synthetic import Perception, drive_frames

    sim = simulator_world(world_seed=1, blocks=3, missing_rate=0.15, stale_rate=0.15, map_seed=3)
    truth = {t.feature_id: t for t in sim.truth}
    seed_map = [f for f in sim.seed_map if f.feature_id != "stop_sign/00002"]  # and one more missing for sure
    stale = [f.feature_id for f in seed_map if math.hypot(f.x - truth[f.feature_id].x, f.y - truth[f.feature_id].y) > 1.0]
    assert stale
    state = MapState(Tunables(stale_passes=3))
    state.seed(seed_map, now=0.0)
    rng = np.random.default_rng(0)
    perception = Perception(range_noise_frac=0.05, bearing_noise_rad=0.01, false_positive_rate=0.01)
    cars = [drive_frames(f"car-{c}", sim.drive(c, 3000), sim.truth, rng, perception) for c in range(12)]
    for frames in zip(*cars):
        for f in frames:
            state.process_frame(f)
    state.sweep()
    active = list(state.active())
    errors = []
    for t in truth.values():
        if t.permanent:
            errors.append(min(math.hypot(f.x - t.x, f.y - t.y) for f in active if f.cls == t.cls))
    assert max(errors) <= 3.0, errors
    assert float(np.median(errors)) < 0.5
    for f in active:
        wrong = min(math.hypot(f.x - t.x, f.y - t.y) for t in truth.values() if t.cls == f.cls) > 3.0
        if f.source == FLEET:
            assert not wrong, f"phantom feature {f.feature_id}"  # the fleet never invents a sign
        elif wrong:
            assert f.feature_id in stale and f.confidence < 1.0  # a stale seed still on probation
    removed = [fid for fid in stale if state.get(fid).removed]
    assert len(removed) >= len(stale) - 2  # (a stale light of this world sits where no car can see it)
    assert any(f.source == FLEET and math.hypot(f.x - truth["stop_sign/00002"].x, f.y - truth["stop_sign/00002"].y) < 1.0 for f in active)
