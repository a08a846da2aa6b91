"""Procedural world and cars: determinism, variant rates, map export, driving."""

from __future__ import annotations

import math

import numpy as np
import pytest

from longtail.common.v1 import common_pb2
from longtail.synthetic.world import (
    RED_ROUND_SIGN,
    STOP_SIGN,
    TRAFFIC_LIGHT,
    Car,
    World,
    WorldConfig,
)


def _signature(world: World) -> list:
    return [(o.object_id, o.cls, round(o.x, 6), round(o.y, 6), round(o.facing, 6), sorted(o.attributes.items())) for o in world.objects]


def test_world_is_deterministic_in_seed():
    a, b, c = World(seed=3), World(seed=3), World(seed=4)
    assert _signature(a) == _signature(b)
    assert _signature(a) != _signature(c)
    assert len(a.by_id) == len(a.objects)  # ids are unique


def test_world_has_signs_lights_and_distractors_on_a_multi_km_grid():
    w = World(seed=0)
    stats = w.stats()
    assert w.size_m >= 2000
    assert stats[STOP_SIGN]["total"] > 100
    assert stats[TRAFFIC_LIGHT]["total"] > 50
    assert stats[RED_ROUND_SIGN]["total"] > 100
    for o in w.objects_of(STOP_SIGN):
        assert set(o.attributes) >= {"occlusion", "mount", "modifier", "temporary"}
        assert -math.pi < o.facing <= math.pi


def _within(observed: int, total: int, rate: float) -> bool:
    sigma = math.sqrt(max(rate * (1 - rate), 1e-9) / total)
    return abs(observed / total - rate) <= 4 * sigma + 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_variant_rates_are_roughly_honoured(seed):
    cfg = WorldConfig(blocks=16, occluded_rate=0.3, handheld_rate=0.1, gate_rate=0.15, gate_closed_prob=0.5, temporary_rate=0.2, modifier_rate=0.25)
    w = World(cfg, seed=seed)
    signs = w.objects_of(STOP_SIGN)
    n = len(signs)
    assert n > 300

    def count(pred):
        return sum(1 for o in signs if pred(o.attributes))

    assert _within(count(lambda a: a["occlusion"] == "foliage"), n, 0.3)
    assert _within(count(lambda a: a["mount"] == "handheld"), n, 0.1)
    assert _within(count(lambda a: a["mount"] == "gate"), n, 0.15)
    poles = count(lambda a: a["mount"] == "pole")
    assert _within(count(lambda a: a["temporary"] == "true"), poles, 0.2)  # temporary = on a stand
    not_handheld = n - count(lambda a: a["mount"] == "handheld")
    assert _within(count(lambda a: a["modifier"] == "except_right_turn"), not_handheld, 0.25)
    gates = [o for o in signs if o.attributes["mount"] == "gate"]
    assert 0.2 < sum(o.attributes["gate"] == "closed" for o in gates) / len(gates) < 0.8
    # occlusion really covers a large fraction of the face
    covered = [o.foliage.covered_fraction for o in signs if o.foliage is not None]
    assert min(covered) >= cfg.occlusion_min - 0.05 and max(covered) <= cfg.occlusion_max + 0.1


def test_distractor_rate_scales_red_round_signs_and_common_only_has_no_long_tail():
    none = World(WorldConfig(distractor_rate=0.0), seed=0).stats()
    assert RED_ROUND_SIGN not in none
    low = World(WorldConfig(distractor_rate=0.2, other_sign_rate=0.0), seed=0).stats()[RED_ROUND_SIGN]["total"]
    high = World(WorldConfig(distractor_rate=0.6, other_sign_rate=0.0), seed=0).stats()[RED_ROUND_SIGN]["total"]
    assert 2.4 < high / low < 3.6
    common = World(WorldConfig(occluded_rate=0.5, handheld_rate=0.5).common_only(), seed=0).stats()[STOP_SIGN]
    assert common.get("occlusion=foliage", 0) == 0
    assert common["mount=pole"] == common["total"]
    assert common["temporary=false"] == common["total"] == common["modifier=none"]


def test_gate_open_does_not_control_the_approach():
    w = World(WorldConfig(gate_rate=1.0, handheld_rate=0.0), seed=0)
    for o in w.objects_of(STOP_SIGN):
        key = (*o.node, round((o.approach_heading % (2 * math.pi)) / (math.pi / 2)) % 4)
        assert (w.approach_control.get(key) == "stop") == (o.attributes["gate"] == "closed")


def test_map_features_are_deliberately_imperfect():
    from longtail.mapvision.v1 import map_pb2

    w = World(WorldConfig(handheld_rate=0.1, temporary_rate=0.1), seed=2)
    permanent = [o for o in w.objects if o.permanent]
    feats = w.map_features(missing_rate=0.2, stale_rate=0.1, seed=5)
    assert feats == w.map_features(missing_rate=0.2, stale_rate=0.1, seed=5)
    assert feats != w.map_features(missing_rate=0.2, stale_rate=0.1, seed=6)
    ids = {f.feature_id for f in feats}
    assert all(w.by_id[i].permanent for i in ids)  # never handheld or temporary signs
    missing = len(permanent) - len(feats)
    assert _within(missing, len(permanent), 0.2)
    moved = [f for f in feats if math.hypot(f.x - w.by_id[f.feature_id].x, f.y - w.by_id[f.feature_id].y) > 1.0]
    assert _within(len(moved), len(permanent), 0.1)
    assert all(8.0 <= math.hypot(f.x - w.by_id[f.feature_id].x, f.y - w.by_id[f.feature_id].y) <= 25.0 for f in moved)
    kinds = {f.kind for f in feats}
    assert kinds == {map_pb2.FEATURE_KIND_STOP_SIGN, map_pb2.FEATURE_KIND_TRAFFIC_LIGHT}
    perfect = w.map_features(missing_rate=0.0, stale_rate=0.0)
    assert len(perfect) == len(permanent)


def _distance_to_road(world: World, x: float, y: float) -> float:
    b = world.config.block_m
    dx = abs((x + b / 2) % b - b / 2)
    dy = abs((y + b / 2) % b - b / 2)
    return min(dx, dy)


def test_cars_follow_the_roads_deterministically():
    w = World(seed=0)
    a = Car(w, seed=11)
    b = Car(w, seed=11)
    pa = [a.step(0.1) for _ in range(2000)]
    pb = [b.step(0.1) for _ in range(2000)]
    assert pa == pb
    assert isinstance(pa[0], common_pb2.Pose)
    c = Car(w, seed=12)
    assert [c.step(0.1) for _ in range(50)] != pa[:50]
    hw = w.config.road_half_width_m
    for p in pa:
        assert _distance_to_road(w, p.x, p.y) <= hw
        assert -math.pi < p.heading <= math.pi
        assert p.speed >= 0.0
        assert -hw <= p.x <= w.size_m + hw and -hw <= p.y <= w.size_m + hw
    steps = np.hypot(np.diff([p.x for p in pa]), np.diff([p.y for p in pa]))
    assert steps.max() < 2.0  # smooth: no teleporting through turns
    assert a.odometer > 1000  # it drove somewhere
    headings = {round(p.heading / (math.pi / 2)) % 4 for p in pa}
    assert len(headings) >= 2  # and turned


def test_cars_stop_at_stop_signs():
    w = World(WorldConfig(stop_intersection_rate=1.0, all_way_stop_rate=1.0, light_intersection_rate=0.0), seed=0)
    car = Car(w, seed=1)
    speeds = [car.step(0.1).speed for _ in range(600)]
    assert min(speeds) == 0.0
    assert max(speeds) > 5.0


def test_parked_vehicles_are_off_by_default_and_leave_the_rest_of_the_world_alone():
    from longtail.synthetic.world import VEHICLE

    plain, parked = World(seed=5), World(WorldConfig(vehicle_rate=0.3), seed=5)
    assert not plain.objects_of(VEHICLE)
    assert _signature(plain) == [s for s in _signature(parked) if s[1] != VEHICLE]
    stats = parked.stats()[VEHICLE]
    on = stats.get("lights=hazard", 0) + stats.get("lights=police", 0)
    assert stats["total"] > 300 and 0.1 < on / stats["total"] < 0.35  # hazard 15% + police 5% of them


def test_a_world_of_only_police_cars_has_every_light_bar_on():
    from longtail.synthetic.world import VEHICLE

    world = World(WorldConfig(vehicle_rate=0.5, police_rate=1.0), seed=1)
    assert {o.attributes["lights"] for o in world.objects_of(VEHICLE)} == {"police"}
